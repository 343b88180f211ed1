"""MediaPipe blendshapes (and landmark geometry) -> FACS Action Unit intensities, 0-5 (OpenFace ``_r`` scale).

The whole mapping is this table. Each AU is the mean of its left/right blendshapes, divided by the
score at which we call the AU maximal (``saturation``), times 5, clipped to [0, 5]. Saturations are
set so that a clear expression lands at 2-4 and a maximal one at 5; they are estimates, not a
calibration against FACS-coded video (none ships offline), so treat intensities as ordinal.

Two AUs need more than one blendshape, for reasons measured on real faces:
- MediaPipe's ``cheekSquint`` stays near 0 even on a broad Duchenne smile (0.00 on
  ``skimage.data.astronaut()``), while ``eyeSquint`` mixes cheek raising (AU06) with lid tightening
  (AU07): 0.31 on that smile, 0.62 on the unsmiling ``grace_hopper.jpg``. We attribute ``eyeSquint``
  to AU06 in proportion to the smile (``mouthSmile``) and the rest to AU07.
- AU25 (lips part) has no blendshape: it comes from the inner-lip gap (landmarks 13/14) relative to
  the distance between the outer eye corners (landmarks 33/263).
"""

from __future__ import annotations

import numpy as np

# AU: (blendshape names averaged, saturation score)
BLENDSHAPE_AUS: dict[str, tuple[tuple[str, ...], float]] = {
    "AU01": (("browInnerUp",), 0.6),  # inner brow raiser
    "AU02": (("browOuterUpLeft", "browOuterUpRight"), 0.6),  # outer brow raiser
    "AU04": (("browDownLeft", "browDownRight"), 0.6),  # brow lowerer
    "AU05": (("eyeWideLeft", "eyeWideRight"), 0.6),  # upper lid raiser
    "AU09": (("noseSneerLeft", "noseSneerRight"), 0.6),  # nose wrinkler
    "AU10": (("mouthUpperUpLeft", "mouthUpperUpRight"), 0.8),  # upper lip raiser
    "AU12": (("mouthSmileLeft", "mouthSmileRight"), 0.8),  # lip corner puller
    "AU14": (("mouthDimpleLeft", "mouthDimpleRight"), 0.6),  # dimpler
    "AU15": (("mouthFrownLeft", "mouthFrownRight"), 0.6),  # lip corner depressor
    "AU17": (("mouthShrugLower",), 0.6),  # chin raiser
    "AU18": (("mouthPucker",), 0.8),  # lip pucker
    "AU20": (("mouthStretchLeft", "mouthStretchRight"), 0.6),  # lip stretcher
    "AU22": (("mouthFunnel",), 0.8),  # lip funneler
    "AU23": (("mouthPressLeft", "mouthPressRight"), 0.6),  # lip tightener
    "AU26": (("jawOpen",), 0.6),  # jaw drop
    "AU45": (("eyeBlinkLeft", "eyeBlinkRight"), 0.8),  # blink
}
AU06_SATURATION = 0.5  # cheek raiser: max(cheekSquint, eyeSquint x mouthSmile)
AU07_SATURATION = 0.7  # lid tightener: eyeSquint x (1 - mouthSmile)
AU25_GAP_START, AU25_GAP_FULL = 0.03, 0.35  # inner-lip gap / outer-eye-corner distance
AU_NAMES = {
    "AU01": "inner brow raiser", "AU02": "outer brow raiser", "AU04": "brow lowerer", "AU05": "upper lid raiser",
    "AU06": "cheek raiser", "AU07": "lid tightener", "AU09": "nose wrinkler", "AU10": "upper lip raiser",
    "AU12": "lip corner puller", "AU14": "dimpler", "AU15": "lip corner depressor", "AU17": "chin raiser",
    "AU18": "lip pucker", "AU20": "lip stretcher", "AU22": "lip funneler", "AU23": "lip tightener",
    "AU25": "lips part", "AU26": "jaw drop", "AU45": "blink",
}
UPPER_LIP, LOWER_LIP, LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 13, 14, 33, 263


def _scale(score: float, saturation: float) -> float:
    return float(np.clip(5.0 * score / saturation, 0.0, 5.0))


def lips_part(landmarks: np.ndarray) -> float:
    """AU25 intensity from (478, 2+) normalised landmark coordinates."""
    eyes = np.linalg.norm(landmarks[LEFT_EYE_OUTER, :2] - landmarks[RIGHT_EYE_OUTER, :2])
    if eyes <= 0:
        return 0.0
    gap = np.linalg.norm(landmarks[UPPER_LIP, :2] - landmarks[LOWER_LIP, :2]) / eyes
    return float(np.clip(5.0 * (gap - AU25_GAP_START) / (AU25_GAP_FULL - AU25_GAP_START), 0.0, 5.0))


def blendshapes_to_aus(blendshapes: dict[str, float], landmarks: np.ndarray | None = None) -> dict[str, float]:
    """AU intensities (0-5, rounded to 0.01) from one face's blendshape scores and landmarks.

    >>> aus = blendshapes_to_aus({"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "eyeSquintLeft": 0.3,
    ...                           "eyeSquintRight": 0.3})
    >>> aus["AU12"], aus["AU06"], aus["AU07"]
    (5.0, 2.7, 0.21)
    """
    get = blendshapes.get
    aus = {au: _scale(float(np.mean([get(n, 0.0) for n in names])), sat) for au, (names, sat) in BLENDSHAPE_AUS.items()}
    smile = float(np.mean([get("mouthSmileLeft", 0.0), get("mouthSmileRight", 0.0)]))
    squint = float(np.mean([get("eyeSquintLeft", 0.0), get("eyeSquintRight", 0.0)]))
    cheek = float(np.mean([get("cheekSquintLeft", 0.0), get("cheekSquintRight", 0.0)]))
    aus["AU06"] = _scale(max(cheek, squint * smile), AU06_SATURATION)
    aus["AU07"] = _scale(squint * (1.0 - smile), AU07_SATURATION)
    aus["AU25"] = lips_part(landmarks) if landmarks is not None else 0.0
    return {au: round(aus[au], 2) for au in sorted(aus)}
