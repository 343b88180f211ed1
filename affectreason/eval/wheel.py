"""The emotion-wheel vocabulary of AffectGPT / MER-UniBench, loaded from a configured folder.

The data is MERTools' emotion wheel (``MER2026_Track2/emotion_wheel/wheel_mapping.npz``) converted
to three JSON files; it is not redistributed here, its location is configuration:
``--wheel-dir`` or the environment variable ``AFFECTREASON_WHEEL_DIR``.

Mapping of one label to a wheel ring (the published rule, reproduced exactly):
label -> every base word in ``format_mapping`` -> every synonym in ``raw_mapping``; sort those
candidates alphabetically and take the first one that the wheel's map knows; its ring label is the
answer. A label with no candidate on the wheel maps to nothing and is dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectreason.errors import AffectReasonError, DataError

WHEEL_DIR_ENV = "AFFECTREASON_WHEEL_DIR"
WHEEL_FILES = {
    "format_mapping.json": "word form -> base words (7,356 forms, e.g. 'happiness' -> ['happy'])",
    "raw_mapping.json": "base word -> emotion-wheel synonyms (1,255 bases)",
    "wheel_map_whole.json": "wheel1..wheel5 x level1/level2: wheel word -> ring label",
}
WHEELS = ("wheel1", "wheel2", "wheel3", "wheel4", "wheel5")
LEVELS = ("level1", "level2")


class WheelDataMissing(AffectReasonError, FileNotFoundError):
    """The emotion-wheel folder is not configured or incomplete."""


def _missing_message(reason: str) -> str:
    files = "\n".join(f"  - {name}: {what}" for name, what in WHEEL_FILES.items())
    return (
        f"{reason}\nThe emotion-wheel metrics need a folder with three JSON files:\n{files}\n"
        "They are MERTools' emotion wheel (MER2026_Track2/emotion_wheel/wheel_mapping.npz, converted to JSON; "
        "this repository's CI uses shared/anchors/emotion_wheel). Point to the folder with --wheel-dir DIR "
        f"or the environment variable {WHEEL_DIR_ENV}=DIR."
    )


def resolve_wheel_dir(wheel_dir: str | Path | None = None) -> Path:
    """The wheel folder from the argument, else the environment; a clear error when absent."""
    chosen = wheel_dir or os.environ.get(WHEEL_DIR_ENV)
    if not chosen:
        raise WheelDataMissing(_missing_message("No emotion-wheel folder is configured."))
    path = Path(chosen).expanduser()
    absent = [name for name in WHEEL_FILES if not (path / name).is_file()]
    if absent:
        raise WheelDataMissing(_missing_message(f"{path}: missing {', '.join(absent)}."))
    return path


@dataclass
class EmotionWheel:
    """The wheel data plus a memo of label -> ring label per (wheel, level)."""

    format_mapping: dict[str, list[str]]
    raw_mapping: dict[str, list[str]]
    wheel_maps: dict[str, dict[str, dict[str, str]]]
    _memo: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict, repr=False)
    _bits: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _rings: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, wheel_dir: str | Path | None = None) -> EmotionWheel:
        """Load the three JSON files from the configured folder."""
        path = resolve_wheel_dir(wheel_dir)
        data = {}
        for name in WHEEL_FILES:
            try:
                data[name] = json.loads((path / name).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise WheelDataMissing(_missing_message(f"{path / name}: not valid JSON ({exc}).")) from None
        wheel_maps = data["wheel_map_whole.json"]
        for wheel in WHEELS:
            for level in LEVELS:
                if level not in wheel_maps.get(wheel, {}):
                    raise WheelDataMissing(_missing_message(f"{path}: wheel_map_whole.json lacks {wheel}/{level}."))
        return cls(data["format_mapping.json"], data["raw_mapping.json"], wheel_maps)

    def candidates(self, label: str) -> list[str]:
        """All wheel-word candidates of a label, sorted (the order that makes the mapping unique)."""
        found = {syn for base in self.format_mapping.get(label, ()) for syn in self.raw_mapping.get(base, ())}
        return sorted(found)

    def ring(self, label: str, wheel: str, level: str = "level1") -> str | None:
        """The ring label of ``label`` on one wheel and level, or None when it is off the wheel."""
        memo = self._memo.setdefault((wheel, level), {})
        if label in memo:
            return memo[label]
        wheel_map = self.wheel_maps[wheel][level]
        result = next((wheel_map[c] for c in self.candidates(label) if c in wheel_map), None)
        memo[label] = result
        return result

    def map_set(self, labels: list[str], wheel: str, level: str = "level1") -> set[str]:
        """Map a label list to its set of ring labels, dropping labels off the wheel."""
        rings = (self.ring(label, wheel, level) for label in labels)
        return {r for r in rings if r is not None}

    def base_word(self, label: str) -> str:
        """A synonym-level canonical word (first base, then its first synonym), or the label itself."""
        bases = self.format_mapping.get(label)
        if not bases:
            return label
        base = sorted(bases)[0]
        synonyms = self.raw_mapping.get(base)
        return sorted(synonyms)[0] if synonyms else base

    def rings(self, wheel: str, level: str = "level1") -> list[str]:
        """The ring labels of one wheel and level, sorted; a ring's position is its bit in ``masks``."""
        key = (wheel, level)
        if key not in self._rings:
            self._rings[key] = sorted(set(self.wheel_maps[wheel][level].values()))
        return self._rings[key]

    def _label_bits(self, label: str, level: str) -> np.ndarray:
        per_level = self._bits.setdefault(level, {})
        bits = per_level.get(label)
        if bits is None:
            bits = np.zeros(len(WHEELS), dtype=np.uint64)
            for w, wheel in enumerate(WHEELS):
                ring = self.ring(label, wheel, level)
                if ring is not None:
                    bits[w] = np.uint64(1) << np.uint64(self.rings(wheel, level).index(ring))
            per_level[label] = bits
        return bits

    def masks(self, label_lists: Sequence[Sequence[str]], level: str = "level1") -> np.ndarray:
        """(n, 5) uint64 bit sets of ring labels per record and wheel; 0 means nothing on that wheel.

        Sets as bits let the EW metrics run as array operations: |A ∩ B| = popcount(a & b).
        """
        for wheel in WHEELS:
            if len(self.rings(wheel, level)) > 64:
                raise DataError(f"{wheel}/{level} has more than 64 rings; bit sets cannot hold it")
        owners: list[int] = []
        table: list[np.ndarray] = []
        for i, labels in enumerate(label_lists):
            for label in labels:
                owners.append(i)
                table.append(self._label_bits(label, level))
        out = np.zeros((len(label_lists), len(WHEELS)), dtype=np.uint64)
        if owners:
            np.bitwise_or.at(out, np.array(owners), np.stack(table))
        return out

    def decode(self, mask: int, wheel: str, level: str = "level1") -> list[str]:
        """The ring labels of one bit set."""
        return [ring for bit, ring in enumerate(self.rings(wheel, level)) if int(mask) >> bit & 1]
