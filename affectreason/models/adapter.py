"""What ``affectreason train`` records beside a LoRA adapter (``affectreason_adapter.json``): the prompt it was
trained with, the base model, and for native multimodal models how frames went in (``frames``, ``fps``,
``max_frames``). Inference, serving and export read it back so an adapter is used as it was trained.
"""

from __future__ import annotations

import json
from pathlib import Path

from affectreason.models.hub import ModelMissing, adapter_folder, is_hub_id
from affectreason.textfile import read_utf8, write_atomic

ADAPTER_INFO = "affectreason_adapter.json"


def adapter_info(adapter: str | Path | None) -> dict:
    """The recorded metadata of an adapter (a folder or a hub id; empty when there is none)."""
    info = adapter_folder(adapter) / ADAPTER_INFO if adapter and is_hub_id(str(adapter)) else \
        Path(adapter) / ADAPTER_INFO if adapter else None
    if info is None or not info.is_file():
        return {}
    try:
        value = json.loads(read_utf8(info, ModelMissing))
    except json.JSONDecodeError as exc:
        raise ModelMissing(f"{info}:{exc.lineno}: not valid JSON ({exc.msg}); re-train or fix the file") from None
    if not isinstance(value, dict):
        raise ModelMissing(f"{info}: expected a JSON object, got {type(value).__name__}")
    return value


def adapter_prompt(adapter: str | Path | None, default: str) -> str:
    """The prompt an adapter was trained with, else ``default``."""
    return adapter_info(adapter).get("prompt") or default


def write_adapter_info(folder: Path, info: dict) -> Path:
    """Record ``info`` beside the adapter in ``folder``."""
    path = Path(folder) / ADAPTER_INFO
    return write_atomic(path, json.dumps(info, indent=2))
