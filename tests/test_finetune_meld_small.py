"""The small version of the MELD fine-tuning benchmark (eval/bench/finetune_meld.py) that CI can afford:
a tiny random Qwen2 instead of SmolLM2, a few dozen utterances, a few steps. It checks the whole path
(dialogue-disjoint split from the data recipe, zero-shot, LoRA, fine-tuned, rules, evaluator) and the
figures it reports, not the model's quality."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[1] / "eval" / "bench" / "finetune_meld.py"


def test_small_meld_finetune_reports_all_three_systems(anchors, tiny_qwen2, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # the benches import their shared meld_bench as scripts do
    spec = importlib.util.spec_from_file_location("finetune_meld", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    summary = bench.main(["--model", str(tiny_qwen2), "--anchors", str(anchors), "--out-dir", str(tmp_path),
                          "--train-n", "24", "--eval-n", "8", "--steps", "8", "--batch-size", "4",
                          "--max-new-tokens", "8", "--lr", "3e-3"])
    assert summary["train_n"] == 24 and summary["eval_n"] == 8 and summary["steps"] == 8
    assert summary["loss_last"] < summary["loss_first"]
    for system in ("zero-shot", "fine-tuned", "rules"):
        assert set(summary[system]) == {"accuracy", "strict_accuracy", "hit_rate", "answered"}
        assert summary[system]["strict_accuracy"] <= summary[system]["accuracy"]
        assert all(0.0 <= v <= 1.0 for v in summary[system].values())
    assert summary["rules"]["answered"] == 1.0  # the rules engine always names an emotion
    assert summary["rules"]["strict_accuracy"] == summary["rules"]["accuracy"]
    assert len((tmp_path / "fine_tuned.jsonl").read_text().splitlines()) == 8
    info = json.loads((tmp_path / "run" / "adapter" / "affectreason_adapter.json").read_text())
    assert info["prompt"] == "reason/explain_tuned"
    train_groups = {json.loads(line)["group"] for line in (tmp_path / "data" / "train.jsonl").read_text().splitlines()}
    test_groups = {json.loads(line)["group"] for line in (tmp_path / "data" / "test.jsonl").read_text().splitlines()}
    assert not train_groups & test_groups
