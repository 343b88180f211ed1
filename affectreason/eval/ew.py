"""Emotion-wheel (EW) metrics of AffectGPT / MER-UniBench.

Conventions (AffectGPT ``wheel_metric_calculation``), reproduced exactly:
- labels are lower-cased and stripped, then mapped to a ring of each of the 5 wheels
  (see ``affectreason.eval.wheel``); labels that map to nothing are dropped;
- a clip whose mapped gold set is empty is skipped on that wheel (e.g. gold ``['neutral']``:
  neutral is on no wheel);
- per wheel: precision = mean |G ∩ P| / |P| (0 for an empty P), recall = mean |G ∩ P| / |G|,
  F = 2PR / (P + R) computed from the two means;
- the headline figures are means over the wheels; level1 (basic rings) is the primary figure.
Our addition, where the reference would return NaN: a wheel on which no clip could be scored is
left out of the means over wheels (``per_wheel[w]["n"] == 0`` shows it). This module imports no model.
"""

from __future__ import annotations

import numpy as np

from affectreason.errors import UsageError
from affectreason.eval.alignment import Aligned
from affectreason.eval.result import MetricResult, f_score
from affectreason.eval.wheel import LEVELS, WHEELS, EmotionWheel


def overlap_arrays(gold: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip (precision, recall) of ring bit sets; NaN where the gold set is empty.

    >>> p, r = overlap_arrays(np.array([0b011, 0b1, 0], dtype=np.uint64), np.array([0b001, 0, 1], dtype=np.uint64))
    >>> p.tolist(), r.tolist()
    ([1.0, 0.0, nan], [0.5, 0.0, nan])
    """
    hit = np.bitwise_count(gold & pred).astype(float)
    n_gold = np.bitwise_count(gold).astype(float)
    n_pred = np.bitwise_count(pred).astype(float)
    precision = np.divide(hit, n_pred, out=np.zeros_like(hit), where=n_pred > 0)
    recall = np.divide(hit, n_gold, out=np.zeros_like(hit), where=n_gold > 0)
    precision[n_gold == 0] = np.nan
    recall[n_gold == 0] = np.nan
    return precision, recall


def wheel_means(precision: np.ndarray, recall: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-wheel means of (n_wheels, n) precision/recall arrays that hold NaN for skipped clips."""
    out = {}
    for w, name in enumerate(WHEELS):
        valid = ~np.isnan(precision[w])
        count = int(valid.sum())
        pm = float(precision[w][valid].mean()) if count else 0.0
        rm = float(recall[w][valid].mean()) if count else 0.0
        out[name] = {"precision": pm, "recall": rm, "fs": f_score(pm, rm), "n": count}
    return out


def over_wheels(per_wheel: dict[str, dict[str, float]], keys: tuple[str, ...]) -> dict[str, float]:
    """Means of per-wheel figures over the wheels that scored at least one clip."""
    scored = [figures for figures in per_wheel.values() if figures["n"]]
    return {k: float(np.mean([f[k] for f in scored])) if scored else 0.0 for k in keys}


def score_ew(aligned: Aligned, wheel: EmotionWheel, level: str = "level1") -> MetricResult:
    """EW precision / recall / F-score per wheel and their means over the 5 wheels."""
    if level not in LEVELS:
        raise UsageError(f"level must be one of {LEVELS}, not {level!r}")
    gold = wheel.masks([r.labels for r in aligned.gold], level)
    pred = wheel.masks([r.labels for r in aligned.pred], level)
    keep = np.flatnonzero((gold != 0).any(axis=1))
    gold, pred = gold[keep], pred[keep]
    precision, recall = overlap_arrays(gold.T, pred.T)
    names = [aligned.gold[i].name for i in keep]

    def statistic(indices: np.ndarray) -> dict[str, float]:
        return over_wheels(wheel_means(precision[:, indices], recall[:, indices]), ("fs", "precision", "recall"))

    def rows() -> list[dict]:
        out = []
        for i, name in enumerate(names):
            row: dict = {"name": name}
            for w, wname in enumerate(WHEELS):
                if gold[i, w]:
                    row[wname] = {"precision": precision[w, i], "recall": recall[w, i],
                                  "gold": wheel.decode(gold[i, w], wname, level),
                                  "pred": wheel.decode(pred[i, w], wname, level)}
            out.append(row)
        return out

    everything = np.arange(len(names))
    info = {"level": level, "per_wheel": wheel_means(precision, recall),
            "skipped_empty_gold": len(aligned.gold) - len(names), **aligned.summary()}
    return MetricResult(f"ew_{level}", statistic(everything), names, statistic, info, rows=rows)
