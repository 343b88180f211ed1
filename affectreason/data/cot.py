"""Chains of thought for training targets, as ``Explanation``s (the JSON the explain prompt asks for).

Two writers, both pure:
- ``reference_explanation``: a corpus's own reasoning text (EMER, MERR, MER-Caption+, FEA-20K) cut into
  observations (EMER's "In the video / audio / text" sections, else sentences) and the interpretation
  (from the first concluding sentence: "Therefore", "Based on", "we can infer" ...); the text is kept
  word for word.
- ``gold_explanation``: the CoT engine of ExpLLM over measured cues. Observations are the ``rules``
  engine's, each citing a measured cue (AU intensities with times, pitch in Hz, loudness in dB, quoted
  words), so the grounding check verifies them; the conclusion is the gold labels. The interpretation
  says which modality supports the gold emotion (the engine's reading of that modality alone agrees)
  and which does not show it, and never names a rival emotion, so the target cannot contradict gold.
"""

from __future__ import annotations

import json
import re

from affectreason.cues.au_mapping import AU_NAMES
from affectreason.eval.classification import POLARITY_WORDS
from affectreason.reason.lexicon import LABEL_TO_BASIC, NUANCES, cue_words
from affectreason.reason.messages import answer_schema, fit_to_schema
from affectreason.reason.parse import guess_modality
from affectreason.reason.rules import BASIC_VALENCE, VALENCE_CUT, arousal, explain_rules, face_hypotheses
from affectreason.schema import Clue, Cues, Explanation

MAX_OBSERVATIONS = 8  # prompts/reason/explanation.schema.json: observations maxItems
CONCLUDING = re.compile(
    r"^(?:therefore|thus|hence|so,|based on|in summary|in conclusion|overall|taken together|taking|combining|"
    r"considering|to sum up|all in all|from (?:these|the above))\b|\bwe can (?:infer|conclude)\b|"
    r"\bit (?:can be|is) (?:inferred|concluded)\b", re.IGNORECASE)
