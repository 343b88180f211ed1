"""The ``rules`` backend: a cue-grounded reasoning engine that needs no model weights.

Face: EMFACS-style prototypes (Ekman & Friesen) scored on the AU intensities of the apex frame: each
emotion needs its key AUs at intensity >= 1, and scores 0.7 x mean(key AUs) + 0.3 x mean(supporting
AUs), over 5. Beside them, the facial-expression classifier (``Cues.expression``, fer's mini-Xception): when it
reads the same emotion the hypothesis is strengthened (+0.15 x its mean probability), when it reads another the
hypothesis is weakened (x (1 - 0.5 x its probability)) and the interpretation says the face reading is uncertain;
with no prototype matched, a classifier reading of >= 0.5 for an emotion stands as the face hypothesis.
Voice: arousal from loudness, rate and pitch range relative to the reference ranges of ``affectreason.cues.voice``.
Words: valence from VADER and emotion cue words from the lexicon (negation and intensifiers applied), scored per
basic emotion and compared with per-emotion thresholds (``TextRule``; below all of them the words read neutral).
The shipped ``CALIBRATED`` rule was fitted on the meld data recipe's train + validation dialogues by
``eval/bench/rules_meld.py --calibrate`` and is reported there on its test dialogues only.
Then: agreement strengthens a hypothesis; a smile over clearly negative words is read as masking or
sarcasm; intensity and arousal pick the nuance (content -> happy -> delighted). Every observation
cites the cue it rests on, with times, so the grounding check can verify it.

It is also the chain-of-thought engine of the data recipes: given gold labels it can explain them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np

from affectreason.cues.au_mapping import AU_NAMES
from affectreason.cues.voice import REFERENCE
from affectreason.errors import AffectReasonError
from affectreason.reason.lexicon import Evidence, emotion_evidence, nuance
from affectreason.reason.messages import shorten
from affectreason.schema import Clue, Cues, Explanation

# basic emotion: (key AUs, supporting AUs)
PROTOTYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "joy": (("AU12",), ("AU06",)),
    "sadness": (("AU01", "AU15"), ("AU04", "AU17")),
    "surprise": (("AU01", "AU02"), ("AU05", "AU26")),
    "fear": (("AU01", "AU04", "AU20"), ("AU02", "AU05", "AU07")),
    "anger": (("AU04",), ("AU05", "AU07", "AU23")),
    "disgust": (("AU09",), ("AU10", "AU15", "AU17")),
}
FACE_MIN_SCORE = 0.15  # a key AU just above 1 with no support still counts (a slight smile)
VALENCE_CUT = 0.3  # |VADER compound| beyond which words count as clearly positive / negative
EXPRESSION_BASIC = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "joy", "sad": "sadness",
                    "surprise": "surprise", "neutral": "neutral"}  # fer's labels -> MELD's basic emotions
CLASSIFIER_ALONE = 0.5  # mean probability at which the classifier alone makes a face hypothesis
CLASSIFIER_AGREE, CLASSIFIER_DISAGREE = 0.15, 0.5
BASIC_VALENCE = {"joy": 1.0, "surprise": 0.0, "neutral": 0.0, "sadness": -1.0, "anger": -1.0, "fear": -1.0,
                 "disgust": -1.0}


@cache
def _vader():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise AffectReasonError("the rules engine needs VADER: `pip install vadersentiment`") from None
    return SentimentIntensityAnalyzer()


@dataclass(frozen=True)
class TextRule:
    """The decision rule over words: a score per basic emotion, kept when it reaches that emotion's threshold."""

    word_weight: float = 1.0
    """score of one cue word (x1.5 intensified, x0.5 diminished)"""
    valence_weight: float = 1.0
    """score per unit of |VADER compound| once it reaches ``valence_cut``, to joy (positive) or anger/sadness"""
    valence_cut: float = VALENCE_CUT
    anger_arousal: float = 0.25
    """negative wording reads as anger above this arousal, as sadness below"""
    question_weight: float = 1.0
    """surprise score of a startled question ("What?!", "Really?")"""
    arousal_weights: dict[str, float] = field(default_factory=dict)
    """basic emotion -> score per unit of the arousal (voice, else exclamations and shouted words, ``text_arousal``)"""
    thresholds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BASIC_VALENCE, 0.3))
    """basic emotion -> the score it needs; the best emotion above its threshold wins, none: neutral"""


