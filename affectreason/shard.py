"""``--shard K/N``: a deterministic split of a batch by clip id, for schedulers without Ray (a Slurm array).

A clip belongs to shard ``sha256(id) mod N + 1``: the same id lands in the same shard on every machine, Python
version and run (``hash()`` is salted per process), whatever the order or count of the other clips, so jobs of
an array need no shared state and a re-run of one shard redoes exactly its own clips.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from affectreason.errors import UsageError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, clip_id: str) -> bool:
        """Whether the clip ``clip_id`` is in this shard."""
        return shard_of(clip_id, self.count) == self.index


def shard_of(clip_id: str, count: int) -> int:
    """The shard (1..count) of a clip id.

    >>> shard_of("clip_0001", 1)
    1
    >>> shard_of("clip_0001", 3) == shard_of("clip_0001", 3)
    True
    """
    digest = hashlib.sha256(clip_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str) -> Shard:
    """``"K/N"`` (1 <= K <= N) as a ``Shard``; anything else is a usage error that says the form.

    >>> parse_shard("2/3")
    Shard(index=2, count=3)
    """
    parts = text.strip().split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UsageError(f"--shard {text!r}: expected K/N with whole numbers, e.g. --shard 1/4")
    index, count = (int(p) for p in parts)
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and N (N >= 1), e.g. --shard 1/{max(count, 1)}")
    return Shard(index, count)
