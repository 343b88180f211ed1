"""From a clip to Cues with every real model: one clip, a resumable batch, the cue text, and the CLI."""

from __future__ import annotations

import json
import math
import shutil
import wave

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from affectreason.batch import Item
from affectreason.batch import extract as _extract
from affectreason.cli import app
from affectreason.cues.pipeline import CueConfig, CueExtractor
from affectreason.cues.textualize import textualize
from affectreason.media import MediaError, clips_in
from affectreason.schema import Clip, Cues, Prosody
from tests.media_factory import SENTENCE, word_error_rate

pytestmark = pytest.mark.integration

runner = CliRunner()


def extract_batch(clips, out, workers):
    """The cue batch as counts (the batch runner without a reasoner)."""
    return _extract([Item(clip) for clip in clips], out, workers=workers).counts()


@pytest.fixture(scope="module")
def extractor() -> CueExtractor:
    return CueExtractor()


@pytest.fixture(scope="module")
def astronaut(extractor, media) -> Cues:
    return extractor.extract(Clip(path=str(media["astronaut"]), id="astronaut"))


def _extractors(cues: Cues) -> list[str]:
    return [p.extractor for p in cues.provenance]


# --- one clip --------------------------------------------------------------------------------------


def test_astronaut_face_cues(astronaut):
    assert astronaut.clip_id == "astronaut"
    assert astronaut.duration_s == pytest.approx(3.0, abs=0.05)
    assert astronaut.fps == 5.0
    assert len(astronaut.frames) == 15 and all(f.faces == 1 for f in astronaut.frames)
    events = {e.au: e for e in astronaut.au_events}
    for au in ("AU12", "AU06"):
        assert events[au].peak >= 2
        assert events[au].onset <= events[au].apex <= events[au].offset
    assert astronaut.apex_t is not None
    assert astronaut.apex_t in [f.t for f in astronaut.frames]


def test_astronaut_voice_and_speech(astronaut):
    p = astronaut.prosody
    assert p is not None and p.f0_mean_hz > 0 and p.intensity_mean_db > 0 and p.speech_rate_syl_per_s > 0
    assert p.descriptors
    t = astronaut.transcript
    assert t.source == "asr" and t.language == "en"
    assert word_error_rate(SENTENCE, t.text) <= 0.3, t.text
    assert t.words and all(0 <= w.start < w.end <= astronaut.duration_s for w in t.words)


def test_astronaut_provenance_and_no_warnings(astronaut):
    names = " ".join(_extractors(astronaut)).lower()
    for tool in ("mediapipe", "praat", "faster-whisper"):
        assert tool in names
    assert all(p.version for p in astronaut.provenance)
    assert astronaut.warnings == []


def test_cues_json_round_trips_exactly(astronaut):
    assert Cues.model_validate_json(astronaut.model_dump_json()) == astronaut


def test_image_clip(extractor, media):
    cues = extractor.extract(Clip(path=str(media["grace_jpg"]), id="grace"))
    assert len(cues.frames) == 1 and cues.frames[0].t == 0.0 and cues.frames[0].faces == 1
    assert cues.prosody is None and cues.transcript is None
    names = " ".join(_extractors(cues)).lower()
    assert "mediapipe" in names and "praat" not in names and "faster-whisper" not in names
    assert cues.frames[0].aus["AU12"] < 1


def test_video_without_audio(extractor, media):
    cues = extractor.extract(Clip(path=str(media["no_audio"]), id="no_audio"))
    assert "no audio track" in cues.warnings
    assert cues.prosody is None and cues.transcript is None
    assert len(cues.frames) == 10 and all(f.faces == 1 for f in cues.frames)


def test_no_face_and_silent_audio(extractor, media):
    cues = extractor.extract(Clip(path=str(media["no_face_silent"]), id="blank"))
    assert "no face detected in any frame" in cues.warnings
    assert any("silent" in w for w in cues.warnings)
    assert all(f.faces == 0 for f in cues.frames) and cues.au_events == [] and cues.apex_t is None
    assert cues.prosody is None and cues.transcript is None


def test_audio_only_clip(extractor, media):
    cues = extractor.extract(Clip(path=str(media["speech_wav"]), id="speech"))
    assert any("no video" in w for w in cues.warnings)
    assert cues.frames == [] and cues.fps is None and cues.au_events == []
    assert cues.duration_s == pytest.approx(2.24, abs=0.05)
    assert cues.prosody is not None
    assert cues.transcript.source == "asr" and word_error_rate(SENTENCE, cues.transcript.text) <= 0.3