UNCALIBRATED = TextRule()
# Fitted by `python eval/bench/rules_meld.py --calibrate` on the meld data recipe's train + validation dialogues
# (2,610 MELD test utterances split by dialogue hash, data_recipes/meld.yaml); reported there on its test dialogues.
CALIBRATED = TextRule(valence_weight=0.5, valence_cut=0.05, anger_arousal=0.25, question_weight=0.5,
                      arousal_weights={"joy": 1.0, "anger": 0.5, "fear": 1.0, "surprise": 1.5, "sadness": 0.5},
                      thresholds={"joy": 0.5, "surprise": 1.0, "neutral": 0.3, "sadness": 0.3, "anger": 0.3,
                                  "fear": 1.25, "disgust": 0.3})


@dataclass
class FaceHypothesis:
    basic: str
    score: float
    aus: dict[str, float]
    source: str = "AU prototypes"


def face_hypotheses(cues: Cues) -> list[FaceHypothesis]:
    """Emotion prototypes matched at the apex frame, best first."""
    apex = next((f for f in cues.frames if f.t == cues.apex_t and f.aus), None)
    if apex is None:
        return []
    out = []
    for basic, (key, support) in PROTOTYPES.items():
        if min(apex.aus.get(au, 0.0) for au in key) < 1.0:
            continue
        score = (0.7 * np.mean([apex.aus.get(a, 0.0) for a in key])
                 + 0.3 * np.mean([apex.aus.get(a, 0.0) for a in support])) / 5
        out.append(FaceHypothesis(basic, float(score), {a: apex.aus.get(a, 0.0) for a in key + support}))
    return sorted((h for h in out if h.score >= FACE_MIN_SCORE), key=lambda h: -h.score)


def arousal(cues: Cues) -> float | None:
    """Arousal in [-1, 1] from loudness, speech rate and pitch range against their reference ranges."""
    p = cues.prosody
    if p is None:
        return None
    parts = []
    for key, value in (("intensity_mean_db", p.intensity_mean_db), ("speech_rate_syl_per_s", p.speech_rate_syl_per_s),
                       ("f0_range_st", p.f0_range_st)):
        if value is not None:
            low, high = REFERENCE[key]
            parts.append(float(np.clip((value - (low + high) / 2) / ((high - low) / 2), -1, 1)))
    return round(float(np.mean(parts)), 3) if parts else None


def text_arousal(text: str) -> float:
    """Arousal signalled in writing: exclamation marks and shouted (all-caps) words, in [0, 1].

    >>> text_arousal("I said NO! Get out!"), text_arousal("fine.")
    (1.0, 0.0)
    """
    shouted = sum(1 for w in text.split() if len(w) > 1 and w.isalpha() and w.isupper())
    return float(min(1.0, 0.5 * text.count("!") + 0.5 * shouted))


def is_startled_question(text: str) -> bool:
    """A short question or an interrobang ("What?!", "Really?"), the commonest written form of surprise."""
    stripped = text.strip()
    return "?!" in stripped or "!?" in stripped or (stripped.endswith("?") and len(stripped.split()) <= 3)


def _au_clue(cues: Cues, hypothesis: FaceHypothesis) -> Clue:
    events = {e.au: e for e in cues.au_events}
    named = sorted(((a, v) for a, v in hypothesis.aus.items() if v >= 1.0), key=lambda x: -x[1])
    parts = []
    for au, value in named:
        event = events.get(au)
        span = f" from {event.onset:.1f} to {event.offset:.1f} s" if event else ""
        parts.append(f"{au} ({AU_NAMES.get(au, au)}) at {value:.1f}/5{span}")
    lead = events.get(named[0][0]) if named else None
    return Clue(modality="face", text=f"At the apex ({cues.apex_t:.1f} s): " + ", ".join(parts) + ".",
                start=lead.onset if lead else cues.apex_t, end=lead.offset if lead else cues.apex_t,
                cue_ref=named[0][0] if named else None)


def _unmatched_face_clue(cues: Cues) -> Clue:
    active = sorted(cues.au_events, key=lambda e: -e.peak)[:3]
    if not active:
        return Clue(modality="face", text="The face shows no Action Unit above intensity 1: a neutral expression.",
                    start=0.0, end=cues.duration_s, cue_ref="face")
    parts = [f"{e.au} ({AU_NAMES.get(e.au, e.au)}) peaks at {e.peak:.1f}/5 at {e.apex:.1f} s" for e in active]
    return Clue(modality="face", text="; ".join(parts) + ", a pattern that matches no emotion prototype.",
                start=active[0].onset, end=active[0].offset, cue_ref=active[0].au)


