"""Merge a LoRA adapter into its base model, producing a plain model folder (for serving without peft)."""

from __future__ import annotations

import json
from pathlib import Path

from affectreason.errors import AffectReasonError


class ExportError(AffectReasonError, ValueError):
    """The adapter cannot be merged; the message says why."""


def merge_adapter(base: str | Path, adapter: str | Path, out: str | Path) -> Path:
    """Write base + adapter merged to ``out`` (weights and tokenizer); refuses a quantized base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from affectreason.models.hub import model_folder

    base, adapter, out = model_folder(base, "base model"), model_folder(adapter, "adapter"), Path(out)
    config = json.loads((base / "config.json").read_text()) if (base / "config.json").is_file() else None
    if config is None:
        raise ExportError(f"{base} is not a model folder (no config.json)")
    if config.get("quantization_config"):
        raise ExportError(f"{base} is quantized ({config['quantization_config'].get('quant_method', 'unknown')}): "
                          "merging LoRA weights into quantized weights loses the adapter's precision; merge into the "
                          "unquantized base model instead")
    if not (adapter / "adapter_config.json").is_file():
        raise ExportError(f"{adapter} is not a peft adapter folder (no adapter_config.json)")
    model = AutoModelForCausalLM.from_pretrained(base)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out
