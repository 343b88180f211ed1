"""Hit rate, closed-set projection and figures, binary sentiment, label polarity."""

from __future__ import annotations

import pytest

from affectreason.eval.alignment import align
from affectreason.eval.classification import (
    NO_CLASS,
    closed_set,
    hit_rate,
    label_polarity,
    project_to_classes,
    sentiment,
)
from affectreason.eval.records import read_records
from affectreason.eval.wheel import WHEELS
from affectreason.schema import LabelRecord

MELD = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]


def _aligned(gold_labels, pred_labels):
    gold = [LabelRecord(name=f"c{i}", labels=g) for i, g in enumerate(gold_labels)]
    pred = [LabelRecord(name=f"c{i}", labels=p) for i, p in enumerate(pred_labels)]
    return align(gold, pred)


# --- hit rate -----------------------------------------------------------------------------------


def test_rings_behind_hit_rate(wheel):
    assert [wheel.ring("surprise", w) for w in WHEELS] == ["surprised", "surprised", "powerful", "fear", None]
    assert [wheel.ring("amazed", w) for w in WHEELS] == ["surprised", "surprised", "powerful", "genius", None]


def test_hit_rate_hand_case(wheel):
    aligned = _aligned(
        [["surprise"], ["happy"], ["neutral"], ["sad", "happy"]],
        [["amazed"], ["joyful", "sad"], ["happy"], ["happy"]],
    )
    result = hit_rate(aligned, wheel)
    # c0 surprise/amazed: hit on wheels 1,2,3 (surprised, surprised, powerful), miss on 4 (fear vs genius),
    #    wheel 5 skipped (surprise is off it)
    # c1 happy/joyful: hit on all 5 wheels
    # c2 neutral gold: off every wheel -> skipped
    # c3 only the first gold label counts: sad vs {happy...} -> miss on all 5
    # wheels 1-3: (1+1+0)/3 = 2/3; wheel 4: (0+1+0)/3 = 1/3; wheel 5: (1+0)/2 = 1/2
    # hit rate = (3*(2/3) + 1/3 + 1/2) / 5 = 17/30
    assert result.summary == {"hit_rate": pytest.approx(17 / 30)}
    assert result.n == 3
    assert result.info["skipped_off_wheel_gold"] == 1
    row = result.per_sample[0]
    assert (row["name"], row["wheel1"], row["wheel4"], "wheel5" in row) == ("c0", 1.0, 0.0, False)


def test_hit_rate_perfect_and_zero(wheel):
    assert hit_rate(_aligned([["happy"], ["sad"]], [["happy"], ["sadness"]]), wheel).summary == {"hit_rate": 1.0}
    assert hit_rate(_aligned([["happy"], ["sad"]], [[], ["xyzzy"]]), wheel).summary == {"hit_rate": 0.0}


# --- projection ---------------------------------------------------------------------------------


def test_project_exact_class_without_wheel():
    assert project_to_classes(["content", "sadness"], ["joy", "sadness"], None) == "sadness"


def test_project_wheel_vote(wheel):
    # content rings [happy, happy, peaceful, genius, peaceful] agree with joy [happy, happy, joyful, joy,
    # powerful] on 2 wheels and with sadness on none -> the first label already resolves to joy
    assert project_to_classes(["content", "sadness"], ["joy", "sadness"], wheel) == "joy"
    assert project_to_classes(["happy"], MELD, wheel) == "joy"
    assert project_to_classes(["angry"], MELD, wheel) == "anger"


def test_project_exact_class_beats_wheel_tie(wheel):
    # happy and joy have identical level-1 rings: "joy" is a class itself, so no vote is needed
    assert project_to_classes(["joy"], ["happy", "joy"], wheel) == "joy"
    # "joyful" votes 5-5 for happy and joy: a tie resolves nothing and no other label is left
    assert project_to_classes(["joyful"], ["happy", "joy"], wheel) == NO_CLASS


def test_project_tie_moves_to_next_label(wheel):
    # "absent" rings [mad, None, None, sad, None]: 1 vote for anger, 1 for sadness -> tie, try the next label
    assert [wheel.ring("absent", w) for w in WHEELS] == ["mad", None, None, "sad", None]
    assert project_to_classes(["absent", "content"], MELD, wheel) == "joy"
    assert project_to_classes(["absent"], MELD, wheel) == "neutral"


