"""Reading user-supplied text files: UTF-8 with an optional BOM, or an error that names the line."""

from __future__ import annotations

import codecs
from pathlib import Path


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
