"""Data contracts shared by every room of affectreason.

Everything that crosses a module boundary or lands on disk is one of these models, and each
round-trips through JSON exactly (``Model.model_validate_json(m.model_dump_json()) == m``).
Conventions:
- times are seconds from the start of the clip (float);
- AU intensities use the OpenFace ``AUxx_r`` scale, 0 (absent) to 5 (maximum), keyed ``AU01``..``AU45``;
- emotion labels are open vocabulary, stored lower case and stripped, order kept, duplicates dropped.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from affectreason.labels import normalize_labels  # the validators below; importable from here as before

AU_ID = re.compile(r"^AU(0[1-9]|[1-3]\d|4[0-5])$")

Modality = Literal["face", "voice", "text", "scene", "multimodal"]
ParseStatus = Literal["ok", "partial", "failed"]


class Contract(BaseModel):
    """Base: unknown fields are errors, so a typo in a file is caught where it is read."""

    model_config = ConfigDict(extra="forbid")


class Clip(Contract):
    """A unit of input: a media file plus what is known about it."""

    path: str
    id: str
    transcript: str | None = None
    subtitles: str | None = Field(default=None, description="path to .srt/.vtt/.txt subtitles")
    openface_csv: str | None = Field(default=None, description="OpenFace 2.0 CSV to use instead of MediaPipe AUs")
    start: float | None = Field(default=None, ge=0)
    end: float | None = Field(default=None, ge=0)


class FaceFrame(Contract):
    """Face measurements on one sampled frame."""

    t: float = Field(ge=0)
    faces: int = Field(ge=0, description="faces detected on this frame")
    main_face_box: tuple[float, float, float, float] | None = Field(
        default=None, description="x, y, width, height of the main face, relative to the frame (0-1)"
    )
    aus: dict[str, float] = Field(default_factory=dict)
    expression: dict[str, float] = Field(default_factory=dict, description="expression-classifier probabilities "
                                         "of the main face (label -> 0-1); empty when not classified")

    @field_validator("aus")
    @classmethod
    def _au_keys(cls, aus: dict[str, float]) -> dict[str, float]:
        for key, value in aus.items():
            if not AU_ID.match(key):
                raise ValueError(f"AU key {key!r} is not one of AU01..AU45")
            if not 0.0 <= value <= 5.0:
                raise ValueError(f"{key} intensity {value} is outside the 0-5 scale")
        return aus


class AUEvent(Contract):
    """Onset, apex and offset of one Action Unit's strongest activation."""

    au: str
    onset: float
    apex: float
    offset: float
    peak: float = Field(ge=0, le=5)


class ExpressionSummary(Contract):
    """The expression classifier's reading of the main face over a clip."""

    mean: dict[str, float] = Field(description="mean probability per label over the classified frames, highest first")
    top: str = Field(description="the label with the highest mean probability")
    apex_t: float = Field(description="time of the strongest non-neutral reading")
    apex_label: str
    apex_probability: float = Field(ge=0, le=1)
    frames: int = Field(ge=1, description="frames the classifier read")


class Prosody(Contract):
    """Utterance-level voice summary (Praat conventions: Hz, semitones re 100 Hz, dB)."""

    f0_mean_hz: float | None = None
    f0_sd_hz: float | None = None
    f0_min_hz: float | None = None
    f0_max_hz: float | None = None
    f0_range_st: float | None = None
    f0_slope_hz_per_s: float | None = None
    f0_slope_st_per_s: float | None = None
    intensity_mean_db: float | None = None
    intensity_sd_db: float | None = None
    speech_rate_syl_per_s: float | None = None
    pause_count: int | None = None
    pause_total_s: float | None = None
    jitter_local: float | None = None
    shimmer_local: float | None = None
    hnr_db: float | None = None
    descriptors: list[str] = Field(default_factory=list, description='e.g. "high, rising pitch"')
    egemaps: dict[str, float] | None = Field(default=None, description="openSMILE eGeMAPSv02 functionals (88)")


