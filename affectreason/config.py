"""YAML recipes with ``key=value`` command-line overrides, validated by a pydantic model (training and data
recipes share this); every problem is an error naming the file and the key path."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from affectreason.textfile import read_utf8

M = TypeVar("M", bound=BaseModel)


def apply_overrides(tree: dict, overrides: list[str], error: type[Exception] = ValueError) -> dict:
    """``tree`` with each ``dotted.key=value`` applied (values parsed as YAML); ``error`` names a bad one."""
    for item in overrides:
        if "=" not in item:
            raise error(f"override {item!r} is not key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise error(f"override {dotted}: {key} is not a section")
        node[keys[-1]] = yaml.safe_load(raw)
    return tree


def load_validated(path: Path, model: type[M], overrides: list[str], error: type[Exception]) -> M:
    """``model`` validated from the YAML file at ``path`` with ``overrides`` applied."""
    try:
        tree = yaml.safe_load(read_utf8(path, error)) or {}
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(tree, dict):
        raise error(f"{path}: expected a mapping of sections (key: value), got {type(tree).__name__}")
    apply_overrides(tree, overrides, error)
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'recipe'}: {e['msg']}" for e in exc.errors())
        raise error(f"{path}: {problems}") from None
