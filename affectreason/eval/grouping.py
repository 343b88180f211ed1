"""Synonym groupings for the OV metrics: which open-vocabulary labels count as the same emotion.

A grouping maps the labels of one clip (gold and predicted together) to group representatives.
Four are offered:
- ``CachedGroups``: a file of precomputed groups per clip (MERTools ``cached_synonym_groups.json``:
  ``{name: "[['joyful', 'happy'], ['worry']]"}``); this reproduces the published MER2024-OV figures;
- ``WheelGrouping``: the emotion-wheel synonym base of each label (offline, deterministic);
- ``EmbeddingGrouping``: labels whose sentence embeddings have cosine similarity >= a threshold are
  linked, and linked labels form a group (single linkage);
- ``LLMGrouping``: an LLM behind an OpenAI-compatible endpoint groups the labels, as the organisers
  did with GPT-3.5, but with a model you run and a cache that makes re-runs free.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from affectreason.endpoint import UnparseableAnswer
from affectreason.errors import DataError, UsageError
from affectreason.eval.wheel import EmotionWheel

if TYPE_CHECKING:
    from affectreason.endpoint import ChatClient
    from affectreason.eval.embeddings import TextEncoder


class SynonymGrouping(Protocol):
    """Maps one clip's labels to group representatives."""

    def retokenize(self, name: str, labels: list[str]) -> list[str]:
        """The labels as this grouping knows them (identity except for MERTools-tokenized caches)."""
        ...

    def canonical(self, name: str, labels: Sequence[str]) -> dict[str, str]:
        """label -> representative for the labels of clip ``name`` (absent labels stand for themselves)."""
        ...

    def describe(self) -> dict:
        """How this grouping is configured, for reports."""
        ...

    def prepare(self, labels: Iterable[str]) -> None:
        """Called once with every label of a run before its clips, so work can be batched."""
        ...


class _SameTokens:
    """Mixin for groupings that take labels as they are (and need no preparation)."""

    def prepare(self, labels: Iterable[str]) -> None:
        """Nothing to prepare."""

    def retokenize(self, name: str, labels: list[str]) -> list[str]:
        """Labels unchanged."""
        return labels


def groups_to_map(groups: Sequence[Sequence[str]]) -> dict[str, str]:
    """Each member -> its group's first member; a later group wins for a repeated member (as MERTools).

    >>> groups_to_map([["joyful", "happy"], ["worry"]])
    {'joyful': 'joyful', 'happy': 'joyful', 'worry': 'worry'}
    """
    mapping: dict[str, str] = {}
    for group in groups:
        members = [str(m) for m in group]
        for member in members:
            mapping[member] = members[0]
    return mapping


def parse_groups(value: object) -> list[list[str]]:
    """A list of lists of labels from a Python/JSON list string or an already parsed list."""
    if isinstance(value, str):
        value = ast.literal_eval(value.strip())
    if not isinstance(value, list) or not all(isinstance(g, list | tuple) for g in value):
        raise ValueError("expected a list of lists of labels")
    return [[str(m) for m in group] for group in value]


