"""Wall-clock timing shared by the benchmark scripts."""

from __future__ import annotations

import time


def timed(fn):
    """(fn(), seconds it took)."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def machine() -> dict:
    """The machine a figure was measured on: cores, CPU model and the 1-minute load average right now."""
    import os
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")), "unknown") if cpuinfo.is_file() else "unknown"
    return {"cores": os.cpu_count(), "cpu": model, "load_1min": round(os.getloadavg()[0], 2)}


def machine_line(when: str) -> str:
    """``machine (start): 2 cores (CPU), 1-min load 0.12`` for a benchmark's output."""
    m = machine()
    return f"machine ({when}): {m['cores']} cores ({m['cpu']}), 1-min load {m['load_1min']}"
