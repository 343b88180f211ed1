"""What the MELD benchmarks share (``finetune_meld.py``, ``grpo_smollm2.py``): the ``meld`` data recipe's
dialogue-disjoint split, samples of it, the held-out cues, the label figures and the LoRA recipe."""

from __future__ import annotations

import json
import random
from pathlib import Path

from affectreason.data.build import build_dataset
from affectreason.data.recipe import load_data_recipe
from affectreason.eval.alignment import align
from affectreason.eval.classification import closed_set, hit_rate
from affectreason.eval.wheel import EmotionWheel
from affectreason.jsonl import read_jsonl
from affectreason.schema import Cues, LabelRecord, Transcript
from affectreason.train.recipe import Recipe

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPT = "reason/explain_tuned"


def build_meld(anchors: Path, folder: Path) -> Path:
    """The ``meld`` recipe's records (train / validation / test by dialogue) with the tuned prompt, in ``folder``."""
    build_dataset(load_data_recipe("meld", [f"prompt={PROMPT}"]), folder, anchors=anchors)
    return folder


def sample(path: Path, n: int, seed: int) -> list[dict]:
    """``n`` records of a JSONL file, shuffled by ``seed``."""
    rows = read_jsonl(path)
    random.Random(seed).shuffle(rows)
    return rows[:n]


def disjoint(train: list[dict], held_out: list[dict]) -> None:
    """Refuse a sample whose held-out utterances share a dialogue with its training ones."""
    if {r["group"] for r in train} & {r["group"] for r in held_out}:
        raise SystemExit("a dialogue crosses the split")


def write_chats(rows: list[dict], path: Path, whole: bool = False) -> Path:
    """The rows as SFT / GRPO records: their messages only, or (``whole``) every field."""
    path.write_text("".join(json.dumps(r if whole else {"messages": r["messages"]}) + "\n" for r in rows))
    return path


def held_out_cues(rows: list[dict]) -> list[Cues]:
    """The cues of MELD utterances: their transcript, given."""
    return [Cues(clip_id=r["id"], transcript=Transcript(text=r["transcript"], source="given")) for r in rows]


def label_figures(rows: list[dict], labels: dict[str, list[str]], wheel: EmotionWheel) -> dict:
    """Accuracy (the evaluator's rule: an answer naming no emotion reads as neutral), strict accuracy (such an
    answer is wrong), hit rate, and the share of answers that named an emotion."""
    gold = [LabelRecord(name=r["id"], labels=r["labels"]) for r in rows]
    pred = [LabelRecord(name=g.name, labels=labels.get(g.name, [])) for g in gold]
    aligned = align(gold, pred)
    answered = [(g, p) for g, p in zip(gold, pred, strict=True) if p.labels]
    strict = (closed_set(align(*map(list, zip(*answered, strict=True))), wheel).summary["accuracy"]
              * len(answered) / len(gold)) if answered else 0.0
    return {"accuracy": round(closed_set(aligned, wheel).summary["accuracy"], 4), "strict_accuracy": round(strict, 4),
            "hit_rate": round(hit_rate(aligned, wheel).summary["hit_rate"], 4),
            "answered": round(len(answered) / len(pred), 4)}


def lora_recipe(model: Path, train: Path, out: Path, steps: int, batch_size: int, lr: float, seed: int,
                dropout: float = 0.0) -> Recipe:
    """LoRA r=16 on every projection, cosine schedule with 10% warm-up, the tuned prompt."""
    return Recipe.model_validate({
        "model": {"path": str(model)}, "adapter": {"r": 16, "alpha": 32, "dropout": dropout, "target_modules": TARGETS},
        "data": {"train": str(train), "max_length": 512, "prompt": PROMPT},
        "optim": {"lr": lr, "warmup_steps": max(1, steps // 10), "scheduler": "cosine"},
        "schedule": {"max_steps": steps, "batch_size": batch_size, "seed": seed}, "output_dir": str(out)})
