"""`affectreason explain` on the bundled example clip, end to end, cold start included.

    python eval/bench/explain_speed.py [--runs 3]

Runs the real command in a fresh process each time (imports, model loading, decoding, face, voice,
ASR, rules reasoning, grounding) and prints wall seconds per run and the clip's length as the
baseline (a ratio above 1 means slower than real time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "happy_astronaut.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from affectreason.media import probe

    duration = probe(EXAMPLE).duration_s
    seconds = []
    for _ in range(args.runs):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "affectreason.cli", "explain", str(EXAMPLE), "--json"],
                             capture_output=True, text=True, check=True)
        seconds.append(time.perf_counter() - start)
    labels = json.loads(out.stdout)["explanation"]["labels"]
    median = statistics.median(seconds)
    print(f"explain {EXAMPLE.name} ({duration:.1f} s clip) -> {labels}: "
          f"{', '.join(f'{s:.2f}' for s in seconds)} s per cold run; median {median:.2f} s = "
          f"{median / duration:.2f}x the clip length")
    print(json.dumps({"runs_s": [round(s, 2) for s in seconds], "median_s": round(median, 2), "clip_s": duration}))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
