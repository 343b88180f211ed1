"""LoRA supervised fine-tuning with exact resume.

The loop is plain PyTorch so that its state is fully known: the data order is a pure function of
(seed, step) (each epoch a seeded permutation), and a checkpoint holds the adapter, optimizer,
scheduler and every RNG. Resuming from step k therefore reproduces the uninterrupted run's losses.
Per-step figures (loss, learning rate, tokens/s) go to ``train_log.jsonl`` as they happen.
QLoRA (4-bit NF4, double quantization, bf16 compute) needs CUDA; elsewhere it is refused up front.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import affectreason
from affectreason.train.recipe import Recipe
from affectreason.train.sft_data import Dataset, read_chats, tokenize_chats


class TrainError(RuntimeError):
    """Training cannot start or continue; the message says why."""


@dataclass
class TrainResult:
    """What a run produced."""

    output_dir: Path
    adapter_dir: Path
    steps: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


def _seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batch_indices(n: int, batch_size: int, micro_batch: int, seed: int) -> list[int]:
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


def _collate(examples, pad_id: int):
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
        mask[row, : len(e.input_ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def load_model(recipe: Recipe):
    """Tokenizer and the base model wrapped with a fresh LoRA adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict = {"dtype": getattr(torch, recipe.model.dtype), "local_files_only": True}
    if recipe.adapter.kind == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": 0}
    try:
        tokenizer = AutoTokenizer.from_pretrained(recipe.model.path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(recipe.model.path, **kwargs)
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot load model.path {recipe.model.path!r} ({str(exc).splitlines()[0][:200]}); "
                         "give a local model folder; nothing is downloaded") from None
    if recipe.adapter.kind == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.schedule.gradient_checkpointing)
    elif recipe.schedule.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraConfig(r=recipe.adapter.r, lora_alpha=recipe.adapter.alpha, lora_dropout=recipe.adapter.dropout,
                      target_modules=recipe.adapter.target_modules, task_type="CAUSAL_LM")
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise TrainError(f"adapter.target_modules {recipe.adapter.target_modules}: {exc}") from None
    return tokenizer, model


def check_runtime(recipe: Recipe) -> None:
    """Refuse what cannot run here before any weights load."""
    import torch

    if recipe.adapter.kind == "qlora" and not torch.cuda.is_available():
        raise TrainError("adapter.kind=qlora needs a CUDA GPU: bitsandbytes' 4-bit NF4 training kernels do not "
                         "run on the CPU. Use adapter.kind=lora here.")


def _latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted((output_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return checkpoints[-1] if checkpoints else None


def _save_checkpoint(folder: Path, model, optimizer, scheduler, step: int, losses) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder / "adapter")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "python_rng": random.getstate(), "numpy_rng": np.random.get_state(),
                "torch_rng": torch.get_rng_state()}, folder / "state.pt")
    (folder / "state.json").write_text(json.dumps({"step": step, "losses": losses}))


