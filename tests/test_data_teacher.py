"""Teacher distillation against a real OpenAI-compatible HTTP server on 127.0.0.1: the teacher writes the
chain of thought and only records whose labels agree with gold on the emotion wheel are kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from affectreason.data.build import build_dataset
from affectreason.data.recipe import load_data_recipe
from affectreason.data.record import DataError
from affectreason.data.teacher import label_agreement
from affectreason.reason.parse import parse_explanation
from tests.judge_server import JudgeServer

# the test server's "model" answers every explain prompt with the label "Happy"
CLIPS = ("name,labels,transcript\n"
         "c1,happy,I am so happy to see you.\n"
         "c2,joyful,What a lovely day.\n"
         "c3,\"['delighted', 'excited']\",We won the prize!\n"
         "c4,sad,I miss her so much.\n"
         "c5,angry,Get out of my office.\n"
         "c6,neutral,The bus leaves at nine.\n")


@pytest.fixture()
def server():
    with JudgeServer() as srv:
        yield srv


def recipe_file(folder: Path, endpoint: str, anchors: Path, **teacher) -> Path:
    (folder / "clips.csv").write_text(CLIPS)
    tree = {"name": "tiny-teacher", "description": "six transcripts", "licence": "written for this test",
            "inputs": {"clips": {"path": "{data}/clips.csv"}},
            "fields": {"labels": "clips.labels", "transcript": "clips.transcript"}, "cot": "teacher",
            "teacher": {"endpoint": endpoint, "model": "teacher-model", "wheel_dir": str(anchors / "emotion_wheel"),
                        "workers": 1, **teacher},
            "splits": {"train": 1.0}}
    path = folder / "tiny-teacher.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_label_agreement_on_the_wheel(wheel):
    assert label_agreement(["happy"], ["Happy"], wheel) == 1.0
    assert label_agreement(["joyful"], ["happy"], wheel) == 1.0
    assert label_agreement(["sad"], ["happy"], wheel) == 0.0
    assert label_agreement(["neutral"], ["happy"], wheel) == 0.0  # off the wheel: exact overlap


def test_teacher_writes_the_cot_and_only_agreeing_records_are_kept(server, anchors, tmp_path):
    server.state.garble_next = 4  # c1: three unusable answers (dropped), c2: one (asked again)
    recipe = load_data_recipe(recipe_file(tmp_path, server.url, anchors))
    result = build_dataset(recipe, tmp_path / "out", data_dir=tmp_path)
    teacher = result.stats["teacher"]
    assert teacher["outcomes"] == {"unparseable": 1, "agrees": 2, "disagrees": 3}
    assert (teacher["asked"], teacher["kept"], teacher["kept_share"]) == (6, 2, 0.3333)
    assert teacher["requests_sent"] == 9
    records = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["c2", "c3"]
    for record in records:
        assert record["cot"] == "teacher" and record["messages"][1]["content"].startswith('Measured cues of clip "c')
        answer = parse_explanation(record["messages"][2]["content"])
        assert answer.labels == ["happy"] and answer.observations and answer.conclusion == "The person is happy."
    assert records[1]["labels"] == ["delighted", "excited"]  # the record keeps gold; the target is the teacher's
    prompt = server.state.requests[-1]
    assert prompt["temperature"] == 0.0 and prompt["response_format"]["type"] == "json_schema"
    assert "c6" in prompt["messages"][1]["content"] and "neutral" not in prompt["messages"][1]["content"]
    lines = [json.loads(line) for line in (tmp_path / "out" / "teacher.jsonl").read_text().splitlines()]
    assert [(v["id"], v["outcome"]) for v in lines] == [("c1", "unparseable"), ("c2", "agrees"), ("c3", "agrees"),
                                                        ("c4", "disagrees"), ("c5", "disagrees"),
                                                        ("c6", "disagrees")]
    sent = len(server.state.requests)
    again = build_dataset(recipe, tmp_path / "out", data_dir=tmp_path)  # a re-run answers from the cache
    assert len(server.state.requests) - sent == 1  # only c1, whose cached answer is unusable, is asked again
    assert again.stats["teacher"]["outcomes"] == {"agrees": 3, "disagrees": 3}


def test_grounding_filter_drops_answers_citing_cues_the_clip_lacks(server, anchors, tmp_path):
    server.state.invent_cue = "AU12 at 3.5/5"  # every answer cites a smile, and a transcript has no face
    recipe = load_data_recipe(recipe_file(tmp_path, server.url, anchors, min_grounding=1.0))
    with pytest.raises(DataError, match="no records were built"):
        build_dataset(recipe, tmp_path / "out", data_dir=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "out" / "teacher.jsonl").read_text().splitlines()]
    assert [v["outcome"] for v in lines] == ["ungrounded"] * 3 + ["disagrees"] * 3
    assert lines[0]["error"] == "grounding 0.0 < 1.0"


def test_unreachable_teacher_is_an_error(anchors, tmp_path):
    recipe = load_data_recipe(recipe_file(tmp_path, "http://127.0.0.1:9/v1", anchors), ["limit=1"])
    with pytest.raises(DataError, match=r"the teacher at http://127.0.0.1:9/v1 answered none of 1 requests"):
        build_dataset(recipe, tmp_path / "out", data_dir=tmp_path)
