"""Input files -> rows with an id and a location (``file:line``), whatever the corpus's format.

Formats: CSV with a header (MERTools, EMER, MER-Caption+), JSON lines (MERBench, FEA-20K), a JSON
object keyed by clip id or a JSON list (Emotion-LLaMA's MERR), and a folder of clips (the rows are
its media files, the id their stem). A problem with the whole file (absent, not UTF-8, no id column)
is a ``DataError``; a problem with one row (malformed JSON, no id, too many cells) is an ``Issue``
and the row is skipped, so one bad line does not cost a corpus.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.data.record import DataError, Issue
from affectreason.jsonl import iter_jsonl
from affectreason.textfile import read_utf8

KEY = "@key"  # the id of a row is the key of a JSON object keyed by id


@dataclass
class Row:
    """One row: its id, its values by column, and where it came from."""

    id: str
    values: dict
    where: str


@dataclass
class Table:
    """The rows of one input, the columns seen, and the rows skipped."""

    name: str
    path: Path
    rows: list[Row] = field(default_factory=list)
    columns: set[str] = field(default_factory=set)
    issues: list[Issue] = field(default_factory=list)


def _text_id(value: object) -> str:
    return "" if value is None else str(value).strip()


def _read_csv(table: Table, id_key: str) -> None:
    reader = csv.DictReader(io.StringIO(read_utf8(table.path, DataError)))
    header = reader.fieldnames or []
    if id_key not in header:
        raise DataError(f"{table.path}:1: no id column {id_key!r} (header: {header}); "
                        f"set inputs.{table.name}.id=COLUMN")
    table.columns = set(header)
    for values in reader:
        where = f"{table.path}:{reader.line_num}"
        if None in values:
            table.issues.append(Issue(where, "row", "more cells than header columns (an unquoted comma?); skipped"))
            continue
        _add(table, values, where, _text_id(values.get(id_key)), id_key)


def _read_jsonl(table: Table, id_key: str) -> None:
    read_utf8(table.path, DataError)  # an empty or non-UTF-8 file is an error, not a table without rows
    skipped = lambda where, problem: table.issues.append(Issue(where, "row", f"{problem}; skipped"))  # noqa: E731
    for lineno, values in iter_jsonl(table.path, "skip", DataError, on_bad=skipped):
        where = f"{table.path}:{lineno}"
        table.columns |= values.keys()
        _add(table, values, where, _text_id(values.get(id_key)), id_key)


def _read_json(table: Table, id_key: str) -> None:
    try:
        data = json.loads(read_utf8(table.path, DataError))
    except json.JSONDecodeError as exc:
        raise DataError(f"{table.path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict):
        items = [(f"{table.path}[{key!r}]", value, key) for key, value in data.items()]
    elif isinstance(data, list):
        items = [(f"{table.path}[{i}]", value, None) for i, value in enumerate(data)]
    else:
        raise DataError(f"{table.path}: expected a JSON object keyed by id or a list of objects")
    for where, values, key in items:
        if not isinstance(values, dict):
            table.issues.append(Issue(where, "row", f"an object expected, got {type(values).__name__}; skipped"))
            continue
        table.columns |= values.keys()
        row_id = key if id_key == KEY or (key is not None and id_key not in values) else values.get(id_key)
        _add(table, values, where, _text_id(row_id), id_key)


def _read_folder(table: Table) -> None:
    from affectreason.media import CLIP_SUFFIXES

    files = sorted(p for p in table.path.iterdir() if p.is_file() and p.suffix.lower() in CLIP_SUFFIXES)
    if not files:
        raise DataError(f"{table.path}: no clips (looked for {', '.join(sorted(CLIP_SUFFIXES))})")
    table.columns = {"path"}
    for file in files:
        table.rows.append(Row(file.stem, {"path": str(file.resolve())}, str(file)))


def _add(table: Table, values: dict, where: str, row_id: str, id_key: str) -> None:
    if not row_id:
        table.issues.append(Issue(where, id_key, "no id; row skipped"))
        return
    table.rows.append(Row(row_id, values, where))


def infer_format(path: Path) -> str:
    """The format a path's suffix implies ("folder" for a directory)."""
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
    if suffix not in formats:
        raise DataError(f"{path}: cannot tell the format from {suffix!r}; set the input's format: csv|jsonl|json")
    return formats[suffix]


def read_table(name: str, path: Path, fmt: str = "auto", id_key: str = "name") -> Table:
    """All rows of one input file or folder."""
    table = Table(name, path)
    fmt = infer_format(path) if fmt == "auto" else fmt
    if fmt == "folder":
        if not path.is_dir():
            raise DataError(f"inputs.{name}: {path} is not a folder")
        _read_folder(table)
    elif fmt == "csv":
        _read_csv(table, id_key)
    elif fmt == "jsonl":
        _read_jsonl(table, id_key)
    else:
        _read_json(table, id_key)
    if not table.rows and table.columns and id_key != KEY and id_key not in table.columns:
        raise DataError(f"{path}: no row has the id field {id_key!r} (fields: {sorted(table.columns)}); "
                        f"set inputs.{name}.id=FIELD")
    return table
