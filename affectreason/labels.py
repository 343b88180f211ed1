"""Emotion labels as text: normalising them, reading label lists, finding labels in free text.

The one place every room turns strings into labels (schema validators, gold and prediction files,
dataset recipes, model answers, judge answers). All functions are pure. Conventions:
- a *normalised* label is lower case with single inner spaces; a normalised list has no empty labels
  and no repeats and keeps first-seen order (``normalize_labels``);
- user files are read strictly (``parse_label_list``, ``parse_labels``: a malformed list literal is a
  ``LabelError``); model answers leniently (``labels_from_value``, ``parse_label_answer``,
  ``extract_labels``: they never raise on odd text).

This module sits at the bottom of the package: it imports nothing from affectreason but ``errors``,
so ``schema`` and everything above it can use it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable

from affectreason.errors import AffectReasonError

JSON_LIST = re.compile(r"\[[^\[\]]*\]", re.DOTALL)  # a flat JSON list inside prose
ANSWER_SEPARATORS = re.compile(r"[,;/\n]|\band\b")  # where a model's label string is cut into labels
ANSWER_DEBRIS = " .*-\"'"  # markdown bullets, quotes and full stops around a label in a model's answer
# A label is an emotion word (or a short phrase of up to four words: "slightly annoyed", "well-meaning"), lower
# case. The Explanation JSON schema constrains each label with the same pattern (prompts/reason/explanation.schema.json;
# tests/test_labels.py checks they agree) and the parser drops anything else into parse_errors.
LABEL_PATTERN = r"^[a-z]{1,20}(?:[ '-][a-z]{1,20}){0,3}$"
LABEL_MAX_CHARS = 40
_LABEL_WORDS = re.compile(LABEL_PATTERN)


class LabelError(AffectReasonError, ValueError):
    """A label list cannot be read (a malformed list literal, or one holding non-strings)."""


def normalize_label(label: object) -> str:
    """One label lower-cased, its whitespace stripped and runs of inner whitespace made one space.

    >>> normalize_label("  Very\\tSad ")
    'very sad'
    >>> normalize_label("   ")
    ''
    """
    return " ".join(str(label).lower().split())


def normalize_labels(labels: Iterable[object]) -> list[str]:
    """Lower-case and strip labels, drop empty ones and repeats, keep first-seen order.

    >>> normalize_labels(["Happy", " sad", "", "HAPPY", "very  sad"])
    ['happy', 'sad', 'very sad']
    """
    seen: dict[str, None] = {}
    for label in labels:
        key = normalize_label(label)
        if key:
            seen.setdefault(key, None)
    return list(seen)


def parse_label_list(text: str) -> list[str]:
    """Parse a label cell: a Python/JSON list string, or comma/semicolon separated words (not normalised).

    >>> parse_label_list("['Happy', 'relaxed']")
    ['Happy', 'relaxed']
    >>> parse_label_list("happy; relaxed")
    ['happy', 'relaxed']
    >>> parse_label_list("")
    []
    >>> parse_label_list("[1, 2]")
    Traceback (most recent call last):
    ...
    affectreason.labels.LabelError: label list '[1, 2]' must contain only strings
    """
    text = text.strip()
    if not text:
        return []
    if text[0] == "[":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as exc:
            raise LabelError(f"label list {text[:60]!r} is not a valid list literal") from exc
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise LabelError(f"label list {text[:60]!r} must contain only strings")
        return list(value)
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def parse_labels(value: object) -> list[str]:
    """Labels from a list, a list string (``"['happy', 'sad']"``) or comma-separated words, normalised.

    >>> parse_labels("['Happy', 'relaxed']"), parse_labels("joy"), parse_labels(["Sad", "sad"])
    (['happy', 'relaxed'], ['joy'], ['sad'])
    """
    if isinstance(value, list | tuple):
        return normalize_labels([str(v) for v in value])
    return normalize_labels(parse_label_list(str(value)))


def labels_from_value(value: object) -> list[str]:
    """Labels as a model wrote them (a string or a list), split and stripped leniently; not normalised.

    A string is cut at commas, semicolons, slashes, newlines and the word "and"; bullets, asterisks,
    quotes and full stops around each label are stripped and what is left empty is dropped.

    >>> labels_from_value("**Happy**, relieved and a bit tired.")
    ['Happy', 'relieved', 'a bit tired']
    >>> labels_from_value(["- calm", " ", None])
    ['calm', 'None']
    >>> labels_from_value(None)
    []
    """
    if isinstance(value, str):
        value = [v for v in ANSWER_SEPARATORS.split(value) if v.strip()]
    return [str(v).strip(ANSWER_DEBRIS) for v in value or [] if str(v).strip(ANSWER_DEBRIS)]


def is_label_word(label: str) -> bool:
    """Whether a normalised label is an emotion word or short phrase (``LABEL_PATTERN``), not debris.

    >>> [is_label_word(x) for x in ("happy", "slightly annoyed", "{", "au12", "", "happy!")]
    [True, True, False, False, False, False]
    """
    return len(label) <= LABEL_MAX_CHARS and bool(_LABEL_WORDS.match(label))


def split_label_words(labels: Iterable[object]) -> tuple[list[str], list[str]]:
    """Normalised labels split into (emotion words, rejected strings), each in first-seen order.

    >>> split_label_words(["Happy", "{", "very  sad", "12"])
    (['happy', 'very sad'], ['{', '12'])
    """
    words, rejected = [], []
    for label in normalize_labels(labels):
        (words if is_label_word(label) else rejected).append(label)
    return words, rejected


def parse_label_answer(text: str) -> list[str] | None:
    """The last flat JSON list of strings in an answer (prose around it is ignored), normalised; None if absent.

    >>> parse_label_answer('Labels: ["Happy", "relieved"]')
    ['happy', 'relieved']
    >>> parse_label_answer('First ["x"], then [1, 2]')
    ['x']
    >>> parse_label_answer("no list here") is None
    True
    """
    for match in reversed(JSON_LIST.findall(text)):
        try:
            value = json.loads(match)
        except json.JSONDecodeError:
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return normalize_labels(value)
    return None


def extract_labels(text: str, vocabulary: Iterable[str]) -> list[str]:
    """The words of ``vocabulary`` named in free text as whole words, in order of first mention.

    Matching is case-insensitive on the text; vocabulary words are expected in lower case.

    >>> extract_labels("Happy at first, then anxious; happy again.", {"anxious", "happy", "sad"})
    ['happy', 'anxious']
    >>> extract_labels("unhappy", {"happy"})
    []
    """
    lowered = text.lower()
    hits = []
    for word in vocabulary:
        match = re.search(r"(?<![a-z])" + re.escape(word) + r"(?![a-z])", lowered)
        if match:
            hits.append((match.start(), word))
    return [word for _, word in sorted(hits)]
