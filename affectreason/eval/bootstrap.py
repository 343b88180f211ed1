"""Bootstrap confidence intervals and paired comparisons of metric results.

Percentile bootstrap over clips (``n_resamples`` draws with replacement, fixed seed, so a report is
reproducible). A paired comparison resamples the *same* clips for both systems, which is what makes
a small difference detectable: the interval is of the difference, and the two-sided p-value is
twice the share of resamples on the far side of zero.
"""

from __future__ import annotations

import math

import numpy as np

from affectreason.errors import UsageError
from affectreason.eval.result import MetricResult

DEFAULT_RESAMPLES = 1000


def _draws(n: int, n_resamples: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield rng.integers(0, n, size=n)


def _interval(values: list[float], confidence: float) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(result: MetricResult, n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile interval of every headline figure of ``result``."""
    if result.n == 0:
        return {key: (math.nan, math.nan) for key in result.summary}
    samples: dict[str, list[float]] = {key: [] for key in result.summary}
    for indices in _draws(result.n, n_resamples, seed):
        for key, value in result.statistic(indices).items():
            samples[key].append(value)
    return {key: _interval(values, confidence) for key, values in samples.items()}


def paired_comparison(a: MetricResult, b: MetricResult, n_resamples: int = DEFAULT_RESAMPLES,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, dict[str, float]]:
    """Difference b - a of every headline figure, with its paired bootstrap interval and p-value."""
    names_a, names_b = a.names, b.names
    if names_a != names_b:
        raise UsageError(
            "paired comparison needs both results over the same clips in the same order; "
            f"{len(set(names_a) ^ set(names_b))} clips differ (score both against the same gold file)"
        )
    diffs: dict[str, list[float]] = {key: [] for key in a.summary}
    for indices in _draws(a.n, n_resamples, seed):
        sa, sb = a.statistic(indices), b.statistic(indices)
        for key in diffs:
            diffs[key].append(sb[key] - sa[key])
    out = {}
    for key, values in diffs.items():
        arr = np.array([v for v in values if not math.isnan(v)])
        low, high = _interval(values, confidence)
        p = min(1.0, 2 * min((arr <= 0).mean(), (arr >= 0).mean())) if arr.size else math.nan
        out[key] = {"a": a.summary[key], "b": b.summary[key], "diff": b.summary[key] - a.summary[key],
                    "ci_low": low, "ci_high": high, "p_value": float(p)}
    return out
