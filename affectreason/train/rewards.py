"""Reward functions of the RL stage (``train.grpo``): pure, typed functions of one completion and its record.

Conventions (each reward's source in its docstring; all import no model):
- a completion is parsed once with ``reason.parse.parse_explanation`` (memoised per text); its labels are the
  parser's labels, normalised (``labels.normalize_labels``); the gold labels are the record's, normalised;
- ``format``, ``ew``, ``ov``, ``hit`` and ``grounding`` lie in [0, 1], ``au`` in [-1, 1] (2F-1, Facial-R1) and
  ``length`` in [-1, 0] (a penalty: 0 unless the label set is much larger than gold);
- ``combine`` is the weighted sum of the rewards divided by the sum of the weights of the rewards that can be
  positive (``length`` only subtracts), so the default combination lies in [-1, 1] and an answer that earns every
  reward scores 1.0. ``train.grpo`` hands TRL the same weights divided the same way, so TRL's logged ``reward``
  is ``combine`` of the per-reward figures.
Adding a reward: write ``def name(sample: Sample, context: Context) -> float`` here with a doctest, add it to
``REWARDS`` (and its range to ``RANGES``), and give it a weight in a recipe's ``rl.rewards``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from affectreason.eval.ov import set_overlap
from affectreason.eval.per_record import label_agreement
from affectreason.eval.result import f_score
from affectreason.eval.wheel import WHEELS, EmotionWheel
from affectreason.labels import normalize_labels
from affectreason.reason.grounding import AU_MENTION, NEGATIONS, au_peaks, ground
from affectreason.reason.messages import explanation_schema, schema_violations
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Cues, Explanation

ACTIVE_AU = 1.0  # an AU is active when its peak reaches 1.0 (0-5 scale): the grounding check's "claimed active"
TAGGED = re.compile(r"^\s*<think>(.+?)</think>\s*<answer>(.+?)</answer>\s*$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Context:
    """What the rewards share across samples: the emotion wheel (EW / hit), the AU F-beta and reward floors."""

    wheel: EmotionWheel | None = None
    au_beta: float = 1.0  # F-beta of the AU reward: > 1 weighs recall (naming every active AU) over precision
    grounding_floor: float = 0.0  # grounding of an answer that names no checkable cue: a floor, not a prize
    length_factor: float = 2.0  # label sets up to this many times gold (at least 2 labels) go unpenalised


@dataclass(frozen=True)
class Sample:
    """One completion and what it is scored against: gold labels, the measured cues, the prompt's worked example."""

    text: str
    gold: tuple[str, ...]
    cues: Cues | None = None
    examples: tuple[str, ...] = field(default=())  # observation texts of the prompt's worked example (copy check)

    @property
    def answer(self) -> Explanation:
        return parsed(self.text)

    @property
    def labels(self) -> list[str]:
        return normalize_labels(self.answer.labels)

    @property
    def gold_labels(self) -> list[str]:
        return normalize_labels(list(self.gold))


@lru_cache(maxsize=4096)
def parsed(text: str) -> Explanation:
    """The completion parsed into an Explanation (every reward of one completion reads the same parse)."""
    return parse_explanation(text)


def format_reward(sample: Sample, context: Context) -> float:
    """1.0 when the completion is one Explanation JSON object that meets the schema, the R1 tag form
    ``<think>...</think><answer>labels</answer>`` with an emotion label in the answer (R1-Omni), or the
    three-section text the parser reads in full (observations, conclusion, labels; no parse error); else 0.0.

    >>> ctx = Context()
    >>> format_reward(Sample('<think>AU12 strong</think><answer>happy</answer>', ("happy",)), ctx)
    1.0
    >>> format_reward(Sample('{"observations": [], "interpretation": "", "conclusion": "x", "labels": ["sad"]}',
    ...                      ("sad",)), ctx)
    1.0
    >>> format_reward(Sample("Key observations: AU12 at 3.0\\nConclusion: a smile\\nLabels: happy", ("happy",)), ctx)
    1.0
    >>> format_reward(Sample('{"labels": ["sad"]}', ("sad",)), ctx), format_reward(Sample('happy', ("happy",)), ctx)
    (0.0, 0.0)
    """
    text = sample.text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return 0.0
        return 1.0 if isinstance(value, dict) and not schema_violations(value, explanation_schema()) else 0.0
    if TAGGED.match(text):
        return 1.0 if sample.labels else 0.0
    return 1.0 if sample.answer.parse_status == "ok" else 0.0


