"""Basic-emotion and sentiment metrics of MER-UniBench over open-vocabulary predictions.

Conventions:
- **Hit rate** (AffectGPT ``calculate_openset_onehot_hitrate``): per wheel (level1), a clip hits when
  its mapped gold label is among its mapped predicted labels; clips whose gold is off the wheel (e.g.
  ``neutral``) are skipped on that wheel; the figure is the mean over the wheels that scored a clip.
- **Closed-set** accuracy (= WAR, weighted average recall), UAR (unweighted mean of per-class recall),
  weighted and macro F1. The gold class is the record's first label; an open-vocabulary prediction is
  projected onto the gold classes by ``project_to_classes`` (rule in its docstring).
- **Sentiment** (MER-UniBench: positive vs non-positive): gold is positive when its ``sentiment`` value
  is > 0 (or its label is ``positive``); a prediction is positive when its ``sentiment``/valence is > 0,
  else by the polarity of its labels (``label_polarity``). ACC and WAF (support-weighted F1).
This module imports no model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from affectreason.eval.alignment import Aligned
from affectreason.eval.result import MetricResult, f_score
from affectreason.eval.wheel import WHEELS, EmotionWheel

NO_CLASS = "<none>"
# Level-1 rings of the 5 wheels, by polarity; rings not listed ("surprised", "genius") are neither.
POSITIVE_RINGS = frozenset({"happy", "joyful", "joy", "peaceful", "powerful"})
NEGATIVE_RINGS = frozenset({"sad", "mad", "angry", "anger", "scared", "fearful", "fear", "disgusted", "disgust", "bad"})
POLARITY_WORDS = {"positive": 1, "negative": -1, "neutral": 0}


def hit_rate(aligned: Aligned, wheel: EmotionWheel) -> MetricResult:
    """Share of clips whose basic gold emotion is among the predicted labels, after wheel mapping."""
    gold = wheel.masks([r.labels[:1] for r in aligned.gold], "level1")
    pred = wheel.masks([r.labels for r in aligned.pred], "level1")
    keep = np.flatnonzero((gold != 0).any(axis=1))
    gold, pred = gold[keep].T, pred[keep].T
    hits = np.where(gold != 0, (gold & pred) != 0, np.nan)
    names = [aligned.gold[i].name for i in keep]

    def statistic(indices: np.ndarray) -> dict[str, float]:
        per_wheel = [h[~np.isnan(h)].mean() for h in hits[:, indices] if np.any(~np.isnan(h))]
        return {"hit_rate": float(np.mean(per_wheel)) if per_wheel else 0.0}

    def rows() -> list[dict]:
        return [{"name": name, **{w: hits[k, i] for k, w in enumerate(WHEELS) if gold[k, i]}}
                for i, name in enumerate(names)]

    info = {"skipped_off_wheel_gold": len(aligned.gold) - len(names), **aligned.summary()}
    return MetricResult("hit_rate", statistic(np.arange(len(names))), names, statistic, info, rows=rows)


def project_to_classes(labels: Sequence[str], classes: Sequence[str], wheel: EmotionWheel | None) -> str:
    """The gold class an open-vocabulary prediction names.

    Labels are tried in order; the first that resolves wins. A label resolves to a class when it is
    that class, or (with a wheel) when its level-1 rings agree with one class on more wheels than with
    any other class. With nothing resolved the answer is ``neutral`` when that is a class (no emotion
    named reads as neutral), else ``<none>``, which is wrong for every clip.

    >>> project_to_classes(["content", "sadness"], ["joy", "sadness"], None)
    'sadness'
    """
    class_set = set(classes)
    class_rings = {c: [wheel.ring(c, w) for w in WHEELS] for c in classes} if wheel else {}
    for label in labels:
        if label in class_set:
            return label
        if not wheel:
            continue
        rings = [wheel.ring(label, w) for w in WHEELS]
        votes = {c: sum(r is not None and r == cr for r, cr in zip(rings, crs, strict=True))
                 for c, crs in class_rings.items()}
        best = max(votes.values(), default=0)
        winners = [c for c, v in votes.items() if v == best]
        if best > 0 and len(winners) == 1:
            return winners[0]
    return "neutral" if "neutral" in class_set else NO_CLASS


def _classification_figures(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy/WAR, UAR, weighted and macro F1 from integer class ids (pred may be n_classes = none)."""
    if len(gold) == 0:
        return {"accuracy": 0.0, "uar": 0.0, "weighted_f1": 0.0, "macro_f1": 0.0}
    confusion = np.bincount(gold * (n_classes + 1) + pred, minlength=n_classes * (n_classes + 1))
    confusion = confusion.reshape(n_classes, n_classes + 1)[:, :n_classes]
    support = np.bincount(gold, minlength=n_classes).astype(float)
    predicted = np.bincount(pred, minlength=n_classes + 1)[:n_classes].astype(float)
    tp = np.diag(confusion).astype(float)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.array([f_score(p, r) for p, r in zip(precision, recall, strict=True)])
    present = support > 0
    return {
        "accuracy": float(tp.sum() / len(gold)),
        "uar": float(recall[present].mean()),
        "weighted_f1": float((f1 * support).sum() / support.sum()),
        "macro_f1": float(f1[present].mean()),
    }


