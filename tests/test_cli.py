"""The ``affectreason score`` commands, run through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from affectreason.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def ov(anchors):
    return anchors / "mer2024_ov"


def test_ov_acceptance_command_reproduces_published_figures(ov):
    """The README's acceptance command: the published MER2024-OV baseline 0.5818 / 0.4978 / 0.5398."""
    out = subprocess.run(
        [sys.executable, "-m", "affectreason.cli", "score", "ov", "--gold", ov / "ground_truth.csv",
         "--pred", ov / "example_predictions.csv", "--groups", ov / "cached_synonym_groups.json", "--json"],
        capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    figures = (round(report["accuracy"], 4), round(report["recall"], 4), round(report["avg"], 4))
    assert figures == (0.5818, 0.4978, 0.5398)
    assert report["n"] == 332
    low, high = report["ci95"]["avg"]
    assert low < report["avg"] < high


def test_ew_json_has_per_wheel(ov, anchors):
    out = run("score", "ew", "--gold", ov / "ground_truth.csv", "--pred", ov / "example_predictions.csv",
              "--level", "level1", "--wheel-dir", anchors / "emotion_wheel", "--json", "--bootstrap", "0")
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert set(report["per_wheel"]) == {"wheel1", "wheel2", "wheel3", "wheel4", "wheel5"}
    assert report["fs"] == pytest.approx(sum(w["fs"] for w in report["per_wheel"].values()) / 5)
    assert round(report["fs"], 4) == 0.5546


def test_wheel_dir_from_environment(ov, anchors, monkeypatch):
    monkeypatch.setenv("AFFECTREASON_WHEEL_DIR", str(anchors / "emotion_wheel"))
    out = run("score", "hit", "--gold", ov / "ground_truth.csv", "--pred", ov / "ground_truth.csv", "--json",
              "--bootstrap", "0")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["hit_rate"] == 1.0


def test_missing_wheel_dir_is_explained(ov, monkeypatch):
    monkeypatch.delenv("AFFECTREASON_WHEEL_DIR", raising=False)
    out = run("score", "ew", "--gold", ov / "ground_truth.csv", "--pred", ov / "example_predictions.csv")
    assert out.exit_code == 2
    assert "format_mapping.json" in out.output and "MERTools" in out.output and "--wheel-dir" in out.output


def test_per_sample_and_report_files(ov, tmp_path):
    per, rep = tmp_path / "per.jsonl", tmp_path / "report.json"
    out = run("score", "ov", "--gold", ov / "ground_truth.csv", "--pred", ov / "example_predictions.csv",
              "--groups", ov / "cached_synonym_groups.json", "--per-sample", per, "--out", rep, "--bootstrap", "50")
    assert out.exit_code == 0, out.output
    assert "0.5818" in out.stdout  # the readable table
    rows = [json.loads(line) for line in per.read_text().splitlines()]
    assert len(rows) == 332 and rows[1]["name"] == "sample_00000007"
    # sample_00000007: gold {excited, joyful, happy}, pred {happy, satisfied}, one group -> 1.0 / 1.0
    assert rows[1]["accuracy"] == 1.0 and rows[1]["recall"] == 1.0
    assert json.loads(rep.read_text())["n"] == 332


def test_missing_and_extra_predictions_reported(tmp_path):
    gold, pred = tmp_path / "g.csv", tmp_path / "p.csv"
    gold.write_text("name,openset\na,\"['happy']\"\nb,\"['sad']\"\n")
    pred.write_text("name,openset\na,\"['happy']\"\nzzz,\"['sad']\"\n")
    out = run("score", "ov", "--gold", gold, "--pred", pred, "--grouping", "wheel", "--json", "--bootstrap", "0",
              "--wheel-dir", tmp_path)  # a folder without the wheel files
    assert out.exit_code == 2 and "missing format_mapping.json" in out.output
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"a": "[['happy']]", "b": "[['sad']]"}))
    out = run("score", "ov", "--gold", gold, "--pred", pred, "--groups", groups, "--json", "--bootstrap", "0")
    report = json.loads(out.stdout)
    # b has no prediction -> scored as empty (0, 0); a scores (1, 1): means 0.5 / 0.5
    assert report["accuracy"] == 0.5 and report["recall"] == 0.5
    assert report["info"]["missing_predictions"] == 1 and report["info"]["missing_examples"] == ["b"]
    assert report["info"]["extra_predictions"] == 1 and report["info"]["extra_examples"] == ["zzz"]
    out = run("score", "ov", "--gold", gold, "--pred", pred, "--groups", groups, "--json", "--bootstrap", "0",
              "--missing", "skip")
    assert json.loads(out.stdout)["accuracy"] == 1.0


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"name,openset\n", "header but no records"),
    (b"clip,foo\nx,y\n", "lacks the needed columns"),
    (b"name,openset\na,\"['caf\xe9']\"\n", "not valid UTF-8"),
    (b"name,openset\na,\"['happy'\"\n", "bad.csv:2: label list"),
])
def test_bad_prediction_files_give_clear_errors(ov, tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    out = run("score", "ov", "--gold", ov / "ground_truth.csv", "--pred", bad, "--groups",
              ov / "cached_synonym_groups.json")
    assert out.exit_code == 2
    assert message in out.output
    assert "Traceback" not in out.output


def test_ov_needs_a_grouping(ov):
    out = run("score", "ov", "--gold", ov / "ground_truth.csv", "--pred", ov / "example_predictions.csv")
    assert out.exit_code == 2 and "--grouping wheel|embedding|llm" in out.output


def test_closed_set_and_sentiment_on_merbench(anchors, tmp_path):
    meld = anchors / "merbench" / "meld_test.jsonl"
    out = run("score", "closed", "--gold", meld, "--pred", meld, "--wheel-dir", anchors / "emotion_wheel",
              "--json", "--bootstrap", "0")
    report = json.loads(out.stdout)
    assert report["accuracy"] == 1.0 and report["n"] == 2610 and len(report["info"]["classes"]) == 7
    mosi = anchors / "merbench" / "mosi_test.jsonl"
    flipped = tmp_path / "flipped.jsonl"
    rows = [json.loads(line) for line in mosi.read_text().splitlines()]
    flipped.write_text("".join(json.dumps({"name": r["name"], "sentiment": -r["sentiment"] or 1.0}) + "\n"
                               for r in rows))
    out = run("score", "sentiment", "--gold", mosi, "--pred", flipped, "--wheel-dir", anchors / "emotion_wheel",
              "--json", "--bootstrap", "0")
    report = json.loads(out.stdout)
    # every sign flipped; gold 0.0 (non-positive) predicted as +1.0 (positive): all wrong
    assert report["accuracy"] == 0.0 and report["n"] == 686


def test_paired_comparison(ov, tmp_path, anchors):
    out = run("score", "compare", "--gold", ov / "ground_truth.csv", "--pred-a", ov / "example_predictions.csv",
              "--pred-b", ov / "ground_truth.csv", "--metric", "ew", "--wheel-dir", anchors / "emotion_wheel",
              "--json", "--bootstrap", "200")
    assert out.exit_code == 0, out.output
    fs = json.loads(out.stdout)["comparison"]["fs"]
    assert fs["b"] == 1.0 and fs["diff"] == pytest.approx(1.0 - 0.5546, abs=1e-4)
    assert fs["ci_low"] > 0.3 and fs["p_value"] < 0.01


def test_version():
    out = run("--version")
    assert out.exit_code == 0 and out.stdout.startswith("affectreason ")


def test_help_lists_the_verbs_in_lifecycle_order():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"})
    verbs = [line.split()[1] for line in result.output.splitlines()
             if line.startswith("│ ") and len(line.split()) > 2 and line.split()[1].isalpha()
             and line.split()[1] in {"cues", "explain", "data", "train", "export", "serve", "query", "score"}]
    assert verbs == ["cues", "explain", "data", "train", "export", "serve", "query", "score"]


def test_a_bug_is_reported_as_a_bug_and_a_user_error_as_one_line(monkeypatch, tmp_path):
    import affectreason.cli as cli

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "score", broken)
    gold = tmp_path / "gold.csv"
    gold.write_text("name,openset\na,\"['happy']\"\n", encoding="utf-8")
    bug = CliRunner().invoke(app, ["score", "hit", "--gold", str(gold), "--pred", str(gold)])
    assert bug.exit_code == 1
    assert "bug: ZeroDivisionError: division by zero" in bug.output and "this is a bug in affectreason" in bug.output
    monkeypatch.undo()
    user = CliRunner().invoke(app, ["score", "ov", "--gold", str(gold), "--pred", str(tmp_path / "none.csv")])
    assert user.exit_code == 2 and user.output.startswith("error:") and "this is a bug" not in user.output
    assert user.output.strip().endswith("none.csv: no such file") and len(user.output.splitlines()) == 1


def test_a_usage_mistake_is_a_usage_error_not_a_bug():
    from pathlib import Path

    done = subprocess.run([sys.executable, "-m", "affectreason.cli", "explain", "examples/happy_astronaut.mp4",
                           "--backend", "rules", "extra_arg"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "unexpected extra argument" in done.stderr and "bug" not in done.stderr