class Word(Contract):
    """One transcribed word with its time span."""

    text: str
    start: float
    end: float
    probability: float | None = None


class Transcript(Contract):
    """What was said, where it came from, and word timings when known."""

    text: str
    source: Literal["asr", "subtitles", "given"]
    language: str | None = None
    words: list[Word] = Field(default_factory=list)


class Provenance(Contract):
    """Which extractor produced a part of the cues, at which version, with which settings."""

    extractor: str
    version: str
    settings: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class Cues(Contract):
    """Everything extracted from one clip, inspectable and serialisable."""

    clip_id: str
    duration_s: float | None = None
    fps: float | None = None
    frames: list[FaceFrame] = Field(default_factory=list)
    apex_t: float | None = Field(default=None, description="time of the frame with the strongest expression")
    au_events: list[AUEvent] = Field(default_factory=list)
    expression: ExpressionSummary | None = Field(default=None, description="the facial-expression classifier's "
                                                 "summary; None when it did not run (OpenFace CSV, --no-expression)")
    prosody: Prosody | None = None
    transcript: Transcript | None = None
    provenance: list[Provenance] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class Clue(Contract):
    """One key observation of a chain of thought, tied to a modality and (ideally) a cue."""

    modality: Modality
    text: str
    start: float | None = None
    end: float | None = None
    cue_ref: str | None = Field(default=None, description='the cue it cites, e.g. "AU12", "f0_mean_hz", "word:3"')


class GroundingCheck(Contract):
    """One cue a clue names, checked against the extracted cues."""

    clue: int = Field(ge=0, description="index into Explanation.observations")
    cue: str = Field(description='what was checked, e.g. "AU12", "pitch", "word:happy"')
    status: Literal["supported", "contradicted", "unverifiable", "copied"]
    detail: str = ""


class Grounding(Contract):
    """How many of the cues an explanation names are borne out by the measurements."""

    score: float | None = Field(default=None, description="supported / (supported + contradicted + copied), "
                                "not counting what copied observations support; None if none")
    checks: list[GroundingCheck] = Field(default_factory=list)
    copied: list[int] = Field(default_factory=list, description="observations that repeat the prompt's worked example")


class Explanation(Contract):
    """A model's explained answer: observations -> interpretation -> conclusion, plus labels."""

    clip_id: str | None = None
    observations: list[Clue] = Field(default_factory=list)
    interpretation: str = ""
    conclusion: str = ""
    labels: list[str] = Field(default_factory=list)
    unknown_labels: list[str] = Field(default_factory=list, description="labels (kept in labels) that are not in "
                                      "the emotion lexicon")
    valence: float | None = Field(default=None, ge=-1, le=1)
    arousal: float | None = Field(default=None, ge=-1, le=1)
    raw_text: str | None = None
    backend: str | None = None
    model: str | None = None
    prompt: str | None = Field(default=None, description="the prompt the model was asked with, name@version")
    parse_status: ParseStatus = "ok"
    parse_errors: list[str] = Field(default_factory=list)
    grounding: Grounding | None = None

    _labels = field_validator("labels")(classmethod(lambda cls, v: normalize_labels(v)))

    def reasoning_text(self) -> str:
        """The chain of thought as one plain paragraph, for judges that compare text."""
        parts = [clue.text.strip() for clue in self.observations]
        parts += [self.interpretation.strip(), self.conclusion.strip()]
        return " ".join(p for p in parts if p)


class LabelRecord(Contract):
    """A gold or predicted record for scoring: ``{name, labels, reasoning}`` (+ sentiment when known)."""

    name: str = Field(min_length=1)
    labels: list[str] = Field(default_factory=list)
    reasoning: str | None = None
    sentiment: float | None = Field(default=None, description="signed polarity; > 0 is positive")

    _labels = field_validator("labels")(classmethod(lambda cls, v: normalize_labels(v)))
