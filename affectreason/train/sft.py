"""LoRA / QLoRA supervised fine-tuning of a chat LM on textualized cues (the loop is ``train.loop``).

Chats are tokenized with the model's chat template and only the reply is learned; the LM head runs on the
reply tokens only (``train.loss``). The data is tokenized before the weights load, so that the memory plan
(``train.memory``) can refuse a run that would not fit and decide gradient checkpointing. The adapter is
saved in peft format with the prompt it was trained with beside it. ``model.path`` is a folder or a hub id
(resolved once, ``train.adapter.local_model``). QLoRA (4-bit NF4, double quantization) runs wherever bitsandbytes
does: bf16 compute on CUDA, float32 on the CPU (bitsandbytes >= 0.50; the ``qlora`` extra); without bitsandbytes it
is refused before the data is read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from affectreason.train.adapter import (
    TrainResult,
    check_qlora,
    load_model,
    load_tokenizer,
    local_model,
    restore_adapter,
    save_adapter,
)
from affectreason.train.loop import LoopParts, local_processes, make_accelerator, pack_by_tokens, run_loop, seed_all
from affectreason.train.loss import lm_loss, logit_transform, output_head
from affectreason.train.memory import MemoryPlan, causal_lm_shape, plan_memory, return_freed_memory
from affectreason.train.recipe import Recipe
from affectreason.train.sft_data import Dataset, read_chats, target_counts, tokenize_chats


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


def evaluate(model, tokenizer, data: Dataset, batch_size: int, chats=None, recipe: Recipe | None = None,
             loss=None) -> dict:
    """Mean reply-token loss; with ``chats``, label metrics of generated replies (OV set level, EW Fs).
    ``loss(model, batch)`` is the training loss (reply-only logits); batches follow the recipe's token budget."""
    import torch

    model.eval()
    total, count = 0.0, 0
    budget = recipe.schedule.max_tokens_per_batch if recipe else None
    indices = list(range(len(data.examples)))
    groups = pack_by_tokens(indices, [len(e.input_ids) for e in data.examples], budget) if budget else \
        [indices[start: start + batch_size] for start in range(0, len(indices), batch_size)]
    with torch.inference_mode():
        for group in groups:
            batch = {k: v.to(model.device) for k, v in
                     collate([data.examples[i] for i in group], tokenizer.pad_token_id or 0).items()}
            tokens = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss if loss is None else loss(model, batch)) * tokens
            count += tokens
        figures = {"eval_loss": total / max(count, 1)}
        if chats and recipe and recipe.eval.generate:
            figures.update(_label_metrics(model, tokenizer, chats[: recipe.eval.generate], recipe))
    model.train()
    return figures


def _label_metrics(model, tokenizer, chats, recipe: Recipe) -> dict:
    """Generate replies to held-out chats and score their labels against the references'."""
    from affectreason.eval.per_record import score_labels
    from affectreason.models.causal_lm import schema_processors
    from affectreason.reason.messages import answer_schema
    from affectreason.reason.parse import parse_explanation

    gold, pred, constraints = [], [], {}
    for messages in chats:
        inputs = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, return_dict=True,
                                               return_tensors="pt").to(model.device)
        # decoded as the hf backend decodes: under the Explanation schema, when the references answer in it
        schema = answer_schema() if messages[-1]["content"].lstrip().startswith("{") else None
        output = model.generate(**inputs, max_new_tokens=recipe.eval.max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                                logits_processor=schema_processors(constraints, tokenizer, schema,
                                                                   recipe.eval.max_new_tokens))
        reply = tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        gold.append(parse_explanation(messages[-1]["content"]).labels)
        pred.append(parse_explanation(reply).labels)
    wheel = None
    if recipe.eval.wheel_dir:
        from affectreason.eval.wheel import EmotionWheel

        wheel = EmotionWheel.load(recipe.eval.wheel_dir)
    return score_labels(gold, pred, wheel).figures()


def resolve_max_length(recipe: Recipe, context: int | None) -> int:
    """``data.max_length``, or by default the model's context length (every example the model can take)."""
    return recipe.data.max_length or context or 32_768


def train_sft(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
              on_step: Callable[[dict], None] | None = None,
              on_plan: Callable[[MemoryPlan], None] | None = None) -> TrainResult:
    """LoRA / QLoRA on a chat LM over textualized cues, per ``recipe`` (``train.run.train`` dispatches here).
    The data is tokenized and the memory plan checked before the weights load."""
    check_qlora(recipe)
    recipe, model_name = local_model(recipe)
    output_dir = Path(recipe.output_dir)
    chats = read_chats(recipe.data.train)
    eval_chats = read_chats(recipe.data.eval) if recipe.data.eval else None
    accelerator = make_accelerator(recipe, output_dir)
    seed_all(recipe.schedule.seed)
    tokenizer = load_tokenizer(recipe)
    _, shape = causal_lm_shape(recipe.model.path, recipe.adapter.target_modules, recipe.adapter.r)
    max_length = resolve_max_length(recipe, shape.context)
    data = tokenize_chats(chats, tokenizer, max_length, recipe.data.over_length)
    eval_data = tokenize_chats(eval_chats, tokenizer, max_length, "truncate") if eval_chats else None
    lengths = [len(e.input_ids) for e in data.examples]
    plan = plan_memory(recipe, shape, lengths, target_counts(data), accelerator.num_processes,
                       local_processes(accelerator))
    if on_plan:
        on_plan(plan)
    if plan.return_freed_memory:
        return_freed_memory()
    _, model = load_model(recipe, plan.gradient_checkpointing, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    head, transform = output_head(model), logit_transform(model.config)

    def loss(trained, batch: dict):
        return lm_loss(trained, head, batch, recipe.schedule.logits, transform)

    parts = LoopParts(
        model=model, n_examples=len(data.examples),
        make_batch=lambda indices: {k: v.to(accelerator.device) for k, v in
                                    collate([data.examples[i] for i in indices], pad).items()},
        save=lambda folder, trained, state_dict: save_adapter(folder, trained, tokenizer, recipe, state_dict,
                                                              model_name),
        restore=restore_adapter,
        evaluate=(lambda trained: evaluate(trained, tokenizer, eval_data, recipe.schedule.batch_size, eval_chats,
                                           recipe, loss)) if eval_data and accelerator.is_main_process else None,
        lengths=lengths, loss=loss, info={"memory": plan.figures(), "max_length": max_length,
                                          "model": {"name": model_name, "folder": recipe.model.path}})
    step, losses, eval_figures = run_loop(recipe, parts, accelerator, resume, stop_after, on_step)
    return TrainResult(output_dir, output_dir / "adapter", step, losses, eval_figures,
                       {"examples": len(data.examples), "dropped": data.dropped, "truncated": data.truncated,
                        "max_length": max_length, "memory": plan.figures()}, model)