def _restore(folder: Path, model, optimizer, scheduler) -> tuple[int, list]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / "adapter" / "adapter_model.safetensors")))
    state = torch.load(folder / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    meta = json.loads((folder / "state.json").read_text())
    return meta["step"], [tuple(x) for x in meta["losses"]]


def evaluate(model, tokenizer, data: Dataset, batch_size: int, chats=None, recipe: Recipe | None = None) -> dict:
    """Mean reply-token loss; with ``chats``, label metrics of generated replies (OV set level, EW Fs)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(data.examples), batch_size):
            batch = _collate(data.examples[start: start + batch_size], tokenizer.pad_token_id or 0)
            tokens = int((batch["labels"] != -100).sum())
            total += float(model(**batch).loss) * tokens
            count += tokens
        figures = {"eval_loss": total / max(count, 1)}
        if chats and recipe and recipe.eval.generate:
            figures.update(_label_metrics(model, tokenizer, chats[: recipe.eval.generate], recipe))
    model.train()
    return figures


def _label_metrics(model, tokenizer, chats, recipe: Recipe) -> dict:
    """Generate replies to held-out chats and score their labels against the references'."""
    from affectreason.eval.alignment import align
    from affectreason.eval.ov import set_overlap
    from affectreason.eval.result import f_score
    from affectreason.reason.parse import parse_explanation
    from affectreason.schema import LabelRecord

    gold, pred = [], []
    for i, messages in enumerate(chats):
        inputs = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, return_dict=True,
                                               return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=recipe.eval.max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        reply = tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        gold.append(LabelRecord(name=str(i), labels=parse_explanation(messages[-1]["content"]).labels))
        pred.append(LabelRecord(name=str(i), labels=parse_explanation(reply).labels))
    pairs = [set_overlap(set(g.labels), set(p.labels)) for g, p in zip(gold, pred, strict=True) if g.labels]
    accuracy = sum(a for a, _ in pairs) / max(len(pairs), 1)
    recall = sum(r for _, r in pairs) / max(len(pairs), 1)
    figures = {"label_accuracy": round(accuracy, 4), "label_recall": round(recall, 4),
               "label_f1": round(f_score(accuracy, recall), 4)}
    if recipe.eval.wheel_dir:
        from affectreason.eval.ew import score_ew
        from affectreason.eval.wheel import EmotionWheel

        wheel = EmotionWheel.load(recipe.eval.wheel_dir)
        figures["ew_fs"] = round(score_ew(align(gold, pred), wheel).summary["fs"], 4)
    return figures


def train(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
          on_step: Callable[[dict], None] | None = None) -> TrainResult:
    """Fine-tune per ``recipe``; ``resume`` continues from the latest checkpoint; ``stop_after`` ends early."""
    import torch
    from transformers import get_scheduler

    check_runtime(recipe)
    output_dir = Path(recipe.output_dir)
    chats = read_chats(recipe.data.train)
    eval_chats = read_chats(recipe.data.eval) if recipe.data.eval else None
    _seed_all(recipe.schedule.seed)
    tokenizer, model = load_model(recipe)
    data = tokenize_chats(chats, tokenizer, recipe.data.max_length, recipe.data.over_length)
    eval_data = tokenize_chats(eval_chats, tokenizer, recipe.data.max_length, "truncate") if eval_chats else None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay)
    scheduler = get_scheduler(recipe.optim.scheduler, optimizer, num_warmup_steps=recipe.optim.warmup_steps,
                              num_training_steps=recipe.schedule.max_steps)
    step, losses = 0, []
    if resume:
        checkpoint = _latest_checkpoint(output_dir)
        if checkpoint is None:
            raise TrainError(f"--resume: no checkpoint under {output_dir / 'checkpoints'}")
        step, losses = _restore(checkpoint, model, optimizer, scheduler)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "recipe.resolved.json").write_text(json.dumps(
        {"recipe": recipe.model_dump(), "affectreason_version": affectreason.__version__}, indent=2))
    log = (output_dir / "train_log.jsonl").open("a", encoding="utf-8")
    sched, pad = recipe.schedule, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.train()
    last = min(sched.max_steps, stop_after) if stop_after else sched.max_steps
    eval_figures: dict = {}
    while step < last:
        started, tokens, step_loss = time.perf_counter(), 0, 0.0
        for micro in range(sched.grad_accum):
            indices = _batch_indices(len(data.examples), sched.batch_size, step * sched.grad_accum + micro, sched.seed)
            batch = _collate([data.examples[i] for i in indices], pad)
            loss = model(**batch).loss / sched.grad_accum
            loss.backward()
            step_loss += float(loss.detach())
            tokens += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(params, recipe.optim.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append((step, step_loss))
        record = {"step": step, "loss": round(step_loss, 6), "lr": scheduler.get_last_lr()[0],
                  "tokens_per_s": round(tokens / (time.perf_counter() - started), 1)}
        if eval_data and sched.eval_every and step % sched.eval_every == 0:
            eval_figures = evaluate(model, tokenizer, eval_data, sched.batch_size, eval_chats, recipe)
            record.update(eval_figures)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if on_step:
            on_step(record)
        if sched.save_every and step % sched.save_every == 0:
            _save_checkpoint(output_dir / "checkpoints" / f"step-{step}", model, optimizer, scheduler, step, losses)
    log.close()
    if eval_data and not (sched.eval_every and step % sched.eval_every == 0):
        eval_figures = evaluate(model, tokenizer, eval_data, sched.batch_size, eval_chats, recipe)
    adapter_dir = output_dir / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    if not math.isfinite(losses[-1][1]):
        raise TrainError(f"the loss diverged (step {losses[-1][0]}: {losses[-1][1]}); lower optim.lr")
    return TrainResult(output_dir, adapter_dir, step, losses, eval_figures,
                       {"examples": len(data.examples), "dropped": data.dropped, "truncated": data.truncated})