def ew_reward(sample: Sample, context: Context) -> float:
    """EW F-score of the predicted vs the gold labels (level 1, mean over the 5 wheels; exact-overlap F when gold
    is on no wheel), AffectGPT-R1's accuracy reward (``eval.per_record.label_agreement``).

    >>> from affectreason.eval.wheel import EmotionWheel
    >>> wheel = EmotionWheel({}, {}, {})  # an empty wheel: every gold is off it, so this is exact-overlap F
    >>> ew_reward(Sample("<answer>happy</answer>", ("happy",)), Context(wheel))
    1.0
    >>> round(ew_reward(Sample("<answer>happy, sad, angry</answer>", ("happy",)), Context(wheel)), 4)
    0.5
    """
    if context.wheel is None:
        raise ValueError("the ew reward needs an emotion wheel (rl.wheel_dir)")
    return float(label_agreement(sample.gold_labels, sample.labels, context.wheel)) if sample.gold_labels else 0.0


def ov_reward(sample: Sample, context: Context) -> float:
    """F1 of MER2024-OV set accuracy (|G∩P|/|P|) and recall (|G∩P|/|G|) of the exact label sets (no synonym
    grouping); an empty prediction scores 0.

    >>> ov_reward(Sample("<answer>happy, relaxed</answer>", ("happy", "calm")), Context())
    0.5
    >>> ov_reward(Sample("no idea", ("happy",)), Context())
    0.0
    """
    gold = set(sample.gold_labels)
    return f_score(*set_overlap(gold, set(sample.labels))) if gold else 0.0


def hit_reward(sample: Sample, context: Context) -> float:
    """Hit (MER-UniBench): the basic gold emotion (its first label) is among the predicted labels after wheel
    mapping, as a mean over the wheels the gold is on; a gold off every wheel (or no wheel) needs the exact word.

    >>> hit_reward(Sample("<answer>sad, happy</answer>", ("happy", "relieved")), Context())
    1.0
    >>> hit_reward(Sample("<answer>relieved</answer>", ("happy", "relieved")), Context())
    0.0
    """
    gold, pred = sample.gold_labels[:1], sample.labels
    if not gold or not pred:
        return 0.0
    wheel = context.wheel
    if wheel is not None:
        on = [w for w in WHEELS if w in wheel.wheel_maps and wheel.ring(gold[0], w) is not None]
        if on:
            return sum(wheel.ring(gold[0], w) in wheel.map_set(pred, w) for w in on) / len(on)
    return 1.0 if gold[0] in pred else 0.0


def grounding_reward(sample: Sample, context: Context) -> float:
    """Share of the cues the answer names that the measured cues support (``reason.grounding.ground``, with the
    copy check against the prompt's worked example); an answer naming no checkable cue gets ``grounding_floor``.

    >>> from affectreason.schema import FaceFrame
    >>> cues = Cues(clip_id="c", frames=[FaceFrame(t=0, faces=1, aus={"AU12": 3.0, "AU04": 0.2})])
    >>> grounding_reward(Sample("<think>strong AU12, AU04</think><answer>happy</answer>", ("happy",), cues),
    ...                  Context())
    0.5
    >>> grounding_reward(Sample("<think>she looks fine</think><answer>happy</answer>", ("happy",), cues), Context())
    0.0
    """
    cues = sample.cues if sample.cues is not None else Cues(clip_id="unknown")
    score = ground(sample.answer.observations, cues, sample.examples).score
    return context.grounding_floor if score is None else float(score)


def named_aus(answer: Explanation) -> set[str]:
    """AUs an answer claims present in its observations and interpretation (``no AU04`` is not a claim).

    >>> sorted(named_aus(parse_explanation("<think>AU6 and strong AU12, no AU04</think><answer>happy</answer>")))
    ['AU06', 'AU12']
    """
    text = " ".join([*(clue.text for clue in answer.observations), answer.interpretation])
    return {f"AU{int(m.group(2)):02d}" for m in AU_MENTION.finditer(text)
            if (m.group(1) or "").lower() not in NEGATIONS}


def active_aus(cues: Cues | None) -> set[str]:
    """AUs whose peak (``reason.grounding.au_peaks``) reaches ``ACTIVE_AU``."""
    if cues is None:
        return set()
    return {au for au, peak in au_peaks(cues).items() if peak >= ACTIVE_AU}


