"""Training memory and speed: SmolLM2-135M-Instruct on the README's own-clips flow (default prompt) and on MELD
(tuned prompt), before vs after the memory work, in one run.

    python eval/bench/train_memory.py --model /work/models/smollm2 --anchors ../shared/anchors [--steps 3]

The data is built as the README builds it: six generated clips (``tests/media_factory.py``: faces from package
images, espeak-ng speech) through ``affectreason data own-clips --data-dir CORPUS --out DIR``, and
``affectreason data meld ... prompt=reason/explain_tuned``. Every configuration runs ``affectreason train
lora-chat`` (``train.run.train`` on the packaged recipe plus overrides) for ``--steps`` optimizer steps in a
fresh process; its peak RSS is the kernel's ``ru_maxrss`` of that process (``os.wait4``), beside the memory
plan's estimate, the tokens/s of the steps after the first (per wall second and per CPU second of the process)
and the loss of the last step. "before" is today's
path: logits for every position, no gradient checkpointing, glibc's heap as it is, LoRA dropout 0.05, the old
``data.max_length`` workaround; "after" is the packaged recipe, changed only where the row says (its memory
plan picks gradient checkpointing and returning freed memory only when the run would not fit otherwise). A
configuration whose estimate exceeds ``--limit-gib`` (the machine is shared) is not run: the row shows the
estimate. Peak RSS is robust to CPU load; tokens/s is not (other jobs share the cores), so compare speeds
within one run, and prefer tokens per CPU second, which load changes far less. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEFORE = ["schedule.logits=all", "schedule.gradient_checkpointing=false", "schedule.return_freed_memory=false",
          "adapter.dropout=0.05", "data.max_length=2048", "schedule.max_tokens_per_batch=null"]
CLIPS = [("astronaut", "['happy', 'warm']", True), ("grace", "sad", True), ("no_audio", "neutral", False),
         ("pitch_85", "excited", False), ("rate_230", "angry", False), ("loudness_180", "surprised", False)]


def configurations() -> list[tuple[str, list[str]]]:
    """(name, overrides) of every row, per data set."""
    one = ["schedule.batch_size=1", "schedule.max_tokens_per_batch=null"]
    rows = [(f"before, batch {b}", BEFORE + [f"schedule.batch_size={b}"]) for b in (1, 8, 16)]
    rows += [("after, batch 1", one),
             ("after, batch 1, memory limit 1.5 GiB", one + ["schedule.memory_limit_gib=1.5"]),
             ("after, batch 1, LoRA dropout 0.05", one + ["adapter.dropout=0.05"]),
             ("after, batch 1, mixed precision bf16", one + ["schedule.mixed_precision=bf16"])]
    rows += [(f"after, batch {b}", [f"schedule.batch_size={b}", "schedule.max_tokens_per_batch=null"]) for b in (8, 16)]
    rows.append(("after, recipe defaults (batch 16, token budget)", []))
    return rows


def build_data(work: Path, anchors: Path) -> dict[str, Path]:
    """The README's own-clips data (six generated clips) and MELD with the tuned prompt."""
    sys.path.insert(0, str(ROOT))
    from tests.media_factory import SENTENCE, build_media

    media = build_media(work / "media")
    corpus = work / "corpus"
    (corpus / "clips").mkdir(parents=True)
    for name, _, _ in CLIPS:
        shutil.copy(media[name], corpus / "clips" / f"{name}{media[name].suffix}")
    (corpus / "labels.csv").write_text("name,labels,transcript\n" + "".join(
        f'{name},"{labels}",{SENTENCE if spoken else ""}\n' for name, labels, spoken in CLIPS))
    cli = [sys.executable, "-m", "affectreason.cli", "data"]
    subprocess.run([*cli, "own-clips", "--data-dir", str(corpus), "--out", str(work / "mine")], check=True,
                   capture_output=True)
    subprocess.run([*cli, "meld", "--anchors", str(anchors), "--out", str(work / "meld"), "limit=200",
                    "prompt=reason/explain_tuned"], check=True, capture_output=True)
    return {"own-clips": work / "mine" / "train.jsonl", "meld": work / "meld" / "train.jsonl"}


