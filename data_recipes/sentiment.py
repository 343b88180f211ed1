"""Hook for sentiment corpora (CMU-MOSI, CMU-MOSEI): a signed score on -3..3 becomes a polarity label
(MER-UniBench reads > 0 as positive) and a valence in [-1, 1] for the explanation target."""

from __future__ import annotations

SCALE = 3.0  # CMU-MOSI / MOSEI annotate sentiment from -3 (highly negative) to +3 (highly positive)


def polarity_labels(fields: dict) -> dict:
    """Labels and valence from ``fields["sentiment"]``; the record is left without labels if there is none.

    >>> polarity_labels({"sentiment": -1.6})
    {'sentiment': -1.6, 'labels': ['negative'], 'valence': -0.533}
    >>> polarity_labels({"sentiment": 0.0})["labels"]
    ['neutral']
    """
    score = fields.get("sentiment")
    if score is None:
        return fields
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return {**fields, "labels": [label], "valence": round(max(-1.0, min(1.0, score / SCALE)), 3)}
