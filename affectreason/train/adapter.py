"""What every training path shares: the base model wrapped with LoRA, the adapter saved in peft format with what
it was trained with (``affectreason_adapter.json``), adapter weights restored on resume, and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import affectreason
from affectreason.models.adapter import write_adapter_info
from affectreason.train.loop import TrainError
from affectreason.train.recipe import Recipe


@dataclass
class TrainResult:
    """What a run produced."""

    output_dir: Path
    adapter_dir: Path
    steps: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    model: object = field(default=None, repr=False)  # the trained (peft) model, still in memory


def load_tokenizer(recipe: Recipe):
    """The tokenizer of ``model.path`` (read before the weights, so that the data can be measured first)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(recipe.model.path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot load the tokenizer of model.path {recipe.model.path!r} "
                         f"({str(exc).splitlines()[0][:200]}); give a local model folder; nothing is downloaded"
                         ) from None


def enable_checkpointing(model) -> None:
    """Recompute each layer's activations in the backward pass (non-reentrant: no input-gradient workaround)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def load_model(recipe: Recipe, gradient_checkpointing: bool | None = None, tokenizer=None):
    """Tokenizer and the base model wrapped with a fresh LoRA adapter; ``gradient_checkpointing`` as decided by
    the memory plan (default: the recipe's setting, ``auto`` meaning off)."""
    import torch
    from transformers import AutoModelForCausalLM

    checkpointing = recipe.schedule.gradient_checkpointing if gradient_checkpointing is None \
        else gradient_checkpointing
    checkpointing = checkpointing is True
    kwargs: dict = {"dtype": getattr(torch, recipe.model.dtype), "local_files_only": True,
                    "attn_implementation": recipe.model.attention}
    if recipe.adapter.kind == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        from accelerate import PartialState

        kwargs["device_map"] = {"": PartialState().local_process_index}
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(recipe)
    try:
        model = AutoModelForCausalLM.from_pretrained(recipe.model.path, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        hint = " (model.attention=eager works with every model)" if "attn" in str(exc).lower() else ""
        raise TrainError(f"cannot load model.path {recipe.model.path!r} ({str(exc).splitlines()[0][:200]}){hint}; "
                         "give a local model folder; nothing is downloaded") from None
    if recipe.adapter.kind == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif checkpointing:
        enable_checkpointing(model)
    return tokenizer, wrap_lora(model, recipe, recipe.adapter.target_modules, task_type="CAUSAL_LM")


def wrap_lora(model, recipe: Recipe, target_modules: list[str] | str, task_type: str | None = None):
    """``model`` with a fresh LoRA adapter per ``recipe.adapter`` on ``target_modules`` (names or a pattern)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=recipe.adapter.r, lora_alpha=recipe.adapter.alpha, lora_dropout=recipe.adapter.dropout,
                      target_modules=target_modules, task_type=task_type)
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise TrainError(f"adapter.target_modules {recipe.adapter.target_modules}: {exc}") from None


def save_adapter(folder: Path, model, tokenizer, recipe: Recipe, state_dict: dict | None = None) -> None:
    """The LoRA adapter in peft format (what vLLM's ``--lora-modules`` and ``attach_adapter`` load), its
    tokenizer, and the prompt it was trained with."""
    model.save_pretrained(folder, state_dict=state_dict)
    tokenizer.save_pretrained(folder)
    write_adapter_info(folder, {"prompt": recipe.data.prompt, "base_model": recipe.model.path,
                                "frames": recipe.data.frames, "fps": recipe.data.fps,
                                "max_frames": recipe.data.max_frames, "affectreason_version": affectreason.__version__})


def restore_adapter(folder: Path, model) -> None:
    """Load adapter weights saved by ``save_adapter`` into ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / "adapter" / "adapter_model.safetensors")))
