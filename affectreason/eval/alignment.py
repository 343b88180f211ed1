"""Pair gold and prediction records by name, with a documented rule for the ones that do not pair.

Rule (the default, ``missing="empty"``): every gold record is scored. A gold name with no prediction
is scored as an empty prediction (it earns 0 on every set metric), so a system cannot raise its
score by skipping hard clips. Predictions whose name is not in the gold file are ignored. With
``missing="skip"`` unpaired gold records are left out instead (use it only to score a declared subset).
Both counts, and a few example names, are reported with every result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from affectreason.errors import UsageError
from affectreason.schema import LabelRecord

MissingRule = Literal["empty", "skip"]
EXAMPLES = 5


@dataclass(frozen=True)
class Aligned:
    """Gold and prediction records in the same order, plus what did not pair."""

    gold: list[LabelRecord]
    pred: list[LabelRecord]
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    rule: MissingRule = "empty"

    def summary(self) -> dict:
        """Counts and a few example names of unpaired records, for reports."""
        return {
            "missing_predictions": len(self.missing),
            "missing_examples": self.missing[:EXAMPLES],
            "extra_predictions": len(self.extra),
            "extra_examples": self.extra[:EXAMPLES],
            "missing_rule": self.rule,
        }


def align(gold: list[LabelRecord], pred: list[LabelRecord], missing: MissingRule = "empty") -> Aligned:
    """Order predictions like the gold records, applying the missing-prediction rule."""
    if missing not in ("empty", "skip"):
        raise UsageError(f"missing rule must be 'empty' or 'skip', not {missing!r}")
    by_name = {r.name: r for r in pred}
    gold_names = {r.name for r in gold}
    kept_gold: list[LabelRecord] = []
    kept_pred: list[LabelRecord] = []
    absent: list[str] = []
    for record in gold:
        match = by_name.get(record.name)
        if match is None:
            absent.append(record.name)
            if missing == "skip":
                continue
            match = LabelRecord(name=record.name)
        kept_gold.append(record)
        kept_pred.append(match)
    extra = [r.name for r in pred if r.name not in gold_names]
    return Aligned(kept_gold, kept_pred, absent, extra, missing)
