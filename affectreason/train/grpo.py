"""GRPO after SFT: TRL's ``GRPOTrainer`` on a chat LM with a LoRA adapter, rewarded by ``train.rewards``.

The records are the ones SFT reads (``affectreason data`` output or any JSONL of ``{"messages": [...]}``): the
prompt is every message before the last assistant turn (which, if present, is only a reference), the gold labels
are the record's ``labels`` (else the reference reply's), and the cues the grounding and AU rewards check are the
record's ``cues`` (a ``Cues`` JSON object), else its ``transcript`` (MELD, MOSI), else none. ``rl.init_adapter``
continues an SFT adapter (its r, alpha, dropout and target modules replace the adapter section); otherwise a fresh
LoRA per ``adapter`` is trained. The KL reference (``rl.beta`` > 0) is the policy at step 0 (TRL keeps a frozen
copy of the adapter, "ref") or, with ``rl.reference=base``, the base model with the adapter disabled.

Run folder, as SFT's: ``recipe.resolved.json``, ``train_log.jsonl`` (one line per step: loss, lr, the combined
reward's mean and std, each reward's mean and std, KL, completion length; held-out figures at ``schedule.eval_every``
and at step 0 when ``data.eval`` is given), ``adapter/`` (peft format + ``affectreason_adapter.json``) and
``checkpoints/checkpoint-N`` (TRL's: adapter, optimizer, scheduler, RNG states, trainer state) every
``schedule.save_every`` steps; ``resume`` continues from the newest. Generation runs through transformers
``generate`` (CPU or GPU); ``rl.use_vllm`` hands it to TRL's colocated vLLM engine (untested here: no vLLM beside
this training environment).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import affectreason
from affectreason.data.cue_text import transcript_cues
from affectreason.errors import DataError
from affectreason.eval.per_record import score_labels
from affectreason.eval.wheel import EmotionWheel
from affectreason.jsonl import iter_jsonl
from affectreason.models.causal_lm import greedy_replies
from affectreason.models.hub import adapter_folder
from affectreason.reason.messages import example_observations
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Cues
from affectreason.train.adapter import TrainResult, load_model, load_tokenizer, local_model, save_adapter
from affectreason.train.loop import TrainError, latest_checkpoint, seed_all
from affectreason.train.memory import MemoryPlan, causal_lm_shape, plan_memory, return_freed_memory
from affectreason.train.recipe import WHEEL_REWARDS, Recipe
from affectreason.train.rewards import REWARDS, Context, Sample, combine, normalized_weights, score
from affectreason.train.sft_data import record_messages


@dataclass(frozen=True)
class RLExample:
    """One prompt of the RL data: the messages before the reply, the gold labels, the cues as JSON."""

    prompt: list[dict[str, str]]
    gold: list[str]
    cues: str  # Cues JSON: datasets columns hold plain values


def read_rl_examples(path: str | Path) -> list[RLExample]:
    """The prompts, gold labels and cues of a JSONL of records (``data.train`` / ``data.eval``)."""
    path = Path(path)
    examples = []
    for lineno, record in iter_jsonl(path, "raise", DataError):
        where = f"{path}:{lineno}"
        messages = record_messages(record, where)
        reference = messages[-1]["content"] if messages[-1]["role"] == "assistant" else None
        prompt = messages[:-1] if reference is not None else messages
        if not prompt:
            raise DataError(f"{where}: no prompt before the assistant reply")
        gold = record.get("labels") or (parse_explanation(reference).labels if reference else [])
        if isinstance(gold, str):
            gold = [gold]
        if not gold:
            raise DataError(f"{where}: no gold labels (give 'labels', or an assistant reply that names them)")
        name = str(record.get("id") or f"{path.stem}:{lineno}")
        try:
            cues = Cues.model_validate(record["cues"]) if record.get("cues") else \
                transcript_cues(name, record.get("transcript"))
        except ValueError as exc:
            raise DataError(f"{where}: cues: {str(exc).splitlines()[0][:200]}") from None
        examples.append(RLExample(prompt, [str(g) for g in gold], cues.model_dump_json()))
    if not examples:
        raise DataError(f"{path}: no prompts")
    return examples


@lru_cache(maxsize=4096)
def _cues(text: str) -> Cues:
    return Cues.model_validate_json(text)


def _text(completion) -> str:
    """A completion's text: TRL gives conversational completions as a list of messages."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