def test_project_nothing_resolved(wheel):
    assert project_to_classes(["xyzzy"], MELD, wheel) == "neutral"
    assert project_to_classes([], MELD, None) == "neutral"
    assert project_to_classes(["xyzzy"], ["joy", "sadness"], wheel) == "<none>"
    assert project_to_classes(["happy"], ["joy", "sadness"], None) == "<none>"


# --- closed-set figures -------------------------------------------------------------------------


def test_closed_set_three_classes():
    gold = [["anger"], ["anger"], ["anger"], ["joy"], ["joy"], ["sadness"]]
    pred = [["anger"], ["anger"], ["joy"], ["joy"], ["sadness"], ["sadness"]]
    result = closed_set(_aligned(gold, pred))
    # confusion (rows gold, cols pred; anger, joy, sadness):
    #   anger   [2, 1, 0]   support 3
    #   joy     [0, 1, 1]   support 2
    #   sadness [0, 0, 1]   support 1
    # accuracy = (2+1+1)/6 = 2/3
    # recall: anger 2/3, joy 1/2, sadness 1 -> UAR = (2/3 + 1/2 + 1)/3 = 13/18
    # precision: anger 2/2 = 1, joy 1/2, sadness 1/2
    # F1: anger 2*1*(2/3)/(5/3) = 0.8; joy 0.5; sadness 2*.5*1/1.5 = 2/3
    # weighted F1 = (0.8*3 + 0.5*2 + (2/3)*1)/6 = 61/90; macro F1 = (0.8 + 0.5 + 2/3)/3 = 59/90
    assert result.summary == pytest.approx({"accuracy": 2 / 3, "uar": 13 / 18, "weighted_f1": 61 / 90,
                                            "macro_f1": 59 / 90})
    assert result.info["classes"] == ["anger", "joy", "sadness"]
    assert result.info["unresolved_predictions"] == 0
    assert result.n == 6
    assert result.per_sample[2] == {"name": "c2", "gold": "anger", "pred": "joy", "correct": False}


def test_closed_set_unresolved_prediction():
    result = closed_set(_aligned([["joy"], ["sadness"]], [["joy"], ["xyzzy"]]))
    # no "neutral" class: xyzzy -> <none>, wrong. joy P=R=F=1; sadness R=0, never predicted -> P=0, F=0
    # accuracy 1/2, UAR (1+0)/2, weighted F1 (1*1 + 0*1)/2, macro (1+0)/2
    assert result.summary == {"accuracy": 0.5, "uar": 0.5, "weighted_f1": 0.5, "macro_f1": 0.5}
    assert result.info["unresolved_predictions"] == 1
    assert result.per_sample[1]["pred"] == "<none>"


def test_closed_set_with_wheel_and_neutral(wheel):
    gold = [["joy"], ["sadness"], ["neutral"], ["anger"], []]
    pred = [["happy"], ["xyzzy"], [], ["angry"], ["joy"]]
    result = closed_set(_aligned(gold, pred), wheel)
    # happy -> joy (5 votes), xyzzy -> neutral (wrong), [] -> neutral, angry -> anger; empty gold skipped
    # classes anger, joy, neutral, sadness; recall 1, 1, 1, 0 -> UAR 3/4; accuracy 3/4
    # precision 1, 1, 1/2, 0 -> F1 1, 1, 2/3, 0 -> macro = weighted (support 1 each) = (8/3)/4 = 2/3
    assert result.summary == pytest.approx({"accuracy": 0.75, "uar": 0.75, "weighted_f1": 2 / 3,
                                            "macro_f1": 2 / 3})
    assert [r["pred"] for r in result.per_sample] == ["joy", "neutral", "neutral", "anger"]
    assert result.info["skipped_unlabelled_gold"] == 1


def test_closed_set_declared_classes_skip_other_gold():
    result = closed_set(_aligned([["joy"], ["fear"], ["sadness"]], [["joy"], ["fear"], ["joy"]]),
                        classes=["sadness", "joy"])
    # "fear" is not a declared class -> skipped; joy right, sadness wrong -> accuracy 1/2
    assert result.info["classes"] == ["joy", "sadness"]
    assert result.info["skipped_unlabelled_gold"] == 1
    assert result.summary["accuracy"] == 0.5


def test_closed_set_on_meld_gold(anchors):
    gold = read_records(anchors / "merbench" / "meld_test.jsonl")
    result = closed_set(align(gold, gold))
    assert result.summary == {"accuracy": 1.0, "uar": 1.0, "weighted_f1": 1.0, "macro_f1": 1.0}
    assert result.info["classes"] == MELD
    assert result.n == 2610


