"""affectreason eval: typed tasks and suites, the smoke suite end to end with the rules engine, cached predictions,
skipped tasks with their reason, and the paired comparison of two runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.errors import RecipeError
from affectreason.suites.task import load_task, resolve, shipped

runner = CliRunner()


def test_every_shipped_task_and_suite_loads():
    assert shipped("tasks") == ["emer-v1-text", "meld-text", "mosi-text", "ovmerd-media"]
    assert shipped("suites") == ["merbench-text", "smoke"]
    for name in shipped("suites"):
        suite, tasks = resolve(name)
        assert suite == name and [t.name for t in tasks] == ["meld-text", "mosi-text", "ovmerd-media", "emer-v1-text"]
    assert all(t.limit == 8 for t in resolve("smoke")[1])
    assert [m.metric for m in load_task("meld-text").metrics] == ["hit", "closed"]


def test_a_typo_in_a_task_names_the_key(tmp_path):
    task = tmp_path / "mine.yaml"
    task.write_text((Path(__file__).resolve().parents[1] / "affectreason" / "suites" / "tasks" / "meld-text.yaml")
                    .read_text().replace("input: transcript", "inptu: transcript"))
    with pytest.raises(RecipeError, match="inptu: Extra inputs are not permitted"):
        load_task(task)
    task.write_text(task.read_text().replace("inptu: transcript", "input: transcript")
                    .replace("{metric: hit}", "{metric: hit, options: {level: level2}}"))
    with pytest.raises(RecipeError, match="hit takes no option \\['level'\\]"):
        load_task(task)


@pytest.fixture(scope="module")
def smoke(anchors, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "rules"
    result = runner.invoke(app, ["eval", "smoke", "--backend", "rules", "--out", str(out), "--anchors", str(anchors),
                                 "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "results.json").read_text())


def test_smoke_suite_with_the_rules_engine(smoke):
    out, results = smoke
    tasks = results["tasks"]
    assert results["suite"] == "smoke" and results["backend"]["resolved"] == "rules"
    meld = tasks["meld-text"]
    assert meld["status"] == "ok" and meld["failures"] == 0 and meld["version"] == 1
    accuracy = {(f["metric"], f["key"]): f for f in meld["figures"]}[("closed", "accuracy")]
    assert accuracy["value"] == pytest.approx(0.375) and accuracy["n"] == 8  # rules-2 (calibrated, #16); rules-1: 0.125
    low, high = accuracy["ci95"]
    assert low <= 0.375 <= high
    assert {(f["metric"], f["key"]) for f in tasks["mosi-text"]["figures"]} == {("sentiment", "waf"),
                                                                                 ("sentiment", "accuracy")}
    assert [f["key"] for f in tasks["emer-v1-text"]["figures"]] == ["clue_overlap", "label_overlap"]
    # no clips were given: the media task is skipped with its reason, never scored as zero
    assert tasks["ovmerd-media"]["status"] == "skipped" and tasks["ovmerd-media"]["figures"] == []
    assert "no record has a readable clip" in tasks["ovmerd-media"]["reason"]
    table = (out / "results.md").read_text()
    assert "| meld-text | closed:accuracy | 37.50 |" in table and "skipped: no record has a readable clip" in table
    assert "published: AffectGPT (video + audio + text)" in table
    assert (out / "meld-text" / "per_sample-hit.jsonl").is_file()


def test_a_rerun_only_scores(smoke, anchors):
    out, first = smoke
    again = runner.invoke(app, ["eval", "smoke", "--backend", "rules", "--out", str(out), "--anchors", str(anchors),
                                "--bootstrap", "100"])
    assert again.exit_code == 0, again.output
    assert "meld-text: 0 explained, 0 failed, 8 cached" in again.output
    second = json.loads((out / "results.json").read_text())
    assert [f["value"] for f in second["tasks"]["meld-text"]["figures"]] == \
        [f["value"] for f in first["tasks"]["meld-text"]["figures"]]


def test_compare_two_runs(smoke, anchors, tmp_path):
    out, _ = smoke
    result = runner.invoke(app, ["eval", "compare", str(out), str(out), "--anchors", str(anchors)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    meld = next(r for r in rows if r.get("figure") == "closed:accuracy")
    assert meld["diff"] == 0.0 and meld["p_value"] == 1.0 and meld["n"] == 8
    assert any(r.get("status") == "skipped" and r["task"] == "ovmerd-media" for r in rows)
    missing = runner.invoke(app, ["eval", "compare", str(out), str(tmp_path)])
    assert missing.exit_code == 2 and "no results.json" in missing.output