class TRLReward:
    """One reward of ``train.rewards`` in TRL's reward-function form: ``(prompts, completions, **columns)``; TRL
    names it by ``__name__`` in its metrics (``rewards/<name>/mean``)."""

    def __init__(self, name: str, context: Context, examples: tuple[str, ...]):
        self.__name__, self.reward, self.context, self.examples = name, REWARDS[name], context, examples

    def __call__(self, prompts, completions, gold, cues, **_columns) -> list[float]:
        return [self.reward(Sample(_text(c), tuple(g), _cues(k), self.examples), self.context)
                for c, g, k in zip(completions, gold, cues, strict=True)]


def reward_context(recipe: Recipe) -> Context:
    """The rewards' shared context: the emotion wheel (when a reward needs one) and the rl settings."""
    rl = recipe.rl
    folder = rl.wheel_dir or recipe.eval.wheel_dir
    needs_wheel = any(rl.rewards.get(name) for name in WHEEL_REWARDS)
    wheel = EmotionWheel.load(folder) if needs_wheel or folder else None
    return Context(wheel=wheel, au_beta=rl.au_beta, grounding_floor=rl.grounding_floor,
                   length_factor=rl.length_factor)


def generate_replies(model, tokenizer, prompts: Sequence[list[dict]], max_new_tokens: int,
                     batch_size: int = 16) -> list[str]:
    """Greedy replies to chat prompts (``models.causal_lm.greedy_replies``), the model in eval mode meanwhile."""
    was_training = model.training
    model.eval()
    try:
        return greedy_replies(model, tokenizer, list(prompts), batch_size, max_new_tokens)
    finally:
        if was_training:
            model.train()


def evaluate_rl(model, tokenizer, examples: Sequence[RLExample], recipe: Recipe, context: Context,
                prompt_examples: tuple[str, ...] = ()) -> dict:
    """Held-out figures of greedy replies: each reward's mean, the combined reward, and the label metrics
    (``label_f1``, ``ew_fs`` with a wheel) of ``eval.per_record.score_labels``."""
    chosen = list(examples[: recipe.eval.generate or len(examples)])
    replies = generate_replies(model, tokenizer, [e.prompt for e in chosen], recipe.rl.max_completion_length)
    samples = [Sample(r, tuple(e.gold), _cues(e.cues), prompt_examples) for r, e in zip(replies, chosen, strict=True)]
    names = list(recipe.rl.rewards)
    scores = [score(s, context, names) for s in samples]
    figures = {f"eval_reward_{name}": round(sum(s[name] for s in scores) / len(scores), 4) for name in names}
    figures["eval_reward"] = round(sum(combine(s, recipe.rl.rewards) for s in scores) / len(scores), 4)
    figures.update(score_labels([e.gold for e in chosen], [s.labels for s in samples], context.wheel).figures())
    return figures


def _with_init_adapter(recipe: Recipe) -> Recipe:
    """``recipe`` with its adapter section taken from ``rl.init_adapter``'s peft config (so its weights fit)."""
    folder = adapter_folder(recipe.rl.init_adapter)
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    targets = config.get("target_modules")
    if not isinstance(targets, list):
        raise TrainError(f"rl.init_adapter: {folder} targets modules by the pattern {targets!r}; give an adapter "
                         "trained with a list of target modules")
    adapter = recipe.adapter.model_copy(update={"r": int(config["r"]), "alpha": int(config["lora_alpha"]),
                                                "dropout": float(config.get("lora_dropout", 0.0)),
                                                "target_modules": sorted(targets)})
    return recipe.model_copy(update={"adapter": adapter})


