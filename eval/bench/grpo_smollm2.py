"""GRPO after SFT on a real chat LM and real data: zero-shot vs SFT vs SFT+GRPO vs the rules engine on MELD.

    python eval/bench/grpo_smollm2.py --model /work/models/smollm2 --anchors ../shared/anchors

The ``meld`` data recipe splits MELD test by dialogue (held-out utterances come from dialogues never seen in
training; nothing is tuned on them). SmolLM2-135M-Instruct is asked zero-shot with the full ``reason/explain``
prompt, LoRA-tuned (SFT) on ``--train-n`` utterances with the short ``reason/explain_tuned`` prompt, then trained
with GRPO (``affectreason train grpo-chat``'s path, rewards ew + format + grounding) from that adapter on
``--rl-n`` other training utterances. Every system answers the same held-out utterances (greedy; constrained to
the Explanation schema unless ``--no-constrain``), and the evaluator scores them: hit rate, strict accuracy (an
answer naming no emotion is wrong), EW F-score, grounding (the rewards' definition: share of named cues the
transcript supports, 0 for an answer naming none). Prints one table, the times, cores and load, and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from meld_bench import TARGETS, build_meld, disjoint, held_out_cues, label_figures, lora_recipe, sample, write_chats
from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

from affectreason.eval.per_record import score_labels
from affectreason.eval.wheel import EmotionWheel
from affectreason.jsonl import read_jsonl
from affectreason.models.causal_lm import ChatLM
from affectreason.reason.messages import answer_schema, build_messages
from affectreason.reason.parse import parse_explanation
from affectreason.reason.rules import explain_rules
from affectreason.schema import Cues
from affectreason.train.recipe import Recipe
from affectreason.train.rewards import Context, Sample, grounding_reward
from affectreason.train.run import train


def _figures(held_out: list[dict], cues: list[Cues], texts: dict[str, str], wheel: EmotionWheel) -> dict:
    """Hit rate, strict accuracy and answered (``meld_bench.label_figures``), EW F-score and grounding of one
    system's answers."""
    labels = {name: parse_explanation(text).labels for name, text in texts.items()}
    figures = label_figures(held_out, labels, wheel)
    ew = score_labels([r["labels"] for r in held_out], [labels[r["id"]] for r in held_out], wheel)
    grounding = [grounding_reward(Sample(texts[c.clip_id], tuple(r["labels"]), c), Context())
                 for r, c in zip(held_out, cues, strict=True)]
    return {"hit_rate": figures["hit_rate"], "strict_accuracy": figures["strict_accuracy"],
            "ew_fs": round(ew.ew_fs or 0.0, 4), "grounding": round(sum(grounding) / len(grounding), 4),
            "answered": figures["answered"]}


