"""What every training path shares: ``model.path`` resolved to a local folder (a hub id downloaded once through
``models.hub``), the base model wrapped with LoRA (QLoRA: 4-bit NF4 through bitsandbytes, on CUDA or the CPU), the
adapter saved in peft format with what it was trained with (``affectreason_adapter.json``), adapter weights restored
on resume, and the run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import affectreason
from affectreason.models.adapter import write_adapter_info
from affectreason.models.hub import ModelMissing, model_folder
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


QLORA_HINT = "pip install 'affectreason[qlora]'"


def local_model(recipe: Recipe) -> tuple[Recipe, str]:
    """(``recipe`` with ``model.path`` a local folder, the model as the recipe names it): a hub id
    (``org/name[@revision]``) is downloaded once into the Hugging Face cache, or taken from it
    (``HF_HUB_OFFLINE=1``)."""
    try:
        folder = model_folder(recipe.model.path, "model.path")
    except ModelMissing as exc:
        raise TrainError(str(exc)) from None
    model = recipe.model.model_copy(update={"path": str(folder)})
    return recipe.model_copy(update={"model": model}), recipe.model.path


def check_qlora(recipe: Recipe) -> None:
    """Refuse ``adapter.kind=qlora`` where bitsandbytes is missing or does not load (before any data or weights)."""
    if recipe.adapter.kind != "qlora":
        return
    try:
        import bitsandbytes  # noqa: F401 (its import loads the native library for this machine)
    except ModuleNotFoundError:
        raise TrainError(f"adapter.kind=qlora needs bitsandbytes (4-bit NF4 on CUDA or the CPU): {QLORA_HINT}"
                         ) from None
    except (ImportError, RuntimeError, OSError) as exc:
        raise TrainError(f"adapter.kind=qlora: bitsandbytes does not load here ({str(exc).splitlines()[0][:200]}); "
                         f"reinstall it ({QLORA_HINT}) or use adapter.kind=lora") from None


def load_tokenizer(recipe: Recipe):
    """The tokenizer of ``model.path`` (read before the weights, so that the data can be measured first)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_folder(recipe.model.path, "model.path"))
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot load the tokenizer of model.path {recipe.model.path!r} "
                         f"({str(exc).splitlines()[0][:200]}); give a model folder or a hub id") from None


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
    kwargs: dict = {"dtype": getattr(torch, recipe.model.dtype), "attn_implementation": recipe.model.attention}
    if recipe.adapter.kind == "qlora":
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        check_qlora(recipe)
        cuda = torch.cuda.is_available()
        # bf16 compute on CUDA (QLoRA's setting); float32 on the CPU, where bf16 matmuls are emulated without
        # AVX512-BF16 (bitsandbytes 0.50.2 dequantizes NF4 there and runs the matmul in the compute dtype)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if cuda else torch.float32)
        kwargs["device_map"] = {"": PartialState().local_process_index if cuda else "cpu"}
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(recipe)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_folder(recipe.model.path, "model.path"), **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        hint = " (model.attention=eager works with every model)" if "attn" in str(exc).lower() else ""
        raise TrainError(f"cannot load model.path {recipe.model.path!r} ({str(exc).splitlines()[0][:200]}){hint}; "
                         "give a model folder or a hub id") from None
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


def save_adapter(folder: Path, model, tokenizer, recipe: Recipe, state_dict: dict | None = None,
                 base_model: str | None = None, info: dict | None = None) -> None:
    """The LoRA adapter in peft format (what vLLM's ``--lora-modules`` and ``attach_adapter`` load), its
    tokenizer, and the prompt it was trained with; ``base_model`` is the model as the recipe named it (a hub id
    stays a hub id; default ``model.path``); ``info``: more metadata for ``affectreason_adapter.json``."""
    model.save_pretrained(folder, state_dict=state_dict)
    tokenizer.save_pretrained(folder)
    write_adapter_info(folder, {"prompt": recipe.data.prompt, "base_model": base_model or recipe.model.path,
                                "frames": recipe.data.frames, "fps": recipe.data.fps,
                                "max_frames": recipe.data.max_frames, "affectreason_version": affectreason.__version__,
                                **(info or {})})


def restore_adapter(folder: Path, model) -> None:
    """Load adapter weights saved by ``save_adapter`` into ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / "adapter" / "adapter_model.safetensors")))
