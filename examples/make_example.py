"""Build the bundled example clip: a smiling face (skimage's astronaut photo) saying a happy sentence.

    python examples/make_example.py            # writes examples/happy_astronaut.mp4 (< 100 kB)

Needs ffmpeg and espeak-ng (apt) and scikit-image; the clip itself is committed, so running
`affectreason explain examples/happy_astronaut.mp4` needs none of them.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

SENTENCE = "I am so happy to see you again today."
OUT = Path(__file__).with_name("happy_astronaut.mp4")


def main() -> None:
    from PIL import Image
    from skimage import data

    with tempfile.TemporaryDirectory() as tmp:
        image, speech = Path(tmp) / "face.png", Path(tmp) / "speech.wav"
        Image.fromarray(data.astronaut()).save(image)
        subprocess.run(["espeak-ng", "-w", str(speech), SENTENCE], check=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", str(image), "-i", str(speech),
                        "-t", "3", "-r", "25", "-vf", "scale=384:384,format=yuv420p", "-c:v", "libx264", "-crf", "30",
                        "-c:a", "aac", "-b:a", "48k", "-map_metadata", "-1", "-fflags", "+bitexact", str(OUT)],
                       check=True)
    print(f"{OUT} ({OUT.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
