"""Emotion-wheel (EW) metrics of AffectGPT / MER-UniBench.

Conventions (AffectGPT ``wheel_metric_calculation``), reproduced exactly:
- labels are lower-cased and stripped, then mapped to a ring of each of the 5 wheels
  (see ``affectreason.eval.wheel``); labels that map to nothing are dropped;
- a clip whose mapped gold set is empty is skipped (e.g. gold ``['neutral']``: neutral is on no wheel);
- per wheel: precision = mean |G ∩ P| / |P| (0 for an empty P), recall = mean |G ∩ P| / |G|,
  F = 2PR / (P + R) computed from the two means;
- the headline figures are means over the 5 wheels; level1 (basic rings) is the primary figure.
This module imports no model.
"""

from __future__ import annotations

import numpy as np

from affectreason.eval.alignment import Aligned
from affectreason.eval.ov import set_overlap
from affectreason.eval.result import MetricResult, f_score
from affectreason.eval.wheel import LEVELS, WHEELS, EmotionWheel


def _derive_factory(wheels: tuple[str, ...]):
    def derive_from(stats: dict[str, dict[str, float]]) -> dict[str, float]:
        fs = [f_score(stats[w]["precision"], stats[w]["recall"]) for w in wheels]
        return {
            "fs": float(np.mean(fs)),
            "precision": float(np.mean([stats[w]["precision"] for w in wheels])),
            "recall": float(np.mean([stats[w]["recall"] for w in wheels])),
        }

    return derive_from


def score_ew(aligned: Aligned, wheel: EmotionWheel, level: str = "level1") -> MetricResult:
    """EW precision / recall / F-score per wheel and their means over the 5 wheels."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    # One column pair per wheel; a clip skipped on one wheel is NaN there and ignored by that wheel's means.
    n = len(aligned.gold)
    precision = np.full((len(WHEELS), n), np.nan)
    recall = np.full((len(WHEELS), n), np.nan)
    rows: list[dict] = []
    for i, (gold, pred) in enumerate(zip(aligned.gold, aligned.pred, strict=True)):
        row: dict = {"name": gold.name}
        for w, name in enumerate(WHEELS):
            g = wheel.map_set(gold.labels, name, level)
            if not g:
                continue
            p = wheel.map_set(pred.labels, name, level)
            precision[w, i], recall[w, i] = set_overlap(g, p)
            row[name] = {"precision": precision[w, i], "recall": recall[w, i], "gold": sorted(g), "pred": sorted(p)}
        rows.append(row)
    scored = ~np.isnan(precision).all(axis=0)
    keep = np.flatnonzero(scored)
    precision, recall = precision[:, keep], recall[:, keep]
    rows = [rows[i] for i in keep]
    derive = _derive_factory(WHEELS)

    def per_wheel(indices: np.ndarray) -> dict[str, dict[str, float]]:
        out = {}
        for w, name in enumerate(WHEELS):
            p, r = precision[w, indices], recall[w, indices]
            valid = ~np.isnan(p)
            pm = float(p[valid].mean()) if valid.any() else 0.0
            rm = float(r[valid].mean()) if valid.any() else 0.0
            out[name] = {"precision": pm, "recall": rm, "fs": f_score(pm, rm), "n": int(valid.sum())}
        return out

    def statistic(indices: np.ndarray) -> dict[str, float]:
        return derive(per_wheel(indices))

    everything = np.arange(len(rows))
    summary = statistic(everything)
    info = {"level": level, "per_wheel": per_wheel(everything), "skipped_empty_gold": int(n - len(rows)),
            **aligned.summary()}
    return MetricResult(f"ew_{level}", summary, rows, statistic, info)