def _load_policy(recipe: Recipe, tokenizer, gradient_checkpointing: bool):
    """The base model with a LoRA adapter: ``rl.init_adapter``'s weights (``recipe`` already shaped by
    ``_with_init_adapter``), or a fresh adapter."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    model = load_model(recipe, gradient_checkpointing, tokenizer)[1]
    if recipe.rl.init_adapter is None:
        return model
    weights = adapter_folder(recipe.rl.init_adapter) / "adapter_model.safetensors"
    if not weights.is_file():
        raise TrainError(f"rl.init_adapter: no adapter_model.safetensors in {weights.parent}")
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    if getattr(result, "unexpected_keys", None):
        raise TrainError(f"rl.init_adapter: {len(result.unexpected_keys)} weights do not fit model.path "
                         f"(e.g. {result.unexpected_keys[0]}); give the adapter's own base model")
    return model


def plan_grpo(recipe: Recipe, tokenizer, examples: Sequence[RLExample]) -> MemoryPlan:
    """SFT's memory plan for a GRPO step: a micro-batch of ``schedule.batch_size`` completions, each its prompt plus
    ``rl.max_completion_length`` tokens, all of them scored (the log-probabilities of every completion token)."""
    _, shape = causal_lm_shape(recipe.model.path, recipe.adapter.target_modules, recipe.adapter.r)
    prompts = [len(tokenizer.apply_chat_template(e.prompt, add_generation_prompt=True, return_dict=True)["input_ids"])
               for e in examples]
    completion = recipe.rl.max_completion_length
    # TRL's batch_size is per device (the plan's world divides it): one process's share is the whole micro-batch
    return plan_memory(recipe, shape, [n + completion for n in prompts], [completion] * len(prompts), world=1,
                       local_world=int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def _grpo_config(recipe: Recipe, output_dir: Path, weights: list[float], gradient_checkpointing: bool):
    import torch
    from trl import GRPOConfig

    rl, sched, optim = recipe.rl, recipe.schedule, recipe.optim
    return GRPOConfig(
        output_dir=str(output_dir / "checkpoints"), max_steps=sched.max_steps,
        per_device_train_batch_size=sched.batch_size, gradient_accumulation_steps=sched.grad_accum,
        num_generations=rl.num_generations, max_completion_length=rl.max_completion_length,
        temperature=rl.temperature, top_p=rl.top_p, beta=rl.beta, reward_weights=weights,
        learning_rate=optim.lr, weight_decay=optim.weight_decay, warmup_steps=optim.warmup_steps,
        lr_scheduler_type=optim.scheduler, max_grad_norm=optim.max_grad_norm, seed=sched.seed,
        logging_steps=1, save_strategy="steps" if sched.save_every else "no", save_steps=sched.save_every or 500,
        report_to=list(sched.report_to) or "none", disable_tqdm=True, remove_unused_columns=False,
        # bf16 and gradient checkpointing are TRL's defaults on GPUs and ~13x slower on the CPU (DESIGN.md)
        use_cpu=not torch.cuda.is_available(), bf16=sched.mixed_precision == "bf16",
        fp16=sched.mixed_precision == "fp16", gradient_checkpointing=gradient_checkpointing,
        use_vllm=rl.use_vllm, vllm_mode="colocate", dataloader_num_workers=0)


def _log_record(logs: dict, step: int, names: Sequence[str], last: dict) -> dict:
    """A train_log.jsonl line from TRL's logs of one step (``rewards/<name>/mean`` -> ``reward_<name>_mean``)."""
    record = {"step": step, "loss": round(float(logs.get("loss", math.nan)), 6),
              "lr": logs.get("learning_rate", 0.0), "reward": round(float(logs.get("reward", math.nan)), 4),
              "reward_std": round(float(logs.get("reward_std", math.nan)), 4)}
    for name in names:
        for stat in ("mean", "std"):
            value = logs.get(f"rewards/{name}/{stat}")
            if value is not None:
                record[f"reward_{name}_{stat}"] = round(float(value), 4)
    for key, out in (("kl", "kl"), ("completions/mean_length", "completion_length"), ("entropy", "entropy")):
        if key in logs:
            record[out] = round(float(logs[key]), 4)
    now, tokens = time.perf_counter(), float(logs.get("num_tokens", 0.0))
    record["tokens_per_s"] = round((tokens - last["tokens"]) / max(now - last["time"], 1e-9), 1)
    last.update(tokens=tokens, time=now)
    return record


