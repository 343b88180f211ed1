"""Ray scaling: clips/s of the local runner vs 1 and 2 Ray workers on the same clips, and Ray's start-up overhead.

    python eval/bench/ray_scale.py [--clips 24] [--seconds 5] [--no-asr]

Builds one clip (cues_speed.py's: the astronaut photo slowly zoomed, so every frame differs, with a spoken paragraph)
and copies it ``--clips`` times under distinct ids. Each configuration runs them into a fresh output with the rules
backend, so cue extraction (decoding, MediaPipe, Praat, faster-whisper unless ``--no-asr``) is the cost:
- ``local``: ``batch.run(workers=2)``, the home-made pool of two spawned processes;
- ``ray 1`` / ``ray 2``: ``--ray local`` with 1 or 2 workers (``RayPool(workers=N)``).
For each: end-to-end clips/s (worker start-up included, as a user sees it) and steady clips/s (first record to
last). For Ray also the start-up overhead (the cluster's start, ``ray.init``, and the time to the first record
beyond one clip's work) and how many cores each worker kept busy (its CPU time over the run's; above 1, a worker's
own threads already take the cores a second worker would need). Then the ratio ray 2 / ray 1 (target >= 1.7x on 2
cores) and the worker-seconds per clip (workers / steady clips/s) that the README's sizing table scales. Run it on
a quiet machine: the load average is printed at the start and the end, and figures taken under load say so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.media_factory, via cues_speed


def _timed_run(items, out: Path, config, workers: int, pool=None) -> dict:
    """One batch: seconds end to end, arrival times of the records, counts."""
    from affectreason.backends.load import BackendSpec
    from affectreason.batch import run

    arrivals: list[float] = []
    start = time.perf_counter()
    result = run(items, out, config, BackendSpec("rules"), workers=workers, pool=pool,
                 on_done=lambda record: arrivals.append(time.perf_counter()))
    total = time.perf_counter() - start
    if result.failed:
        raise SystemExit(f"{len(result.failed)} clips failed: {sorted(result.failed.items())[:3]}")
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    return {"seconds": round(total, 2), "clips_per_s": round(len(items) / total, 3),
            "steady_clips_per_s": round(steady, 3), "first_record_s": round(arrivals[0] - start, 2)}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a worker process so far (its threads included)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-asr", action="store_true", help="skip speech recognition")
    args = parser.parse_args()

    from cues_speed import build_clip

    from affectreason.batch import items_in
    from affectreason.cluster import RayPool
    from affectreason.cues.pipeline import CueConfig

    config = CueConfig(asr=not args.no_asr)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        one = build_clip(Path(tmp), args.seconds)
        for i in range(args.clips):
            shutil.copy(one, folder / f"clip_{i:03d}.mp4")
        items = items_in(folder)
        figures: dict[str, dict] = {"local": _timed_run(items, Path(tmp) / "local.jsonl", config, 2)}
        print(f"local (2 processes): {figures['local']}", flush=True)
        for workers in (1, 2):
            pool = RayPool("local", workers=workers)
            started = time.perf_counter()
            pool.connect()
            cluster_start = time.perf_counter() - started
            try:
                figure = _timed_run(items, Path(tmp) / f"ray{workers}.jsonl", config, workers, pool)
                busy = sum(_cpu_seconds(pid) for pid in pool.pids)
            finally:
                pool.close()
            one_clip = workers / figure["steady_clips_per_s"]
            figure["cores_busy_per_worker"] = round(busy / figure["seconds"] / workers, 2)
            figure |= {"cluster_start_s": round(cluster_start, 2),
                       "startup_overhead_s": round(cluster_start + figure["first_record_s"] - one_clip, 2),
                       "cpu_s_per_clip": round(one_clip, 3)}
            figures[f"ray{workers}"] = figure
            print(f"ray {workers} worker(s): {figure}", flush=True)
    ratio = figures["ray2"]["steady_clips_per_s"] / figures["ray1"]["steady_clips_per_s"]
    ratio_e2e = figures["ray2"]["clips_per_s"] / figures["ray1"]["clips_per_s"]
    print(f"{args.clips} clips of {args.seconds:g} s, ASR {'off' if args.no_asr else 'on'}: ray 2 / ray 1 = "
          f"{ratio:.2f}x steady, {ratio_e2e:.2f}x end to end (target >= 1.7: {'met' if ratio >= 1.7 else 'NOT met'});"
          f" ray 2 / local = {figures['ray2']['clips_per_s'] / figures['local']['clips_per_s']:.2f}x end to end")
    print(json.dumps({"clips": args.clips, "clip_s": args.seconds, "asr": not args.no_asr,
                      "ratio_ray2_ray1_steady": round(ratio, 3), "ratio_ray2_ray1_e2e": round(ratio_e2e, 3),
                      **figures}))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
