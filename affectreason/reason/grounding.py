"""Grounding check: is each cue an explanation names borne out by the extracted cues?

What a clue can name, and the rule that checks it:
- an Action Unit (``AU12``), with a stated intensity (``at 3.1/5``: within 1.0 of the AU's peak), a
  qualifier (``strong``/``intense``: peak >= 2.5; ``slight``/``subtle``: 0.5 <= peak < 2.5;
  ``no``/``absent``: peak < 1) or neither (the AU is claimed active: peak >= 1);
- a voice descriptor (``high pitch``, ``loud``, ``fast``, ``rising pitch`` ...): it must be the one the
  prosody measurement gives on that scale; ``N Hz`` within 15% of the mean F0; ``N dB`` within 3 dB of
  the mean intensity (or HNR); ``N syllables/s`` within 1.0 of the speech rate;
- a quoted word or phrase: it must occur in the transcript;
- in a clue that names the (expression) classifier, an emotion with a probability (``reads happiness at 0.9``,
  ``happy 0.91``, ``90%``): within 0.15 of the classifier's mean for that label over the clip or of its
  strongest frame; an emotion without one: it must be the classifier's likeliest (mean) or strongest label.
A named cue the clip does not have (an AU without a face, a quote without speech) is contradicted.

Copy check: a clue that repeats the prompt's worked example (``examples``: its observation texts) is ``copied``:
it states a figure of the example (``3.1/5``, ``78 dB``, ``6.1 syllables/s``) that the clip's measured cues do not
contain, quotes the example's words that the transcript does not have, or says most of an example observation in
other order and names nothing of this clip. A copied clue gets one check with status ``copied``, is listed in
``Grounding.copied``, and what its other checks support does not count.
Score = supported / (supported + contradicted + copied); clues that name no cue are not counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from affectreason.cues.textualize import textualize
from affectreason.schema import Clue, Cues, Grounding, GroundingCheck

NEGATIONS = ("no", "absent", "without")  # an AU named after one of these is claimed absent
AU_MENTION = re.compile(r"\b(?:(no|absent|without|strong|intense|pronounced|marked|slight|subtle|weak|faint)\s+)?"
                        r"AU\s?(\d{1,2})\b(?:\s*\([^)]*\))?(?:(?:\s+[a-z]+){0,3}?\s+(?:at|peaks at|of|=|:|reaching)"
                        r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*5)?)?", re.IGNORECASE)
SCALES = {
    "pitch level": ("low pitch", "mid pitch", "high pitch"),
    "loudness": ("quiet", "moderately loud", "loud"),
    "rate": ("slow", "moderate pace", "fast"),
    "pitch slope": ("falling pitch", "rising pitch"),
    "pitch range": ("monotone", "varied pitch"),
}
HZ = re.compile(r"(\d+(?:\.\d+)?)\s*Hz\b")
DB = re.compile(r"(-?\d+(?:\.\d+)?)\s*dB\b")
RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:syllables|syl)\s*/\s*s")
CLASSIFIER = re.compile(r"\bclassifier\b|mini-xception", re.IGNORECASE)
# emotion word -> fer's label; an optional probability (0.9, .9, 1.0, 90%) may follow within two small words
EXPRESSION_WORDS = {"happy": "happy", "happiness": "happy", "joy": "happy", "sad": "sad", "sadness": "sad",
                    "angry": "angry", "anger": "angry", "fear": "fear", "fearful": "fear", "afraid": "fear",
                    "surprise": "surprise", "surprised": "surprise", "disgust": "disgust", "disgusted": "disgust",
                    "neutral": "neutral"}
EXPRESSION_CLAIM = re.compile(r"\b(" + "|".join(sorted(EXPRESSION_WORDS, key=len, reverse=True)) + r")\b"
                              r"(?:(?:\s+(?:at|of|with|probability|p|=|:))*\s*[=:]?\s*"
                              r"(0?\.\d+|1(?:\.0+)?(?![\d.])|\d{1,3}(?:\.\d+)?\s*%))?", re.IGNORECASE)
CLASSIFIER_TOLERANCE = 0.15
QUOTE = re.compile(r"[\"“]([^\"”]{1,200})[\"”]")


def au_peaks(cues: Cues) -> dict[str, float]:
    """Each measured AU's peak intensity over the frames and the AU events (events alone when frames were dropped)."""
    peaks: dict[str, float] = {}
    for frame in cues.frames:
        for au, value in frame.aus.items():
            peaks[au] = max(peaks.get(au, value), value)
    for event in cues.au_events:
        peaks[event.au] = max(peaks.get(event.au, event.peak), event.peak)
    return peaks


