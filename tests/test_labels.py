"""affectreason.labels: every way a string becomes labels, with hand-worked cases."""

import pytest

from affectreason import labels
from affectreason.errors import AffectReasonError
from affectreason.labels import (
    LabelError,
    extract_labels,
    labels_from_value,
    normalize_label,
    normalize_labels,
    parse_label_answer,
    parse_label_list,
    parse_labels,
)


def test_normalize_label_case_and_whitespace():
    assert normalize_label(" Very \t SAD\n") == "very sad"
    assert normalize_label("") == ""
    assert normalize_label(3) == "3"


def test_normalize_labels_drops_empties_and_repeats_keeps_first_order():
    raw = ["Relaxed", "happy ", "", "  ", "HAPPY", "relaxed", "very\u00a0 calm"]
    # "very\u00a0 calm": str.split() treats the no-break space as whitespace too
    assert normalize_labels(raw) == ["relaxed", "happy", "very calm"]
    assert normalize_labels([]) == []
    assert normalize_labels(("a", "A")) == ["a"]  # any iterable


def test_parse_label_list_literals_and_separators():
    assert parse_label_list("  ['Happy', ' relaxed ']  ") == ["Happy", " relaxed "]  # literal items kept as written
    assert parse_label_list("('a', 'b')") == ["('a'", "'b')"]  # only text starting with "[" is a literal
    assert parse_label_list("[]") == []
    assert parse_label_list("happy;relaxed, sad") == ["happy", "relaxed", "sad"]
    assert parse_label_list(";;,") == []


def test_parse_label_list_errors_are_value_errors_and_user_errors():
    with pytest.raises(LabelError, match=r"label list '\[happy' is not a valid list literal"):
        parse_label_list("[happy")
    with pytest.raises(ValueError, match=r"label list '\[\"a\", 2\]' must contain only strings"):
        parse_label_list('["a", 2]')
    with pytest.raises(AffectReasonError, match="must contain only strings"):
        parse_label_list("[{'a': 1}]")
    long = "[" + "x" * 100
    with pytest.raises(LabelError) as err:
        parse_label_list(long)
    assert str(err.value) == f"label list {long[:60]!r} is not a valid list literal"


def test_parse_labels_normalises_lists_and_strings():
    assert parse_labels(["Sad", "sad", " Very  Sad"]) == ["sad", "very sad"]
    assert parse_labels(("Joy",)) == ["joy"]
    assert parse_labels("['Happy', 'HAPPY', 'calm']") == ["happy", "calm"]
    assert parse_labels("Anger; Disgust") == ["anger", "disgust"]
    assert parse_labels(7) == ["7"]
    with pytest.raises(ValueError):
        parse_labels("[1]")


def test_labels_from_value_strings_are_split_and_debris_stripped():
    assert labels_from_value("happy, sad; calm/tired\nbored and lonely") == [
        "happy", "sad", "calm", "tired", "bored", "lonely"]
    # "and" only as a lower-case word: "candid", "And" and "grand" stay whole
    assert labels_from_value("candid, And, grand") == ["candid", "And", "grand"]
    assert labels_from_value('"Happy". , **Sad**, - .') == ["Happy", "Sad"]
    assert labels_from_value("") == []


def test_labels_from_value_lists_are_stripped_not_split():
    assert labels_from_value(["happy, sad", "'calm'", "*", 5]) == ["happy, sad", "calm", "5"]
    assert labels_from_value([]) == [] and labels_from_value(None) == []


def test_parse_label_answer_takes_the_last_list_of_strings():
    assert parse_label_answer('Reasoning [draft]... Final: ["Happy", " Calm ", "happy"]') == ["happy", "calm"]
    # the last list is not all strings, so the one before it is used
    assert parse_label_answer('["sad"] then ["a", 1]') == ["sad"]
    # nested lists are not flat: the inner one is what the pattern sees
    assert parse_label_answer('[["Angry"]]') == ["angry"]
    assert parse_label_answer("[]") == []
    assert parse_label_answer("['single quotes']") is None  # not JSON
    assert parse_label_answer("") is None


def test_extract_labels_order_of_first_mention_and_whole_words():
    vocabulary = {"happy", "sad", "very sad", "angry"}
    text = "Not unhappy. Very sad, then angry; sad again, HAPPY at last."
    # first mentions: "very sad" at 13, "sad" at 18 (inside "very sad"), "angry" at 28, "happy" at 46 (not 6: "unhappy")
    assert text.lower().index("very sad") == 13 and text.lower().index("angry") == 28
    assert text.lower().index("happy", 12) == 46
    assert extract_labels(text, vocabulary) == ["very sad", "sad", "angry", "happy"]
    assert extract_labels("sadness", {"sad"}) == []  # a letter after the word: no match
    assert extract_labels("sad2", {"sad"}) == ["sad"]  # a digit is not a letter
    assert extract_labels("anything", set()) == []


def test_old_names_are_the_new_functions():
    from affectreason.data.mapping import parse_labels as mapping_parse_labels
    from affectreason.eval.judges.llm import parse_label_list_answer
    from affectreason.eval.records import parse_label_list as records_parse_label_list
    from affectreason.schema import normalize_labels as schema_normalize_labels

    assert records_parse_label_list is labels.parse_label_list
    assert parse_label_list_answer is labels.parse_label_answer
    assert schema_normalize_labels is labels.normalize_labels
    assert mapping_parse_labels is labels.parse_labels


def test_lexicon_extract_labels_uses_its_vocabulary_by_default():
    from affectreason.reason.lexicon import LABEL_TO_BASIC
    from affectreason.reason.lexicon import extract_labels as lexicon_extract

    text = "calm, then furious"
    assert lexicon_extract(text) == labels.extract_labels(text, LABEL_TO_BASIC) == ["calm", "furious"]
    assert lexicon_extract(text, {"furious"}) == ["furious"]
    assert lexicon_extract(text, set()) == ["calm", "furious"]  # an empty vocabulary means the lexicon's
