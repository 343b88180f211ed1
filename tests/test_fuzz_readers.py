"""Every reader of user files, fed mutated copies of valid files (hypothesis, fixed seed, bounded examples):
it reads them or refuses with an affectreason error naming the file; it never raises anything else."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from affectreason.errors import AffectReasonError

EXAMPLES = int(__import__("os").environ.get("AFFECTREASON_FUZZ_EXAMPLES", "150"))  # CI: 150, bounded
VALID = {
    "gold.csv": b"name,openset,reasoning\nsample_1,\"['happy', 'relaxed']\",She smiles.\nsample_2,sad,\n",
    "pred.jsonl": b'{"name": "sample_1", "labels": ["happy"]}\n{"clip_id": "sample_2", "observations": [], '
                  b'"interpretation": "", "conclusion": "", "labels": ["sad"]}\n',
    "talk.srt": b"1\n00:00:00,000 --> 00:00:01,500\nI am so happy\n\n2\n00:00:01,500 --> 00:00:03,000\nto see you\n",
    "talk.vtt": b"WEBVTT\n\n00:00.000 --> 00:01.000\nhello there\n",
    "face.csv": b"frame, face_id, timestamp, confidence, success, AU06_r, AU12_r\n1, 0, 0.0, 0.98, 1, 1.5, 3.2\n"
                b"2, 0, 0.04, 0.97, 1, 1.7, 3.4\n",
    "cues.jsonl": json.dumps({"clip": {"path": "a.mp4", "id": "a"}, "cues": {"clip_id": "a"}}).encode() + b"\n",
    "recipe.yaml": b"model: {path: /nonexistent}\ndata: {train: /nonexistent.jsonl}\noutput_dir: /tmp/x\n",
    "task.yaml": b"name: t\nversion: 1\ndescription: d\ndata: {recipe: meld}\ninput: transcript\n"
                 b"metrics: [{metric: hit}]\n",
    "table.jsonl": b'{"name": "a", "transcript": "hi", "emotion": "happy"}\n{"name": "b", "emotion": "sad"}\n',
    "affectreason_adapter.json": b'{"prompt": "reason/explain_tuned", "frames": "video", "fps": 2.0}',
}
MUTATION = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 6),
                              st.binary(max_size=6) | st.sampled_from([b"\r", b'"', b",", b"\n", b"\x00", b"\xff",
                                                                       b"{", b"[", b"-->", b"\t"])),
                    max_size=6)


def _mutate(data: bytes, edits) -> bytes:
    for at, cut, insert in edits:
        at = at % (len(data) + 1)
        data = data[:at] + insert + data[at + cut:]
    return data


def _read(name: str, path: Path) -> None:
    if name in ("gold.csv", "pred.jsonl"):
        from affectreason.eval.records import read_records

        read_records(path)
    elif name.startswith("talk."):
        from affectreason.cues.speech import read_subtitles

        read_subtitles(path)
    elif name == "face.csv":
        from affectreason.cues.face import read_openface_csv

        read_openface_csv(path)
    elif name == "cues.jsonl":
        from affectreason.batch import read_items

        read_items(path)
    elif name == "task.yaml":
        from affectreason.suites.task import load_task

        load_task(path)
    elif name == "table.jsonl":
        from affectreason.data.tables import read_table

        read_table("meld", path, "auto", "name")
    elif name == "affectreason_adapter.json":
        from affectreason.models.adapter import adapter_info

        adapter_info(path.parent)
    else:
        from affectreason.train.recipe import load_recipe

        load_recipe(path)


@seed(20261201)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(VALID)), edits=MUTATION)
def test_mutated_user_files_are_read_or_refused_by_name(tmp_path, name, edits):
    path = tmp_path / name
    path.write_bytes(_mutate(VALID[name], edits))
    try:
        _read(name, path)
    except AffectReasonError as exc:
        assert str(path) in str(exc) or path.name in str(exc), str(exc)
