"""A synthetic textualized-cue -> label task: learnable only by reading which AUs are strongly active
(two AUs of the emotion's pattern at 2-5, two distractors at 0-0.8, in random order)."""

from __future__ import annotations

import json
import random
from pathlib import Path

PATTERNS = {"happy": ("AU12", "AU06"), "sad": ("AU01", "AU15"), "angry": ("AU04", "AU07"),
            "surprised": ("AU02", "AU26")}
ALL_AUS = sorted({au for aus in PATTERNS.values() for au in aus} | {"AU10", "AU17", "AU45"})


def example(rng: random.Random) -> tuple[str, str]:
    """(cue text, label)."""
    label = rng.choice(sorted(PATTERNS))
    active = {au: rng.uniform(2.0, 5.0) for au in PATTERNS[label]}
    quiet = rng.sample([au for au in ALL_AUS if au not in active], 2)
    active.update({au: rng.uniform(0.0, 0.8) for au in quiet})
    items = sorted(active.items(), key=lambda kv: rng.random())
    cues = ", ".join(f"{au} {value:.1f} ({'strong' if value >= 2 else 'weak'})" for au, value in items)
    return "Face: " + cues, label


def write_task(folder: Path, n_train: int = 400, n_eval: int = 100, seed: int = 0) -> tuple[Path, Path]:
    """train.jsonl and eval.jsonl chats: user = cue text, assistant = label."""
    rng = random.Random(seed)
    paths = []
    for name, n in (("train", n_train), ("eval", n_eval)):
        path = folder / f"{name}.jsonl"
        with path.open("w") as handle:
            for _ in range(n):
                cues, label = example(rng)
                handle.write(json.dumps({"messages": [{"role": "user", "content": cues},
                                                      {"role": "assistant", "content": label}]}) + "\n")
        paths.append(path)
    return paths[0], paths[1]
