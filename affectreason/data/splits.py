"""Deterministic splits: a record's split is a pure function of its group's name, never of file order.

The group is the unit that must not straddle splits: by default the clip id; for dialogue corpora the
dialogue (``test_dia12_utt3`` -> ``test_dia12``), for CMU-MOSI the source video (``k5Y_838nuGo_3`` ->
``k5Y_838nuGo``), set by the recipe's ``group`` regex. SHA-256 of ``salt + group`` gives a number in
[0, 1) that falls into one split's share, so adding or removing other records never moves a record.
"""

from __future__ import annotations

import hashlib
import re


def group_of(clip_id: str, pattern: str | None) -> str:
    """The split unit of a clip id: the pattern's first group, or the id itself when it does not match.

    >>> group_of("test_dia12_utt3", r"^(.*_dia\\d+)_utt\\d+$"), group_of("sample_7", r"^(.*_dia\\d+)_utt\\d+$")
    ('test_dia12', 'sample_7')
    """
    if pattern is None:
        return clip_id
    match = re.match(pattern, clip_id)
    return match.group(1) if match and match.group(1) else clip_id


def unit_interval(group: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by the group name and salt.

    >>> unit_interval("a", "s") == unit_interval("a", "s") != unit_interval("b", "s")
    True
    """
    digest = hashlib.sha256(f"{salt}\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(group: str, fractions: dict[str, float], salt: str) -> str:
    """The split whose share of [0, 1) the group's number falls in (shares in the order given).

    >>> assign_split("g", {"train": 1.0}, "s")
    'train'
    """
    point, edge = unit_interval(group, salt), 0.0
    names = list(fractions)
    for name in names[:-1]:
        edge += fractions[name]
        if point < edge:
            return name
    return names[-1]
