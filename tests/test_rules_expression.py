"""The rules engine with the expression classifier beside the AU prototypes, and the grounding of claims about
the classifier's output, on hand-made cues (no models)."""

from __future__ import annotations

import pytest

from affectreason.reason.explain import explain_cues
from affectreason.reason.grounding import ground
from affectreason.reason.rules import CALIBRATED, UNCALIBRATED, TextRule, explain_rules, text_decision, text_scores
from affectreason.schema import AUEvent, Clue, Cues, ExpressionSummary, FaceFrame

SMILE = {"AU06": 3.0, "AU12": 4.5}
FROWN = {"AU04": 3.0, "AU07": 2.0, "AU12": 0.0}


def cues_with(aus: dict[str, float], expression: dict[str, float] | None) -> Cues:
    """Three frames, the middle one the apex with ``aus``; each classified as ``expression`` (if given)."""
    reading = expression or {}
    frames = [FaceFrame(t=0.2 * i, faces=1, aus=aus if i == 1 else dict.fromkeys(aus, 0.0), expression=reading)
              for i in range(3)]
    events = [AUEvent(au=k, onset=0.2, apex=0.2, offset=0.2, peak=v) for k, v in aus.items() if v >= 1]
    summary = None
    if expression:
        top = max(expression, key=expression.get)
        emotive = max((k for k in expression if k != "neutral"), key=expression.get)
        summary = ExpressionSummary(mean=dict(sorted(expression.items(), key=lambda kv: -kv[1])), top=top, apex_t=0.0,
                                    apex_label=emotive, apex_probability=expression[emotive], frames=3)
    return Cues(clip_id="c", duration_s=0.6, frames=frames, apex_t=0.2, au_events=events, expression=summary)


HAPPY = {"angry": 0.01, "disgust": 0.0, "fear": 0.01, "happy": 0.91, "sad": 0.02, "surprise": 0.02, "neutral": 0.03}
NEUTRAL = {"angry": 0.05, "disgust": 0.0, "fear": 0.02, "happy": 0.2, "sad": 0.08, "surprise": 0.05, "neutral": 0.6}
ANGRY = {"angry": 0.8, "disgust": 0.05, "fear": 0.03, "happy": 0.02, "sad": 0.05, "surprise": 0.0, "neutral": 0.05}


def test_agreement_strengthens_the_face_reading():
    alone = explain_rules(cues_with({"AU12": 2.5, "AU06": 0.0}, None))
    agreed = explain_rules(cues_with({"AU12": 2.5, "AU06": 0.0}, HAPPY))
    assert alone.labels == ["pleased"] and agreed.labels == ["happy"]  # score 0.35 -> 0.35 + 0.15 x 0.91
    assert "the expression classifier agrees (happy 0.91)" in agreed.interpretation
    clue = next(c for c in agreed.observations if c.cue_ref == "expression:happy")
    assert clue.text.startswith("The expression classifier reads happy at 0.91 on average over 3 frames")


def test_disagreement_lowers_confidence_and_says_so():
    agreed = explain_rules(cues_with(SMILE, HAPPY))
    doubted = explain_rules(cues_with(SMILE, NEUTRAL))
    assert agreed.labels == ["delighted"]
    assert doubted.labels == ["happy"]  # the same smile, read milder
    assert "the expression classifier reads neutral (0.60) instead, so the face reading is uncertain" in (
        doubted.interpretation)
    assert doubted.valence < agreed.valence


def test_the_classifier_alone_makes_a_face_hypothesis_when_no_prototype_matches():
    explanation = explain_rules(cues_with({"AU07": 2.0}, ANGRY))  # lid tightening alone: no prototype
    assert explanation.labels[0] in ("irritated", "angry", "furious")
    assert "the expression classifier reads angry" in explanation.interpretation
    assert explain_rules(cues_with({"AU07": 2.0}, NEUTRAL)).labels == ["neutral"]


def test_the_engines_own_classifier_clue_is_grounded():
    explanation = explain_cues(cues_with(FROWN, ANGRY))
    checks = [c for c in explanation.grounding.checks if c.cue.startswith("expression:")]
    assert [c.status for c in checks] == ["supported", "supported"]  # the mean and the strongest reading


def test_grounding_flags_a_wrong_classifier_figure():
    cues = cues_with(SMILE, NEUTRAL)
    clues = [Clue(modality="face", text="The classifier reads happiness at 0.9."),
             Clue(modality="face", text="The classifier reads happiness at 0.2."),
             Clue(modality="face", text="The expression classifier says neutral, 60%."),
             Clue(modality="face", text="The classifier reads anger."),
             Clue(modality="face", text="She looks happy.")]  # no classifier named: not a classifier claim
    checks = ground(clues, cues).checks
    by_clue = {c.clue: c for c in checks}
    assert by_clue[0].status == "contradicted" and by_clue[0].detail == (
        "stated 0.90; measured mean 0.20, strongest frame 0.20")
    assert by_clue[1].status == "supported" and by_clue[2].status == "supported"
    assert by_clue[3].status == "contradicted" and by_clue[3].cue == "expression:angry"
    assert 4 not in by_clue


def test_a_classifier_claim_without_a_classifier_reading_is_contradicted():
    checks = ground([Clue(modality="face", text="The classifier reads happy 0.9.")], cues_with(SMILE, None)).checks
    assert [(c.status, c.detail) for c in checks] == [
        ("contradicted", "the expression classifier did not run on this clip")]


def test_text_scores_and_thresholds():
    assert text_scores("I'm very angry!", -0.6, 1.0, UNCALIBRATED) == {"anger": 2.1}
    assert text_scores("I'm not happy.", -0.4, 0.0, UNCALIBRATED) == {"sadness": 0.9}
    assert text_scores("What?!", 0.0, 0.5, UNCALIBRATED) == {"surprise": 2.0}  # the cue word + the question
    rule = TextRule(thresholds={"anger": 2.5, "sadness": 0.3})
    assert text_decision({"anger": 2.1}, rule) == (None, 0.0)  # below anger's threshold: neutral
    assert text_decision({"anger": 2.1, "sadness": 0.5}, rule) == ("sadness", 0.5)
    assert text_decision({}, CALIBRATED) == (None, 0.0)


@pytest.mark.parametrize(("text", "expected"), [("I am not happy about this.", "sadness"),
                                                ("I'm so happy for you!", "joy"), ("I am not angry.", "joy")])
def test_negation_reaches_the_decision(text, expected):
    from affectreason.reason.rules import _vader

    compound = _vader().polarity_scores(text)["compound"]  # "not angry": VADER reads it positive (+0.40)
    assert text_decision(text_scores(text, compound, 0.0, UNCALIBRATED), UNCALIBRATED)[0] == expected
