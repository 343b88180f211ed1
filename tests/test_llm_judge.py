"""LLM judge and LLM grouping against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.endpoint import ChatClient, EndpointError, ResponseCache
from affectreason.eval.alignment import align
from affectreason.eval.grouping import LLMGrouping
from affectreason.eval.judges.base import score_emer
from affectreason.eval.judges.llm import LLMJudge, UnparseableAnswer, parse_label_list_answer, parse_score
from affectreason.eval.ov import score_ov
from affectreason.schema import LabelRecord
from tests.judge_server import JudgeServer

REF = "In the video, he smiles broadly and laughs. His voice is cheerful. He is happy."
SAME = "In the video, he smiles broadly and laughs. His voice is cheerful. He is happy."
DIFF = "She frowns and shouts loudly at the door. She seems angry."


@pytest.fixture()
def server():
    with JudgeServer() as srv:
        yield srv


@pytest.fixture()
def client(server, tmp_path):
    c = ChatClient(server.url, "judge-model", cache=ResponseCache(tmp_path / "cache.sqlite"), backoff_s=0.01)
    yield c
    c.close()


def records(*rows):
    return [LabelRecord(name=n, labels=labels, reasoning=text) for n, labels, text in rows]


@pytest.mark.parametrize("text, expected", [
    ("Step 1...\nScore: 7", 7.0),
    ("Score: 3\nOn reflection.\nFinal score: 8", 8.0),
    ('{"score": 9}', 9.0),
    ("**Score**: 10/10", 10.0),
    ("score = 6 out of 10", 6.0),
    ("5", 5.0),
    ("Score: 12", None),  # out of range
    ("no number here", None),
    ("between 2 and 4", None),  # two bare numbers: ambiguous
])
def test_parse_score(text, expected):
    assert parse_score(text) == expected


def test_parse_label_list_answer():
    assert parse_label_list_answer('First ["x"], finally: ["Happy", " Calm "]') == ["happy", "calm"]
    assert parse_label_list_answer("none") is None
    assert parse_label_list_answer("[]") == []


def test_clue_and_label_overlap_scores(client):
    judge = LLMJudge(client)
    assert judge.clue_overlap(REF, SAME).score == 10.0
    assert judge.clue_overlap(REF, DIFF).score <= 2.0
    gold = LabelRecord(name="a", labels=["happy"])
    # synonyms count as the same emotion: {happy} vs {joyful} -> 10
    assert judge.label_overlap(gold, LabelRecord(name="a", labels=["joyful"])).score == 10.0
    # half overlap: {happy} vs {happy, sad} -> 1/2 -> 5
    assert judge.label_overlap(gold, LabelRecord(name="a", labels=["happy", "sad"])).score == 5.0
    # no labels -> extracted from reasoning first ("happy" in REF)
    result = judge.label_overlap(gold, LabelRecord(name="a", reasoning=REF))
    assert result.details["predicted_labels"] == ["happy"] and result.score == 10.0


def test_requests_use_temperature_zero_and_rerun_hits_cache(server, client):
    gold = records(("a", ["happy"], REF), ("b", ["angry"], DIFF))
    pred = records(("a", ["joyful"], SAME), ("b", ["sad"], REF))
    first = score_emer(align(gold, pred), LLMJudge(client))
    sent = len(server.state.requests)
    assert sent == 4  # 2 clue + 2 label requests
    assert all(r["temperature"] == 0.0 and r["model"] == "judge-model" for r in server.state.requests)
    second = score_emer(align(gold, pred), LLMJudge(client))
    assert len(server.state.requests) == sent  # everything answered from the cache
    assert first.summary == second.summary
    assert first.summary["clue_overlap"] == pytest.approx((10 + second.per_sample[1]["clue_overlap"]) / 2)


def test_transient_server_errors_are_retried(server, client):
    server.state.fail_next = 2
    assert LLMJudge(client).clue_overlap(REF, SAME).score == 10.0
    assert len(server.state.requests) == 3


def test_unparseable_answer_is_retried_without_cache(server, client):
    server.state.garble_next = 1
    assert LLMJudge(client).clue_overlap(REF, SAME).score == 10.0
    server.state.garble_next = 5
    with pytest.raises(UnparseableAnswer, match="no usable answer in 3 attempts"):
        LLMJudge(client).clue_overlap(REF, DIFF)


def test_failed_item_is_recorded_and_batch_goes_on(server, client):
    gold = records(("a", ["happy"], REF), ("b", ["angry"], DIFF))
    pred = records(("a", ["happy"], SAME), ("b", ["angry"], DIFF))
    server.state.garble_next = 3  # exactly the three attempts of the first clue request
    judge = LLMJudge(client, workers=1)
    result = score_emer(align(gold, pred), judge)
    assert result.info["failed_items"] == 1
    assert "no usable answer" in result.per_sample[0]["errors"][0]
    assert result.per_sample[1]["clue_overlap"] == 10.0
    assert result.summary["clue_overlap"] == 10.0  # the failed item is left out, not counted as 0


def test_api_key_and_refusals(server, tmp_path):
    server.state.api_key = "secret"
    bad = ChatClient(server.url, "m", api_key="wrong", backoff_s=0.01)
    with pytest.raises(EndpointError, match="HTTP 401"):
        bad.complete([{"role": "user", "content": "hi"}])
    assert len(server.state.requests) == 1  # a refusal is not retried
    good = ChatClient(server.url, "m", api_key="secret")
    assert good.complete([{"role": "user", "content": "hi"}]) == "I do not understand."


def test_unreachable_endpoint_gives_clear_error():
    client = ChatClient("http://127.0.0.1:9", "m", max_retries=1, backoff_s=0.01, timeout_s=2)
    with pytest.raises(EndpointError, match="failed after 2 attempts"):
        client.complete([{"role": "user", "content": "hi"}])


def test_llm_grouping_for_ov(client, server):
    gold = [LabelRecord(name="a", labels=["happy", "worried"])]
    pred = [LabelRecord(name="a", labels=["joyful", "sad"])]
    result = score_ov(align(gold, pred), LLMGrouping(client))
    # groups {happy, joyful}, {worried}, {sad}: G={happy, worried}, P={happy, sad} -> acc 1/2, recall 1/2
    assert result.summary == {"accuracy": 0.5, "recall": 0.5, "avg": 0.5}
    assert result.info["grouping"]["kind"] == "llm"


def test_cli_emer_llm(server, tmp_path):
    gold = tmp_path / "gold.jsonl"
    pred = tmp_path / "pred.jsonl"
    gold.write_text(json.dumps({"name": "a", "labels": ["happy"], "reasoning": REF}) + "\n")
    pred.write_text(json.dumps({"name": "a", "labels": ["joyful"], "reasoning": SAME}) + "\n")
    args = ["score", "emer", "--gold", str(gold), "--pred", str(pred), "--judge", "llm", "--endpoint", server.url,
            "--model", "judge-model", "--cache", str(tmp_path / "c.sqlite"), "--json", "--bootstrap", "0"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["clue_overlap"] == 10.0 and report["label_overlap"] == 10.0
    assert report["info"]["judge"]["prompt_versions"]["emer_clue_overlap"] == 1
    out = CliRunner().invoke(app, args[:6] + ["--judge", "llm"])
    assert out.exit_code == 2 and "--endpoint URL and --model NAME" in out.output
