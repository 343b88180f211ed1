"""Build the bundled example clip: a smiling face (skimage's astronaut photo) saying a happy sentence.

    python examples/make_example.py            # writes examples/happy_astronaut.mp4 (< 100 kB)

Needs scikit-image, PyAV and espeakng-loader (all in the `[dev]` extra; the speech is eSpeak NG, the same
voice and settings as the `espeak-ng` command); the clip itself is committed, so running
`affectreason explain examples/happy_astronaut.mp4` needs none of them. Run from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.media_factory holds the speech + encoder

SENTENCE = "I am so happy to see you again today."
OUT = Path(__file__).with_name("happy_astronaut.mp4")


def main() -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    from tests.media_factory import encode_clip, speak

    face = np.asarray(Image.fromarray(data.astronaut()).resize((384, 384), Image.BICUBIC))
    samples, rate = speak(SENTENCE)
    encode_clip(OUT, [face] * 75, 25, (samples[: 3 * rate], rate))
    print(f"{OUT} ({OUT.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
