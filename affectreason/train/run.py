"""``affectreason train``: refuse what cannot run here before any weights load, then dispatch a recipe to its
path: the feature path (``recipe.features``), a native multimodal model (a Qwen-VL / Omni thinker folder) or a
text chat LM (``sft``). All three share ``train.adapter`` and the loop in ``train.loop``. A recipe with an ``rl``
section is GRPO after SFT (``train.grpo``, on TRL's trainer and its loop; the adapter as SFT saves it)."""

from __future__ import annotations

from collections.abc import Callable

from affectreason.models.native import native_kind
from affectreason.train.adapter import TrainResult, check_qlora
from affectreason.train.loop import TrainError, check_trackers
from affectreason.train.memory import MemoryPlan
from affectreason.train.recipe import Recipe

__all__ = ["MemoryPlan", "TrainError", "TrainResult", "check_runtime", "train"]


def check_runtime(recipe: Recipe) -> None:
    """Refuse what cannot run here before any weights load: QLoRA without bitsandbytes (which runs 4-bit NF4 on
    CUDA and, since 0.50, on the CPU), a tracker that is not installed."""
    check_qlora(recipe)
    check_trackers(recipe.schedule.report_to)


def train(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
          on_step: Callable[[dict], None] | None = None, on_plan: Callable[[MemoryPlan], None] | None = None,
          ) -> TrainResult:
    """Fine-tune per ``recipe``; ``resume`` continues from the latest checkpoint; ``stop_after`` ends early.
    Every path checks its memory plan before the weights load (a run that would not fit is a TrainError naming
    settings that fit) and hands it to ``on_plan``."""
    check_runtime(recipe)
    if recipe.rl is not None:
        from affectreason.train.grpo import train_grpo

        return train_grpo(recipe, resume, stop_after, on_step, on_plan)
    if recipe.features:
        from affectreason.train.features import train_features

        return train_features(recipe, resume, stop_after, on_step, on_plan)
    if native_kind(recipe.model.path):
        from affectreason.train.native import train_native

        return train_native(recipe, resume, stop_after, on_step, on_plan)
    from affectreason.train.sft import train_sft

    return train_sft(recipe, resume, stop_after, on_step, on_plan)
