"""Read gold and prediction files into ``LabelRecord`` lists.

Accepted formats, chosen by extension:
- ``.csv``: a name column (``name`` or ``names``), a label column (``openset``, ``labels``, ``emotion``,
  ``emotions``) holding a Python list string (``"['happy', 'relaxed']"``, as in MERTools) or a
  comma-separated string, and optionally a reasoning column (``reasoning``, ``reason``, ``reasons``,
  ``english``) and a ``sentiment`` column.
- ``.jsonl`` / ``.json`` (one object per line): ``{"name", "labels", "reasoning"}``, the same alternative
  keys as above, or the project's own ``Explanation`` records (``clip_id`` + ``observations`` ...).

Every failure is a ``RecordError`` naming the file, the line and the fix; nothing here raises a bare
traceback for bad user input.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import ValidationError

from affectreason.errors import AffectReasonError
from affectreason.jsonl import iter_jsonl
from affectreason.labels import parse_label_list  # used below; importable from here as before
from affectreason.schema import Explanation, LabelRecord
from affectreason.textfile import read_utf8

NAME_KEYS = ("name", "names", "clip_id", "id")
LABEL_KEYS = ("labels", "openset", "emotions", "emotion")
REASON_KEYS = ("reasoning", "reason", "reasons", "english")
SENTIMENT_KEYS = ("sentiment", "valence")
EXPLANATION_KEYS = frozenset({"observations", "interpretation", "conclusion"})


class RecordError(AffectReasonError, ValueError):
    """A gold or prediction file cannot be read; the message says where and how to fix it."""


def _pick(keys: Iterable[str], candidates: tuple[str, ...]) -> str | None:
    present = set(keys)
    return next((k for k in candidates if k in present), None)


def _record(row: dict, where: str, name_key: str, label_key: str | None) -> LabelRecord:
    labels = row.get(label_key) if label_key else []
    if labels is None:
        labels = []
    try:
        if isinstance(labels, str):
            labels = parse_label_list(labels)
        reason_key = _pick(row, REASON_KEYS)
        sentiment_key = _pick(row, SENTIMENT_KEYS)
        sentiment = row.get(sentiment_key) if sentiment_key else None
        return LabelRecord(
            name=str(row.get(name_key) or "").strip(),
            labels=labels,
            reasoning=(row.get(reason_key) or None) if reason_key else None,
            sentiment=float(sentiment) if sentiment not in (None, "") else None,
        )
    except (ValueError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise RecordError(f"{where}: {detail}") from None


def _read_csv(path: Path, text: str) -> Iterator[LabelRecord]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
        name_key = _pick(header, NAME_KEYS)
        label_key = _pick(header, LABEL_KEYS)
        if name_key is None or (label_key is None and _pick(header, REASON_KEYS + SENTIMENT_KEYS) is None):
            raise RecordError(
                f"{path}:1: header {header} lacks the needed columns; expected a name column "
                f"({'/'.join(NAME_KEYS)}) and a label column ({'/'.join(LABEL_KEYS)})"
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:
                raise RecordError(f"{where}: more cells than header columns (an unquoted comma?)")
            yield _record(row, where, name_key, label_key)
    except csv.Error as exc:  # e.g. a bare carriage return inside an unquoted field
        raise RecordError(f"{path}:{reader.line_num}: not a readable CSV row ({exc}); quote fields that hold line "
                          "breaks") from None


def _read_jsonl(path: Path) -> Iterator[LabelRecord]:
    for lineno, obj in iter_jsonl(path, "raise", RecordError):
        where = f"{path}:{lineno}"
        if EXPLANATION_KEYS & obj.keys():
            yield _from_explanation(obj, where)
            continue
        name_key = _pick(obj, NAME_KEYS)
        if name_key is None:
            raise RecordError(f"{where}: no name field; expected one of {', '.join(NAME_KEYS)}")
        yield _record(obj, where, name_key, _pick(obj, LABEL_KEYS))


def _from_explanation(obj: dict, where: str) -> LabelRecord:
    try:
        exp = Explanation.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RecordError(f"{where}: Explanation field {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    if not exp.clip_id:
        raise RecordError(f"{where}: Explanation record has no clip_id to match against the gold names")
    return LabelRecord(name=exp.clip_id, labels=exp.labels, reasoning=exp.reasoning_text() or None,
                       sentiment=exp.valence)


def read_records(path: str | Path) -> list[LabelRecord]:
    """Read a CSV or JSONL gold/prediction file; duplicate names are an error."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such file")
    # read first for every format: an empty or non-UTF-8 file is reported the same way whatever its kind
    text = read_utf8(path, RecordError, "the file is empty; expected a header row (CSV) or JSON lines")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(path, text)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        rows = _read_jsonl(path)
    else:
        raise RecordError(f"{path}: unknown extension {suffix!r}; use .csv or .jsonl")
    records: list[LabelRecord] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(rows):
        if record.name in seen:
            raise RecordError(
                f"{path}: name {record.name!r} appears twice (records {seen[record.name] + 1} and {index + 1})"
            )
        seen[record.name] = index
        records.append(record)
    if not records:
        raise RecordError(f"{path}: the file has a header but no records")
    return records