class CachedGroups:
    """Precomputed per-clip groups from a ``cached_synonym_groups.json`` file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{self.path}: groups file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: not a JSON object of per-clip groups ({exc})") from None
        if not isinstance(raw, dict):
            raise DataError(f"{self.path}: expected a JSON object {{clip name: groups}}")
        self._maps: dict[str, dict[str, str]] = {}
        for name, value in raw.items():
            try:
                self._maps[name] = groups_to_map(parse_groups(value))
            except (ValueError, SyntaxError) as exc:
                raise DataError(f"{self.path}: groups of {name!r} are malformed ({exc})") from None
        self.uncovered: set[str] = set()
        self.split_labels: set[str] = set()

    def prepare(self, labels: Iterable[str]) -> None:
        """Nothing to prepare: the groups are read from the file."""

    def retokenize(self, name: str, labels: list[str]) -> list[str]:
        """Split a label the way MERTools' list parser did, when only that form is in the cache.

        MERTools splits list strings on quote characters, so ``"don't believe"`` became the two labels
        ``don`` and ``t believe``, and the published groups (and figures) were computed on those pieces.
        A label the cache does not know, whose quote-split pieces it all knows, is scored as those pieces.
        """
        known = self._maps.get(name)
        if not known:
            return labels
        out: list[str] = []
        for label in labels:
            pieces = [p for p in QUOTES.split(label) if p.strip() not in ("", ",")]
            if label not in known and len(pieces) > 1 and all(p in known for p in pieces):
                self.split_labels.add(label)
                out.extend(pieces)
            else:
                out.append(label)
        return out

    def canonical(self, name: str, labels: Sequence[str]) -> dict[str, str]:
        """The cached groups of this clip; a clip absent from the file is recorded in ``uncovered``."""
        mapping = self._maps.get(name)
        if mapping is None:
            self.uncovered.add(name)
            return {}
        return mapping

    def describe(self) -> dict:
        """File and how many scored clips it lacked."""
        return {"kind": "cached", "path": str(self.path), "clips_without_groups": len(self.uncovered),
                "mertools_split_labels": sorted(self.split_labels)}


class WheelGrouping(_SameTokens):
    """Labels sharing an emotion-wheel synonym base are one group; unknown words stand alone."""

    def __init__(self, wheel: EmotionWheel):
        self.wheel = wheel

    def canonical(self, name: str, labels: Sequence[str]) -> dict[str, str]:
        """label -> its wheel synonym base."""
        return {label: self.wheel.base_word(label) for label in labels}

    def describe(self) -> dict:
        """Kind only: the wheel data is fixed."""
        return {"kind": "wheel"}


def link_groups(labels: Sequence[str], similarity: np.ndarray, threshold: float) -> dict[str, str]:
    """Single-linkage groups of labels whose pairwise similarity >= threshold; representative = first label.

    >>> sim = np.array([[1, .9, .1], [.9, 1, .2], [.1, .2, 1]])
    >>> link_groups(["glad", "happy", "sad"], sim, 0.8)
    {'glad': 'glad', 'happy': 'glad', 'sad': 'sad'}
    """
    parent = list(range(len(labels)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rows, cols = np.nonzero(np.triu(similarity >= threshold, k=1))
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {label: labels[find(i)] for i, label in enumerate(labels)}


class EmbeddingGrouping(_SameTokens):
    """Groups labels by sentence-embedding cosine similarity (offline, deterministic)."""

    def __init__(self, encoder: TextEncoder, threshold: float = 0.5):
        if not 0.0 < threshold <= 1.0:
            raise UsageError(f"embedding threshold must be in (0, 1], got {threshold}")
        self.encoder = encoder
        self.threshold = threshold

    def prepare(self, labels: Iterable[str]) -> None:
        """Encode every distinct label of the run in one batched call: clip by clip, a label first seen late
        cost one model call of its own (145 s per 100k records, 2,000 labels; 2-3 s batched)."""
        self.encoder.encode(sorted(set(labels)))

    def canonical(self, name: str, labels: Sequence[str]) -> dict[str, str]:
        """Single-linkage groups of this clip's distinct labels."""
        distinct = sorted(set(labels))
        if len(distinct) < 2:
            return {}
        vectors = self.encoder.encode(distinct)
        return link_groups(distinct, vectors @ vectors.T, self.threshold)

    def describe(self) -> dict:
        """Model, threshold and encoder cache figures."""
        return {"kind": "embedding", "model": str(self.encoder.model_path), "threshold": self.threshold,
                "cache_hit_rate": round(self.encoder.hit_rate, 4)}


QUOTES = re.compile("['\"]")
GROUPS_IN_TEXT = re.compile(r"\[\s*\[.*?\]\s*\]", re.DOTALL)


class LLMGrouping(_SameTokens):
    """An LLM groups each clip's labels into synonym sets (prompt ``judges/ov_synonym_groups``)."""

    def __init__(self, client: ChatClient, max_attempts: int = 3):
        from affectreason.reason.prompts import load_prompt

        self.client = client
        self.prompt = load_prompt("judges/ov_synonym_groups")
        self.max_attempts = max_attempts
        self.failures: list[str] = []

    def canonical(self, name: str, labels: Sequence[str]) -> dict[str, str]:
        """Ask the model for groups; on repeated unparseable answers every label stands alone."""
        distinct = sorted(set(labels))
        if len(distinct) < 2:
            return {}
        messages = self.prompt.render(labels=distinct)
        try:
            groups, _ = self.client.ask(messages, lambda text: parse_llm_groups(text, distinct), self.max_attempts,
                                        temperature=0.0)
        except UnparseableAnswer:
            self.failures.append(name)
            return {}
        return groups_to_map(groups)

    def describe(self) -> dict:
        """Endpoint, model, prompt version and clips whose answer never parsed."""
        return {"kind": "llm", "endpoint": self.client.base_url, "model": self.client.model,
                "prompt_version": self.prompt.version, "unparsed_clips": len(self.failures)}


def parse_llm_groups(text: str, labels: Sequence[str]) -> list[list[str]] | None:
    """Groups from a model answer (its last list of lists), keeping only the asked labels; None if there is none.

    >>> parse_llm_groups('Groups: [["happy", "glad"], ["sad"]]', ["glad", "happy", "sad"])
    [['happy', 'glad'], ['sad']]
    """
    groups = None
    for match in reversed(GROUPS_IN_TEXT.findall(text)):  # the model's final answer comes last
        try:
            groups = parse_groups(match)
        except (ValueError, SyntaxError):
            try:
                groups = parse_groups(json.loads(match))
            except (ValueError, TypeError):
                continue
        break
    if groups is None:
        return None
    asked = set(labels)
    cleaned = [[m.lower().strip() for m in g if m.lower().strip() in asked] for g in groups]
    return [g for g in cleaned if g]
