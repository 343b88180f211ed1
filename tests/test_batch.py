"""The one batch runner: explain --backend openai and query send identical requests, outputs describe themselves,
a cues JSONL is an input like a folder, and a loaded reasoner runs in this process."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from affectreason import __version__
from affectreason.batch import Item, manifest_path, read_items, run
from affectreason.cli import app
from affectreason.reason.explain import RulesReasoner
from affectreason.reason.messages import bounded_schema, explanation_schema
from affectreason.schema import AUEvent, Clip, Cues, FaceFrame, Transcript
from tests.judge_server import JudgeServer

CUES = Cues(clip_id="c1", duration_s=2.0, frames=[FaceFrame(t=0.4, faces=1, aus={"AU12": 4.2, "AU06": 2.5})],
            apex_t=0.4, au_events=[AUEvent(au="AU12", onset=0.2, apex=0.4, offset=1.2, peak=4.2)],
            transcript=Transcript(text="so glad you came", source="given"))


def _cues_jsonl(tmp_path, n: int = 2):
    path = tmp_path / "cues.jsonl"
    lines = [json.dumps({"clip": {"path": f"/nonexistent/c{i}.mp4", "id": f"c{i}"},
                         "cues": CUES.model_copy(update={"clip_id": f"c{i}"}).model_dump(mode="json")})
             for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_explain_openai_and_query_send_the_same_bounded_request(tmp_path):
    cues = _cues_jsonl(tmp_path, 1)
    runner = CliRunner()
    with JudgeServer() as server:
        explained = runner.invoke(app, ["explain", str(cues), "--backend", "openai", "--endpoint", server.url,
                                        "--server-model", "served", "--out", str(tmp_path / "a.jsonl")])
        via_explain = server.state.requests[-1]
        queried = runner.invoke(app, ["query", str(cues), "--server", server.url, "--model", "served",
                                      "--out", str(tmp_path / "b.jsonl")])
        via_query = server.state.requests[-1]
    assert explained.exit_code == 0, explained.output
    assert queried.exit_code == 0, queried.output
    assert via_explain == via_query
    assert via_explain["response_format"]["json_schema"]["schema"] == bounded_schema(explanation_schema(), 400, 6)
    assert via_explain["max_tokens"] == 768 and via_explain["temperature"] == 0.0
    assert "Reason in three steps" in via_explain["messages"][-1]["content"]
    a = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    b = json.loads((tmp_path / "b.jsonl").read_text().splitlines()[0])
    assert set(a) == set(b) == {"clip", "cues", "explanation"}
    assert a["explanation"]["labels"] == b["explanation"]["labels"] == ["happy"]
    assert (a["explanation"]["backend"], b["explanation"]["backend"]) == ("openai", "server")


def test_batch_output_has_a_manifest_saying_what_produced_it(tmp_path):
    cues = _cues_jsonl(tmp_path, 2)
    out = tmp_path / "out.jsonl"
    with JudgeServer() as server:
        for _ in range(2):  # the second run finds everything done and adds a run with 2 skipped
            result = CliRunner().invoke(app, ["explain", str(cues), "--backend", "openai", "--endpoint",
                                              server.url, "--server-model", "served", "--out", str(out)])
            assert result.exit_code == 0, result.output
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["affectreason_version"] == __version__
    assert manifest["backend"]["resolved"] == "openai" and manifest["backend"]["server_model"] == "served"
    assert "api_key" not in json.dumps(manifest)
    assert manifest["prompt"] == "reason/explain@3"
    assert manifest["cues"]["fps"] == 5.0 and manifest["input"] == str(cues)
    assert [(r["ok"], r["skipped"], r["failed"]) for r in manifest["runs"]] == [(2, 0, 0), (0, 2, 0)]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["explanation"]["prompt"] == "reason/explain@3" for r in records)


def test_a_loaded_reasoner_runs_in_this_process_over_known_cues(tmp_path):
    items = read_items(_cues_jsonl(tmp_path, 3)) + [Item(Clip(path="/nonexistent/x.mp4", id="x"), error="cues: boom")]
    result = run(items, tmp_path / "out.jsonl", reasoner=RulesReasoner())
    assert result.counts() == {"skipped": 0, "ok": 3, "failed": 1}
    assert result.failed == {"x": "cues: boom"}
    records = {json.loads(line)["clip"]["id"]: json.loads(line) for line in (tmp_path / "out.jsonl").open()}
    assert records["c0"]["explanation"]["backend"] == "rules" and records["c0"]["explanation"]["labels"]
    assert records["c0"]["explanation"]["grounding"]["score"] == 1.0


def test_workers_die_with_their_parent_and_the_run_resumes(tmp_path):
    """SIGKILL the parent of a folder run (as the OOM killer does): no process of the run outlives it by 10 s,
    and running the same command again completes every clip once."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import psutil

    example = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(6):
        shutil.copy(example, clips / f"c{i}.mp4")
    out = tmp_path / "cues.jsonl"
    command = [sys.executable, "-m", "affectreason.cli", "cues", str(clips), "--out", str(out), "--no-asr"]
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    children: list = []
    while time.monotonic() < deadline and len(children) < 2:  # the two workers (and the resource tracker)
        children = psutil.Process(parent.pid).children(recursive=True)
        time.sleep(0.2)
    assert len(children) >= 2
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(line)["clip"]["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == [f"c{i}" for i in range(6)]


def test_a_cut_off_last_line_is_dropped_with_a_warning_and_redone(tmp_path):
    items = read_items(_cues_jsonl(tmp_path, 3))
    out = tmp_path / "out.jsonl"
    run(items[:2], out, reasoner=RulesReasoner())
    whole = out.read_bytes()
    out.write_bytes(whole[: len(whole) - 40])  # killed while writing the second record
    result = run(items, out, reasoner=RulesReasoner())
    assert result.counts() == {"skipped": 1, "ok": 2, "failed": 0}
    assert len(result.warnings) == 1 and "dropped a cut-off last line" in result.warnings[0]
    records = [json.loads(line) for line in out.read_text().splitlines()]  # every line parses again
    assert sorted(r["clip"]["id"] for r in records) == ["c0", "c1", "c2"]