def child(spec: dict) -> None:
    """One configuration, in this (fresh) process: print its figures as one JSON line."""
    from affectreason.train.memory import WouldNotFit
    from affectreason.train.recipe import load_recipe
    from affectreason.train.run import train

    records, plans = [], []
    recipe = load_recipe("lora-chat", [f"model.path={spec['model']}", f"data.train={spec['data']}",
                                       f"output_dir={spec['out']}", "schedule.eval_every=0", "schedule.save_every=0",
                                       "optim.warmup_steps=0",
                                       f"schedule.memory_limit_gib={spec['limit']}", *spec["overrides"]])
    started, clocks = time.perf_counter(), []

    def on_step(record: dict) -> None:
        records.append(record)
        clocks.append((time.perf_counter(), sum(os.times()[:2])))  # wall, this process's CPU seconds

    try:
        result = train(recipe, stop_after=spec["steps"], on_step=on_step, on_plan=plans.append)
    except WouldNotFit as exc:
        print(json.dumps({"refused": str(exc), **exc.plan.figures()}))
        return
    steady = [r["tokens_per_s"] for r in records[1:]] or [r["tokens_per_s"] for r in records]
    # steps after the first: tokens (the loop's tokens/s x the step's wall time) per CPU second, which other jobs
    # on the cores change far less than they change tokens per wall second
    tokens = sum(r["tokens_per_s"] * (b[0] - a[0]) for r, a, b in zip(records[1:], clocks, clocks[1:], strict=False))
    cpu = sum(b[1] - a[1] for a, b in zip(clocks, clocks[1:], strict=False))
    print(json.dumps({"tokens_per_s": round(sum(steady) / len(steady), 1),
                      "tokens_per_cpu_s": round(tokens / cpu, 1) if cpu else None, "loss": result.losses[-1][1],
                      "losses": [v for _, v in result.losses], "seconds": round(time.perf_counter() - started, 1),
                      "examples": result.data["examples"], **plans[0].figures()}))


def run_child(spec: dict) -> dict:
    """One configuration in a fresh process; its peak RSS from the kernel's rusage of that process (wait4)."""
    process = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    out_chunks, err_chunks = [], []

    def drain(stream, into):
        into.append(stream.read())

    threads = [threading.Thread(target=drain, args=(process.stdout, out_chunks)),
               threading.Thread(target=drain, args=(process.stderr, err_chunks))]
    for thread in threads:
        thread.start()
    _, status, usage = os.wait4(process.pid, 0)
    for thread in threads:
        thread.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    out, err = "".join(out_chunks), "".join(err_chunks)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": (err.strip().splitlines() or ["no output"])[-1][:300], "returncode": process.returncode,
                "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3)}
    figures = json.loads(lines[-1])
    if "refused" not in figures:
        figures["peak_rss_gib"] = round(usage.ru_maxrss / 2**20, 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("/work/models/smollm2"))
    parser.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "anchors")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--limit-gib", type=float, default=8.0, help="configurations estimated above this are not run")
    parser.add_argument("--only", default=None, help="run only the rows whose name matches this regular expression")
    parser.add_argument("--data", default="own-clips,meld", help="data sets to run, comma-separated")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start; {args.steps} steps each; "
          f"model {args.model}")
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = build_data(work, args.anchors)
        for data_name, path in data.items():
            for name, overrides in configurations():
                if (args.only and not re.search(args.only, name)) or data_name not in args.data.split(","):
                    continue
                spec = {"model": str(args.model), "data": str(path), "out": str(work / "runs" / f"{len(results)}"),
                        "overrides": overrides, "steps": args.steps, "limit": args.limit_gib}
                figures = run_child(spec)
                figures.update(data=data_name, config=name, load=round(os.getloadavg()[0], 2))
                results.append(figures)
                print(_row(figures), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end; {time.perf_counter() - started:.0f} s in all")
    print(json.dumps({"cpus": os.cpu_count(), "steps": args.steps, "limit_gib": args.limit_gib, "runs": results}))


def _row(f: dict) -> str:
    head = f"{f['data']:<10} {f['config']:<48}"
    if "error" in f:
        return f"{head} failed (exit {f.get('returncode')}): {f['error']}"
    micro = "x".join(map(str, f.get("micro_batch", []))) or "?"
    estimate = f"est {f.get('estimated_peak_gib', float('nan')):5.2f} GiB"
    checkpointing = "ckpt " + ("on " if f.get("gradient_checkpointing") else "off") + \
        (" freed" if f.get("return_freed_memory") else "")
    if "refused" in f:
        return (f"{head} not run: {estimate} > {f.get('allowed_gib', 0):.2f} allowed  (micro-batch {micro}, "
                f"{checkpointing})")
    per_cpu = f"{f['tokens_per_cpu_s']:6.1f}" if f.get("tokens_per_cpu_s") else "     -"
    return (f"{head} peak {f['peak_rss_gib']:5.2f} GiB  {estimate}  {f['tokens_per_s']:6.1f} tok/s  {per_cpu} "
            f"tok/cpu-s  loss {f['loss']:.4f}  micro-batch {micro:<8} {checkpointing} load {f['load']}")


if __name__ == "__main__":
    main()
