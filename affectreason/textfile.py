"""Reading user-supplied text files: UTF-8 with an optional BOM, or an error that names the line; writing files
whole; the sha256 a pinned model file or a data input is recorded and checked by."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read 1 MiB at a time (a model file is never held whole for it)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_utf8(path: Path, error: type[Exception], empty: str = "the file is empty") -> str:
    """The file as text; an empty file or bytes that are not UTF-8 raise ``error`` naming the line and byte."""
    data = path.read_bytes()
    if not data.strip():
        raise error(f"{path}: {empty}")
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        line = data[:offset].count(b"\n") + 1
        raise error(f"{path}:{line}: not valid UTF-8 (byte 0x{data[offset]:02x} at offset {offset}); "
                    "re-save the file as UTF-8") from None


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it, renamed over it: a reader never sees a
    half-written report, manifest or cache, even when the writer is killed."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
