"""An offline, deterministic EMER judge built on sentence embeddings (all-MiniLM-L6-v2 by default).

Clue overlap: both descriptions are split into clue sentences; a predicted clue is *supported* when
its most similar reference clue has cosine similarity >= ``clue_threshold``, and a reference clue is
*covered* when some predicted clue reaches it. precision = supported / predicted clues, recall =
covered / reference clues, F = their harmonic mean, and the 0-10 score is 10 x F.
Label overlap: the OV set-level metric under embedding grouping (labels whose embeddings reach
``label_threshold`` count as one), scored 10 x (accuracy + recall) / 2.

How it differs from GPT scoring, honestly: it rewards paraphrases of the same clue but cannot tell
that "smiles while saying she is fine" contradicts "looks sad" (both mention a face and a mood), it
counts clues rather than weighing them, and negation barely moves MiniLM embeddings. It is exact and
free to re-run; use it to compare systems, and an LLM judge when you need a reader's judgement.
"""

from __future__ import annotations

import re

import numpy as np

from affectreason.eval.embeddings import TextEncoder
from affectreason.eval.grouping import EmbeddingGrouping
from affectreason.eval.judges.base import PairScore
from affectreason.eval.ov import grouped_sets, set_overlap
from affectreason.eval.result import f_score
from affectreason.schema import LabelRecord

SENTENCE_END = re.compile(r"(?<=[.!?;。！？；])\s+|\n+|(?<=[。！？；])")
MIN_CLUE_WORDS = 3


def split_clues(text: str) -> list[str]:
    """Clue sentences of a description; fragments under three words are folded into the previous clue.

    >>> split_clues("He frowns deeply. His voice is loud and fast! Angry.")
    ['He frowns deeply.', 'His voice is loud and fast! Angry.']
    """
    clues: list[str] = []
    for part in SENTENCE_END.split(text.strip()):
        part = part.strip()
        if not part:
            continue
        if clues and len(part.split()) < MIN_CLUE_WORDS and not re.search(r"[\u4e00-\u9fff]", part):
            clues[-1] = f"{clues[-1]} {part}"
        else:
            clues.append(part)
    return clues


def clue_match(similarity: np.ndarray, threshold: float) -> tuple[float, float]:
    """(precision, recall) of predicted (rows) vs reference (columns) clues at a similarity threshold.

    >>> clue_match(np.array([[0.9, 0.1], [0.2, 0.3]]), 0.5)
    (0.5, 0.5)
    """
    if similarity.size == 0:
        return 0.0, 0.0
    precision = float((similarity.max(axis=1) >= threshold).mean())
    recall = float((similarity.max(axis=0) >= threshold).mean())
    return precision, recall


class EmbeddingJudge:
    """Clue and label overlap from embedding similarity; no network, same answer every run."""

    def __init__(self, encoder: TextEncoder | None = None, clue_threshold: float = 0.75,
                 label_threshold: float = 0.5):
        self.encoder = encoder or TextEncoder()
        self.clue_threshold = clue_threshold
        self.grouping = EmbeddingGrouping(self.encoder, threshold=label_threshold)
        self.workers = 1  # the encoder is CPU-bound and already batches; threads would only contend

    def clue_overlap(self, reference: str, prediction: str) -> PairScore:
        """10 x F of matched clue sentences."""
        ref, pred = split_clues(reference), split_clues(prediction)
        if not ref or not pred:
            return PairScore(0.0, {"reference_clues": len(ref), "predicted_clues": len(pred)})
        similarity = self.encoder.encode(pred) @ self.encoder.encode(ref).T
        precision, recall = clue_match(similarity, self.clue_threshold)
        soft = f_score(float(similarity.max(axis=1).mean()), float(similarity.max(axis=0).mean()))
        return PairScore(10 * f_score(precision, recall), {
            "precision": precision, "recall": recall, "soft_f": soft,
            "reference_clues": len(ref), "predicted_clues": len(pred),
        })

    def label_overlap(self, reference: LabelRecord, prediction: LabelRecord) -> PairScore:
        """10 x the OV average of accuracy and recall under embedding grouping."""
        if not reference.labels:
            raise ValueError("reference has no labels to compare with")
        accuracy, recall = set_overlap(*grouped_sets(self.grouping, reference.name, reference.labels,
                                                     prediction.labels))
        return PairScore(10 * (accuracy + recall) / 2, {"accuracy": accuracy, "recall": recall})

    def describe(self) -> dict:
        """Model, thresholds and the encoder's cache hit rate."""
        return {"kind": "embedding", "model": str(self.encoder.model_path), "clue_threshold": self.clue_threshold,
                "label_threshold": self.grouping.threshold, "cache_hit_rate": round(self.encoder.hit_rate, 4)}