def closed_set(aligned: Aligned, wheel: EmotionWheel | None = None,
               classes: Sequence[str] | None = None) -> MetricResult:
    """Accuracy (WAR), UAR and F1 of predictions projected onto the gold classes."""
    scored = [(g, p) for g, p in zip(aligned.gold, aligned.pred, strict=True) if g.labels]
    classes = sorted(classes or {g.labels[0] for g, _ in scored})
    index = {c: i for i, c in enumerate(classes)}
    rows, gold_ids, pred_ids = [], [], []
    for gold, pred in scored:
        if gold.labels[0] not in index:
            continue
        guess = project_to_classes(pred.labels, classes, wheel)
        gold_ids.append(index[gold.labels[0]])
        pred_ids.append(index.get(guess, len(classes)))
        rows.append({"name": gold.name, "gold": gold.labels[0], "pred": guess, "correct": guess == gold.labels[0]})
    g_arr, p_arr = np.array(gold_ids, dtype=np.int64), np.array(pred_ids, dtype=np.int64)

    def statistic(indices: np.ndarray) -> dict[str, float]:
        return _classification_figures(g_arr[indices], p_arr[indices], len(classes))

    info = {"classes": classes, "unresolved_predictions": int((p_arr == len(classes)).sum()),
            "skipped_unlabelled_gold": len(aligned.gold) - len(rows), **aligned.summary()}
    return MetricResult("closed_set", statistic(np.arange(len(rows))), [r["name"] for r in rows], statistic, info,
                        rows=lambda: rows)


def label_polarity(label: str, wheel: EmotionWheel) -> int:
    """+1, -1 or 0: the majority polarity of a label's level-1 rings over the 5 wheels."""
    if label in POLARITY_WORDS:
        return POLARITY_WORDS[label]
    vote = 0
    for w in WHEELS:
        ring = wheel.ring(label, w)
        vote += (ring in POSITIVE_RINGS) - (ring in NEGATIVE_RINGS)
    return int(np.sign(vote))


def _is_positive(value: float | None, labels: Sequence[str], wheel: EmotionWheel | None) -> bool | None:
    if value is not None:
        return value > 0
    if not labels:
        return None
    if wheel is None:
        if labels[0] in POLARITY_WORDS:
            return labels[0] == "positive"
        return None
    return sum(label_polarity(label, wheel) for label in labels) > 0


def sentiment(aligned: Aligned, wheel: EmotionWheel | None = None) -> MetricResult:
    """Binary sentiment (positive vs non-positive) accuracy and weighted F1 (WAF)."""
    rows = []
    skipped = 0
    for gold, pred in zip(aligned.gold, aligned.pred, strict=True):
        g = _is_positive(gold.sentiment, gold.labels[:1], None)
        if g is None:
            skipped += 1
            continue
        p = bool(_is_positive(pred.sentiment, pred.labels, wheel))
        rows.append({"name": gold.name, "gold_positive": g, "pred_positive": p, "correct": g == p})
    gold_ids = np.array([int(r["gold_positive"]) for r in rows], dtype=np.int64)
    pred_ids = np.array([int(r["pred_positive"]) for r in rows], dtype=np.int64)

    def statistic(indices: np.ndarray) -> dict[str, float]:
        figures = _classification_figures(gold_ids[indices], pred_ids[indices], 2)
        return {"accuracy": figures["accuracy"], "waf": figures["weighted_f1"]}

    info = {"skipped_no_gold_sentiment": skipped, **aligned.summary()}
    return MetricResult("sentiment", statistic(np.arange(len(rows))), [r["name"] for r in rows], statistic, info,
                        rows=lambda: rows)

