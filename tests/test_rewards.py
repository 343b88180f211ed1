"""Reward functions of the RL stage: doctests, hand-computed cases, agreement with the evaluator, and the guard
against reward hacking (every emotion word, no cue named, the prompt's worked example copied)."""

from __future__ import annotations

import doctest
import json

import pytest

from affectreason.eval.alignment import align
from affectreason.eval.classification import hit_rate
from affectreason.eval.ew import score_ew
from affectreason.reason.messages import example_observations
from affectreason.reason.prompts import load_prompt
from affectreason.schema import Cues, FaceFrame, LabelRecord, Transcript
from affectreason.train import rewards
from affectreason.train.rewards import (
    DEFAULT_WEIGHTS,
    Context,
    Sample,
    au_reward,
    combine,
    combined_reward,
    ew_reward,
    format_reward,
    grounding_reward,
    hit_reward,
    length_reward,
    normalized_weights,
    ov_reward,
    score,
)

CUES = Cues(clip_id="c1", frames=[FaceFrame(t=0.0, faces=1, aus={"AU12": 0.4, "AU06": 0.3}),
                                  FaceFrame(t=0.5, faces=1, aus={"AU12": 3.2, "AU06": 2.6, "AU04": 0.1})],
            transcript=Transcript(text="I am so glad you came", source="given"))
EXAMPLE = tuple(example_observations("reason/explain_example"))


def answer(observations: list[str], labels: list[str]) -> str:
    return json.dumps({"observations": [{"modality": "face" if "AU" in o else "text", "text": o} for o in observations],
                       "interpretation": "The cues agree.", "conclusion": "She is pleased.", "labels": labels})


HONEST = answer(["strong AU12 at 3.2/5 with AU06", 'says "so glad you came"'], ["happy"])


def test_doctests_of_the_rewards():
    result = doctest.testmod(rewards)
    assert result.failed == 0 and result.attempted >= 20


def test_hand_computed_cases(wheel):
    ctx = Context(wheel)
    honest = Sample(HONEST, ("happy",), CUES)
    assert score(honest, ctx) == {"format": 1.0, "ew": 1.0, "ov": 1.0, "hit": 1.0, "grounding": 1.0, "au": 1.0,
                                  "length": 0.0}
    # AU12 (3.2) and AU06 (2.6) are active, AU04 (0.1) is not: named {AU12, AU04} -> P = R = 1/2 -> F = 1/2 -> 0
    assert au_reward(Sample("<think>AU12 at 3.2, AU04</think><answer>happy</answer>", ("happy",), CUES), ctx) == 0.0
    # F2 of P = 1, R = 1/2: 5 * 1/2 / (4 + 1/2) = 5/9 -> 2F-1 = 1/9
    assert au_reward(Sample("<think>AU12</think><answer>happy</answer>", ("happy",), CUES),
                     Context(wheel, au_beta=2.0)) == pytest.approx(1 / 9)
    # grounding: "strong AU12" supported, "AU04" (claimed active, peak 0.1) contradicted, the quote supported
    mixed = Sample(answer(["strong AU12", "AU04 brow lowerer", 'says "glad you came"'], ["happy"]), ("happy",), CUES)
    assert grounding_reward(mixed, ctx) == pytest.approx(2 / 3, abs=1e-4)  # ground() rounds to 4 places
    assert grounding_reward(Sample(answer(['says "go away"'], ["sad"]), ("sad",), CUES), ctx) == 0.0
    # ov: gold {happy, relieved}, pred {happy, calm, glad}: accuracy 1/3, recall 1/2 -> F = 0.4
    assert ov_reward(Sample(answer([], ["happy", "calm", "glad"]), ("happy", "relieved")), ctx) == pytest.approx(0.4)
    # length: gold 2 labels -> limit 4; 6 labels -> -(6 - 4) / 4
    six = Sample(answer([], ["happy", "glad", "calm", "joyful", "proud", "content"]), ("happy", "relieved"))
    assert length_reward(six, ctx) == -0.5
    assert format_reward(Sample(HONEST[:-10], ("happy",)), ctx) == 0.0  # cut off
    assert format_reward(Sample("<answer>happy</answer>", ("happy",)), ctx) == 0.0  # no <think>
    with pytest.raises(ValueError, match="unknown reward"):
        normalized_weights({"ew": 1.0, "fromat": 1.0})
    with pytest.raises(ValueError, match="can be positive"):
        normalized_weights({"length": 1.0})


@pytest.mark.parametrize("pred", [["joyful"], ["happy", "sad"], ["angry", "surprised", "calm"], ["relieved"]])
def test_ew_and_hit_agree_with_the_evaluator(wheel, pred):
    """The per-completion rewards are the evaluator's metrics on a file of one record."""
    gold = ["happy", "relieved"]
    aligned = align([LabelRecord(name="a", labels=gold)], [LabelRecord(name="a", labels=pred)])
    sample = Sample(answer([], pred), tuple(gold))
    assert ew_reward(sample, Context(wheel)) == pytest.approx(score_ew(aligned, wheel).summary["fs"], abs=1e-4)
    assert hit_reward(sample, Context(wheel)) == pytest.approx(hit_rate(aligned, wheel).summary["hit_rate"])


def test_reward_hacking_scores_low_on_the_default_combination(wheel):
    """Each hack scores at most 0.6 on the default combination, where the honest answer scores 1.0."""
    ctx = Context(wheel)
    every_word = sorted(wheel.wheel_maps["wheel1"]["level1"])
    example = json.loads(load_prompt("reason/explain_example").example)
    hacks = {
        "every emotion word (JSON)": answer(["strong AU12 at 3.2/5 with AU06"], every_word),
        "every emotion word (tags)": f"<think>strong AU12 at 3.2/5</think><answer>{', '.join(every_word)}</answer>",
        "no cue named": answer(["she seems pleased", "her words are warm"], ["happy"]),
        "no cue, tags": "<think>she seems pleased</think><answer>happy</answer>",
        "the worked example copied": json.dumps(example),
        "the worked example with the gold label": json.dumps({**example, "labels": ["happy"]}),
    }
    honest = combined_reward(Sample(HONEST, ("happy",), CUES, EXAMPLE), ctx)
    assert honest == 1.0
    for name, text in hacks.items():
        hacked = combined_reward(Sample(text, ("happy",), CUES, EXAMPLE), ctx)
        assert hacked <= 0.6 + 1e-9, (name, hacked)
    # the listing hack gets no EW credit to speak of and the full length penalty
    listing = Sample(hacks["every emotion word (tags)"], ("happy",), CUES, EXAMPLE)
    assert ew_reward(listing, ctx) < 0.35 and length_reward(listing, ctx) == -1.0
    assert grounding_reward(Sample(hacks["the worked example with the gold label"], ("happy",), CUES, EXAMPLE),
                            ctx) == 0.0


def test_combine_is_what_trl_logs():
    """TRL sums reward_i x weight_i; handing it the normalized weights makes that sum ``combine``."""
    scores = {"ew": 0.5, "format": 1.0, "grounding": 0.25, "length": -0.5}
    weights = normalized_weights(DEFAULT_WEIGHTS)
    assert sum(weights[k] * v for k, v in scores.items()) == pytest.approx(combine(scores))
    assert combine(scores) == pytest.approx((0.5 + 0.5 + 0.25 - 0.5) / 2.5)
