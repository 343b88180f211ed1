"""The value every metric returns: headline figures, per-sample rows and a resampling hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

Statistic = Callable[[np.ndarray], dict[str, float]]


@dataclass
class MetricResult:
    """Headline figures of one metric over aligned records.

    ``statistic(indices)`` recomputes the headline figures on a subset (with repeats) of the scored
    samples; bootstrap confidence intervals and paired comparisons are built on it. Per-sample rows
    are built on demand by ``rows`` because on 100k records they cost more than the metric itself.
    """

    metric: str
    summary: dict[str, float]
    names: list[str]
    statistic: Statistic
    info: dict = field(default_factory=dict)
    rows: Callable[[], list[dict]] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """Number of scored samples."""
        return len(self.names)

    @cached_property
    def per_sample(self) -> list[dict]:
        """One dict per scored sample, in ``names`` order."""
        return self.rows() if self.rows else [{"name": name} for name in self.names]


def mean_statistic(columns: dict[str, np.ndarray], derive: Callable[[dict[str, float]], dict[str, float]]) -> Statistic:
    """A statistic for metrics whose figures are functions of per-sample column means."""

    def statistic(indices: np.ndarray) -> dict[str, float]:
        means = {k: float(v[indices].mean()) if len(indices) else 0.0 for k, v in columns.items()}
        return derive(means)

    return statistic


def f_score(precision: float, recall: float) -> float:
    """Harmonic mean, 0 when both are 0 (instead of the NaN a bare formula gives)."""
    total = precision + recall
    return 2 * precision * recall / total if total > 0 else 0.0
