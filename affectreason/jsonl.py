"""The one JSONL reader and writer: one JSON object per line, UTF-8.

Bad lines (not JSON, or JSON that is not an object) are handled by a policy the caller names:
- ``"raise"``: an error naming ``file:line`` (user-supplied inputs: gold, predictions, training data);
- ``"skip_last"``: a cut-off *last* line is skipped (what an interrupted run leaves behind), any other bad
  line raises (files this package wrote itself and then appends to: batch outputs, cue caches);
- ``"skip"``: every bad line is skipped (best-effort scans, e.g. counting what a run already did).
``on_bad(where, problem)`` is told of each skipped line (``where`` is ``file:line``), e.g. to record it as an issue.
Blank lines are always skipped. Appends are flushed line by line, so a killed run leaves at most one torn line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Literal

from affectreason.errors import AffectReasonError
from affectreason.textfile import read_utf8

BadLines = Literal["raise", "skip_last", "skip"]


class JSONLError(AffectReasonError, ValueError):
    """A JSONL file has a line that is not a JSON object; the message names the file and line."""


def iter_jsonl(path: str | Path, bad_lines: BadLines = "raise", error: type[Exception] = JSONLError,
               on_bad: Callable[[str, str], None] | None = None) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each line of ``path``; bad lines as ``bad_lines`` says (``error`` raised)."""
    path = Path(path)
    text = read_utf8(path, error) if path.read_bytes().strip() else ""  # an empty file holds no records
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines, start=1) if line.strip()), default=0)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            kind = type(value).__name__
            problem = None if isinstance(value, dict) else f"expected a JSON object per line, got {kind}"
        except json.JSONDecodeError as exc:
            value, problem = None, f"not valid JSON ({exc.msg} at column {exc.colno})"
        if problem is None:
            yield lineno, value
        elif bad_lines == "skip" or (bad_lines == "skip_last" and lineno == last):
            if on_bad is not None:
                on_bad(f"{path}:{lineno}", problem)
        else:
            raise error(f"{path}:{lineno}: {problem}")


def read_jsonl(path: str | Path, bad_lines: BadLines = "raise", error: type[Exception] = JSONLError) -> list[dict]:
    """The objects of a JSONL file (a missing file is an empty list only with ``bad_lines="skip"``)."""
    if bad_lines == "skip" and not Path(path).is_file():
        return []
    return [value for _, value in iter_jsonl(path, bad_lines, error)]


def dumps(record: dict) -> str:
    """One record as one JSON line (UTF-8 kept as is, no newline inside)."""
    return json.dumps(record, ensure_ascii=False)


def append_line(handle: IO[str], record: dict) -> None:
    """Append one record to an open file and flush it (an interrupted run loses at most this line)."""
    handle.write(dumps(record) + "\n")
    handle.flush()


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write ``records`` to ``path`` atomically (a temporary file beside it, then renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(dumps(record) + "\n")
    os.replace(tmp, path)
    return path


def drop_torn_tail(path: str | Path) -> str | None:
    """Cut a last line that a killed writer left without its newline, so the next append starts a fresh line
    (appended to the fragment, a new record would be lost inside a bad line). Returns a warning, or None."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return None
        data = handle.seek(0) or handle.read()
        keep = data.rfind(b"\n") + 1
        handle.truncate(keep)
    return (f"{path}: dropped a cut-off last line ({len(data) - keep} bytes) left by an interrupted run; "
            "that item is redone")