def _check_au(cues: Cues, index: int, match: re.Match) -> GroundingCheck:
    qualifier, number, stated = (match.group(1) or "").lower(), int(match.group(2)), match.group(3)
    au = f"AU{number:02d}"
    peak = au_peaks(cues).get(au)
    if peak is None:
        return GroundingCheck(clue=index, cue=au, status="contradicted", detail=f"{au} was not measured (no face)")
    if stated is not None:
        ok = abs(float(stated) - peak) <= 1.0
        claim = f"stated {float(stated):.1f}"
    elif qualifier in ("strong", "intense", "pronounced", "marked"):
        ok, claim = peak >= 2.5, f"'{qualifier}' needs >= 2.5"
    elif qualifier in ("slight", "subtle", "weak", "faint"):
        ok, claim = 0.5 <= peak < 2.5, f"'{qualifier}' needs 0.5-2.5"
    elif qualifier in NEGATIONS:
        ok, claim = peak < 1.0, "claimed absent"
    else:
        ok, claim = peak >= 1.0, "claimed active (>= 1)"
    return GroundingCheck(clue=index, cue=au, status="supported" if ok else "contradicted",
                          detail=f"{claim}; measured peak {peak:.1f}")


def _check_voice(cues: Cues, index: int, text: str) -> list[GroundingCheck]:
    checks = []
    p = cues.prosody
    lowered = text.lower()
    for scale, words in SCALES.items():
        for word in sorted(words, key=len, reverse=True):
            pattern = re.compile(r"(?<![a-z-])" + re.escape(word) + r"(?![a-z])")
            if not pattern.search(lowered):
                continue
            lowered = pattern.sub(" ", lowered)  # "moderately loud" must not also count as "loud"
            if p is None:
                checks.append(GroundingCheck(clue=index, cue=scale, status="contradicted", detail="no usable audio"))
                continue
            measured = next((d for d in p.descriptors if d in words), None)
            ok = measured == word
            checks.append(GroundingCheck(clue=index, cue=scale, status="supported" if ok else "contradicted",
                                         detail=f"claimed {word!r}; measured {measured or 'unremarkable'}"))
    figures = [(HZ, "pitch (Hz)", lambda v: p.f0_mean_hz is not None and abs(v - p.f0_mean_hz) <= 0.15 * p.f0_mean_hz),
               (DB, "level (dB)", lambda v: any(x is not None and abs(v - x) <= 3 for x in (p.intensity_mean_db,
                                                                                          p.hnr_db))),
               (RATE, "speech rate", lambda v: p.speech_rate_syl_per_s is not None
                and abs(v - p.speech_rate_syl_per_s) <= 1.0)]
    for pattern, cue, check in figures:
        for match in pattern.finditer(text):
            ok = p is not None and check(float(match.group(1)))
            checks.append(GroundingCheck(clue=index, cue=cue, status="supported" if ok else "contradicted",
                                         detail=f"stated {match.group(0)}"))
    return checks


def _check_quotes(cues: Cues, index: int, text: str) -> list[GroundingCheck]:
    said = " ".join(re.findall(r"[a-z0-9']+", cues.transcript.text.lower())) if cues.transcript else ""
    checks = []
    for quote in QUOTE.findall(text):
        words = " ".join(re.findall(r"[a-z0-9']+", quote.lower()))
        if not words:
            continue
        ok = bool(said) and f" {words} " in f" {said} "
        checks.append(GroundingCheck(clue=index, cue=f"words:{quote[:40]}",
                                     status="supported" if ok else "contradicted",
                                     detail="found in the transcript" if ok else "not in the transcript"))
    return checks


