"""``--shard K/N`` and ``affectreason merge`` without Ray: a stable split by clip id, and a merge that refuses
missing, repeated or misplaced clips and shards with a one-line error."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from affectreason.batch import manifest_path, read_items, run
from affectreason.cli import app
from affectreason.errors import UsageError
from affectreason.merge import merge
from affectreason.reason.explain import RulesReasoner
from affectreason.schema import Cues, FaceFrame
from affectreason.shard import Shard, parse_shard, shard_of

IDS = [f"clip_{i:04d}" for i in range(300)]


def test_a_clip_lands_in_the_same_shard_whatever_else_is_split():
    # sha256, not hash(): the same shard in every process (hash() of a str is salted per process)
    assert [shard_of(i, 7) for i in IDS] == [shard_of(i, 7) for i in reversed(IDS)][::-1]
    assert {shard_of(i, 1) for i in IDS} == {1}
    sizes = [sum(1 for i in IDS if shard_of(i, 3) == k) for k in (1, 2, 3)]
    assert sum(sizes) == 300 and min(sizes) >= 80  # roughly even: 100 each expected
    # pinned: a new version must split as the old one did, or a re-run of a shard would miss its clips
    assert [shard_of(f"clip_{i:04d}", 3) for i in range(6)] == [2, 1, 1, 2, 1, 2]


@pytest.mark.parametrize(("text", "message"), [
    ("4/3", "--shard 4/3: K must be between 1 and N"),
    ("0/3", "--shard 0/3: K must be between 1 and N"),
    ("1/0", "--shard 1/0: K must be between 1 and N"),
    ("x", "--shard 'x': expected K/N with whole numbers"),
    ("1/2/3", "--shard '1/2/3': expected K/N"),
    ("-1/3", "--shard '-1/3': expected K/N"),
])
def test_bad_shards_are_usage_errors(text, message):
    with pytest.raises(UsageError) as caught:
        parse_shard(text)
    assert str(caught.value).startswith(message)


def _cues_jsonl(tmp_path, n: int):
    path = tmp_path / "cues.jsonl"
    lines = [json.dumps({"clip": {"path": f"/nonexistent/c{i:02d}.mp4", "id": f"c{i:02d}"},
                         "cues": Cues(clip_id=f"c{i:02d}", duration_s=1.0,
                                      frames=[FaceFrame(t=0.2, faces=1, aus={"AU12": 3.0 + i % 3})]
                                      ).model_dump(mode="json")})
             for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _shards(tmp_path, source, count: int = 3) -> list:
    outs = []
    for k in range(1, count + 1):
        out = tmp_path / f"part{k}.jsonl"
        run(read_items(source), out, reasoner=RulesReasoner(), source=source, shard=Shard(k, count))
        outs.append(out)
    return outs


def test_shards_merge_into_the_whole_run_in_input_order(tmp_path):
    source = _cues_jsonl(tmp_path, 12)
    whole = tmp_path / "whole.jsonl"
    run(read_items(source), whole, reasoner=RulesReasoner(), source=source)
    parts = _shards(tmp_path, source)
    assert all(json.loads(manifest_path(p).read_text())["shard"] == f"{k}/3" for k, p in enumerate(parts, 1))
    result = merge(parts, tmp_path / "merged.jsonl")
    assert (result.records, result.failed) == (12, {})
    assert (tmp_path / "merged.jsonl").read_text() == whole.read_text()
    manifest = json.loads(manifest_path(tmp_path / "merged.jsonl").read_text())
    assert [m["shard"] for m in manifest["merged"]] == ["1/3", "2/3", "3/3"] and "shard" not in manifest
    assert manifest["counts"] == {"records": 12, "failed": 0} and manifest["input"] == str(source)


def test_a_retry_after_an_error_record_is_the_clip_once(tmp_path):
    source = _cues_jsonl(tmp_path, 6)
    parts = _shards(tmp_path, source)
    record = json.loads(parts[0].read_text().splitlines()[0])
    with parts[0].open("a") as handle:  # a failed first try, then the retry of a resumed run
        handle.write(json.dumps({"clip": record["clip"], "error": "MediaError: boom"}) + "\n")
        handle.write(json.dumps(record) + "\n")
    result = merge(parts, tmp_path / "merged.jsonl")
    assert (result.records, result.failed) == (6, {})


def test_merge_refuses_missing_repeated_and_misplaced_clips_and_shards(tmp_path):
    source = _cues_jsonl(tmp_path, 12)
    parts = _shards(tmp_path, source)
    out = tmp_path / "merged.jsonl"
    with pytest.raises(UsageError, match=r"^shard 3/3 missing: pass the outputs of all 3 shards"):
        merge(parts[:2], out)
    with pytest.raises(UsageError, match=r"^shard 2/3 given twice: .*part2.jsonl and .*part2.jsonl"):
        merge([*parts, parts[1]], out)
    lines = parts[1].read_text().splitlines()
    dropped = json.loads(lines[0])["clip"]["id"]
    parts[1].write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(UsageError, match=rf"^1 clips of .*cues.jsonl are in no shard's output: {dropped};"):
        merge(parts, out)
    parts[1].write_text("\n".join(lines) + "\n" + parts[0].read_text().splitlines()[0] + "\n")
    with pytest.raises(UsageError, match=r"part2.jsonl:\d+: clip 'c\d\d' belongs to shard 1/3, not 2/3"):
        merge(parts, out)
    assert not out.exists()


def test_merge_refuses_outputs_that_are_not_shards_of_one_run(tmp_path):
    source = _cues_jsonl(tmp_path, 6)
    whole = tmp_path / "whole.jsonl"
    run(read_items(source), whole, reasoner=RulesReasoner(), source=source)
    with pytest.raises(UsageError, match=r"whole.jsonl: not a shard \(its manifest has no shard\)"):
        merge([whole], tmp_path / "m.jsonl")
    parts = _shards(tmp_path, source, 2)
    (tmp_path / "other").mkdir()
    other = _shards(tmp_path / "other", _cues_jsonl(tmp_path / "other", 6), 2)
    with pytest.raises(UsageError, match=r"differ in 'input': shards of one run share it"):
        merge([parts[0], other[1]], tmp_path / "m.jsonl")


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_shard_and_ray_mistakes_on_the_command_line_are_one_line(tmp_path, monkeypatch):
    source = _cues_jsonl(tmp_path, 2)
    for bad, message in (("4/3", "--shard 4/3: K must be between 1 and N"),
                         ("x", "--shard 'x': expected K/N with whole numbers")):
        result = _cli("explain", str(source), "--backend", "rules", "--shard", bad, "--out", str(tmp_path / "o.jsonl"))
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as where the cluster extra is not installed
    result = _cli("explain", str(source), "--backend", "rules", "--ray", "local", "--out", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert "--ray needs Ray: pip install 'affectreason[cluster]'" in result.output and "Traceback" not in result.output
    result = _cli("merge", str(tmp_path / "nothing.jsonl"), "--out", str(tmp_path / "m.jsonl"))
    assert result.exit_code == 2 and "nothing.jsonl: no such output" in result.output
    assert not (tmp_path / "o.jsonl").exists()
