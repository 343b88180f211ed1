"""The dataset report: records per split, the label vocabulary with frequencies, text lengths in tokens
and modality coverage. Pure functions over records; token counts use a given tokenizer, else the
estimate ``affectreason.cues.textualize`` uses (characters / 4, the usual English ratio for BPE).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from affectreason.cues.textualize import CHARS_PER_TOKEN
from affectreason.data.record import MEDIA_KINDS, Record

CUE_MODALITIES = ("face", "voice", "text")


def token_counter(tokenizer_dir: str | None = None) -> tuple[Callable[[str], int], str]:
    """(text -> token count, how it counts): a tokenizer (a folder or a hub id), or the characters / 4 estimate."""
    if tokenizer_dir is None:
        return (lambda text: round(len(text) / CHARS_PER_TOKEN)), f"estimate: characters / {CHARS_PER_TOKEN}"
    from transformers import AutoTokenizer

    from affectreason.models.hub import model_folder

    tokenizer = AutoTokenizer.from_pretrained(model_folder(tokenizer_dir, "tokenizer"))
    return (lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])), f"tokenizer {tokenizer_dir}"


def length_summary(values: list[int]) -> dict[str, float]:
    """min / mean / median / p95 / max of a list of lengths.

    >>> length_summary([1, 2, 3, 4])
    {'min': 1, 'mean': 2.5, 'median': 2.5, 'p95': 3.85, 'max': 4}
    """
    if not values:
        return {"min": 0, "mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0}
    array = np.array(values, dtype=float)
    return {"min": int(array.min()), "mean": round(float(array.mean()), 2), "median": float(np.median(array)),
            "p95": round(float(np.percentile(array, 95)), 2), "max": int(array.max())}


def label_stats(records: list[Record]) -> dict:
    """Vocabulary size, frequency of every label (most frequent first) and labels per record."""
    counts = Counter(label for r in records for label in r.labels)
    per_record = [len(r.labels) for r in records]
    return {"vocabulary_size": len(counts),
            "frequencies": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "per_record": {"mean": round(float(np.mean(per_record)), 3) if per_record else 0.0,
                           "max": max(per_record, default=0)}}


def modality_coverage(records: list[Record]) -> dict[str, float]:
    """Share of records whose prompt carries each cue modality, and that come with each kind of media file."""
    n = max(len(records), 1)
    shares = {m: sum(m in r.modalities for r in records) / n for m in CUE_MODALITIES}
    shares |= {kind: sum(bool(getattr(r.media, kind)) for r in records) / n for kind in MEDIA_KINDS}
    shares["no_cues"] = sum(not r.modalities for r in records) / n
    return {k: round(v, 4) for k, v in shares.items()}


def dataset_stats(records: list[Record], count_tokens: Callable[[str], int], counted_by: str) -> dict:
    """The whole report."""
    splits = Counter(r.split for r in records)
    lengths = {"user": [], "assistant": [], "reasoning": []}
    for record in records:
        turns = {m.role: m.content for m in record.messages}
        lengths["user"].append(count_tokens(turns.get("user", "")))
        lengths["assistant"].append(count_tokens(turns.get("assistant", "")))
        lengths["reasoning"].append(count_tokens(record.reasoning))
    return {"records": len(records), "splits": dict(sorted(splits.items())), "labels": label_stats(records),
            "tokens": {"counted_by": counted_by, **{k: length_summary(v) for k, v in lengths.items()}},
            "modalities": modality_coverage(records)}
