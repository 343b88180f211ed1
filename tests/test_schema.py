"""Data contracts: exact JSON round trips, label normalisation, validation errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from affectreason.schema import (
    AUEvent,
    Clip,
    Clue,
    Cues,
    Explanation,
    FaceFrame,
    LabelRecord,
    Prosody,
    Provenance,
    Transcript,
    Word,
    normalize_labels,
)


def _cues() -> Cues:
    return Cues(
        clip_id="sample_00000007",
        duration_s=3.52,
        fps=25.0,
        frames=[
            FaceFrame(t=0.0, faces=1, main_face_box=(0.25, 0.1, 0.4, 0.55), aus={"AU06": 1.25, "AU12": 2.5}),
            FaceFrame(t=0.5, faces=2, aus={"AU01": 0.0, "AU45": 5.0}),
            FaceFrame(t=1.0, faces=0),
        ],
        apex_t=0.5,
        au_events=[AUEvent(au="AU12", onset=0.1, apex=0.5, offset=1.2, peak=2.5)],
        prosody=Prosody(f0_mean_hz=182.4, f0_sd_hz=21.7, f0_range_st=7.25, pause_count=2, pause_total_s=0.41,
                        hnr_db=12.5, descriptors=["high, rising pitch", "fast speech"]),
        transcript=Transcript(
            text="I did it!", source="asr", language="en",
            words=[Word(text="I", start=0.2, end=0.3, probability=0.98), Word(text="did", start=0.3, end=0.55),
                   Word(text="it!", start=0.55, end=0.8, probability=0.5)],
        ),
        provenance=[
            Provenance(extractor="mediapipe", version="0.10.14",
                       settings={"model": "face_landmarker", "frames": 8, "threshold": 0.5, "gpu": False,
                                 "seed": None}),
            Provenance(extractor="praat-parselmouth", version="0.4.5"),
        ],
        warnings=["no face on frame at t=1.0"],
    )


def _explanation() -> Explanation:
    return Explanation(
        clip_id="sample_00000007",
        observations=[
            Clue(modality="face", text="Lip corners pulled up.", start=0.1, end=1.2, cue_ref="AU12"),
            Clue(modality="voice", text="High, rising pitch.", cue_ref="f0_mean_hz"),
            Clue(modality="text", text="Says 'I did it!'", cue_ref="word:2"),
        ],
        interpretation="Smiling and excited speech suggest joy.",
        conclusion="The speaker is happy and excited.",
        labels=["Happy", "excited"],
        valence=0.8,
        arousal=0.6,
        raw_text="{...}",
        backend="vllm",
        model="qwen2.5-omni-7b",
        parse_status="partial",
        parse_errors=["valence clipped"],
    )


@pytest.mark.parametrize(
    "model",
    [
        Clip(path="/data/clip.mp4", id="clip", transcript="hello", subtitles="/data/clip.srt", start=1.5, end=4.25),
        Clip(path="clip.mp4", id="c2"),
        _cues(),
        Cues(clip_id="empty"),
        Clue(modality="multimodal", text="Smile while saying sad words.", start=0.0, end=2.0, cue_ref="AU12"),
        _explanation(),
        Explanation(),
        LabelRecord(name="sample_00000000", labels=["happy", "relaxed"], reasoning="Smiles.", sentiment=1.2),
        LabelRecord(name="x"),
    ],
    ids=["clip", "clip-minimal", "cues", "cues-empty", "clue", "explanation", "explanation-empty",
         "labelrecord", "labelrecord-minimal"],
)
def test_json_round_trip_is_exact(model):
    again = type(model).model_validate_json(model.model_dump_json())
    assert again == model
    # and a second trip gives the identical JSON text
    assert again.model_dump_json() == model.model_dump_json()


def test_cues_round_trip_keeps_types():
    again = Cues.model_validate_json(_cues().model_dump_json())
    assert again.frames[0].main_face_box == (0.25, 0.1, 0.4, 0.55)
    assert isinstance(again.frames[0].main_face_box, tuple)
    assert again.frames[1].aus == {"AU01": 0.0, "AU45": 5.0}
    settings = again.provenance[0].settings
    # union members keep their JSON types: int stays int, bool stays bool, None stays None
    assert settings == {"model": "face_landmarker", "frames": 8, "threshold": 0.5, "gpu": False, "seed": None}
    assert type(settings["frames"]) is int and type(settings["gpu"]) is bool
    assert again.transcript.words[1].probability is None
    assert again.au_events[0].peak == 2.5


def test_normalize_labels_case_whitespace_duplicates_empties_order():
    raw = ["  Happy ", "SAD", "happy", "", "   ", "very   Sad\t", "sad", "Relaxed"]
    # lower + strip + inner whitespace collapsed; "" and "   " dropped; repeats dropped keeping first position
    assert normalize_labels(raw) == ["happy", "sad", "very sad", "relaxed"]


def test_label_models_normalise_labels():
    assert LabelRecord(name="a", labels=["Joy", " joy ", "Worry"]).labels == ["joy", "worry"]
    assert Explanation(labels=["B", "a", "b", ""]).labels == ["b", "a"]


@pytest.mark.parametrize("key", ["AU1", "au01", "AU001", "AU12_r", "smile"])
def test_invalid_au_key_rejected(key):
    with pytest.raises(ValidationError, match=f"AU key '{key}' is not one of AU01..AU45"):
        FaceFrame(t=0.0, faces=1, aus={key: 1.0})


@pytest.mark.parametrize("value", [5.5, -0.1])
def test_au_intensity_out_of_range_rejected(value):
    with pytest.raises(ValidationError, match=f"AU12 intensity {value} is outside the 0-5 scale"):
        FaceFrame(t=0.0, faces=1, aus={"AU12": value})


def test_au_event_peak_out_of_range_rejected():
    with pytest.raises(ValidationError, match="less than or equal to 5"):
        AUEvent(au="AU12", onset=0.0, apex=0.5, offset=1.0, peak=5.5)


@pytest.mark.parametrize(
    "model, data",
    [
        (LabelRecord, {"name": "a", "label": ["happy"]}),
        (Clip, {"path": "a.mp4", "id": "a", "fps": 25}),
        (Explanation, {"clip_id": "a", "conclusions": "typo"}),
        (Cues, {"clip_id": "a", "frames": [{"t": 0, "faces": 1, "au": {}}]}),
    ],
)
def test_unknown_field_rejected(model, data):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(data)


def test_other_constraints():
    with pytest.raises(ValidationError, match="at least 1 character"):
        LabelRecord(name="")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Clip(path="a", id="a", start=-1.0)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Explanation(valence=1.5)
    with pytest.raises(ValidationError, match="Input should be 'face', 'voice', 'text', 'scene' or 'multimodal'"):
        Clue(modality="smell", text="x")


def test_reasoning_text_joins_stripped_parts():
    exp = Explanation(
        observations=[Clue(modality="face", text="  Smiles. "), Clue(modality="voice", text="   "),
                      Clue(modality="text", text="Says thanks.")],
        interpretation=" Grateful. ",
        conclusion="",
    )
    # blank clue and empty conclusion are left out; parts joined by one space
    assert exp.reasoning_text() == "Smiles. Says thanks. Grateful."
    assert _explanation().reasoning_text() == (
        "Lip corners pulled up. High, rising pitch. Says 'I did it!' "
        "Smiling and excited speech suggest joy. The speaker is happy and excited."
    )
    assert Explanation().reasoning_text() == ""


@pytest.mark.parametrize("key", ["AU00", "AU99"])
def test_au_key_outside_documented_range_rejected(key):
    with pytest.raises(ValidationError):
        FaceFrame(t=0.0, faces=1, aus={key: 1.0})
