"""Real test media built from package images and espeak-ng speech with ffmpeg (both from apt).

Nothing here is synthetic noise: the faces are ``skimage.data.astronaut()`` (a broad smile) and
matplotlib's ``grace_hopper.jpg`` (no smile), the speech is espeak-ng rendering real sentences.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SENTENCE = "I am so happy to see you again today."
PROSODY_SENTENCE = "The weather was quite different from what we expected this morning."
PROSODY_VARIANTS = {"pitch": ("-p", ("20", "50", "85")), "rate": ("-s", ("120", "170", "230")),
                    "loudness": ("-a", ("50", "100", "180"))}


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def require_tools() -> None:
    """Fail with the fix when ffmpeg or espeak-ng is not installed."""
    missing = [t for t in ("ffmpeg", "espeak-ng") if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"test media need {', '.join(missing)}: apt-get install -y ffmpeg espeak-ng")


def speech(path: Path, text: str, *flags: str) -> Path:
    """A WAV of espeak-ng saying ``text`` with extra flags (e.g. ``-p 20``)."""
    _run("espeak-ng", *flags, "-w", str(path), text)
    return path


def still_clip(path: Path, image: Path, audio: Path | None, seconds: float = 3.0) -> Path:
    """An H.264 clip of a still image (scaled to 512 px wide), with the audio track if given."""
    args = ["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(image)]
    if audio is not None:
        args += ["-i", str(audio), "-c:a", "aac"]
    else:
        args += ["-an"]
    args += ["-t", str(seconds), "-r", "25", "-vf", "scale=512:-2,format=yuv420p", "-c:v", "libx264", str(path)]
    _run(*args)
    return path


def build_media(folder: Path) -> dict[str, Path]:
    """Every test clip, built once into ``folder``."""
    import matplotlib
    from PIL import Image
    from skimage import data

    require_tools()
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
    _run("ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=320x240:d=2", "-f", "lavfi",
         "-i", "anullsrc=r=16000:cl=mono", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
         str(folder / "no_face_silent.mp4"))
    out["no_face_silent"] = folder / "no_face_silent.mp4"
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
