"""LoRA / QLoRA supervised fine-tuning of a chat LM on textualized cues (the loop is ``train.loop``).

Chats are tokenized with the model's chat template and only the reply is learned. The adapter is
saved in peft format with the prompt it was trained with beside it. QLoRA (4-bit NF4, double
quantization, bf16 compute) needs CUDA; elsewhere it is refused before any weights load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from affectreason.train.adapter import TrainResult, load_model, restore_adapter, save_adapter
from affectreason.train.loop import LoopParts, make_accelerator, run_loop, seed_all
from affectreason.train.recipe import Recipe
from affectreason.train.sft_data import Dataset, read_chats, tokenize_chats


def collate(examples, pad_id: int) -> dict:
    """A padded batch (right padding; prompt and padding positions labelled -100)."""
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


def evaluate(model, tokenizer, data: Dataset, batch_size: int, chats=None, recipe: Recipe | None = None) -> dict:
    """Mean reply-token loss; with ``chats``, label metrics of generated replies (OV set level, EW Fs)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(data.examples), batch_size):
            batch = {k: v.to(model.device) for k, v in
                     collate(data.examples[start: start + batch_size], tokenizer.pad_token_id or 0).items()}
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
    from affectreason.eval.per_record import score_labels
    from affectreason.reason.parse import parse_explanation

    gold, pred = [], []
    for messages in chats:
        inputs = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, return_dict=True,
                                               return_tensors="pt").to(model.device)
        output = model.generate(**inputs, max_new_tokens=recipe.eval.max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        reply = tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        gold.append(parse_explanation(messages[-1]["content"]).labels)
        pred.append(parse_explanation(reply).labels)
    wheel = None
    if recipe.eval.wheel_dir:
        from affectreason.eval.wheel import EmotionWheel

        wheel = EmotionWheel.load(recipe.eval.wheel_dir)
    return score_labels(gold, pred, wheel).figures()


def train_sft(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
              on_step: Callable[[dict], None] | None = None) -> TrainResult:
    """LoRA / QLoRA on a chat LM over textualized cues, per ``recipe`` (``train.run.train`` dispatches here)."""
    output_dir = Path(recipe.output_dir)
    chats = read_chats(recipe.data.train)
    eval_chats = read_chats(recipe.data.eval) if recipe.data.eval else None
    accelerator = make_accelerator(recipe, output_dir)
    seed_all(recipe.schedule.seed)
    tokenizer, model = load_model(recipe)
    data = tokenize_chats(chats, tokenizer, recipe.data.max_length, recipe.data.over_length)
    eval_data = tokenize_chats(eval_chats, tokenizer, recipe.data.max_length, "truncate") if eval_chats else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    parts = LoopParts(
        model=model, n_examples=len(data.examples),
        make_batch=lambda indices: {k: v.to(accelerator.device) for k, v in
                                    collate([data.examples[i] for i in indices], pad).items()},
        save=lambda folder, trained, state_dict: save_adapter(folder, trained, tokenizer, recipe, state_dict),
        restore=restore_adapter,
        evaluate=(lambda trained: evaluate(trained, tokenizer, eval_data, recipe.schedule.batch_size, eval_chats,
                                           recipe)) if eval_data and accelerator.is_main_process else None)
    step, losses, eval_figures = run_loop(recipe, parts, accelerator, resume, stop_after, on_step)
    return TrainResult(output_dir, output_dir / "adapter", step, losses, eval_figures,
                       {"examples": len(data.examples), "dropped": data.dropped, "truncated": data.truncated}, model)
