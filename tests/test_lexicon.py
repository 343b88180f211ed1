"""The emotion cue-word lexicon: its licence statement, negation and intensifiers (no models)."""

from __future__ import annotations

import pytest

import affectreason.reason.lexicon as lexicon
from affectreason.reason.lexicon import CUE_WORDS, NUANCES, cue_words, emotion_evidence


def test_licence_and_sources_are_stated():
    doc = lexicon.__doc__
    assert "Apache-2.0" in doc and "NRC Emotion Lexicon (research use only)" in doc


def test_every_cue_word_belongs_to_a_basic_emotion_once():
    assert set(CUE_WORDS) == set(NUANCES) - {"neutral"}
    for basic, words in CUE_WORDS.items():
        assert len(words) == len(set(words)), basic


@pytest.mark.parametrize(("text", "scores", "negated"), [
    ("I'm not happy.", {"sadness": 0.5}, ["happy"]),  # negated joy leans to sadness
    ("I am not angry at all", {}, ["angry"]),  # a negated negative emotion counts for nothing
    ("I don't hate you, I miss you", {"sadness": 1.0}, ["hate"]),  # the comma ends the negation's clause
    ("Happy, not sad", {"joy": 1.0}, ["sad"]),
    ("never scared", {}, ["scared"]),
    ("It wasn't fun", {"sadness": 0.5}, ["fun"]),
])
def test_negation(text, scores, negated):
    evidence = emotion_evidence(text)
    assert evidence.scores == scores and evidence.negated == negated


def test_negation_scope_is_three_words():
    assert emotion_evidence("not that I was ever angry").negated == []  # "not" is four words before
    assert emotion_evidence("not really that angry").negated == ["angry"]


@pytest.mark.parametrize(("text", "score"), [("very angry", 1.5), ("so happy", 1.5), ("extremely scared", 1.5),
                                             ("a bit sad", 0.5), ("kind of worried", 0.5), ("angry", 1.0)])
def test_intensifiers_and_diminishers(text, score):
    assert list(emotion_evidence(text).scores.values()) == [score]


def test_phrases_and_curly_apostrophes():
    assert cue_words("I can\u2019t believe it") == {"surprise": ["can't believe"]}
    assert cue_words("Shut up, you idiot") == {"anger": ["shut up", "idiot"]}
    assert cue_words("I'm not sad") == {}
