"""Synonym groupings: group maps, parsing, single linkage, LLM answer parsing, cached-file errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectreason.eval.grouping import CachedGroups, groups_to_map, link_groups, parse_groups, parse_llm_groups


def test_groups_to_map_first_member_represents():
    assert groups_to_map([["joyful", "happy"], ["worry"]]) == {"joyful": "joyful", "happy": "joyful",
                                                               "worry": "worry"}
    assert groups_to_map([]) == {}
    assert groups_to_map([[]]) == {}


def test_groups_to_map_later_group_wins():
    # "happy" is in both groups: the later group's representative ("glad") wins, as in MERTools
    assert groups_to_map([["joyful", "happy"], ["glad", "happy"]]) == {
        "joyful": "joyful", "happy": "glad", "glad": "glad"}


def test_parse_groups_from_string_and_list():
    assert parse_groups("  [['joyful', 'happy'], ['worry']] ") == [["joyful", "happy"], ["worry"]]
    assert parse_groups('[["a"], ["b", "c"]]') == [["a"], ["b", "c"]]
    assert parse_groups([("a", "b"), ["c"]]) == [["a", "b"], ["c"]]
    assert parse_groups([[1, "x"]]) == [["1", "x"]]
    assert parse_groups("[]") == []


@pytest.mark.parametrize("value", ["['happy', 'sad']", [["a"], "b"], 42, {"a": ["b"]}, "{'a': 1}"])
def test_parse_groups_rejects_non_list_of_lists(value):
    with pytest.raises(ValueError, match="expected a list of lists of labels"):
        parse_groups(value)


def test_parse_groups_unparseable_string():
    with pytest.raises(SyntaxError):
        parse_groups("[['a', 'b']")
    with pytest.raises(ValueError, match="malformed node or string"):
        parse_groups("happy, sad")


def test_link_groups_single_linkage_chains():
    sim = np.array([
        [1.0, 0.9, 0.1, 0.0],
        [0.9, 1.0, 0.85, 0.0],
        [0.1, 0.85, 1.0, 0.2],
        [0.0, 0.0, 0.2, 1.0],
    ])
    # a~b (0.9) and b~c (0.85) link a and c although a!~c (0.1); d stands alone
    assert link_groups(["a", "b", "c", "d"], sim, 0.8) == {"a": "a", "b": "a", "c": "a", "d": "d"}
    # threshold is inclusive: at 0.9 only a~b links
    assert link_groups(["a", "b", "c", "d"], sim, 0.9) == {"a": "a", "b": "a", "c": "c", "d": "d"}
    # above every off-diagonal value nothing links (the diagonal is ignored)
    assert link_groups(["a", "b", "c", "d"], sim, 0.95) == {"a": "a", "b": "b", "c": "c", "d": "d"}


def test_link_groups_representative_is_first_label_after_merges():
    sim = np.eye(4)
    for i, j in [(0, 3), (1, 2), (2, 3)]:
        sim[i, j] = sim[j, i] = 0.9
    # w~z, x~y, y~z: the merges join {w, z} and {x, y}; all take the first label "w"
    assert link_groups(["w", "x", "y", "z"], sim, 0.5) == {"w": "w", "x": "w", "y": "w", "z": "w"}


def test_parse_llm_groups_with_prose():
    text = 'Sure! Here are the groups:\n[["happy", "glad"],\n ["sad"]]\nHope this helps.'
    assert parse_llm_groups(text, ["glad", "happy", "sad"]) == [["happy", "glad"], ["sad"]]


def test_parse_llm_groups_python_literal_and_case():
    assert parse_llm_groups("[['Happy ', 'GLAD'], ['sad']]", ["glad", "happy", "sad"]) == [["happy", "glad"],
                                                                                           ["sad"]]


def test_parse_llm_groups_json_fallback():
    # null is JSON, not Python: the literal parse fails, json.loads succeeds, "None" is not asked -> dropped
    assert parse_llm_groups('[["happy", "glad"], ["sad", null]]', ["glad", "happy", "sad"]) == [
        ["happy", "glad"], ["sad"]]


def test_parse_llm_groups_drops_labels_not_asked():
    text = '[["happy", "joyful", "glad"], ["melancholy"], ["sad"]]'
    # "joyful" and "melancholy" were not asked; the emptied group disappears
    assert parse_llm_groups(text, ["glad", "happy", "sad"]) == [["happy", "glad"], ["sad"]]


@pytest.mark.parametrize("text", ["I cannot group these.", "[happy, glad]", '[["happy", "glad"]', "[[happy, glad]]",
                                  ""])
def test_parse_llm_groups_garbage_is_none(text):
    assert parse_llm_groups(text, ["glad", "happy"]) is None


# --- CachedGroups ---------------------------------------------------------------------------------


def _write(tmp_path, content):
    path = tmp_path / "groups.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_cached_groups_missing_file(tmp_path):
    path = tmp_path / "none.json"
    with pytest.raises(ValueError) as err:
        CachedGroups(path)
    assert str(err.value) == f"{path}: groups file not found"


def test_cached_groups_not_json(tmp_path):
    path = _write(tmp_path, "{'a': oops")
    with pytest.raises(ValueError, match=r"groups\.json: not a JSON object of per-clip groups \("):
        CachedGroups(path)


def test_cached_groups_not_an_object(tmp_path):
    path = _write(tmp_path, [["a", "b"]])
    with pytest.raises(ValueError) as err:
        CachedGroups(path)
    assert str(err.value) == f"{path}: expected a JSON object {{clip name: groups}}"


@pytest.mark.parametrize("bad", ["[['happy', 'glad']", "['happy', 'glad']", 7, "happy"])
def test_cached_groups_malformed_clip(tmp_path, bad):
    path = _write(tmp_path, {"good": "[['a']]", "sample_42": bad})
    with pytest.raises(ValueError, match=r"groups of 'sample_42' are malformed \("):
        CachedGroups(path)


def test_cached_groups_canonical_and_describe(tmp_path):
    path = _write(tmp_path, {"c1": "[['joyful', 'happy'], ['worry']]", "c2": [["mad", "angry"]]})
    groups = CachedGroups(path)
    assert groups.canonical("c1", ["happy"]) == {"joyful": "joyful", "happy": "joyful", "worry": "worry"}
    assert groups.canonical("c2", []) == {"mad": "mad", "angry": "mad"}
    assert groups.canonical("x1", ["happy"]) == {}
    assert groups.canonical("x2", ["sad"]) == {}
    assert groups.canonical("x1", ["sad"]) == {}  # counted once per clip
    assert groups.describe() == {"kind": "cached", "path": str(path), "clips_without_groups": 2,
                                 "mertools_split_labels": []}


def test_cached_groups_anchor_file(anchors):
    groups = CachedGroups(anchors / "mer2024_ov" / "cached_synonym_groups.json")
    assert groups.canonical("sample_00000007", []) == {"joyful": "joyful", "satisfied": "joyful",
                                                       "happy": "joyful", "excited": "joyful"}
    assert groups.retokenize("sample_00001774", ["don't believe", "doubt"]) == ["don", "t believe", "doubt"]
    assert groups.describe()["mertools_split_labels"] == ["don't believe"]
