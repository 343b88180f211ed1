"""Convert a GGUF chat model (llama.cpp format) into a normal transformers model folder.

transformers can read a GGUF file (dequantizing it; needs the ``gguf`` package) but refuses to
``save_pretrained`` a model loaded that way, and peft and vLLM want a plain folder. So: load the GGUF,
build a fresh model from its config (without the quantization settings), copy the dequantized weights
in, and save that with the tokenizer and its chat template.
"""

from __future__ import annotations

from pathlib import Path

from affectreason.errors import UsageError
from affectreason.models.causal_lm import ModelMissing


def convert_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir`` (config, fp32 safetensors, tokenizer) from a GGUF file; returns ``out_dir``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    if not gguf_file.is_file():
        raise ModelMissing(f"{gguf_file}: no such GGUF file")
    folder, name = str(gguf_file.parent), gguf_file.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise UsageError(f"GGUF weights do not match the architecture: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    fresh.tie_weights()
    out_dir.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
