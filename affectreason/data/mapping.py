"""Joined rows -> record fields: each primary row, the rows of the other inputs with the same id, and
the recipe's field mapping (``input.column``, first non-empty of a list; ``input.column?`` for a column
the file may lack) applied to them.

A column the recipe needs that the file lacks is a ``DataError`` naming the recipe key and the
file's columns; an optional field's missing column is an ``Issue``. Values are then normalized by
pure functions (labels from list strings, numbers from text) and a recipe hook may rework them.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.data.recipe import DataRecipe, RecipeError
from affectreason.data.record import DataError, Issue
from affectreason.data.tables import Table
from affectreason.labels import parse_labels  # used below; importable from here as before

NUMBER_FIELDS = ("sentiment", "valence")
Hook = Callable[[dict], dict]


@dataclass
class Draft:
    """A record before its chain of thought: id, origin and mapped field values."""

    id: str
    where: str
    fields: dict = field(default_factory=dict)


@dataclass
class Joined:
    """Drafts, the row issues met on the way, and rows of other inputs that no primary row used."""

    drafts: list[Draft]
    issues: list[Issue]
    unmatched: dict[str, int]


def is_empty(value: object) -> bool:
    """None, blank text, NaN or an empty container."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list | dict | tuple):
        return not value
    return False


def required_fields(recipe: DataRecipe) -> set[str]:
    """Fields a record cannot do without: labels, and the reference reasoning when that is the CoT."""
    return {"labels", "reasoning"} if recipe.cot == "reference" else {"labels"}


def check_columns(recipe: DataRecipe, tables: dict[str, Table | None]) -> list[Issue]:
    """Every mapped column exists in its file: an error for required fields, an issue for the others."""
    issues = []
    needed = required_fields(recipe) - ({"labels"} if recipe.hook else set())  # a hook may supply labels
    for name, refs in recipe.fields.refs().items():
        present = []
        for ref in refs:
            source, column = ref.split(".", 1)
            table = tables.get(source)
            if table is None:
                continue
            if column.rstrip("?") in table.columns:
                present.append(ref)
            elif not column.endswith("?"):  # 'input.column?': a column the file may lack
                message = f"column {column!r} is not in {table.path} (columns: {sorted(table.columns)})"
                if name in needed and len(refs) == 1:
                    raise DataError(f"{recipe.name}: fields.{name}: {message}")
                issues.append(Issue(str(table.path), f"fields.{name}", message))
        if name in needed and not present and any(tables.get(r.split(".", 1)[0]) for r in refs):
            raise DataError(f"{recipe.name}: fields.{name}: none of {refs} is a column of its file")
    return issues


def _index(table: Table, issues: list[Issue]) -> dict[str, object]:
    rows: dict[str, object] = {}
    for row in table.rows:
        if row.id in rows:
            issues.append(Issue(row.where, table.name, f"id {row.id!r} repeats {rows[row.id].where}; kept the first"))
            continue
        rows[row.id] = row
    return rows


def join_rows(recipe: DataRecipe, tables: dict[str, Table | None]) -> Joined:
    """One draft per primary row, its fields looked up through the mapping."""
    issues = check_columns(recipe, tables)
    primary = tables[recipe.primary_input]
    indexes = {name: _index(t, issues) for name, t in tables.items() if t is not None and name != primary.name}
    used: dict[str, set[str]] = {name: set() for name in indexes}
    drafts = []
    for row in primary.rows:
        values = {}
        for name, refs in recipe.fields.refs().items():
            for ref in refs:
                source, column = ref.split(".", 1)
                if source == primary.name:
                    found, table = row, primary
                elif source in indexes:
                    found, table = indexes[source].get(row.id), tables[source]
                else:
                    continue
                if found is None:
                    continue
                used.setdefault(source, set()).add(row.id)
                value = found.values.get(column.rstrip("?"))
                if not is_empty(value):
                    values[name] = _resolve_media(value, table) if name == "media" else value
                    break
        drafts.append(Draft(row.id, row.where, values))
    unmatched = {name: len(set(index) - used[name]) for name, index in indexes.items()}
    return Joined(drafts, issues, unmatched)


def _resolve_media(value: object, table: Table) -> str:
    path = Path(str(value).strip()).expanduser()
    base = table.path if table.path.is_dir() else table.path.parent
    return str(path if path.is_absolute() else (base / path).resolve())


def normalize_fields(draft: Draft) -> list[Issue]:
    """Labels and numbers parsed in place; a value that cannot be read is dropped with an issue."""
    issues = []
    if "labels" in draft.fields:
        try:
            draft.fields["labels"] = parse_labels(draft.fields["labels"])
        except ValueError as exc:
            issues.append(Issue(draft.where, "labels", str(exc)))
            del draft.fields["labels"]
    for name in NUMBER_FIELDS:
        if name in draft.fields:
            try:
                draft.fields[name] = float(draft.fields[name])
            except (TypeError, ValueError):
                issues.append(Issue(draft.where, name, f"{draft.fields[name]!r} is not a number; ignored"))
                del draft.fields[name]
    for name in ("reasoning", "transcript", "question", "voice"):
        if isinstance(draft.fields.get(name), str):
            draft.fields[name] = " ".join(draft.fields[name].split())
    return issues


def load_hook(recipe: DataRecipe) -> Hook | None:
    """The recipe's ``file.py:function`` hook, loaded from beside the recipe file."""
    if recipe.hook is None:
        return None
    file, function = recipe.hook.split(":")
    base = recipe.origin.parent if recipe.origin else Path.cwd()
    path = (base / file).resolve()
    if not path.is_file():
        raise RecipeError(f"{recipe.name}: hook: {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"affectreason_data_hook_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hook = getattr(module, function, None)
    if not callable(hook):
        raise RecipeError(f"{recipe.name}: hook: {path} has no function {function!r}")
    return hook


def missing_required(draft: Draft, recipe: DataRecipe) -> list[Issue]:
    """An issue per required field the draft lacks after mapping and hook."""
    return [Issue(draft.where, name, "empty or missing; record skipped") for name in sorted(required_fields(recipe))
            if is_empty(draft.fields.get(name))]
