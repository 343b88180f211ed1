"""Training throughput: tokens/s and peak memory of LoRA (and QLoRA on a CUDA GPU) on the same data.

    python eval/bench/train_speed.py --model DIR [--steps 20] [--hidden 128]

Without --model it builds a tiny random Qwen2 (tests/tiny_models.py shape, hidden --hidden) so the
script runs anywhere. Prints tokens/s and peak memory (RSS on CPU, CUDA max allocated on GPU) for bf16/fp32
LoRA and, on CUDA, QLoRA, with their ratio. On a CPU it says QLoRA needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/ builders, when run from a checkout


def run(kind: str, model: Path, data: Path, out: Path, steps: int, dtype: str) -> dict:
    import torch

    from affectreason.train.recipe import Recipe
    from affectreason.train.run import train

    recipe = Recipe.model_validate({
        "model": {"path": str(model), "dtype": dtype},
        "adapter": {"kind": kind, "r": 16, "alpha": 32, "dropout": 0.0},
        "data": {"train": str(data), "max_length": 256},
        "optim": {"lr": 1e-3}, "schedule": {"max_steps": steps, "batch_size": 8}, "output_dir": str(out)})
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    speeds = []
    result = train(recipe, on_step=lambda r: speeds.append(r["tokens_per_s"]))
    steady = speeds[len(speeds) // 4:] or speeds
    peak = (torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"kind": kind, "dtype": dtype, "tokens_per_s": round(sum(steady) / len(steady), 1),
            "peak_gib": round(peak, 3), "final_loss": round(result.losses[-1][1], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    import torch

    from tests.synthetic_task import write_task

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from tests.tiny_models import build_qwen2

            model = build_qwen2(tmp / "model", hidden=args.hidden)
        train_file, _ = write_task(tmp)
        cuda = torch.cuda.is_available()
        rows = [run("lora", model, train_file, tmp / "lora", args.steps, "bfloat16" if cuda else "float32")]
        if cuda:
            rows.append(run("qlora", model, train_file, tmp / "qlora", args.steps, "bfloat16"))
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    for row in rows:
        print(f"{row['kind']:<6} {row['dtype']:<9} {row['tokens_per_s']:>10,.0f} tokens/s  "
              f"peak {row['peak_gib']:.2f} GiB  final loss {row['final_loss']}  ({device})")
    if cuda:
        print(f"QLoRA / LoRA: speed x{rows[1]['tokens_per_s'] / rows[0]['tokens_per_s']:.2f}, "
              f"memory x{rows[1]['peak_gib'] / rows[0]['peak_gib']:.2f}")
    else:
        print("QLoRA: not run - bitsandbytes 4-bit training needs a CUDA GPU")
    print(json.dumps({"device": device, "runs": rows}))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