def test_a_tone_has_a_voice_but_no_words(extractor, tmp_path):
    path = tmp_path / "tone.wav"
    samples = (0.3 * np.sin(2 * np.pi * 220.0 * np.arange(24_000) / 16_000) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16_000)
        handle.writeframes(samples.tobytes())
    cues = extractor.extract(Clip(path=str(path), id="tone"))
    assert cues.prosody.f0_mean_hz == pytest.approx(220.0, abs=1.0)
    assert cues.transcript.source == "asr" and cues.transcript.text == "" and cues.transcript.words == []
    assert "no speech recognised" in cues.warnings


def test_given_transcript_skips_asr(extractor, media):
    cues = extractor.extract(Clip(path=str(media["astronaut"]), id="given", transcript="given words"))
    assert cues.transcript.source == "given" and cues.transcript.text == "given words"
    assert "faster-whisper" not in " ".join(_extractors(cues))


def test_subtitles_replace_asr(extractor, media, tmp_file):
    srt = tmp_file("astronaut.srt", "1\n00:00:00,000 --> 00:00:02,000\nI am so happy to see you again today.\n")
    cues = extractor.extract(Clip(path=str(media["astronaut"]), id="subs", subtitles=str(srt)))
    assert cues.transcript.source == "subtitles"
    assert cues.transcript.text == SENTENCE
    assert len(cues.transcript.words) == 9
    assert "faster-whisper" not in " ".join(_extractors(cues))


def test_overlong_clip_is_cut_with_warnings(media):
    cues = CueExtractor(CueConfig(max_duration_s=1.0, asr=False)).extract(Clip(path=str(media["astronaut"]), id="a"))
    assert cues.warnings == ["video longer than 1 s: only the start was read",
                             "audio longer than 1 s: only the start was read"]
    assert [f.t for f in cues.frames] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], abs=1e-3)
    assert cues.transcript is None  # asr=False


