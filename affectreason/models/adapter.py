"""What ``affectreason train`` records beside a LoRA adapter (``affectreason_adapter.json``): the prompt it was
trained with, the base model, and for native multimodal models how frames went in (``frames``, ``fps``,
``max_frames``). Inference, serving and export read it back so an adapter is used as it was trained.
"""

from __future__ import annotations

import json
from pathlib import Path

ADAPTER_INFO = "affectreason_adapter.json"


def adapter_info(adapter: str | Path | None) -> dict:
    """The recorded metadata of an adapter folder (empty when there is none)."""
    info = Path(adapter) / ADAPTER_INFO if adapter else None
    return json.loads(info.read_text(encoding="utf-8")) if info is not None and info.is_file() else {}


def adapter_prompt(adapter: str | Path | None, default: str) -> str:
    """The prompt an adapter was trained with, else ``default``."""
    return adapter_info(adapter).get("prompt") or default


def write_adapter_info(folder: Path, info: dict) -> Path:
    """Record ``info`` beside the adapter in ``folder``."""
    path = Path(folder) / ADAPTER_INFO
    path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return path
