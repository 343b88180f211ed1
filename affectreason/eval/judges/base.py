"""EMER scoring with a pluggable judge: clue overlap and label overlap, each on a 0-10 scale.

A judge scores one (reference, prediction) pair; ``score_emer`` runs it over aligned records in a
thread pool (LLM judges spend their time waiting on the server) and never lets one failed item
sink the batch: a failure is recorded on that sample and left out of the means.

Rules for incomplete records: a gold record without reasoning is not scored for clue overlap
(counted in ``no_reference_reasoning``); a prediction without reasoning scores 0. Label overlap
uses the record's labels, or labels the judge extracts from the reasoning when a record has none.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from affectreason.eval.alignment import Aligned
from affectreason.eval.result import MetricResult
from affectreason.schema import LabelRecord


@dataclass
class PairScore:
    """A 0-10 score with whatever the judge wants to show about how it got there."""

    score: float
    details: dict = field(default_factory=dict)


class Judge(Protocol):
    """Scores clue and label overlap of one prediction against its reference."""

    workers: int

    def clue_overlap(self, reference: str, prediction: str) -> PairScore:
        """0-10 overlap of the emotion clues in two descriptions."""
        ...

    def label_overlap(self, reference: LabelRecord, prediction: LabelRecord) -> PairScore:
        """0-10 overlap of the emotion labels of two records."""
        ...

    def describe(self) -> dict:
        """How the judge is configured, for reports."""
        ...


def _score_one(judge: Judge, gold: LabelRecord, pred: LabelRecord) -> dict:
    row: dict = {"name": gold.name, "clue_overlap": math.nan, "label_overlap": math.nan}
    errors = []
    if gold.reasoning:
        if pred.reasoning:
            try:
                clue = judge.clue_overlap(gold.reasoning, pred.reasoning)
                row["clue_overlap"], row["clue_details"] = clue.score, clue.details
            except Exception as exc:  # one bad item is recorded, the batch goes on
                errors.append(f"clue_overlap: {type(exc).__name__}: {exc}")
        else:
            row["clue_overlap"] = 0.0
    try:
        label = judge.label_overlap(gold, pred)
        row["label_overlap"], row["label_details"] = label.score, label.details
    except Exception as exc:  # same rule as above
        errors.append(f"label_overlap: {type(exc).__name__}: {exc}")
    if errors:
        row["errors"] = errors
    return row


def score_emer(aligned: Aligned, judge: Judge) -> MetricResult:
    """Mean clue overlap and label overlap (0-10) over aligned records."""
    pairs = list(zip(aligned.gold, aligned.pred, strict=True))
    with ThreadPoolExecutor(max_workers=max(1, judge.workers)) as pool:
        rows = list(pool.map(lambda gp: _score_one(judge, *gp), pairs))
    clue = np.array([r["clue_overlap"] for r in rows], dtype=float)
    label = np.array([r["label_overlap"] for r in rows], dtype=float)

    def statistic(indices: np.ndarray) -> dict[str, float]:
        c, lab = clue[indices], label[indices]
        return {
            "clue_overlap": float(np.nanmean(c)) if np.any(~np.isnan(c)) else math.nan,
            "label_overlap": float(np.nanmean(lab)) if np.any(~np.isnan(lab)) else math.nan,
        }

    info = {
        "judge": judge.describe(),
        "no_reference_reasoning": sum(1 for g, _ in pairs if not g.reasoning),
        "failed_items": sum(1 for r in rows if "errors" in r),
        "failed_examples": [r["name"] for r in rows if "errors" in r][:5],
        **aligned.summary(),
    }
    return MetricResult("emer", statistic(np.arange(len(rows))), [r["name"] for r in rows], statistic, info,
                        rows=lambda: rows)