def _voice_clue(cues: Cues, level: float) -> Clue:
    p = cues.prosody
    figures = []
    if p.f0_mean_hz is not None:
        figures.append(f"pitch averages {p.f0_mean_hz:.0f} Hz over a {p.f0_range_st or 0:.1f}-semitone range")
    if p.intensity_mean_db is not None:
        figures.append(f"loudness {p.intensity_mean_db:.0f} dB")
    if p.speech_rate_syl_per_s is not None:
        figures.append(f"{p.speech_rate_syl_per_s:.1f} syllables/s")
    words = ", ".join(p.descriptors) if p.descriptors else "unremarkable"
    feel = "energetic" if level > 0.25 else "subdued" if level < -0.25 else "moderate"
    return Clue(modality="voice", text=f"The voice is {words} ({'; '.join(figures)}): {feel} arousal.",
                start=0.0, end=cues.duration_s, cue_ref="prosody")


def classifier_reading(cues: Cues) -> tuple[str, str, float] | None:
    """The expression classifier's likeliest label over the clip: (fer label, basic emotion, mean probability)."""
    e = cues.expression
    if e is None:
        return None
    return e.top, EXPRESSION_BASIC.get(e.top, e.top), e.mean[e.top]


def _classifier_clue(cues: Cues) -> Clue:
    e = cues.expression
    text = (f"The expression classifier reads {e.top} at {e.mean[e.top]:.2f} on average over {e.frames} frames "
            f"(strongest: {e.apex_label} {e.apex_probability:.2f} at {e.apex_t:.1f} s).")
    return Clue(modality="face", text=text, start=e.apex_t, end=e.apex_t, cue_ref=f"expression:{e.top}")


def with_classifier(face: FaceHypothesis | None, cues: Cues) -> tuple[FaceHypothesis | None, str | None]:
    """The face hypothesis after the classifier's reading (agreement strengthens, disagreement weakens), and
    what the interpretation should say about it."""
    reading = classifier_reading(cues)
    if reading is None:
        return face, None
    label, basic, p = reading
    if face is None:
        if basic != "neutral" and p >= CLASSIFIER_ALONE:
            return FaceHypothesis(basic, p, {}, "expression classifier"), f"the expression classifier reads {label}"
        return None, None
    if basic == face.basic:
        return (replace(face, score=face.score + CLASSIFIER_AGREE * p),
                f"the expression classifier agrees ({label} {p:.2f})")
    return (replace(face, score=face.score * (1 - CLASSIFIER_DISAGREE * p)),
            f"the expression classifier reads {label} ({p:.2f}) instead, so the face reading is uncertain")


CLUE_CHARS = 200  # the Explanation schema's maxLength of an observation's text (a longer one fails the schema)


def _text_clue(cues: Cues, compound: float, found: dict[str, list[str]], negated: list[str]) -> Clue:
    t = cues.transcript
    words = {w.text.lower().strip(".,!?;:\"'"): w for w in t.words}
    cited = [w for hits in found.values() for w in hits]
    times = [words[w] for w in cited if w in words]
    quoted = ", ".join(f'"{w}"' + (f" ({words[w].start:.1f} s)" if w in words else "") for w in cited)
    tone = "positive" if compound >= VALENCE_CUT else "negative" if compound <= -VALENCE_CUT else "neutral"
    rest = f'"; the wording is {tone} (VADER compound {compound:+.2f})'
    rest += f", with emotional cue words {quoted}" if cited else ""
    rest += (", and negates " + ", ".join(f'"{w}"' for w in negated)) if negated else ""
    # the utterance is quoted as far as the schema's bound leaves room (the cue words, cited after it, stay whole)
    text = shorten(f'The speaker says "{t.text.strip()}', CLUE_CHARS - len(rest) - 1) + rest
    return Clue(modality="text", text=shorten(text, CLUE_CHARS - 1) + ".", start=times[0].start if times else None,
                end=times[-1].end if times else None, cue_ref=f"word:{cited[0]}" if cited else "transcript")


