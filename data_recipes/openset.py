"""Hook for MER-Caption+ / OV-MERD label files: an empty open-vocabulary set means ``neutral``, as the
official loader reads it (MERTools / AffectGPT ``MERCaptionPlus_Dataset``: ``if len(openset) == 0:
openset = ['neutral']``)."""

from __future__ import annotations


def neutral_when_empty(fields: dict) -> dict:
    """``labels`` = ``['neutral']`` when the openset cell is empty or absent.

    >>> neutral_when_empty({"labels": []})["labels"], neutral_when_empty({"labels": ["happy"]})["labels"]
    (['neutral'], ['happy'])
    """
    return fields if fields.get("labels") else {**fields, "labels": ["neutral"]}