def train_grpo(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
               on_step: Callable[[dict], None] | None = None, on_plan=None) -> TrainResult:
    """GRPO per ``recipe.rl`` (``train.run.train`` dispatches here); ``stop_after`` ends early with a checkpoint."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOTrainer

    rl = recipe.rl
    if rl.use_vllm and find_spec("vllm") is None:
        raise TrainError("rl.use_vllm needs vLLM installed beside trl (`pip install vllm` on a GPU machine); "
                         "or set rl.use_vllm=false to generate through transformers")
    output_dir = Path(recipe.output_dir)
    checkpoint = latest_checkpoint_trl(output_dir) if resume else None
    if resume and checkpoint is None:
        raise TrainError(f"--resume: no checkpoint under {output_dir / 'checkpoints'}")
    train_examples = read_rl_examples(recipe.data.train)
    eval_examples = read_rl_examples(recipe.data.eval) if recipe.data.eval else []
    context = reward_context(recipe)
    prompt_examples = example_observations(recipe.data.prompt)
    weights = normalized_weights(rl.rewards)
    names = list(rl.rewards)
    seed_all(recipe.schedule.seed)
    recipe, model_name = local_model(recipe)
    if rl.init_adapter is not None:
        recipe = _with_init_adapter(recipe)
    tokenizer = load_tokenizer(recipe)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    plan = plan_grpo(recipe, tokenizer, train_examples)
    if on_plan:
        on_plan(plan)
    if plan.return_freed_memory:
        return_freed_memory()
    model = _load_policy(recipe, tokenizer, plan.gradient_checkpointing)
    dataset = Dataset.from_list([{"prompt": e.prompt, "gold": e.gold, "cues": e.cues} for e in train_examples])
    losses: list[tuple[int, float]] = []
    eval_figures: dict = {}
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / "train_log.jsonl"

    def evaluate(trained) -> dict:
        return evaluate_rl(trained, tokenizer, eval_examples, recipe, context, prompt_examples)

    class Log(TrainerCallback):
        """train_log.jsonl, held-out figures every ``eval_every`` steps, ``stop_after``."""

        last = {"tokens": 0.0, "time": time.perf_counter()}

        def on_log(self, args, state, control, logs=None, **kwargs):
            nonlocal eval_figures
            if not logs or "train_runtime" in logs or "reward" not in logs:
                return
            record = _log_record(logs, state.global_step, names, self.last)
            every = recipe.schedule.eval_every
            if eval_examples and every and state.global_step % every == 0:
                eval_figures = evaluate(kwargs["model"])
                record.update(eval_figures)
            losses.append((record["step"], record["loss"]))
            if not state.is_world_process_zero:
                return  # every process logs; one writes
            with log_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if on_step:
                on_step(record)

        def on_step_end(self, args, state, control, **kwargs):
            if stop_after and state.global_step >= stop_after:
                control.should_training_stop = True
                control.should_save = True

    args = _grpo_config(recipe, output_dir, [weights[n] for n in names], plan.gradient_checkpointing)
    trainer = GRPOTrainer(model=model, reward_funcs=[TRLReward(n, context, prompt_examples) for n in names],
                          args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[Log()])
    trainer.remove_callback(PrinterCallback)  # it prints every step's logs to stdout; train_log.jsonl has them
    policy = trainer.model
    if rl.reference == "base" and "ref" in getattr(policy, "peft_config", {}):
        policy.delete_adapter("ref")  # TRL then takes the reference log-probs with the adapter disabled
    if trainer.accelerator.is_main_process:
        (output_dir / "recipe.resolved.json").write_text(json.dumps(
            {"recipe": recipe.model_dump(), "affectreason_version": affectreason.__version__,
             "trl_version": affectreason.installed_version("trl"), "processes": trainer.accelerator.num_processes,
             "reward_weights": weights, "prompt_examples": len(prompt_examples),
             "model": {"name": model_name, "folder": recipe.model.path, "init_adapter": rl.init_adapter},
             "memory": plan.figures()}, indent=2))
    if eval_examples and not resume and trainer.accelerator.is_main_process:
        start = {"step": 0, **evaluate(policy)}
        with log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(start) + "\n")
        eval_figures = {k: v for k, v in start.items() if k != "step"}
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    step = trainer.state.global_step
    if eval_examples and not (recipe.schedule.eval_every and step % recipe.schedule.eval_every == 0):
        eval_figures = evaluate(policy)
    if "ref" in getattr(policy, "peft_config", {}):
        policy.delete_adapter("ref")  # the saved adapter is the trained one only
    if trainer.accelerator.is_main_process:
        adapter_dir = output_dir / "adapter"
        save_adapter(adapter_dir, policy, tokenizer, recipe, base_model=model_name,
                     info={"training": "grpo", "init_adapter": rl.init_adapter, "rewards": rl.rewards})
    if losses and not math.isfinite(losses[-1][1]):
        raise TrainError(f"the loss diverged (step {losses[-1][0]}: {losses[-1][1]}); lower optim.lr")
    return TrainResult(output_dir, output_dir / "adapter", step, losses, eval_figures,
                       {"examples": len(train_examples), "eval_examples": len(eval_examples), "memory": plan.figures(),
                        "reward_weights": weights}, policy)


def latest_checkpoint_trl(output_dir: Path) -> Path | None:
    """The newest TRL checkpoint (``checkpoints/checkpoint-N``), if any; SFT's ``step-N`` folders are not TRL's."""
    folder = output_dir / "checkpoints"
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if folder.is_dir() else []
    return found[-1] if found else (None if latest_checkpoint(output_dir) is None else _refuse_sft(output_dir))


def _refuse_sft(output_dir: Path) -> None:
    raise TrainError(f"--resume: {output_dir / 'checkpoints'} holds SFT checkpoints (step-N), not GRPO ones; give "
                     "the GRPO run its own output_dir and the SFT adapter as rl.init_adapter")

