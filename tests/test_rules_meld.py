"""The calibration benchmark of the rules engine (eval/bench/rules_meld.py) on the MELD anchor: the shipped
rule is what fitting on the meld recipe's train + validation dialogues gives, and its figures on the test
dialogues are the ones the README reports (above always-"neutral" and the engine before)."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict
from pathlib import Path

import pytest

from affectreason.reason.rules import CALIBRATED

BENCH = Path(__file__).resolve().parents[1] / "eval" / "bench" / "rules_meld.py"


@pytest.fixture(scope="module")
def summary(anchors):
    import sys

    sys.path.insert(0, str(BENCH.parent))  # the bench imports its folder's timing.py, as when run from there
    try:
        spec = importlib.util.spec_from_file_location("rules_meld", BENCH)
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        return bench.main(["--anchors", str(anchors), "--calibrate"])
    finally:
        sys.path.remove(str(BENCH.parent))


def test_fitting_on_train_and_validation_reproduces_the_shipped_rule(summary):
    assert summary["fitted"] == asdict(CALIBRATED)


def test_shipped_rule_on_the_test_dialogues(summary):
    test = summary["test"]
    shipped, neutral = test["rules, shipped (CALIBRATED)"], test["always 'neutral'"]
    assert (shipped["accuracy"], shipped["weighted_f1"], shipped["uar"], shipped["hit_rate"]) == (
        pytest.approx(56.03, abs=0.01), pytest.approx(53.39, abs=0.01), pytest.approx(35.95, abs=0.01),
        pytest.approx(33.98, abs=0.01))
    assert neutral["accuracy"] == pytest.approx(47.47, abs=0.01)
    assert shipped["accuracy"] > neutral["accuracy"] and shipped["weighted_f1"] > 40.86
    assert summary["clips_per_s"] >= 1000
