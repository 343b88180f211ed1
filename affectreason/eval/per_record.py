"""Label agreement of individual records (a teacher's answer, a generated reply) with their gold labels.

The scoring metrics (``ov``, ``ew``) work on aligned files; training and data building need the same
figures on a handful of label lists held in memory, without files, names or a synonym grouping.
Conventions:
- labels are normalised first (``normalize_labels``: lower case, single spaces, no repeats);
- exact overlap, per record: accuracy = |G ∩ P| / |P| and recall = |G ∩ P| / |G| of the label sets
  (``affectreason.eval.ov.set_overlap``: an empty prediction scores 0); records with no gold label
  are left out; ``accuracy`` and ``recall`` are means over the scored records (0.0 when there are
  none) and ``f1`` is their harmonic mean (``f_score`` of the two means, as in the EW metric);
- with an emotion wheel, ``ew_fs`` is the EW F-score (``affectreason.eval.ew.score_ew``, level 1,
  mean over the 5 wheels) of the records whose gold is on a wheel; ``ew_n`` counts them; records
  whose gold is on no wheel (``neutral``) are left out of it, as ``score_ew`` leaves them out;
- ``label_agreement`` of one record is its EW F-score when its gold is on a wheel, else its
  exact-overlap F (so ``neutral`` vs ``neutral`` agrees); a record without gold labels agrees 0.0.
All functions are pure (the wheel's mapping memo aside) and import no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from affectreason.eval.alignment import align
from affectreason.eval.ew import score_ew
from affectreason.eval.ov import set_overlap
from affectreason.eval.result import f_score
from affectreason.eval.wheel import WHEELS, EmotionWheel
from affectreason.schema import LabelRecord, normalize_labels

DIGITS = 4  # figures() and label_agreement() round to this many decimals


@dataclass(frozen=True)
class LabelScores:
    """Exact-overlap and emotion-wheel agreement of label lists with their gold lists (unrounded)."""

    accuracy: float
    recall: float
    f1: float
    n: int  # records with at least one gold label
    ew_fs: float | None = None  # None: no wheel was given
    ew_n: int = 0  # records whose gold is on a wheel

    def figures(self) -> dict[str, float]:
        """The figures rounded for a report: ``label_accuracy``, ``label_recall``, ``label_f1`` (+ ``ew_fs``).

        >>> LabelScores(2 / 3, 0.5, 4 / 7, 2, 0.25, 1).figures()
        {'label_accuracy': 0.6667, 'label_recall': 0.5, 'label_f1': 0.5714, 'ew_fs': 0.25}
        >>> LabelScores(1.0, 1.0, 1.0, 1).figures()
        {'label_accuracy': 1.0, 'label_recall': 1.0, 'label_f1': 1.0}
        """
        out = {"label_accuracy": round(self.accuracy, DIGITS), "label_recall": round(self.recall, DIGITS),
               "label_f1": round(self.f1, DIGITS)}
        if self.ew_fs is not None:
            out["ew_fs"] = round(self.ew_fs, DIGITS)
        return out


def on_wheel(labels: Sequence[str], wheel: EmotionWheel) -> bool:
    """Whether any of the (normalised) labels maps to a ring of some wheel at level 1.

    >>> on_wheel(["neutral"], EmotionWheel({}, {}, {}))
    False
    """
    return any(wheel.map_set(list(labels), w) for w in WHEELS if w in wheel.wheel_maps)


def score_labels(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                 wheel: EmotionWheel | None = None) -> LabelScores:
    """Agreement of each predicted label list with the gold list at the same position.

    >>> s = score_labels([["Happy", "relaxed"], ["sad"], []], [["happy"], ["angry", "sad"], ["calm"]])
    >>> (s.accuracy, s.recall, round(s.f1, 4), s.n, s.ew_fs)
    (0.75, 0.75, 0.75, 2, None)
    >>> score_labels([], [])
    LabelScores(accuracy=0.0, recall=0.0, f1=0.0, n=0, ew_fs=None, ew_n=0)
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold label lists but {len(pred)} predicted ones")
    gold_sets = [normalize_labels(list(g)) for g in gold]
    pred_sets = [normalize_labels(list(p)) for p in pred]
    pairs = [set_overlap(set(g), set(p)) for g, p in zip(gold_sets, pred_sets, strict=True) if g]
    accuracy = sum(a for a, _ in pairs) / max(len(pairs), 1)
    recall = sum(r for _, r in pairs) / max(len(pairs), 1)
    ew_fs, ew_n = None, 0
    if wheel is not None:
        kept = [i for i, g in enumerate(gold_sets) if on_wheel(g, wheel)]
        ew_n = len(kept)
        ew_fs = 0.0
        if kept:  # score_ew would skip the others itself; filtering first keeps an empty wheel usable
            records = [LabelRecord(name=str(i), labels=gold_sets[i]) for i in kept]
            predictions = [LabelRecord(name=str(i), labels=pred_sets[i]) for i in kept]
            ew_fs = score_ew(align(records, predictions), wheel).summary["fs"]
    return LabelScores(accuracy, recall, f_score(accuracy, recall), len(pairs), ew_fs, ew_n)


def label_agreement(gold: Sequence[str], pred: Sequence[str], wheel: EmotionWheel) -> float:
    """One record's agreement: EW F-score (level 1, rounded) when gold is on a wheel, else exact-overlap F.

    >>> label_agreement(["neutral"], ["Neutral"], EmotionWheel({}, {}, {}))
    1.0
    >>> round(label_agreement(["neutral", "bored"], ["neutral"], EmotionWheel({}, {}, {})), 4)
    0.6667
    >>> label_agreement([], ["happy"], EmotionWheel({}, {}, {}))
    0.0
    """
    scores = score_labels([gold], [pred], wheel)
    return round(scores.ew_fs, DIGITS) if scores.ew_n else scores.f1