# --- sentiment ----------------------------------------------------------------------------------


def test_label_polarity(wheel):
    assert label_polarity("happy", wheel) == 1       # happy, happy, joyful, joy, powerful: +5
    assert label_polarity("sad", wheel) == -1        # sad x5
    assert label_polarity("angry", wheel) == -1      # mad, angry, mad, anger, mad
    assert label_polarity("surprise", wheel) == 0    # surprised, surprised, powerful (+1), fear (-1), None
    assert label_polarity("amazed", wheel) == 1      # surprised, surprised, powerful (+1), genius, None
    assert label_polarity("relaxed", wheel) == 1     # None, None, peaceful, joy, peaceful
    assert label_polarity("positive", wheel) == 1
    assert label_polarity("negative", wheel) == -1
    assert label_polarity("neutral", wheel) == 0
    assert label_polarity("xyzzy", wheel) == 0


def _sent_aligned(gold, pred):
    gold_recs = [LabelRecord(name=f"c{i}", **g) for i, g in enumerate(gold)]
    pred_recs = [LabelRecord(name=f"c{i}", **p) for i, p in enumerate(pred)]
    return align(gold_recs, pred_recs)


def test_sentiment_with_wheel(wheel):
    aligned = _sent_aligned(
        [{"sentiment": 1.2}, {"sentiment": -1.6}, {"sentiment": 0.0}, {"sentiment": 2.0}],
        [{"labels": ["happy"]}, {"labels": ["sad", "angry"]}, {"sentiment": 0.4}, {"labels": ["positive"]}],
    )
    result = sentiment(aligned, wheel)
    # gold positive: T, F, F (0.0 is not > 0), T; pred: happy +1 -> T; sad+angry -2 -> F; 0.4 -> T; positive -> T
    # accuracy = 3/4
    # non-positive: support 2, predicted 1, tp 1 -> P 1, R 1/2, F 2/3
    # positive:     support 2, predicted 3, tp 2 -> P 2/3, R 1, F 0.8
    # WAF = (2/3*2 + 0.8*2)/4 = 11/15
    assert result.summary == pytest.approx({"accuracy": 0.75, "waf": 11 / 15})
    assert [r["pred_positive"] for r in result.per_sample] == [True, False, True, True]
    assert result.info["skipped_no_gold_sentiment"] == 0


def test_sentiment_without_wheel():
    aligned = _sent_aligned(
        [{"sentiment": 1.0}, {"sentiment": -1.0}, {"sentiment": 0.5}, {"labels": ["positive"]}, {"labels": ["joy"]},
         {"labels": ["Negative"]}],
        [{"labels": ["positive", "sad"]}, {"labels": ["negative"]}, {"labels": ["happy"]},
         {"labels": ["positive"], "sentiment": -0.2}, {"labels": ["positive"]}, {}],
    )
    result = sentiment(aligned)
    # gold: T, F, T, T ("positive" label), skipped ("joy": no wheel, no number), F ("negative")
    # pred: T (first label "positive"), F, F ("happy" unknown without a wheel), F (sentiment -0.2 wins), F (empty)
    # correct: T, T, F, F, T -> accuracy 3/5
    # non-positive: support 2, predicted 4, tp 2 -> P 1/2, R 1, F 2/3
    # positive:     support 3, predicted 1, tp 1 -> P 1, R 1/3, F 1/2
    # WAF = (2/3*2 + 1/2*3)/5 = 17/30
    assert result.summary == pytest.approx({"accuracy": 0.6, "waf": 17 / 30})
    assert result.info["skipped_no_gold_sentiment"] == 1
    assert result.n == 5


def test_sentiment_on_mosi_gold(anchors):
    gold = read_records(anchors / "merbench" / "mosi_test.jsonl")
    assert sentiment(align(gold, gold)).summary == {"accuracy": 1.0, "waf": 1.0}
    # an empty prediction reads as non-positive: accuracy is the non-positive share of MOSI test
    empty = sentiment(align(gold, []))
    positives = sum(r.sentiment > 0 for r in gold)
    assert empty.summary["accuracy"] == pytest.approx((len(gold) - positives) / len(gold))
    assert empty.info["missing_predictions"] == 686


def test_perfect_hit_rate_when_gold_is_off_a_wheel(wheel):
    # "surprise" is off wheel 5; gold == pred hits on wheels 1-4; so the mean over the 4 scored wheels is 1.0
    assert hit_rate(_aligned([["surprise"]], [["surprise"]]), wheel).summary == {"hit_rate": 1.0}
