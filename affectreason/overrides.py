"""``key=value`` command-line overrides of a YAML tree (training and data recipes share them)."""

from __future__ import annotations

import yaml


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
