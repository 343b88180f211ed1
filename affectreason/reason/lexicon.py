"""A small emotion lexicon: open-vocabulary labels by basic emotion, and words that signal them in speech.

It serves the ``rules`` engine (which labels to emit, which spoken words are emotional cues) and
offline label extraction from free text. Basic emotions follow MELD's seven classes; each label list
is ordered from mild to intense so that intensity can pick the nuance (content -> happy -> delighted).
Word valence comes from VADER (shipped in the ``vadersentiment`` package), not from here.
"""

from __future__ import annotations

import re

from affectreason import labels as label_text  # the generic matching; the vocabulary is here

# basic emotion -> labels from mild to intense
NUANCES: dict[str, tuple[str, ...]] = {
    "joy": ("content", "pleased", "happy", "joyful", "delighted"),
    "sadness": ("disappointed", "sad", "upset", "heartbroken"),
    "anger": ("annoyed", "frustrated", "angry", "furious"),
    "fear": ("uneasy", "worried", "anxious", "afraid", "terrified"),
    "surprise": ("curious", "surprised", "astonished", "shocked"),
    "disgust": ("displeased", "disgusted", "revolted"),
    "neutral": ("neutral", "calm"),
}

# words (and fixed phrases) in a transcript that point to a basic emotion; VADER handles general valence
CUE_WORDS: dict[str, tuple[str, ...]] = {
    "joy": ("happy", "glad", "great", "awesome", "wonderful", "love", "thanks", "thank you", "yay", "congratulations",
            "excited", "fantastic", "perfect", "amazing", "haha", "fun", "beautiful", "proud", "celebrate"),
    "sadness": ("sorry", "sad", "miss", "lost", "cry", "crying", "hurt", "alone", "lonely", "unfortunately",
                "depressed", "broke up", "died", "tired", "gone"),
    "anger": ("damn", "hell", "shut up", "stupid", "idiot", "hate", "angry", "mad", "furious", "how dare",
              "ridiculous", "get out", "annoying", "sick of"),
    "fear": ("scared", "afraid", "nervous", "worried", "terrified", "panic", "help", "oh no", "frightened"),
    "surprise": ("what?", "really?", "wow", "oh my god", "oh my gosh", "no way", "seriously?", "whoa", "huh?",
                 "you're kidding", "are you serious", "what!"),
    "disgust": ("gross", "ew", "eww", "yuck", "disgusting", "nasty", "sick", "ugh"),
}

LABEL_TO_BASIC = {label: basic for basic, labels in NUANCES.items() for label in labels}
_WORD = {basic: [re.compile(r"(?<![a-z])" + re.escape(w) + (r"(?![a-z])" if w[-1].isalpha() else ""))
                 for w in words] for basic, words in CUE_WORDS.items()}


def nuance(basic: str, strength: float) -> str:
    """The label of a basic emotion at a strength in [0, 1].

    >>> nuance("joy", 0.95), nuance("joy", 0.5), nuance("joy", 0.0)
    ('delighted', 'happy', 'content')
    """
    labels = NUANCES[basic]
    index = min(len(labels) - 1, int(max(0.0, min(1.0, strength)) * len(labels)))
    return labels[index]


def cue_words(text: str) -> dict[str, list[str]]:
    """Emotion-signalling words/phrases found in ``text``, by basic emotion.

    >>> cue_words("Oh no, I'm so sorry. Really?")
    {'sadness': ['sorry'], 'fear': ['oh no'], 'surprise': ['really?']}
    """
    lowered = text.lower()
    found: dict[str, list[str]] = {}
    for basic, patterns in _WORD.items():
        hits = [CUE_WORDS[basic][i] for i, p in enumerate(patterns) if p.search(lowered)]
        if hits:
            found[basic] = hits
    return found


def extract_labels(text: str, vocabulary: set[str] | None = None) -> list[str]:
    """Emotion labels named in free text, in order of first mention (lexicon labels, or a given vocabulary).

    >>> extract_labels("She seems happy, maybe a little anxious; overall happy.")
    ['happy', 'anxious']
    """
    return label_text.extract_labels(text, vocabulary or LABEL_TO_BASIC)