@pytest.mark.parametrize(("astronaut_px", "main_is_astronaut"), [(400, True), (300, False)])
def test_two_faces_warn_and_the_larger_one_is_main(extractor, media, tmp_path, astronaut_px, main_is_astronaut):
    """The smiling astronaut's face (cropped, scaled) beside Grace Hopper: the bigger face is the main one."""
    face = Image.open(media["astronaut_png"]).convert("RGB").crop((120, 20, 340, 240))
    canvas = Image.new("RGB", (900, 450), (128, 128, 128))
    canvas.paste(face.resize((astronaut_px, astronaut_px)), (10, (450 - astronaut_px) // 2))
    canvas.paste(Image.open(media["grace_jpg"]).convert("RGB").resize((384, 450)), (480, 0))
    canvas.save(tmp_path / "two.png")
    cues = extractor.extract(Clip(path=str(tmp_path / "two.png"), id="two"))
    (frame,) = cues.frames
    assert frame.faces == 2
    assert "several faces (up to 2); AUs are of the main face" in cues.warnings
    x, _, w, _ = frame.main_face_box
    if main_is_astronaut:
        assert x + w / 2 < 0.5 and frame.aus["AU12"] >= 2
    else:
        assert x + w / 2 > 0.5 and frame.aus["AU12"] < 1


@pytest.mark.parametrize(("name", "message"), [("empty", "empty"), ("truncated", "cannot be decoded")])
def test_unreadable_clips_raise_media_error(extractor, media, name, message):
    with pytest.raises(MediaError, match=message):
        extractor.extract(Clip(path=str(media[name]), id=name))


# --- batches ---------------------------------------------------------------------------------------


def test_batch_records_results_and_errors_and_resumes(media, tmp_path):
    names = ("astronaut", "grace_jpg", "empty", "truncated")
    clips = [Clip(path=str(media[name]), id=f"clip-{name}") for name in names]
    out = tmp_path / "cues.jsonl"
    assert extract_batch(clips, out, workers=2) == {"skipped": 0, "ok": 2, "failed": 2}
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4
    ok = {r["clip"]["id"]: Cues.model_validate(r["cues"]) for r in records if "cues" in r}
    errors = {r["clip"]["id"]: r["error"] for r in records if "error" in r}
    assert set(ok) == {"clip-astronaut", "clip-grace_jpg"}
    assert ok["clip-astronaut"].clip_id == "clip-astronaut"
    assert max(e.peak for e in ok["clip-astronaut"].au_events if e.au == "AU12") >= 2
    assert set(errors) == {"clip-empty", "clip-truncated"}
    assert "MediaError" in errors["clip-empty"] and "empty" in errors["clip-empty"]
    assert "cannot be decoded" in errors["clip-truncated"]

    # a re-run keeps the finished clips and retries only the failed ones
    assert extract_batch(clips, out, workers=2) == {"skipped": 2, "ok": 0, "failed": 2}
    again = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(again) == 6
    assert sorted(r["clip"]["id"] for r in again[4:]) == ["clip-empty", "clip-truncated"]


def test_batch_skipped_counts_only_clips_of_this_run(tmp_path):
    out = tmp_path / "cues.jsonl"
    done = [{"clip": {"path": f"/clips/{i}.mp4", "id": i}, "cues": Cues(clip_id=i).model_dump(mode="json")}
            for i in ("A", "B")]
    out.write_text("".join(json.dumps(r) + "\n" for r in done), encoding="utf-8")
    counts = extract_batch([Clip(path="/clips/A.mp4", id="A")], out, workers=1)
    assert counts == {"skipped": 1, "ok": 0, "failed": 0}


def test_clips_in_folder_picks_up_same_stem_subtitles(media, tmp_path):
    shutil.copy(media["astronaut"], tmp_path / "talk.mp4")
    (tmp_path / "talk.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhi\n", encoding="utf-8")
    shutil.copy(media["speech_wav"], tmp_path / "voice.wav")
    (tmp_path / "voice.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n", encoding="utf-8")
    shutil.copy(media["grace_jpg"], tmp_path / "face.jpg")
    (tmp_path / "readme.md").write_text("not a clip", encoding="utf-8")
    clips = clips_in(tmp_path)
    assert [c.id for c in clips] == ["face", "talk", "voice"]
    by_id = {c.id: c for c in clips}
    assert by_id["talk"].subtitles == str(tmp_path / "talk.srt")
    assert by_id["voice"].subtitles == str(tmp_path / "voice.vtt")
    assert by_id["face"].subtitles is None
    assert by_id["talk"].path == str(tmp_path / "talk.mp4")


def test_clips_in_single_file(media):
    assert clips_in(media["astronaut"]) == [Clip(path=str(media["astronaut"]), id="astronaut")]


def test_clips_in_empty_folder(tmp_path):
    with pytest.raises(MediaError, match="no clips"):
        clips_in(tmp_path)


# --- the cue text ----------------------------------------------------------------------------------


def test_textualize_names_the_cues(astronaut):
    text = textualize(astronaut)
    assert "AU12" in text and "AU06" in text
    assert "Hz" in text
    assert f'"{astronaut.transcript.text}"' in text
    assert "[Provenance]" in text and "words:" in text
    assert text.index("[Face]") < text.index("[Voice]") < text.index("[Speech]")


def test_textualize_drops_provenance_then_word_times(astronaut):
    full = textualize(astronaut, max_tokens=10_000)
    provenance = full.splitlines()[-1]
    assert provenance.startswith("[Provenance]")
    without_provenance = full[: -len(provenance) - 1]
    budget = math.ceil(len(without_provenance) / 4)
    assert textualize(astronaut, max_tokens=budget) == without_provenance
    shorter = textualize(astronaut, max_tokens=budget - 1)
    assert "words:" not in shorter and "[Provenance]" not in shorter
    assert f'"{astronaut.transcript.text}"' in shorter and "AU12" in shorter


def test_textualize_tight_budget(astronaut):
    text = textualize(astronaut, max_tokens=40)
    assert len(text) <= 160
    assert "[Provenance]" not in text and "words:" not in text and "@" not in text
    assert text.startswith("[Face]") and "AU12" in text


def test_textualize_partial_prosody():
    """Cues from elsewhere may carry only some figures: the text says what is known and nothing else."""
    cues = Cues(clip_id="partial", prosody=Prosody(speech_rate_syl_per_s=4.0, descriptors=["moderate pace"]))
    text = textualize(cues)
    assert text == "[Voice] rate 4.0 syl/s -> moderate pace."


# --- the command line ------------------------------------------------------------------------------


def test_cli_cues_json(media):
    result = runner.invoke(app, ["cues", str(media["astronaut"]), "--json"])
    assert result.exit_code == 0, result.output
    cues = Cues.model_validate_json(result.stdout.strip().splitlines()[-1])
    assert cues.clip_id == "astronaut"
    assert any(e.au == "AU12" and e.peak >= 2 for e in cues.au_events)
    assert cues.transcript.source == "asr"


def test_cli_cues_plot(media, tmp_path):
    png = tmp_path / "out.png"
    result = runner.invoke(app, ["cues", str(media["astronaut"]), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000
    assert "AU12" in result.stdout  # the cue text is printed too


def test_cli_folder_needs_out(media, tmp_path):
    shutil.copy(media["grace_jpg"], tmp_path / "face.jpg")
    result = runner.invoke(app, ["cues", str(tmp_path)])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_cli_empty_file_is_a_clean_error(media):
    result = runner.invoke(app, ["cues", str(media["empty"])])
    assert result.exit_code == 2
    assert "empty" in result.output
    assert "Traceback" not in result.output
