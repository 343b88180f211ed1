"""MER2024-OV set-level accuracy / recall, with hand cases and the published anchor figures."""

from __future__ import annotations

import json

import pytest

from affectreason.eval.alignment import align
from affectreason.eval.grouping import CachedGroups, WheelGrouping
from affectreason.eval.ov import score_ov, set_overlap
from affectreason.eval.records import read_records
from affectreason.schema import LabelRecord


@pytest.mark.parametrize(
    "gold, pred, expected",
    [
        ({"happy", "relaxed"}, {"happy"}, (1.0, 0.5)),          # 1 hit / |P|=1, 1 hit / |G|=2
        ({"happy"}, set(), (0.0, 0.0)),                          # empty prediction scores 0
        ({"a", "b", "c"}, {"a", "b", "d", "e"}, (0.5, 2 / 3)),   # 2/4, 2/3
        ({"a"}, {"b"}, (0.0, 0.0)),
        ({"a", "b"}, {"b", "a"}, (1.0, 1.0)),
    ],
)
def test_set_overlap(gold, pred, expected):
    assert set_overlap(gold, pred) == pytest.approx(expected)


@pytest.fixture
def groups_file(tmp_path):
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({
        "c1": "[['joyful', 'happy', 'glad'], ['worry']]",
        "c2": [["angry", "mad"], ["sad"]],
        "c3": "[['calm']]",
        "c4": "[['don', 'doubt'], ['t believe', 'suspicious']]",
        "c5": "[['sad']]",
    }), encoding="utf-8")
    return path


def test_score_ov_hand_cases(groups_file):
    gold = [
        LabelRecord(name="c1", labels=["happy", "worry"]),
        LabelRecord(name="c2", labels=["angry"]),
        LabelRecord(name="c3", labels=["calm", "tired"]),
        LabelRecord(name="c5", labels=[]),
        LabelRecord(name="c6", labels=["sad"]),
    ]
    pred = [
        LabelRecord(name="c1", labels=["Glad", "JOYFUL", "joyful", "surprised"]),
        LabelRecord(name="c2", labels=[]),
        LabelRecord(name="c3", labels=["Tired", "sleepy"]),
        LabelRecord(name="c6", labels=["sad", "lonely"]),
    ]
    result = score_ov(align(gold, pred), CachedGroups(groups_file))
    # c1: G = {joyful, worry}; P: glad, joyful -> joyful (dupes collapse), surprised alone -> {joyful, surprised}
    #     acc = 1/2, rec = 1/2
    # c2: empty prediction -> 0, 0
    # c3: "tired" and "sleepy" are in no group and stand for themselves: G = {calm, tired}, P = {tired, sleepy}
    #     acc = 1/2, rec = 1/2
    # c5: gold empty -> skipped and counted (its missing prediction also counted)
    # c6: not in the groups file -> labels stand for themselves, G = {sad}, P = {sad, lonely}: acc 1/2, rec 1
    # accuracy = (0.5 + 0 + 0.5 + 0.5) / 4 = 0.375; recall = (0.5 + 0 + 0.5 + 1) / 4 = 0.5; avg = 0.4375
    assert result.n == 4
    assert result.metric == "ov"
    assert result.summary == pytest.approx({"accuracy": 0.375, "recall": 0.5, "avg": 0.4375})
    rows = {r["name"]: r for r in result.per_sample}
    assert rows["c1"]["gold"] == ["joyful", "worry"] and rows["c1"]["pred"] == ["joyful", "surprised"]
    assert rows["c3"]["pred"] == ["sleepy", "tired"]
    assert (rows["c2"]["accuracy"], rows["c2"]["recall"]) == (0.0, 0.0)
    assert result.info["skipped_empty_gold"] == 1
    assert result.info["missing_predictions"] == 1 and result.info["missing_examples"] == ["c5"]
    assert result.info["grouping"]["kind"] == "cached"
    assert result.info["grouping"]["clips_without_groups"] == 1  # c6
    # the statistic recomputes on a resample: only c1 twice -> 0.5, 0.5
    assert result.statistic([0, 0]) == pytest.approx({"accuracy": 0.5, "recall": 0.5, "avg": 0.5})