def text_scores(text: str, compound: float, energy: float, rule: TextRule, evidence: Evidence | None = None,
                ) -> dict[str, float]:
    """Score per basic emotion of what is said: cue words, a startled question, the VADER valence.

    >>> text_scores("I'm very angry!", -0.6, 1.0, TextRule())
    {'anger': 2.1}
    """
    evidence = evidence or emotion_evidence(text)
    scores = {basic: rule.word_weight * value for basic, value in evidence.scores.items()}
    if is_startled_question(text):
        scores["surprise"] = scores.get("surprise", 0.0) + rule.question_weight
    if abs(compound) >= rule.valence_cut:
        basic = "joy" if compound > 0 else "anger" if energy > rule.anger_arousal else "sadness"
        scores[basic] = scores.get(basic, 0.0) + rule.valence_weight * abs(compound)
    for basic, weight in rule.arousal_weights.items():
        if weight and energy > 0:
            scores[basic] = scores.get(basic, 0.0) + weight * energy
    return {basic: round(value, 4) for basic, value in scores.items()}


def text_decision(scores: dict[str, float], rule: TextRule) -> tuple[str | None, float]:
    """The best-scoring emotion that reaches its threshold, with its score (None, 0.0: the words read neutral)."""
    passing = {b: v for b, v in scores.items() if b != "neutral" and v >= rule.thresholds.get(b, 0.0)}
    if not passing:
        return None, 0.0
    best = max(passing, key=lambda b: passing[b] - rule.thresholds.get(b, 0.0))
    return best, passing[best]


def explain_rules(cues: Cues, rule: TextRule = CALIBRATED) -> Explanation:
    """A three-part chain of thought and open-vocabulary labels from cues alone."""
    observations: list[Clue] = []
    faces = face_hypotheses(cues)
    if faces:
        observations.append(_au_clue(cues, faces[0]))
    elif cues.frames and any(f.faces for f in cues.frames):
        observations.append(_unmatched_face_clue(cues))
    if cues.expression is not None:
        observations.append(_classifier_clue(cues))
    face, classifier_note = with_classifier(faces[0] if faces else None, cues)
    level = arousal(cues)
    if level is not None:
        observations.append(_voice_clue(cues, level))
    said = cues.transcript.text if cues.transcript else ""
    energy = level if level is not None else text_arousal(said)
    compound, text_basic = 0.0, None
    if said.strip():
        compound = float(_vader().polarity_scores(said)["compound"])
        evidence = emotion_evidence(said)
        observations.append(_text_clue(cues, compound, evidence.hits, evidence.negated))
        text_basic, _ = text_decision(text_scores(said, compound, energy, rule, evidence), rule)

    notes = []
    if face and face.basic == "joy" and compound <= -VALENCE_CUT:
        labels = [nuance(text_basic or "anger", 0.3), "sarcastic"]
        notes.append("the smile contradicts clearly negative words, which suggests masking or sarcasm")
    elif face and text_basic and face.basic != text_basic:
        labels = [nuance(face.basic, face.score), nuance(text_basic, 0.4 + 0.3 * energy)]
        notes.append(f"face ({face.basic}) and words ({text_basic}) point to different emotions: a mixed state")
    elif face:
        agree = text_basic == face.basic or (face.basic == "joy" and compound >= VALENCE_CUT)
        strength = face.score + (0.15 if agree else 0.0) + 0.15 * energy
        labels = [nuance(face.basic, strength)]
        notes.append(f"the face shows {face.basic}" + (" and the words agree" if agree else ""))
    elif text_basic:
        labels = [nuance(text_basic, 0.45 + 0.3 * energy)]
        notes.append(f"the words carry {text_basic}")
    else:
        labels = ["neutral"] if energy > -0.25 else ["calm"]
        notes.append("no cue signals a clear emotion")
    if classifier_note:
        notes.append(classifier_note)
    if level is not None:
        notes.append("the voice is " + ("energetic" if energy > 0.25 else "subdued" if energy < -0.25
                                        else "moderately animated"))
    valence_parts = [BASIC_VALENCE.get(face.basic, 0.0) * min(1.0, face.score)] if face else []
    if said.strip():
        valence_parts.append(compound)
    valence = float(np.clip(np.mean(valence_parts), -1, 1)) if valence_parts else 0.0
    if "sarcastic" in labels:
        valence = min(valence, -0.2)
    interpretation = "Overall, " + "; ".join(notes) + "."
    conclusion = f"The person most likely feels {' and '.join(labels)}."
    return Explanation(clip_id=cues.clip_id, observations=observations, interpretation=interpretation,
                       conclusion=conclusion, labels=labels, valence=round(valence, 3),
                       arousal=level, backend="rules", model="affectreason-rules-2")
