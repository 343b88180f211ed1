"""`affectreason explain` end to end on the bundled example clip and on a folder with a bad clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.eval.classification import label_polarity
from affectreason.eval.wheel import EmotionWheel

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"
runner = CliRunner()


@pytest.fixture(scope="module")
def example_json():
    out = runner.invoke(app, ["explain", str(EXAMPLE), "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_example_clip_is_explained_as_positive_with_grounded_clues(example_json, wheel: EmotionWheel):
    explanation = example_json["explanation"]
    assert explanation["backend"] == "rules"
    assert any(label_polarity(label, wheel) > 0 for label in explanation["labels"])
    face = explanation["observations"][0]
    assert face["modality"] == "face" and "AU12" in face["text"] and "AU06" in face["text"]
    assert face["start"] is not None and face["end"] is not None
    assert explanation["grounding"]["score"] == 1.0
    assert example_json["cues"]["transcript"]["source"] == "asr"
    # the README's first command: the label `delighted`, AU12 at its ceiling (the clip is one still smile)
    assert explanation["labels"] == ["delighted"]
    au12 = max(e["peak"] for e in example_json["cues"]["au_events"] if e["au"] == "AU12")
    assert au12 == 5.0 and "AU12 (lip corner puller) at 5.0/5" in face["text"]


def test_readable_output_and_auto_note():
    out = runner.invoke(app, ["explain", str(EXAMPLE)])
    assert out.exit_code == 0, out.output
    assert "chain of thought (rules)" in out.output and "grounding 1.00" in out.output
    assert "using the rules engine" in out.output


def test_folder_batch_keeps_good_clips(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "good.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video")
    results = tmp_path / "results.jsonl"
    out = runner.invoke(app, ["explain", str(folder), "--out", str(results), "--workers", "1"])
    assert out.exit_code == 1  # some clips failed
    records = {r["clip"]["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert "cannot be decoded" in records["broken"]["error"]
    assert records["good"]["explanation"]["grounding"]["score"] == 1.0
    again = runner.invoke(app, ["explain", str(folder), "--out", str(results), "--workers", "1"])
    assert "1 already done before" in again.output


def test_bad_inputs(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    out = runner.invoke(app, ["explain", str(empty)])
    assert out.exit_code == 2 and "empty" in out.output and "Traceback" not in out.output
    out = runner.invoke(app, ["explain", str(EXAMPLE), "--backend", "gpt"])
    assert out.exit_code == 2 and "unknown backend" in out.output
    out = runner.invoke(app, ["explain", str(tmp_path)])
    assert out.exit_code == 2 and "--out" in out.output


def test_openface_csv_replaces_mediapipe_aus(tmp_path):
    csv = tmp_path / "clip.csv"
    csv.write_text("frame, face_id, timestamp, confidence, success, AU04_r, AU12_r\n"
                   "1, 0, 0.0, 0.98, 1, 3.0, 0.0\n2, 0, 0.5, 0.98, 1, 3.5, 0.0\n")
    out = runner.invoke(app, ["explain", str(EXAMPLE), "--openface", str(csv), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [p["extractor"] for p in data["cues"]["provenance"]][1] == "OpenFace 2.0 CSV"
    assert data["cues"]["frames"][1]["aus"] == {"AU04": 3.5, "AU12": 0.0}
    face = data["explanation"]["observations"][0]
    assert "AU04" in face["text"] and "AU12" not in face["text"]


def test_max_duration_cuts_a_long_clip_with_a_warning():
    out = runner.invoke(app, ["cues", str(EXAMPLE), "--json", "--max-duration", "1", "--no-asr"])
    assert out.exit_code == 0, out.output
    cues = json.loads(out.stdout)
    assert any("longer than 1 s: only the start was read" in w for w in cues["warnings"])
    assert max(f["t"] for f in cues["frames"]) <= 1.0 and cues["duration_s"] > 2.5  # the clip lasts 3 s