SECTION = re.compile(r"^in the (video|audio|text|subtitles?|image|picture)\b", re.IGNORECASE)
SECTION_MODALITY = {"audio": "voice", "text": "text", "subtitle": "text", "subtitles": "text"}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"”])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph.

    >>> split_sentences('He smiled. She said "No!" Then left.')
    ['He smiled.', 'She said "No!"', 'Then left.']
    """
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def labels_text(labels: list[str]) -> str:
    """Labels as a phrase.

    >>> labels_text(["happy"]), labels_text(["happy", "relieved", "calm"])
    ('happy', 'happy, relieved and calm')
    """
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def is_polarity(labels: list[str]) -> bool:
    """Labels that are a sentiment polarity (CMU-MOSI) rather than emotions."""
    return set(labels) <= set(POLARITY_WORDS) and bool(set(labels) & {"positive", "negative"})


def conclusion_for(labels: list[str]) -> str:
    """The conclusion sentence that states the gold labels.

    >>> conclusion_for(["positive"]), conclusion_for(["angry", "annoyed"])
    ("The speaker's sentiment is positive.", 'The person most likely feels angry and annoyed.')
    """
    if is_polarity(labels):
        return f"The speaker's sentiment is {labels_text(labels)}."
    return f"The person most likely feels {labels_text(labels)}."


def _section_modality(name: str, text: str) -> str:
    name = name.lower()
    if name in SECTION_MODALITY:
        return SECTION_MODALITY[name]
    return "face" if guess_modality(text) == "face" else "scene"  # "In the video" is about faces or the scene


def _observations(sentences: list[str]) -> list[Clue]:
    sectioned = any(SECTION.match(s) for s in sentences)
    groups: list[tuple[str | None, list[str]]] = []
    for sentence in sentences:
        section = SECTION.match(sentence)
        if section or not sectioned or not groups:  # EMER: one clue per section; otherwise one per sentence
            groups.append((section.group(1) if section else None, [sentence]))
        else:
            groups[-1][1].append(sentence)
    if len(groups) > MAX_OBSERVATIONS:  # the schema allows 8 observations: the rest joins the last
        head, tail = groups[: MAX_OBSERVATIONS - 1], groups[MAX_OBSERVATIONS - 1:]
        groups = head + [(tail[0][0], [s for _, part in tail for s in part])]
    clues = []
    for section, part in groups:
        text = " ".join(part)
        modality = _section_modality(section, text) if section else guess_modality(text)
        clues.append(Clue(modality=modality, text=text))
    return clues


def reference_explanation(text: str, labels: list[str], valence: float | None = None) -> Explanation:
    """A reference reasoning text as observations and interpretation, concluding in the gold labels.

    >>> e = reference_explanation("In the video, he smiles. In the audio, his voice is bright. "
    ...                           "Therefore, he is happy.", ["happy"])
    >>> [(c.modality, c.text) for c in e.observations], e.interpretation
    ([('face', 'In the video, he smiles.'), ('voice', 'In the audio, his voice is bright.')], 'Therefore, he is happy.')
    """
    sentences = split_sentences(text)
    cut = next((i for i, s in enumerate(sentences) if i and CONCLUDING.search(s)), None)
    if cut is None:
        cut = len(sentences) - 1 if len(sentences) > 1 else len(sentences)
    return Explanation(observations=_observations(sentences[:cut]), interpretation=" ".join(sentences[cut:]),
                       conclusion=conclusion_for(labels), labels=labels, valence=valence)


def basic_emotion(labels: list[str]) -> str | None:
    """The basic emotion (MELD's seven) of the first label the lexicon knows.

    >>> basic_emotion(["self-deprecating", "joyful"]), basic_emotion(["anger"]), basic_emotion(["nostalgic"])
    ('joy', 'anger', None)
    """
    for label in labels:
        if label in NUANCES:
            return label
        if label in LABEL_TO_BASIC:
            return LABEL_TO_BASIC[label]
    return None


def gold_polarity(labels: list[str], valence: float | None) -> int:
    """+1, -1 or 0: the sign of the gold valence, else of the polarity word or basic emotion of the labels."""
    if valence is not None:
        return (valence > 0) - (valence < 0)
    for label in labels:
        if label in POLARITY_WORDS:
            return POLARITY_WORDS[label]
    basic = basic_emotion(labels)
    return int(BASIC_VALENCE.get(basic, 0.0)) if basic else 0


def _face_support(cues: Cues, basic: str | None, polarity: int) -> tuple[bool, str]:
    hypotheses = face_hypotheses(cues)
    face = hypotheses[0] if hypotheses else None
    if face is None:
        return False, ""
    aus = [au for au, value in sorted(face.aus.items(), key=lambda kv: -kv[1]) if value >= 1.0]
    named = ", ".join(f"{au} {AU_NAMES.get(au, '')}".strip() for au in aus)
    if basic is not None:
        return face.basic == basic, named
    return polarity != 0 and BASIC_VALENCE.get(face.basic, 0.0) * polarity > 0, named


def _text_support(cues: Cues, basic: str | None, polarity: int) -> tuple[bool, str]:
    # the engine's reading of the words alone: its labels and valence with face and voice left out
    alone = explain_rules(cues.model_copy(update={"frames": [], "apex_t": None, "au_events": [], "prosody": None}))
    words = cue_words(cues.transcript.text)
    if basic is not None and words.get(basic):
        return True, "the words " + ", ".join(f'"{w}"' for w in words[basic]) + " signal it"
    if basic is not None and basic_emotion(alone.labels) == basic:
        return True, "the wording fits it"
    tone = alone.valence or 0.0
    if polarity != 0 and abs(tone) >= VALENCE_CUT and tone * polarity > 0:
        return True, f"the wording's {'positive' if tone > 0 else 'negative'} tone fits it"
    return False, ""


def gold_explanation(cues: Cues, labels: list[str], valence: float | None = None) -> Explanation:
    """Observations of the ``rules`` engine over real cues, an interpretation and a conclusion toward gold."""
    observations = explain_rules(cues).observations
    basic, polarity = basic_emotion(labels), gold_polarity(labels, valence)
    support, silent = [], []
    if cues.frames and any(f.faces for f in cues.frames):
        agrees, named = _face_support(cues, basic, polarity)
        if agrees:
            support.append(f"the face shows it ({named})")
        else:
            silent.append("the face")
    if cues.transcript is not None and cues.transcript.text.strip():
        agrees, phrase = _text_support(cues, basic, polarity)
        if agrees:
            support.append(phrase)
        else:
            silent.append("the words")
    notes = list(support)
    if silent:  # "the words" is plural: only the face alone takes "does"
        verb = "does" if silent == ["the face"] else "do"
        notes.append(f"{' and '.join(silent)} alone {verb} not show it")
    level = arousal(cues)
    if level is not None:
        notes.append("the voice is " + ("energetic" if level > 0.25 else "subdued" if level < -0.25
                                        else "moderately animated"))
    state = f"a {labels_text(labels)} sentiment" if is_polarity(labels) else labels_text(labels)
    ending = (f"together these cues point to {state}" if support
              else f"no measured cue shows it clearly, so the state is read from the context as {state}")
    interpretation = "Overall, " + "; ".join(notes + [ending]) + "." if notes else ending[0].upper() + ending[1:] + "."
    return Explanation(clip_id=cues.clip_id, observations=observations, interpretation=interpretation,
                       conclusion=conclusion_for(labels), labels=labels, valence=valence)


def target_json(explanation: Explanation) -> str:
    """The assistant turn: the Explanation JSON that ``prompts/reason/explain.yaml`` asks for, as constrained
    decoding could write it: within the bounded schema's lengths and counts, and compact (the grammar admits no
    whitespace between tokens: replies with ``": "`` taught a model tokens the grammar then forbade from the first
    key on, and a 475-character observation text was a string it could never close)."""
    answer: dict = {"observations": [clue.model_dump(mode="json") for clue in explanation.observations],
                    "interpretation": explanation.interpretation, "conclusion": explanation.conclusion,
                    "labels": explanation.labels}
    for key in ("valence", "arousal"):
        if getattr(explanation, key) is not None:
            answer[key] = round(getattr(explanation, key), 2)  # the schema's multipleOf 0.01
    return json.dumps(fit_to_schema(answer, answer_schema()), ensure_ascii=False, separators=(",", ":"))