def test_mertools_quote_split(groups_file):
    groups = CachedGroups(groups_file)
    gold = [LabelRecord(name="c4", labels=["doubt", "suspicious"])]
    pred = [LabelRecord(name="c4", labels=["don't believe"])]
    result = score_ov(align(gold, pred), groups)
    # "don't believe" is not in the cache but "don" and "t believe" are: scored as those two pieces
    # G = {don (doubt), t believe (suspicious)}; P = {don, t believe} -> 1.0, 1.0
    assert result.summary == pytest.approx({"accuracy": 1.0, "recall": 1.0, "avg": 1.0})
    assert result.per_sample[0]["pred"] == ["don", "t believe"]
    assert result.info["grouping"]["mertools_split_labels"] == ["don't believe"]




def test_retokenize_only_when_all_pieces_known(groups_file):
    groups = CachedGroups(groups_file)
    assert groups.retokenize("c4", ["don't know", "doubt"]) == ["don't know", "doubt"]
    assert groups.retokenize("c1", ["don't believe"]) == ["don't believe"]   # other clip's cache
    assert groups.retokenize("zz", ["don't believe"]) == ["don't believe"]   # clip absent
    assert groups.split_labels == set()


def test_anchor_acceptance(anchors):
    gold = read_records(anchors / "mer2024_ov" / "ground_truth.csv")
    pred = read_records(anchors / "mer2024_ov" / "example_predictions.csv")
    groups = CachedGroups(anchors / "mer2024_ov" / "cached_synonym_groups.json")
    result = score_ov(align(gold, pred), groups)
    # published MER2024-OV baseline (MER2024 README): 0.5818 / 0.4978 / 0.5398
    assert result.n == 332
    assert round(result.summary["accuracy"], 4) == 0.5818
    assert round(result.summary["recall"], 4) == 0.4978
    assert round(result.summary["avg"], 4) == 0.5398
    assert result.info["grouping"]["clips_without_groups"] == 0
    assert result.info["grouping"]["mertools_split_labels"] == ["don't believe"]
    assert result.info["skipped_empty_gold"] == 0 and result.info["missing_predictions"] == 0


def test_anchor_gold_against_itself(anchors):
    gold = read_records(anchors / "mer2024_ov" / "ground_truth.csv")
    groups = CachedGroups(anchors / "mer2024_ov" / "cached_synonym_groups.json")
    assert score_ov(align(gold, gold), groups).summary == {"accuracy": 1.0, "recall": 1.0, "avg": 1.0}


def test_wheel_grouping(wheel):
    grouping = WheelGrouping(wheel)
    # "happiness", "happy" and "joyful" share the wheel synonym base "joy"; "sad" -> "depressed"
    assert grouping.canonical("x", ["happiness", "happy", "joyful", "sad", "xyzzy"]) == {
        "happiness": "joy", "happy": "joy", "joyful": "joy", "sad": "depressed", "xyzzy": "xyzzy"}
    assert grouping.retokenize("x", ["don't believe"]) == ["don't believe"]
    assert grouping.describe() == {"kind": "wheel"}
    gold = [LabelRecord(name="a", labels=["happy"]), LabelRecord(name="b", labels=["happy", "sad"])]
    pred = [LabelRecord(name="a", labels=["Happiness"]), LabelRecord(name="b", labels=["sadness", "xyzzy"])]
    result = score_ov(align(gold, pred), grouping)
    # a: {joy} vs {joy} -> 1, 1; b: G = {joy, depressed}, P = {depressed, xyzzy} -> 1/2, 1/2
    # accuracy = 0.75, recall = 0.75
    assert result.summary == pytest.approx({"accuracy": 0.75, "recall": 0.75, "avg": 0.75})


def test_score_ov_all_gold_empty(groups_file):
    result = score_ov(align([LabelRecord(name="c1")], [LabelRecord(name="c1", labels=["happy"])]),
                      CachedGroups(groups_file))
    assert result.n == 0
    assert result.summary == {"accuracy": 0.0, "recall": 0.0, "avg": 0.0}
    assert result.info["skipped_empty_gold"] == 1