def _check_classifier(cues: Cues, index: int, text: str) -> list[GroundingCheck]:
    if not CLASSIFIER.search(text):
        return []
    checks = []
    e = cues.expression
    for match in EXPRESSION_CLAIM.finditer(text):
        label, stated = EXPRESSION_WORDS[match.group(1).lower()], match.group(2)
        cue = f"expression:{label}"
        if e is None:
            checks.append(GroundingCheck(clue=index, cue=cue, status="contradicted",
                                         detail="the expression classifier did not run on this clip"))
            continue
        mean = e.mean.get(label, 0.0)
        strongest = max((f.expression.get(label, 0.0) for f in cues.frames if f.expression), default=mean)
        if stated is None:
            ok = label in (e.top, e.apex_label)
            claim = f"claimed as its reading (likeliest {e.top}, strongest {e.apex_label})"
        else:
            value = float(stated.rstrip("% ")) / 100 if stated.endswith("%") else float(stated)
            ok = min(abs(value - mean), abs(value - strongest)) <= CLASSIFIER_TOLERANCE
            claim = f"stated {value:.2f}"
        checks.append(GroundingCheck(clue=index, cue=cue, status="supported" if ok else "contradicted",
                                     detail=f"{claim}; measured mean {mean:.2f}, strongest frame {strongest:.2f}"))
    return checks


def check_clue(cues: Cues, index: int, clue: Clue) -> list[GroundingCheck]:
    """Every cue named in one clue, checked."""
    checks = [_check_au(cues, index, m) for m in AU_MENTION.finditer(clue.text)]
    checks += _check_classifier(cues, index, clue.text)
    checks += _check_voice(cues, index, clue.text)
    checks += _check_quotes(cues, index, clue.text)
    return checks


FIGURE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(/\s*5|dB|Hz|syllables\s*/\s*s|syl\s*/\s*s|st\s*/\s*s|st\b|%)", re.IGNORECASE)
UNITS = {"db": "dB", "hz": "Hz"}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
WORD = re.compile(r"[a-z][a-z']*")
FILLER = frozenset("a an the at of from to and in on with s is are was says said speech voice face words".split())


def _figures(text: str) -> set[tuple[float, str]]:
    return {(float(n), re.sub(r"\s+", "", unit.lower())) for n, unit in FIGURE.findall(text)}


def _content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in FILLER and w not in ("db", "hz", "syllables", "st")}


def _quotes(text: str) -> list[str]:
    return [" ".join(re.findall(r"[a-z0-9']+", q.lower())) for q in QUOTE.findall(text)]


def copied_reason(text: str, examples: Sequence[str], cues: Cues) -> str | None:
    """Why a clue's text repeats the worked example (``examples``: its observation texts), or None if it does not."""
    if not examples:
        return None
    measured = textualize(cues, 10_000)
    numbers = {float(n) for n in NUMBER.findall(measured)}
    said = " ".join(re.findall(r"[a-z0-9']+", cues.transcript.text.lower())) if cues.transcript else ""
    own = _figures(text)
    for example in examples:
        foreign = sorted(f"{n:g}{u}" if u == "/5" else f"{n:g} {UNITS.get(u, u)}"
                         for n, u in own & _figures(example) if n not in numbers)
        if foreign:
            return f"states the example's {', '.join(foreign)}, which this clip's cues do not have"
        quoted = [q for q in _quotes(example) if q and q in " ".join(_quotes(text)) and f" {q} " not in f" {said} "]
        if quoted:
            return f"quotes the example's words \"{quoted[0]}\", which this clip's transcript does not have"
        words, example_words = _content_words(text), _content_words(example)
        names_own = any(n in numbers for n, _ in own) or any(q and f" {q} " in f" {said} " for q in _quotes(text))
        if len(example_words) >= 3 and len(words & example_words) >= 0.8 * len(example_words) and not names_own:
            return f"repeats the example's observation {example[:60]!r}"
    return None


def ground(observations: list[Clue], cues: Cues, examples: Sequence[str] = ()) -> Grounding:
    """Checks of all clues and the share of named cues that are supported, with the copy check against the
    observation texts of the prompt's worked example (``messages.example_observations``)."""
    checks, copied = [], []
    for i, clue in enumerate(observations):
        reason = copied_reason(clue.text, examples, cues)
        if reason is not None:
            copied.append(i)
            checks.append(GroundingCheck(clue=i, cue="worked example", status="copied", detail=reason))
        checks += check_clue(cues, i, clue)
    decided = [c for c in checks if c.status != "unverifiable"]
    supported = sum(c.status == "supported" and c.clue not in copied for c in decided)
    score = supported / len(decided) if decided else None
    return Grounding(score=round(score, 4) if score is not None else None, checks=checks, copied=copied)
