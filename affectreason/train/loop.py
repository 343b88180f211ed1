"""The training loop shared by the text and the feature paths: accelerate, exact resume, logging.

The data order is a pure function of (seed, step): each epoch is a seeded permutation and every
optimizer step takes the next ``batch_size * grad_accum`` examples. Under ``accelerate launch`` each
process takes every n-th example of that global batch. A process's examples go through the model in
micro-batches: ``grad_accum`` groups of its share of ``batch_size``, or, with
``schedule.max_tokens_per_batch``, groups packed to that many padded tokens (longest first, so rows of a
micro-batch have similar lengths). Every micro-batch's loss is weighted by its share of the step's target
tokens over all processes, so the step's gradient and loss are the token mean over the whole global batch
however it is split: N processes, gradient accumulation and token budgets compute what one process
computes on the whole batch (the 2-process CPU test and the budget test check it). Gradients are
synchronised once per step (the other micro-batches run under ``no_sync``), so processes may take
different numbers of micro-batches. A checkpoint holds the adapter, optimizer, scheduler and every RNG, so
resuming from step k reproduces the uninterrupted run's losses.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import affectreason
from affectreason.errors import AffectReasonError
from affectreason.train.recipe import Recipe


class TrainError(AffectReasonError, RuntimeError):
    """Training cannot start or continue; the message says why."""


@dataclass
class LoopParts:
    """What the loop needs from a training path."""

    model: object
    n_examples: int
    make_batch: Callable[[list[int]], dict]
    save: Callable[[Path, object, dict | None], None]
    restore: Callable[[Path, object], None]
    evaluate: Callable[[object], dict] | None = None
    lengths: list[int] | None = None  # tokens of each example: token-budget micro-batches need them
    loss: Callable[[object, dict], object] | None = None  # (model, batch) -> mean target-token loss
    info: dict = field(default_factory=dict)  # written into recipe.resolved.json (the memory plan, ...)


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batch_indices(n: int, batch_size: int, micro_batch: int, seed: int) -> list[int]:
    """Example indices of micro-batch number ``micro_batch``: epochs are seeded permutations, back to back."""
    import torch

    out = []
    position = micro_batch * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(position, n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
        take = min(batch_size - len(out), n - offset)
        out += order[offset: offset + take]
        position += take
    return out


def pack_by_tokens(indices: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """``indices`` in micro-batches whose padded size (rows x longest row) is at most ``budget`` tokens, longest
    examples first; an example longer than the budget goes alone."""
    order = sorted(indices, key=lambda i: -lengths[i])  # stable: equal lengths keep the data order
    groups: list[list[int]] = []
    for index in order:
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= budget:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def step_micro_batches(step: int, n: int, schedule, rank: int = 0, world: int = 1,
                       lengths: list[int] | None = None) -> list[list[int]]:
    """The example indices of each micro-batch this process runs at optimizer step ``step`` (0-based)."""
    chunks = [batch_indices(n, schedule.batch_size, step * schedule.grad_accum + micro, schedule.seed)[rank::world]
              for micro in range(schedule.grad_accum)]
    if not schedule.max_tokens_per_batch:
        return chunks
    if lengths is None:
        raise TrainError("schedule.max_tokens_per_batch needs the token length of every example")
    return pack_by_tokens([i for chunk in chunks for i in chunk], lengths, schedule.max_tokens_per_batch)


def check_trackers(report_to: list[str]) -> None:
    """Refuse a tracker whose package is missing before any weights load."""
    import importlib.util

    packages = {"tensorboard": "tensorboard", "wandb": "wandb"}
    for name in report_to:
        if importlib.util.find_spec(packages[name]) is None:
            raise TrainError(f"schedule.report_to includes {name} but the {packages[name]} package is not "
                             f"installed: `pip install {packages[name]}` or remove it from report_to")


def make_accelerator(recipe: Recipe, output_dir: Path):
    """An Accelerator for this machine or for the ``accelerate launch`` configuration in the environment."""
    import torch
    from accelerate import Accelerator

    return Accelerator(mixed_precision=recipe.schedule.mixed_precision, cpu=not torch.cuda.is_available(),
                       log_with=list(recipe.schedule.report_to) or None, project_dir=str(output_dir))


def local_processes(accelerator) -> int:
    """Processes of this run on this machine (they share its memory)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))


