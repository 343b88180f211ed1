"""Real test media built from package images and eSpeak NG speech, with nothing but Python packages.

Nothing here is synthetic noise: the faces are ``skimage.data.astronaut()`` (a broad smile) and
matplotlib's ``grace_hopper.jpg`` (no smile), the speech is eSpeak NG rendering real sentences. eSpeak NG is the
library bundled in the ``espeakng-loader`` wheel (driven through its C API, the same parameters as the
``espeak-ng`` command's ``-p``/``-s``/``-a``); clips are encoded with PyAV (H.264 + AAC, its wheel's own FFmpeg).
No system package is needed.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import threading
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

SENTENCE = "I am so happy to see you again today."
PROSODY_SENTENCE = "The weather was quite different from what we expected this morning."
PROSODY_VARIANTS = {"pitch": ("-p", ("20", "50", "85")), "rate": ("-s", ("120", "170", "230")),
                    "loudness": ("-a", ("50", "100", "180"))}
# espeak-ng command flags -> espeak_PARAMETER (speak_lib.h): -s rate (words/min), -a volume (0-200), -p pitch (0-99)
_PARAMETERS = {"-s": 1, "-a": 2, "-p": 3}
_DEFAULTS = {1: 175, 2: 100, 3: 50}
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: samples come back through the callback
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()
_engine: tuple | None = None


def _espeak():
    """The bundled libespeak-ng, initialised once: (library, sample rate, sample buffer, callback)."""
    global _engine
    if _engine is None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"eSpeak NG did not initialise (returned {rate})")
        chunks: list[np.ndarray] = []

        def collect(samples, count, events) -> int:
            if count > 0:
                chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
            return 0

        callback = _CALLBACK(collect)  # kept referenced: libespeak-ng calls it until the process ends
        lib.espeak_SetSynthCallback(callback)
        lib.espeak_SetVoiceByName(b"en")
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        _engine = (lib, rate, chunks, callback)
    return _engine


def speak(text: str, *flags: str) -> tuple[np.ndarray, int]:
    """eSpeak NG saying ``text`` (16-bit mono samples, rate), with ``espeak-ng`` flags such as ``-p 20``.

    Each rendering runs in a fresh interpreter, as each ``espeak-ng`` command does: the engine carries state from
    one utterance to the next (lengths drifted by ~20 samples), and a fresh one gives the command's exact samples.
    """
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.media_factory import _speak_here; "
              "samples, rate = _speak_here(*sys.argv[2:]); sys.stdout.buffer.write(rate.to_bytes(4, 'little') "
              "+ samples.tobytes())")
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", script, root, text, *flags], check=True, capture_output=True)
    return np.frombuffer(done.stdout[4:], np.int16), int.from_bytes(done.stdout[:4], "little")


def _speak_here(text: str, *flags: str) -> tuple[np.ndarray, int]:
    """``speak`` in this process (the engine is initialised once per process)."""
    settings = dict(_DEFAULTS)
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        settings[_PARAMETERS[flag]] = int(value)
    with _lock:
        lib, rate, chunks, _ = _espeak()
        chunks.clear()
        for parameter, value in settings.items():
            lib.espeak_SetParameter(parameter, value, 0)
        data = text.encode() + b"\0"
        # position type 1 = POS_CHARACTER; flags 0x1000 = espeakENDPAUSE, as the command line speaks
        lib.espeak_Synth(data, len(data), 0, 1, 0, 0x1000, None, None)
        lib.espeak_Synchronize()
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return samples.astype(np.int16), rate


def speech(path: Path, text: str, *flags: str) -> Path:
    """A WAV of eSpeak NG saying ``text`` with ``espeak-ng`` flags (e.g. ``-p 20``)."""
    return write_wav(path, *speak(text, *flags))


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit mono samples as a WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype(np.int16).tobytes())
    return path


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as source:
        return np.frombuffer(source.readframes(source.getnframes()), np.int16), source.getframerate()


def encode_clip(path: Path, frames: list[np.ndarray] | np.ndarray, fps: int = 25,
                audio: tuple[np.ndarray, int] | None = None) -> Path:
    """An H.264 (yuv420p) clip of RGB ``frames`` with an AAC track of ``audio`` (int16 mono samples, rate)."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=audio[1], layout="mono")
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples, rate = audio
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
            for start in range(0, len(samples), 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="s16", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
                for out in resampler.resample(chunk):
                    container.mux(sound.encode(out))
            container.mux(sound.encode())
    return path


def still_clip(path: Path, image: Path, audio: Path | None, seconds: float = 3.0) -> Path:
    """An H.264 clip of a still image (scaled to 512 px wide), with the audio track if given (cut to the clip)."""
    from PIL import Image

    picture = Image.open(image).convert("RGB")
    height = 2 * round(picture.height * 512 / picture.width / 2)
    frame = np.asarray(picture.resize((512, height), Image.BICUBIC))
    sound = None
    if audio is not None:
        samples, rate = _read_wav(audio)
        sound = (samples[: int(seconds * rate)], rate)
    return encode_clip(path, [frame] * int(round(seconds * 25)), 25, sound)


def build_media(folder: Path) -> dict[str, Path]:
    """Every test clip, built once into ``folder``."""
    import matplotlib
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    astronaut = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(astronaut)
    grace = folder / "grace_hopper.jpg"
    shutil.copy(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", grace)
    out["astronaut_png"], out["grace_jpg"] = astronaut, grace
    out["speech_wav"] = speech(folder / "speech.wav", SENTENCE)
    out["astronaut"] = still_clip(folder / "astronaut.mp4", astronaut, out["speech_wav"])
    out["grace"] = still_clip(folder / "grace.mp4", grace, out["speech_wav"])
    out["no_audio"] = still_clip(folder / "no_audio.mp4", grace, None, 2.0)
    for name, (flag, values) in PROSODY_VARIANTS.items():
        for value in values:
            out[f"{name}_{value}"] = speech(folder / f"{name}_{value}.wav", PROSODY_SENTENCE, flag, value)
    gray = np.full((240, 320, 3), 128, np.uint8)
    out["no_face_silent"] = encode_clip(folder / "no_face_silent.mp4", [gray] * 50, 25,
                                        (np.zeros(32_000, np.int16), 16_000))
    out["empty"] = folder / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["truncated"] = folder / "truncated.mp4"
    out["truncated"].write_bytes(out["astronaut"].read_bytes()[:30_000])
    return out


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance / reference length, ignoring case and punctuation.

    >>> word_error_rate("I am so happy", "i am so happy.")
    0.0
    """
    import re

    ref = re.findall(r"[a-z']+", reference.lower())
    hyp = re.findall(r"[a-z']+", hypothesis.lower())
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)
