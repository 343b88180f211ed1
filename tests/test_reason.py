"""Rules engine, grounding check and output parser on hand-made cues (no models needed)."""

from __future__ import annotations

import pytest

from affectreason.backends.load import BackendSpec, load_reasoner
from affectreason.reason.explain import RulesReasoner, explain_cues
from affectreason.reason.grounding import ground
from affectreason.reason.lexicon import cue_words, extract_labels, nuance
from affectreason.reason.parse import guess_modality, parse_explanation
from affectreason.reason.rules import explain_rules, face_hypotheses, is_startled_question, text_arousal
from affectreason.schema import AUEvent, Clue, Cues, FaceFrame, Prosody, Transcript, Word


def face_cues(aus: dict[str, float], text: str | None = None, prosody: Prosody | None = None) -> Cues:
    """Three frames whose middle one (the apex) carries ``aus``; events built from them."""
    frames = [FaceFrame(t=0.0, faces=1, aus={k: 0.0 for k in aus}), FaceFrame(t=0.2, faces=1, aus=aus),
              FaceFrame(t=0.4, faces=1, aus={k: v / 2 for k, v in aus.items()})]
    events = [AUEvent(au=k, onset=0.2, apex=0.2, offset=0.4, peak=v) for k, v in aus.items() if v >= 1]
    words = [Word(text=w, start=0.1 * i, end=0.1 * i + 0.1) for i, w in enumerate((text or "").split())]
    transcript = Transcript(text=text, source="given", words=words) if text else None
    return Cues(clip_id="c", duration_s=0.6, frames=frames, apex_t=0.2, au_events=events, prosody=prosody,
                transcript=transcript)


SMILE = {"AU06": 3.0, "AU12": 4.5, "AU04": 0.0, "AU15": 0.0}
LOUD_FAST = Prosody(f0_mean_hz=230.0, f0_range_st=13.0, f0_slope_st_per_s=0.5, intensity_mean_db=78.0,
                    speech_rate_syl_per_s=6.2, descriptors=["high pitch", "varied pitch", "loud", "fast"])


def test_duchenne_smile_with_happy_words_is_joy_and_fully_grounded():
    cues = face_cues(SMILE, "I am so happy to see you", LOUD_FAST)
    explanation = explain_cues(cues, RulesReasoner())
    assert explanation.labels == ["delighted"]
    assert explanation.valence > 0.5 and explanation.arousal > 0.5
    face = explanation.observations[0]
    assert face.cue_ref == "AU12" and "AU12" in face.text and "AU06" in face.text and face.start == 0.2
    assert explanation.grounding.score == 1.0
    assert {c.cue for c in explanation.grounding.checks} >= {"AU12", "AU06", "pitch level", "loudness", "rate"}


def test_smile_over_negative_words_is_read_as_sarcasm():
    explanation = explain_rules(face_cues(SMILE, "Oh great, I just hate this stupid awful day"))
    assert "sarcastic" in explanation.labels
    assert "masking or sarcasm" in explanation.interpretation
    assert explanation.valence <= -0.2


def test_intensity_picks_the_nuance():
    mild = explain_rules(face_cues({"AU12": 1.2, "AU06": 0.0}))
    strong = explain_rules(face_cues({"AU12": 5.0, "AU06": 5.0}))
    assert mild.labels == ["content"] and strong.labels == ["delighted"]


def test_sad_face_and_prototype_requirements():
    sad = face_hypotheses(face_cues({"AU01": 3.0, "AU15": 3.0, "AU04": 2.0, "AU17": 1.0, "AU12": 0.0}))
    assert sad[0].basic == "sadness"
    # anger needs its key AU04 >= 1: lid tightening alone (AU07) matches no prototype
    assert face_hypotheses(face_cues({"AU07": 4.4, "AU04": 0.1})) == []
    text = explain_rules(face_cues({"AU07": 4.4, "AU04": 0.1})).observations[0].text
    assert "AU07" in text and "matches no emotion prototype" in text


def test_text_only_rules():
    def labels(text: str) -> list[str]:
        return explain_rules(Cues(clip_id="t", transcript=Transcript(text=text, source="given"))).labels

    assert labels("Oh my god, really?!")[0] in ("startled", "surprised", "amazed", "astounded")
    assert labels("I'm so sorry for your loss.")[0] in ("sad", "disappointed", "upset")
    assert labels("Shut up! I HATE you!")[0] in ("irritated", "angry", "furious")
    assert labels("Okay.") == ["neutral"]
    assert text_arousal("I said NO! Get out!") == 1.0 and text_arousal("fine.") == 0.0
    assert is_startled_question("What?!") and not is_startled_question("Could you pass me the salt please?")


def test_no_cues_at_all_is_neutral_and_has_no_grounding_score():
    explanation = explain_cues(Cues(clip_id="empty"))
    assert explanation.labels == ["neutral"] and explanation.observations == []
    assert explanation.grounding.score is None