def _ask(lm: ChatLM, chats: list, names: list[str], args, out: Path) -> dict[str, str]:
    replies = lm.generate_batch(chats, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                schema=None if args.no_constrain else answer_schema())
    out.write_text("".join(json.dumps({"name": n, "reply": r}) + "\n" for n, r in zip(names, replies, strict=True)))
    return dict(zip(names, replies, strict=True))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("/work/models/smollm2"), help="local chat model folder")
    parser.add_argument("--anchors", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "anchors")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/affectreason-grpo-smollm2"))
    parser.add_argument("--train-n", type=int, default=64, help="SFT utterances")
    parser.add_argument("--rl-n", type=int, default=32, help="GRPO prompts (other training utterances)")
    parser.add_argument("--eval-n", type=int, default=24)
    parser.add_argument("--sft-steps", type=int, default=16)
    parser.add_argument("--grpo-steps", type=int, default=6)
    parser.add_argument("--generations", type=int, default=4, help="GRPO completions per prompt")
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=160, help="answers and GRPO completions (the SFT "
                        "replies are 86-139 SmolLM2 tokens, median 104)")
    parser.add_argument("--sft-lr", type=float, default=1e-3)
    parser.add_argument("--grpo-lr", type=float, default=5e-5)
    parser.add_argument("--temperature", type=float, default=0.7,
                        help="GRPO sampling (1.0 broke the format of the tiny model's and SmolLM2's samples)")
    parser.add_argument("--no-constrain", action="store_true", help="decode the answers freely")
    parser.add_argument("--skip-zero-shot", action="store_true", help="the zero-shot prompt is ~1,300 tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print(machine_line("start"))
    wheel = EmotionWheel.load(args.anchors / "emotion_wheel")
    started = time.perf_counter()
    data = build_meld(args.anchors, args.out_dir / "data")
    picked = sample(data / "train.jsonl", args.train_n + args.rl_n, args.seed)
    sft_rows, rl_rows = picked[: args.train_n], picked[args.train_n:]
    held_out = sample(data / "test.jsonl", args.eval_n, args.seed)
    disjoint(picked, held_out)
    sft_file = write_chats(sft_rows, args.out_dir / "sft_train.jsonl")
    rl_file = write_chats(rl_rows, args.out_dir / "rl_train.jsonl", whole=True)
    names = [r["id"] for r in held_out]
    cues = held_out_cues(held_out)
    dialogues = len({r["group"] for r in held_out})
    print(f"MELD by dialogue: {len(sft_rows)} SFT + {len(rl_rows)} GRPO training utterances, {len(held_out)} "
          f"held-out ({dialogues} unseen dialogues); data {time.perf_counter() - started:.0f} s")

    figures, seconds = {}, {}
    if not args.skip_zero_shot:
        started = time.perf_counter()
        base = ChatLM(str(args.model))
        texts = _ask(base, [build_messages(c) for c in cues], names, args, args.out_dir / "zero_shot.jsonl")
        figures["zero-shot"], seconds["zero-shot answers"] = _figures(held_out, cues, texts, wheel), \
            time.perf_counter() - started
        del base

    sft = lora_recipe(args.model, sft_file, args.out_dir / "sft", args.sft_steps, args.batch_size, args.sft_lr,
                      args.seed)
    started = time.perf_counter()
    sft_result = train(sft)
    seconds["SFT training"] = time.perf_counter() - started
    print(f"SFT: {sft_result.steps} steps x {args.batch_size}; loss {sft_result.losses[0][1]:.3f} -> "
          f"{sft_result.losses[-1][1]:.3f}; {seconds['SFT training']:.0f} s")

    completions = args.generations * args.prompts_per_step
    grpo = Recipe.model_validate({
        "model": {"path": str(args.model)},
        "adapter": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": TARGETS},
        "data": {"train": str(rl_file), "prompt": "reason/explain_tuned"},
        "optim": {"lr": args.grpo_lr, "scheduler": "constant"},
        "schedule": {"max_steps": args.grpo_steps, "batch_size": completions, "seed": args.seed},
        "rl": {"rewards": {"ew": 1.0, "format": 0.5, "grounding": 1.0}, "init_adapter": str(sft_result.adapter_dir),
               "num_generations": args.generations, "beta": 0.04, "max_completion_length": args.max_new_tokens,
               "temperature": args.temperature, "wheel_dir": str(args.anchors / "emotion_wheel")},
        "output_dir": str(args.out_dir / "grpo")})
    started = time.perf_counter()
    grpo_result = train(grpo)
    seconds["GRPO training"] = time.perf_counter() - started
    log = read_jsonl(args.out_dir / "grpo" / "train_log.jsonl")
    rewards = [r["reward"] for r in log if "reward" in r]
    print(f"GRPO: {grpo_result.steps} steps x {completions} completions ({args.prompts_per_step} prompts x "
          f"{args.generations}); mean reward by step {rewards}; {seconds['GRPO training']:.0f} s")

    for system, adapter in (("SFT", sft_result.adapter_dir), ("SFT+GRPO", grpo_result.adapter_dir)):
        started = time.perf_counter()
        tuned = ChatLM(str(args.model), str(adapter))
        texts = _ask(tuned, [r["messages"][:-1] for r in held_out], names, args,
                     args.out_dir / f"{system.lower().replace('+', '_')}.jsonl")
        figures[system], seconds[f"{system} answers"] = _figures(held_out, cues, texts, wheel), \
            time.perf_counter() - started
        del tuned
    rules = {c.clip_id: explain_rules(c).model_dump_json() for c in cues}
    figures["rules"] = _figures(held_out, cues, rules, wheel)

    print(f"{'system':<10} {'hit rate':>9} {'strict':>9} {'EW Fs':>9} {'grounding':>10} {'answered':>9}")
    for name, row in figures.items():
        print(f"{name:<10} {100 * row['hit_rate']:>9.2f} {100 * row['strict_accuracy']:>9.2f} "
              f"{100 * row['ew_fs']:>9.2f} {100 * row['grounding']:>10.2f} {100 * row['answered']:>9.2f}")
    for metric in ("hit_rate", "strict_accuracy", "ew_fs", "grounding"):
        verdict = "beats" if figures["SFT+GRPO"][metric] > figures["SFT"][metric] else "does NOT beat"
        print(f"  {metric}: SFT+GRPO {verdict} SFT")
    print("times: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    print(machine_line("end"))
    summary = {"model": args.model.name, "sft_n": len(sft_rows), "rl_n": len(rl_rows), "eval_n": len(held_out),
               "sft_steps": sft_result.steps, "grpo_steps": grpo_result.steps, "grpo_rewards": rewards,
               "figures": figures, "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