def au_reward(sample: Sample, context: Context) -> float:
    """2F-1 of the F-beta of the AUs named vs the AUs active in the cues (Facial-R1); naming none where none is
    active is F = 1.

    >>> from affectreason.schema import FaceFrame
    >>> cues = Cues(clip_id="c", frames=[FaceFrame(t=0, faces=1, aus={"AU12": 3.0, "AU06": 2.0, "AU04": 0.2})])
    >>> au_reward(Sample("<think>AU12, AU06</think><answer>happy</answer>", ("happy",), cues), Context())
    1.0
    >>> round(au_reward(Sample("<think>AU12, AU04</think><answer>happy</answer>", ("happy",), cues), Context()), 4)
    0.0
    >>> au_reward(Sample("<think>nothing</think><answer>happy</answer>", ("happy",), cues), Context())
    -1.0
    """
    named, active = named_aus(sample.answer), active_aus(sample.cues)
    if not named and not active:
        return 1.0
    hit = len(named & active)
    precision = hit / len(named) if named else 0.0
    recall = hit / len(active) if active else 0.0
    b2 = context.au_beta ** 2
    f = (1 + b2) * precision * recall / (b2 * precision + recall) if precision + recall else 0.0
    return 2 * f - 1


def length_reward(sample: Sample, context: Context) -> float:
    """Penalty for a label set much larger than gold (AffectGPT-R1's length term): 0 up to ``length_factor`` x
    |gold| labels (at least 2), then falling linearly to -1 at twice that limit.

    >>> length_reward(Sample("<answer>happy, glad</answer>", ("happy",)), Context())
    0.0
    >>> length_reward(Sample("<answer>happy, glad, joyful</answer>", ("happy",)), Context())
    -0.5
    >>> length_reward(Sample("<answer>happy, glad, joyful, content, calm</answer>", ("happy",)), Context())
    -1.0
    """
    limit = max(2.0, context.length_factor * max(len(sample.gold_labels), 1))
    excess = len(sample.labels) - limit
    return -min(1.0, excess / limit) if excess > 0 else 0.0


Reward = Callable[[Sample, Context], float]
REWARDS: dict[str, Reward] = {"format": format_reward, "ew": ew_reward, "ov": ov_reward, "hit": hit_reward,
                              "grounding": grounding_reward, "au": au_reward, "length": length_reward}
RANGES: dict[str, tuple[float, float]] = {"format": (0, 1), "ew": (0, 1), "ov": (0, 1), "hit": (0, 1),
                                          "grounding": (0, 1), "au": (-1, 1), "length": (-1, 0)}
DEFAULT_WEIGHTS: dict[str, float] = {"ew": 1.0, "format": 0.5, "grounding": 1.0, "length": 1.0}


def normalized_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights divided by the total weight of the rewards that can be positive (so a perfect answer scores 1).

    >>> normalized_weights({"ew": 1.0, "format": 0.5, "grounding": 1.0, "length": 1.0})
    {'ew': 0.4, 'format': 0.2, 'grounding': 0.4, 'length': 0.4}
    """
    unknown = sorted(set(weights) - set(REWARDS))
    if unknown:
        raise ValueError(f"unknown reward(s) {', '.join(unknown)}; choose from {', '.join(REWARDS)}")
    total = sum(w for name, w in weights.items() if RANGES[name][1] > 0)
    if total <= 0:
        raise ValueError("give a positive weight to at least one reward that can be positive")
    return {name: w / total for name, w in weights.items()}


def score(sample: Sample, context: Context, names: Sequence[str] = tuple(REWARDS)) -> dict[str, float]:
    """Every named reward of one sample."""
    return {name: REWARDS[name](sample, context) for name in names}


def combine(scores: Mapping[str, float], weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> float:
    """The combined reward: the weighted sum of ``scores`` over ``normalized_weights(weights)``.

    >>> combine({"ew": 1.0, "format": 1.0, "grounding": 1.0, "length": 0.0})
    1.0
    >>> round(combine({"ew": 1.0, "format": 1.0, "grounding": 0.0, "length": 0.0}), 4)
    0.6
    """
    return sum(w * scores[name] for name, w in normalized_weights(weights).items())


def combined_reward(sample: Sample, context: Context, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> float:
    """``combine`` of the weighted rewards of one sample (the default: ew + format + grounding + length)."""
    return combine(score(sample, context, list(weights)), weights)