def test_fabricated_clue_is_flagged():
    cues = face_cues({"AU12": 0.0, "AU06": 0.0, "AU04": 3.0}, "leave me alone", LOUD_FAST)
    clues = [Clue(modality="face", text="A strong AU12 smile lights up the face."),
             Clue(modality="face", text="AU04 (brow lowerer) at 3.0/5 at 0.2 s."),
             Clue(modality="voice", text="The voice is quiet and slow, around 110 Hz."),
             Clue(modality="text", text='She says "leave me alone" and then "I love you".')]
    grounding = ground(clues, cues)
    by_cue = {(c.clue, c.cue): c for c in grounding.checks}
    assert by_cue[(0, "AU12")].status == "contradicted" and "measured peak 0.0" in by_cue[(0, "AU12")].detail
    assert by_cue[(1, "AU04")].status == "supported"
    assert by_cue[(2, "loudness")].status == "contradicted" and by_cue[(2, "rate")].status == "contradicted"
    assert by_cue[(2, "pitch (Hz)")].status == "contradicted"  # 110 Hz vs 230 Hz measured
    assert by_cue[(3, "words:leave me alone")].status == "supported"
    assert by_cue[(3, "words:I love you")].status == "contradicted"
    # supported: AU04, "leave me alone" = 2 of 7 named cues
    assert grounding.score == pytest.approx(2 / 7, abs=1e-4)


def test_grounding_qualifiers_and_missing_modalities():
    cues = face_cues({"AU12": 1.5})
    checks = ground([Clue(modality="face", text="slight AU12; no AU04; absent AU12")], cues).checks
    assert [c.status for c in checks] == ["supported", "contradicted", "contradicted"]  # AU04 never measured
    no_face = Cues(clip_id="audio")
    assert ground([Clue(modality="face", text="AU12 active")], no_face).checks[0].detail.startswith("AU12 was not")
    assert ground([Clue(modality="text", text='He says "hi"')], no_face).score == 0.0
    # "moderately loud" must not also count as a claim of "loud"
    quiet = face_cues({"AU12": 0.0}, None, Prosody(intensity_mean_db=68.0, descriptors=["moderately loud"]))
    assert [c.status for c in ground([Clue(modality="voice", text="moderately loud")], quiet).checks] == ["supported"]


def test_au_claims_are_checked_against_one_peak_from_frames_and_events():
    """Cues whose frames were dropped (events kept) ground an AU claim as cues with frames do, and the AU reward
    reads the same peaks (``reason.grounding.au_peaks``)."""
    from affectreason.reason.grounding import au_peaks
    from affectreason.train.rewards import active_aus

    events_only = Cues(clip_id="e", au_events=[AUEvent(au="AU12", onset=0.2, apex=0.8, offset=1.4, peak=3.2)])
    assert au_peaks(events_only) == {"AU12": 3.2} and active_aus(events_only) == {"AU12"}
    checks = ground([Clue(modality="face", text="strong AU12; AU04 active")], events_only).checks
    assert [c.status for c in checks] == ["supported", "contradicted"]
    both = face_cues({"AU12": 2.0}).model_copy(update={"au_events": events_only.au_events})
    assert au_peaks(both)["AU12"] == 3.2  # the higher of the frames' 2.0 and the event's 3.2


def test_lexicon():
    assert nuance("anger", 1.0) == "furious" and nuance("neutral", 0.0) == "neutral"
    assert cue_words("Ew, that is gross!") == {"disgust": ["gross", "ew"]}
    assert extract_labels("Mostly calm, later worried.") == ["calm", "worried"]
    assert extract_labels("happy", vocabulary={"joyful"}) == []


@pytest.mark.parametrize("text, status, labels, observations", [
    ('{"observations": ["AU12 at 4/5"], "interpretation": "i", "conclusion": "c", "labels": ["Happy"]}',
     "ok", ["happy"], 1),
    ("<think>She smiles widely (AU12).</think><answer>happy, relieved</answer>", "ok", ["happy", "relieved"], 1),
    ("Key observations:\n- AU12 strong at 1.2 s\n- loud voice\nInterpretation: upbeat.\nConclusion: joyful.\n"
     "Labels: joyful, excited", "ok", ["joyful", "excited"], 2),
    ("**Observations:** frowning.\n**Conclusion:** upset.\n**Emotions:** sad", "ok", ["sad"], 1),
    ("The person is probably worried and a bit angry.", "partial", ["worried", "angry"], 0),
    ("qzx 123 <<>>", "failed", [], 0),
    ('{"labels": "anxious; sad", "valence": "very"}', "partial", ["anxious", "sad"], 0),
])
def test_parse_explanation(text, status, labels, observations):
    explanation = parse_explanation(text, clip_id="x", backend="hf", model="m")
    assert explanation.parse_status == status
    assert explanation.labels == labels
    assert len(explanation.observations) == observations
    assert explanation.raw_text == text and explanation.clip_id == "x"
    if status != "ok":
        assert explanation.parse_errors


def test_parse_keeps_modalities_and_bad_numbers_are_reported():
    explanation = parse_explanation('{"observations": [{"text": "pitch rises"}, "she says \\"no\\""], '
                                    '"conclusion": "c", "labels": ["sad"], "arousal": "high"}')
    assert [o.modality for o in explanation.observations] == ["voice", "text"]
    assert explanation.arousal is None and any("arousal" in e for e in explanation.parse_errors)
    assert guess_modality("the brow is lowered") == "face" and guess_modality("it is late") == "multimodal"


def test_backends():
    notes = []
    assert load_reasoner(BackendSpec("auto"), notes.append).name == "rules" and "rules engine" in notes[0]
    with pytest.raises(ValueError, match="unknown backend 'gpt'"):
        load_reasoner(BackendSpec("gpt"))
    with pytest.raises(ValueError, match="needs --model"):
        load_reasoner(BackendSpec("hf"))
    with pytest.raises(ValueError, match="needs --endpoint"):
        load_reasoner(BackendSpec("openai"))
