"""align(): pairing by name, the missing-prediction rule, and its report."""

from __future__ import annotations

import pytest

from affectreason.eval.alignment import align
from affectreason.schema import LabelRecord


def _recs(*names, labels=("happy",)):
    return [LabelRecord(name=n, labels=list(labels)) for n in names]


def test_missing_and_extra_counted_and_exemplified():
    gold = _recs("g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8")
    pred = [LabelRecord(name="x1", labels=["sad"]), LabelRecord(name="g8", labels=["sad"]),
            LabelRecord(name="x2"), LabelRecord(name="g1", labels=["angry"])]
    aligned = align(gold, pred)
    # g2..g7 have no prediction (6 names, 5 shown); x1, x2 are not gold
    assert aligned.missing == ["g2", "g3", "g4", "g5", "g6", "g7"]
    assert aligned.extra == ["x1", "x2"]
    assert aligned.summary() == {
        "missing_predictions": 6,
        "missing_examples": ["g2", "g3", "g4", "g5", "g6"],
        "extra_predictions": 2,
        "extra_examples": ["x1", "x2"],
        "missing_rule": "empty",
    }


def test_rule_empty_scores_missing_as_empty_prediction():
    gold = _recs("a", "b", "c")
    pred = [LabelRecord(name="c", labels=["sad"]), LabelRecord(name="a", labels=["angry"])]
    aligned = align(gold, pred, missing="empty")
    # predictions are reordered like gold; "b" gets an empty prediction
    assert [g.name for g in aligned.gold] == ["a", "b", "c"]
    assert [(p.name, p.labels) for p in aligned.pred] == [("a", ["angry"]), ("b", []), ("c", ["sad"])]
    assert aligned.missing == ["b"] and aligned.rule == "empty"


def test_rule_skip_drops_missing():
    gold = _recs("a", "b", "c")
    pred = [LabelRecord(name="c", labels=["sad"]), LabelRecord(name="a", labels=["angry"])]
    aligned = align(gold, pred, missing="skip")
    assert [g.name for g in aligned.gold] == ["a", "c"]
    assert [p.labels for p in aligned.pred] == [["angry"], ["sad"]]
    assert aligned.summary()["missing_predictions"] == 1
    assert aligned.summary()["missing_rule"] == "skip"


def test_invalid_rule_raises():
    with pytest.raises(ValueError, match="missing rule must be 'empty' or 'skip', not 'zero'"):
        align(_recs("a"), _recs("a"), missing="zero")
