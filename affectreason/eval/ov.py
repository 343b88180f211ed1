"""MER2024-OV set-level accuracy and recall of open-vocabulary labels.

Conventions (MER2024 README; MERTools ``main-ov.py``), reproduced exactly:
- labels are lower-cased; each label is replaced by its synonym group's representative
  (the first member of its group); labels outside every group stand for themselves;
- per clip: accuracy = |G ∩ P| / |P| and recall = |G ∩ P| / |G| over the mapped sets;
  an empty prediction scores 0 on both;
- the figures are means over clips; ``avg`` is the mean of the two.
Our additions, stated here because the reference code would crash instead: a clip whose gold
set is empty is skipped and counted (``skipped_empty_gold``). This module imports no model.
"""

from __future__ import annotations

import numpy as np

from affectreason.eval.alignment import Aligned
from affectreason.eval.grouping import SynonymGrouping
from affectreason.eval.result import MetricResult, mean_statistic


def set_overlap(gold: set[str], pred: set[str]) -> tuple[float, float]:
    """(accuracy, recall) of one clip's mapped label sets.

    >>> set_overlap({"happy", "relaxed"}, {"happy"})
    (1.0, 0.5)
    >>> set_overlap({"happy"}, set())
    (0.0, 0.0)
    """
    if not pred:
        return 0.0, 0.0
    hit = len(gold & pred)
    return hit / len(pred), hit / len(gold)


def _derive(means: dict[str, float]) -> dict[str, float]:
    acc, rec = means["accuracy"], means["recall"]
    return {"accuracy": acc, "recall": rec, "avg": (acc + rec) / 2}


def grouped_sets(grouping: SynonymGrouping, name: str, gold: list[str], pred: list[str]) -> tuple[set[str], set[str]]:
    """One clip's gold and predicted labels, each replaced by its synonym group's representative."""
    gold, pred = grouping.retokenize(name, gold), grouping.retokenize(name, pred)
    to_group = grouping.canonical(name, [*gold, *pred])
    return {to_group.get(label, label) for label in gold}, {to_group.get(label, label) for label in pred}


def score_ov(aligned: Aligned, grouping: SynonymGrouping) -> MetricResult:
    """Set-level OV accuracy / recall / avg of aligned records under a synonym grouping."""
    rows: list[dict] = []
    skipped: list[str] = []
    grouping.prepare(label for record in (*aligned.gold, *aligned.pred) for label in record.labels)
    for gold, pred in zip(aligned.gold, aligned.pred, strict=True):
        if not gold.labels:
            skipped.append(gold.name)
            continue
        g, p = grouped_sets(grouping, gold.name, gold.labels, pred.labels)
        acc, rec = set_overlap(g, p)
        rows.append({"name": gold.name, "accuracy": acc, "recall": rec, "gold": sorted(g), "pred": sorted(p)})
    columns = {k: np.array([r[k] for r in rows], dtype=float) for k in ("accuracy", "recall")}
    statistic = mean_statistic(columns, _derive)
    summary = statistic(np.arange(len(rows)))
    info = {"grouping": grouping.describe(), "skipped_empty_gold": len(skipped), **aligned.summary()}
    return MetricResult("ov", summary, [r["name"] for r in rows], statistic, info, rows=lambda: rows)