def flat_config(tree: dict, prefix: str = "") -> dict[str, int | float | str | bool]:
    """A recipe as dotted keys with scalar values (what TensorBoard's hyper-parameter view accepts)."""
    flat: dict[str, int | float | str | bool] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value if isinstance(value, int | float | str | bool) else json.dumps(value)
    return flat


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoints/step-N`` folder, if any."""
    checkpoints = sorted((output_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return checkpoints[-1] if checkpoints else None


def _save_state(folder: Path, optimizer, scheduler, step: int, losses) -> None:
    import torch

    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "python_rng": random.getstate(), "numpy_rng": np.random.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, folder / "state.pt")
    (folder / "state.json").write_text(json.dumps({"step": step, "losses": losses}))


def _restore_state(folder: Path, optimizer, scheduler) -> tuple[int, list]:
    import torch

    state = torch.load(folder / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    meta = json.loads((folder / "state.json").read_text())
    return meta["step"], [tuple(x) for x in meta["losses"]]


def _target_tokens(batch: dict) -> int:
    # causal LMs predict token t+1 from t, so the first position's label never counts
    return int((batch["labels"][:, 1:] != -100).sum())


def run_loop(recipe: Recipe, parts: LoopParts, accelerator, resume: bool = False, stop_after: int | None = None,
             on_step: Callable[[dict], None] | None = None) -> tuple[int, list, dict]:
    """Train ``parts.model`` per ``recipe``; returns (steps done, [(step, loss)], last evaluation figures)."""
    import torch
    from transformers import get_scheduler

    sched, output_dir = recipe.schedule, Path(recipe.output_dir)
    world, rank = accelerator.num_processes, accelerator.process_index
    if sched.batch_size < world:
        raise TrainError(f"schedule.batch_size {sched.batch_size} is smaller than the {world} processes")
    params = [p for p in parts.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay)
    # the scheduler is stepped by hand once per optimizer step: accelerate's wrapper would step it once
    # per process, changing the schedule with the number of processes
    scheduler = get_scheduler(recipe.optim.scheduler, optimizer, num_warmup_steps=recipe.optim.warmup_steps,
                              num_training_steps=sched.max_steps)
    model, optimizer = accelerator.prepare(parts.model, optimizer)
    step, losses = 0, []
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            raise TrainError(f"--resume: no checkpoint under {output_dir / 'checkpoints'}")
        parts.restore(checkpoint, accelerator.unwrap_model(model))
        step, losses = _restore_state(checkpoint, optimizer, scheduler)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "recipe.resolved.json").write_text(json.dumps(
            {"recipe": recipe.model_dump(), "affectreason_version": affectreason.__version__,
             "processes": world, **parts.info}, indent=2))
    if sched.report_to:
        accelerator.init_trackers(output_dir.name, config=flat_config(recipe.model_dump()))
    log = (output_dir / "train_log.jsonl").open("a", encoding="utf-8") if accelerator.is_main_process else None
    model.train()
    last = min(sched.max_steps, stop_after) if stop_after else sched.max_steps
    eval_figures: dict = {}
    try:
        while step < last:
            started, tokens, step_loss = time.perf_counter(), 0, 0.0
            batches = [parts.make_batch(indices) for indices in
                       step_micro_batches(step, parts.n_examples, sched, rank, world, parts.lengths)]
            counts = [_target_tokens(batch) for batch in batches]
            total = int(accelerator.reduce(torch.tensor(sum(counts), device=accelerator.device), "sum")) \
                if world > 1 else sum(counts)
            local_loss = 0.0
            for number, (batch, local) in enumerate(zip(batches, counts, strict=True)):
                last_micro = number == len(batches) - 1
                with (contextlib.nullcontext() if last_micro or world == 1 else accelerator.no_sync(model)):
                    with accelerator.autocast():
                        loss = model(**batch).loss if parts.loss is None else parts.loss(model, batch)
                    # DDP averages gradients over processes: weighting each micro-batch by its share of the
                    # step's target tokens (times the processes) makes that the token mean of the global batch
                    scaled = loss * (local / max(total, 1) * world)
                    accelerator.backward(scaled)
                local_loss += float(scaled.detach())
                tokens += int(batch["attention_mask"].sum()) * world
            batches = None  # the step's inputs are not kept through the optimizer step
            step_loss = float(accelerator.reduce(torch.tensor(local_loss, dtype=torch.float64,
                                                              device=accelerator.device), "mean")) \
                if world > 1 else local_loss
            accelerator.clip_grad_norm_(params, recipe.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append((step, step_loss))
            record = {"step": step, "loss": round(step_loss, 6), "lr": scheduler.get_last_lr()[0],
                      "tokens_per_s": round(tokens / (time.perf_counter() - started), 1)}
            if parts.evaluate and sched.eval_every and step % sched.eval_every == 0:
                eval_figures = parts.evaluate(accelerator.unwrap_model(model))
                record.update(eval_figures)
            if log:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if sched.report_to:
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
            if on_step:
                on_step(record)
            if sched.save_every and step % sched.save_every == 0:
                _checkpoint(output_dir / "checkpoints" / f"step-{step}", parts, model, optimizer, scheduler, step,
                            losses, accelerator)
    finally:  # the log is complete up to the failing step
        if log:
            log.close()
    if parts.evaluate and not (sched.eval_every and step % sched.eval_every == 0):
        eval_figures = parts.evaluate(accelerator.unwrap_model(model))
    if accelerator.is_main_process:
        parts.save(output_dir / "adapter", accelerator.unwrap_model(model), accelerator.get_state_dict(model))
    accelerator.wait_for_everyone()
    if sched.report_to:
        accelerator.end_training()
    if not math.isfinite(losses[-1][1]):
        raise TrainError(f"the loss diverged (step {losses[-1][0]}: {losses[-1][1]}); lower optim.lr")
    return step, losses, eval_figures


def _checkpoint(folder: Path, parts: LoopParts, model, optimizer, scheduler, step, losses, accelerator) -> None:
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        parts.save(folder / "adapter", accelerator.unwrap_model(model), state_dict)
        _save_state(folder, optimizer, scheduler, step, losses)
    accelerator.wait_for_everyone()
