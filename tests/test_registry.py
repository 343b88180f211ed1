"""The metric registry: scoring by name gives the CLI's figures, and mistakes are UsageErrors with its messages."""

from __future__ import annotations

import doctest
import json

import pytest
import typer.main
from typer.testing import CliRunner

import affectreason.eval.per_record as per_record
import affectreason.eval.registry as registry
from affectreason.cli import app
from affectreason.errors import DataError, UsageError
from affectreason.eval.alignment import align
from affectreason.eval.ew import score_ew
from affectreason.eval.ov import set_overlap
from affectreason.eval.per_record import label_agreement, score_labels
from affectreason.eval.records import read_records
from affectreason.eval.registry import METRICS, OPTIONS, Metric, ScoreOptions, metric_spec, score
from affectreason.eval.wheel import WheelDataMissing

runner = CliRunner()


@pytest.fixture()
def ov(anchors):
    return anchors / "mer2024_ov"


def cli_json(*args) -> dict:
    out = runner.invoke(app, ["score", *map(str, args), "--json", "--bootstrap", "0"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_ov_through_the_registry_reproduces_the_published_figures_and_the_cli(ov):
    result = score("ov", ov / "ground_truth.csv", ov / "example_predictions.csv",
                   groups=ov / "cached_synonym_groups.json")
    figures = tuple(round(result.summary[k], 4) for k in ("accuracy", "recall", "avg"))
    assert figures == (0.5818, 0.4978, 0.5398) and result.n == 332
    report = cli_json("ov", "--gold", ov / "ground_truth.csv", "--pred", ov / "example_predictions.csv",
                      "--groups", ov / "cached_synonym_groups.json")
    assert {k: report[k] for k in result.summary} == result.summary and report["n"] == result.n


@pytest.mark.parametrize("metric, gold, options, flags", [
    ("ew", "mer2024_ov/ground_truth.csv", {"level": "level2"}, ["--level", "level2"]),
    ("hit", "mer2024_ov/ground_truth.csv", {}, []),
    ("closed", "merbench/meld_test.jsonl", {"classes": "neutral,joy,sadness"}, ["--classes", "neutral,joy,sadness"]),
    ("sentiment", "merbench/mosi_test.jsonl", {}, []),
])
def test_wheel_metrics_give_the_cli_figures(anchors, metric, gold, options, flags):
    gold_file, pred_file = anchors / gold, anchors / "mer2024_ov" / "example_predictions.csv"
    if metric in ("closed", "sentiment"):
        pred_file = gold_file
    wheel_dir = anchors / "emotion_wheel"
    result = score(metric, str(gold_file), str(pred_file), wheel_dir=str(wheel_dir), **options)
    report = cli_json(metric, "--gold", gold_file, "--pred", pred_file, "--wheel-dir", wheel_dir, *flags)
    assert {k: report[k] for k in result.summary} == pytest.approx(result.summary)
    assert report["n"] == result.n > 0


def test_ew_level1_anchor_figure(ov, anchors):
    result = score("ew", ov / "ground_truth.csv", ov / "example_predictions.csv", wheel_dir=anchors / "emotion_wheel")
    assert round(result.summary["fs"], 4) == 0.5546 and result.metric == "ew_level1"


def test_unknown_metric_is_a_usage_error(ov):
    with pytest.raises(UsageError, match=r"unknown metric 'f1'; choose one of: ov, ew, hit, closed, sentiment, emer"):
        score("f1", ov / "ground_truth.csv", ov / "example_predictions.csv")


def test_an_option_the_metric_does_not_take_is_refused(ov):
    with pytest.raises(UsageError, match=r"metric 'ew' takes no option groups, judge; its options: level, "
                                         r"wheel_dir, missing"):
        score("ew", ov / "ground_truth.csv", ov / "example_predictions.csv", groups="g.json", judge="llm")
    with pytest.raises(UsageError, match="takes no option wheel"):  # a typo is not silently ignored
        score("hit", ov / "ground_truth.csv", ov / "example_predictions.csv", wheel="x")


@pytest.mark.parametrize("options, flags, message, error", [
    ({}, [], registry.NEEDS_GROUPING, UsageError),
    ({"grouping": "cached"}, ["--grouping", "cached"], registry.CACHED_NEEDS_GROUPS, UsageError),
    ({"grouping": "llm", "endpoint": "http://127.0.0.1:9/v1"}, ["--grouping", "llm", "--endpoint", "http://x/v1"],
     registry.LLM_NEEDS_ENDPOINT, UsageError),
    ({"grouping": "embedding", "threshold": 2.0}, ["--grouping", "embedding", "--threshold", "2"],
     "embedding threshold must be in (0, 1], got 2.0", UsageError),
    ({"groups": "g.json", "missing": "drop"}, ["--groups", "g.json", "--missing", "drop"],
     "missing rule must be 'empty' or 'skip', not 'drop'", UsageError),
    ({"groups": "/nonexistent/groups.json"}, ["--groups", "/nonexistent/groups.json"],
     "/nonexistent/groups.json: groups file not found", DataError),  # a bad file, not a bad option
])
def test_options_that_do_not_fit_give_the_cli_message(ov, options, flags, message, error):
    gold, pred = ov / "ground_truth.csv", ov / "example_predictions.csv"
    with pytest.raises(error) as caught:
        score("ov", gold, pred, **options)
    assert str(caught.value) == message
    out = runner.invoke(app, ["score", "ov", "--gold", str(gold), "--pred", str(pred), *flags])
    assert out.exit_code == 2 and f"error: {message}" in " ".join(out.output.split()), out.output


def test_other_user_errors_keep_their_classes(ov, monkeypatch, tmp_path):
    monkeypatch.delenv("AFFECTREASON_WHEEL_DIR", raising=False)
    with pytest.raises(WheelDataMissing, match="--wheel-dir"):
        score("hit", ov / "ground_truth.csv", ov / "example_predictions.csv")
    with pytest.raises(UsageError, match="level must be one of"):
        score("ew", ov / "ground_truth.csv", ov / "example_predictions.csv", level="level9",
              wheel_dir=ov.parent / "emotion_wheel")
    with pytest.raises(UsageError, match="--judge must be one of embedding, llm, not 'gpt'"):
        score("emer", ov / "ground_truth.csv", ov / "example_predictions.csv", judge="gpt")


def test_the_cli_commands_are_built_from_the_table():
    group = typer.main.get_command(app).commands["score"]
    assert list(group.commands) == [*METRICS, "compare"]
    for spec in METRICS.values():
        command = group.commands[spec.name]
        assert command.help == spec.help
        assert [p.name for p in command.params] == ["gold", "pred", *spec.options, "as_json", "per_sample", "out",
                                                     "resamples"]
        for param in command.params:
            if param.name in OPTIONS:
                assert param.opts == [OPTIONS[param.name].flag] and param.help == OPTIONS[param.name].help
                assert param.default == OPTIONS[param.name].default
    compare = group.commands["compare"]
    assert [p.name for p in compare.params] == ["gold", "pred_a", "pred_b", "metric", *OPTIONS, "as_json", "out",
                                                "resamples"]
    assert [m.value for m in Metric] == list(METRICS) and metric_spec(Metric.emer).name == "emer"
    assert all(spec.options[-1] == "missing" and set(spec.options) <= set(OPTIONS) for spec in METRICS.values())


def test_score_options_defaults_are_the_cli_defaults():
    options = ScoreOptions()
    assert (options.threshold, options.level, options.judge, options.workers, options.missing) == (
        0.5, "level1", registry.JudgeKind.embedding, 8, "empty")


def test_per_record_scores_match_the_file_metrics(ov, wheel):
    gold = read_records(ov / "ground_truth.csv")
    pred = {r.name: r for r in read_records(ov / "example_predictions.csv")}
    gold_lists = [g.labels for g in gold]
    pred_lists = [pred[g.name].labels if g.name in pred else [] for g in gold]
    scores = score_labels(gold_lists, pred_lists, wheel)
    pairs = [set_overlap(set(g), set(p)) for g, p in zip(gold_lists, pred_lists, strict=True) if g]
    assert scores.n == len(pairs) == 332
    assert scores.accuracy == pytest.approx(sum(a for a, _ in pairs) / len(pairs))
    assert scores.recall == pytest.approx(sum(r for _, r in pairs) / len(pairs))
    assert round(scores.ew_fs, 4) == 0.5546  # the EW figure of the same records
    assert scores.ew_fs == pytest.approx(score_ew(align(gold, list(pred.values())), wheel).summary["fs"])
    figures = scores.figures()
    assert set(figures) == {"label_accuracy", "label_recall", "label_f1", "ew_fs"} and figures["ew_fs"] == 0.5546


def test_label_agreement_of_one_record(wheel):
    assert label_agreement(["joyful"], ["Happy"], wheel) == 1.0  # one ring on every wheel
    assert label_agreement(["sad"], ["happy"], wheel) == 0.0
    assert label_agreement(["neutral"], ["neutral", "calm"], wheel) == pytest.approx(2 / 3)  # off the wheel: exact F
    only_neutral = score_labels([["neutral"]], [["neutral"]], wheel)
    assert (only_neutral.ew_n, only_neutral.ew_fs, only_neutral.f1) == (0, 0.0, 1.0)


@pytest.mark.parametrize("module", [registry, per_record])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0
