"""How fast LoRA learns the synthetic textualized-cue -> label task: steps, seconds and held-out F1 at checkpoints.

    python eval/bench/train_tiny.py [--steps 600] [--every 100] [--hidden 128]

A tiny random Qwen2 (hidden 128, 2 layers, offline tokenizer; tests/tiny_models.py) + LoRA r=16 on
tests/synthetic_task.py (4 emotions, each shown by two strong AUs among weak distractors). Every
``--every`` steps the trainer's own evaluation answers 40 held-out chats by generation and scores their
labels (set-level accuracy / recall / F1; single-label, so F1 = accuracy). Target: F1 >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/ builders, when run from a checkout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()

    from affectreason.train.recipe import Recipe
    from affectreason.train.run import train
    from tests.synthetic_task import write_task
    from tests.tiny_models import build_qwen2

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_qwen2(tmp / "model", hidden=args.hidden)
        train_file, eval_file = write_task(tmp)
        recipe = Recipe.model_validate({
            "model": {"path": str(model)},
            "adapter": {"r": 16, "alpha": 32, "dropout": 0.0,
                        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"]},
            "data": {"train": str(train_file), "eval": str(eval_file), "max_length": 128},
            "optim": {"lr": 1e-3, "warmup_steps": 10},
            "schedule": {"max_steps": args.steps, "batch_size": 16, "eval_every": args.every},
            "eval": {"generate": 40, "max_new_tokens": 4},
            "output_dir": str(tmp / "run")})
        started = time.perf_counter()
        rows = []

        def on_step(record: dict) -> None:
            if "label_f1" in record:
                rows.append({"step": record["step"], "seconds": round(time.perf_counter() - started, 1),
                             "loss": record["loss"], "label_f1": record["label_f1"]})
                print(f"step {record['step']:>5}  {rows[-1]['seconds']:>7.1f} s  loss {record['loss']:.4f}  "
                      f"held-out label F1 {record['label_f1']:.3f}", flush=True)

        train(recipe, on_step=on_step)
    reached = next((r for r in rows if r["label_f1"] >= 0.9), None)
    print(f"F1 >= 0.9 first at step {reached['step']} ({reached['seconds']} s)" if reached
          else "F1 >= 0.9 NOT reached")
    print(json.dumps({"checkpoints": rows}))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
