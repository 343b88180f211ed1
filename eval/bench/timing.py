"""Wall-clock timing shared by the benchmark scripts."""

from __future__ import annotations

import time


def timed(fn):
    """(fn(), seconds it took)."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start
