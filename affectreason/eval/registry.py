"""The scoring metrics by name: one table of what each computes and which options it takes, and ``score``.

Conventions:
- ``score(metric, gold, pred, **options)`` reads the gold and prediction files (``read_records``),
  pairs them (``align`` with the ``missing`` rule), then builds what the metric needs (a wheel, a
  synonym grouping, a judge) and runs it; files are read before anything is built, so a bad file is
  reported before a missing option;
- options are the CLI's, by their Python names (``wheel_dir`` for ``--wheel-dir``), with the CLI's
  defaults; ``ScoreOptions`` holds them and ``OPTIONS`` describes each once (type, default, help), so
  a front end builds its flags from it;
- ``METRICS`` maps each metric name to its ``MetricSpec``: a one-line description and the options it
  takes, in the order the CLI shows them (``missing``, which every metric takes, last);
- every mistake a user can make here (an unknown metric, an option the metric does not take, options
  that do not fit together) is a ``UsageError``; its message names the CLI flags, because the CLI
  prints it as it is;
- the LLM client of an LLM grouping or judge caches its answers in ``--cache``, by default
  ``$AFFECTREASON_CACHE_DIR/judge.sqlite`` (``~/.cache/affectreason`` when the variable is unset).
Importing this module loads no model: encoders, wheels and clients are built only when a metric needs them.

>>> sorted(METRICS) == sorted(m.value for m in Metric)
True
>>> METRICS["ew"].options
('level', 'wheel_dir', 'missing')
>>> OPTIONS["wheel_dir"].flag, OPTIONS["threshold"].default
('--wheel-dir', 0.5)
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from affectreason.errors import UsageError
from affectreason.eval.alignment import Aligned, align
from affectreason.eval.records import read_records
from affectreason.eval.result import MetricResult

if typing.TYPE_CHECKING:
    from affectreason.endpoint import ChatClient
    from affectreason.eval.grouping import SynonymGrouping
    from affectreason.eval.judges.base import Judge
    from affectreason.eval.wheel import EmotionWheel

CACHE_ENV = "AFFECTREASON_CACHE_DIR"
NEEDS_GROUPING = "choose a synonym grouping: --groups FILE.json (cached) or --grouping wheel|embedding|llm"
CACHED_NEEDS_GROUPS = "--grouping cached needs --groups FILE.json"
LLM_NEEDS_ENDPOINT = ("an LLM judge needs --endpoint URL and --model NAME "
                      "(any OpenAI-compatible server, e.g. a local vLLM)")


class Grouping(StrEnum):
    """Synonym groupings of the OV metric (``affectreason.eval.grouping``)."""

    cached = "cached"
    wheel = "wheel"
    embedding = "embedding"
    llm = "llm"


class JudgeKind(StrEnum):
    """Judges of the EMER metric (``affectreason.eval.judges``)."""

    embedding = "embedding"
    llm = "llm"


def _option(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def _choice(kind: type[StrEnum], value: object, option: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise UsageError(f"--{option} must be one of {choices}, not {value!r}") from None


@dataclass(frozen=True)
class ScoreOptions:
    """Every option of every metric, with the CLI's defaults; a metric reads only those it takes.

    Strings are accepted for the enums and paths (``grouping="wheel"``, ``wheel_dir="anchors/emotion_wheel"``).

    >>> ScoreOptions(grouping="wheel", cache="j.sqlite").grouping is Grouping.wheel
    True
    >>> ScoreOptions(judge="gpt")
    Traceback (most recent call last):
    ...
    affectreason.errors.UsageError: --judge must be one of embedding, llm, not 'gpt'
    """

    groups: Path | None = _option(None, "cached synonym groups JSON (MERTools format)")
    grouping: Grouping | None = _option(None, "synonym grouping (default: cached, with --groups)")
    threshold: float = _option(0.5, "cosine threshold of embedding grouping")
    level: str = _option("level1", "wheel level: level1 or level2")
    classes: str | None = _option(None, "comma-separated class names (default: gold labels)")
    wheel_dir: Path | None = _option(None, "emotion-wheel folder (or env AFFECTREASON_WHEEL_DIR)")
    judge: JudgeKind = _option(JudgeKind.embedding, "EMER judge: embedding (offline) or llm")
    endpoint: str | None = _option(None, "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    model: str | None = _option(None, "model name at the endpoint")
    api_key: str | None = _option(None, "API key (or env AFFECTREASON_API_KEY / OPENAI_API_KEY)")
    cache: Path | None = _option(None, "judge response cache (SQLite); default under ~/.cache")
    workers: int = _option(8, "concurrent judge requests (llm judge)")
    missing: str = _option("empty", "gold clips without prediction: 'empty' (score 0) or 'skip'")

    def __post_init__(self) -> None:
        if self.grouping is not None:
            object.__setattr__(self, "grouping", _choice(Grouping, self.grouping, "grouping"))
        object.__setattr__(self, "judge", _choice(JudgeKind, self.judge, "judge"))
        for name in ("groups", "wheel_dir", "cache"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))


@dataclass(frozen=True)
class OptionSpec:
    """One option: its Python name, type, default and help (the CLI's ``--flag`` is derived from the name)."""

    name: str
    type: Any
    default: Any
    help: str

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--wheel-dir``."""
        return "--" + self.name.replace("_", "-")


_TYPES = typing.get_type_hints(ScoreOptions)
OPTIONS: dict[str, OptionSpec] = {f.name: OptionSpec(f.name, _TYPES[f.name], f.default, f.metadata["help"])
                                  for f in fields(ScoreOptions)}


# -- what the metrics need, built from the options -------------------------------------------------------------


def load_wheel(wheel_dir: str | Path | None) -> EmotionWheel:
    """The emotion wheel from ``wheel_dir`` or $AFFECTREASON_WHEEL_DIR (``WheelDataMissing`` says how to get it)."""
    from affectreason.eval.wheel import EmotionWheel

    return EmotionWheel.load(wheel_dir)


def judge_client(options: ScoreOptions) -> ChatClient:
    """The LLM client of an LLM grouping or judge, with its response cache.

    >>> judge_client(ScoreOptions(model="m"))
    Traceback (most recent call last):
    ...
    affectreason.errors.UsageError: an LLM judge needs --endpoint URL and --model NAME (any OpenAI-compatible server, e.g. a local vLLM)
    """  # noqa: E501
    from affectreason.endpoint import ChatClient, ResponseCache

    if not options.endpoint or not options.model:
        raise UsageError(LLM_NEEDS_ENDPOINT)
    cache_dir = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "affectreason"))
    return ChatClient(options.endpoint, options.model, api_key=options.api_key,
                      cache=ResponseCache(options.cache or cache_dir / "judge.sqlite"))


def synonym_grouping(options: ScoreOptions) -> SynonymGrouping:
    """The OV synonym grouping: ``--grouping``, else cached when ``--groups`` is given.

    >>> synonym_grouping(ScoreOptions())
    Traceback (most recent call last):
    ...
    affectreason.errors.UsageError: choose a synonym grouping: --groups FILE.json (cached) or --grouping wheel|embedding|llm
    >>> synonym_grouping(ScoreOptions(grouping="cached"))
    Traceback (most recent call last):
    ...
    affectreason.errors.UsageError: --grouping cached needs --groups FILE.json
    """  # noqa: E501
    from affectreason.eval import grouping as g

    kind = options.grouping or (Grouping.cached if options.groups else None)
    if kind is None:
        raise UsageError(NEEDS_GROUPING)
    if kind is Grouping.cached:
        if options.groups is None:
            raise UsageError(CACHED_NEEDS_GROUPS)
        return g.CachedGroups(options.groups)
    if kind is Grouping.wheel:
        return g.WheelGrouping(load_wheel(options.wheel_dir))
    if kind is Grouping.embedding:
        from affectreason.eval.embeddings import TextEncoder

        return g.EmbeddingGrouping(TextEncoder(), options.threshold)
    return g.LLMGrouping(judge_client(options))


def emer_judge(options: ScoreOptions) -> Judge:
    """The EMER judge: the offline embedding judge, or an LLM judge with ``workers`` requests in flight."""
    if options.judge is JudgeKind.llm:
        from affectreason.eval.judges.llm import LLMJudge

        return LLMJudge(judge_client(options), workers=options.workers)
    from affectreason.eval.judges.embedding import EmbeddingJudge

    return EmbeddingJudge()


def parse_classes(classes: str | None) -> list[str] | None:
    """The ``--classes`` list: comma-separated, stripped, lower-cased; None (the gold labels) when absent.

    >>> parse_classes("Neutral, joy,sadness")
    ['neutral', 'joy', 'sadness']
    >>> parse_classes(None) is None
    True
    """
    return [c.strip().lower() for c in classes.split(",")] if classes else None


# -- the metrics ----------------------------------------------------------------------------------------------


def _ov(aligned: Aligned, options: ScoreOptions) -> MetricResult:
    from affectreason.eval.ov import score_ov

    return score_ov(aligned, synonym_grouping(options))


def _ew(aligned: Aligned, options: ScoreOptions) -> MetricResult:
    from affectreason.eval.ew import score_ew

    return score_ew(aligned, load_wheel(options.wheel_dir), options.level)


def _hit(aligned: Aligned, options: ScoreOptions) -> MetricResult:
    from affectreason.eval.classification import hit_rate

    return hit_rate(aligned, load_wheel(options.wheel_dir))


def _closed(aligned: Aligned, options: ScoreOptions) -> MetricResult:
    from affectreason.eval.classification import closed_set

    return closed_set(aligned, load_wheel(options.wheel_dir), parse_classes(options.classes))


def _sentiment(aligned: Aligned, options: ScoreOptions) -> MetricResult:
    from affectreason.eval.classification import sentiment

    return sentiment(aligned, load_wheel(options.wheel_dir))


def _emer(aligned: Aligned, options: ScoreOptions) -> MetricResult:
    from affectreason.eval.judges.base import score_emer

    return score_emer(aligned, emer_judge(options))


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name, one-line description and the options it takes (``OPTIONS`` names, CLI order)."""

    name: str
    help: str
    options: tuple[str, ...]
    compute: Callable[[Aligned, ScoreOptions], MetricResult] = field(repr=False, compare=False)

    def check(self, options: Mapping[str, object]) -> None:
        """A ``UsageError`` naming the options this metric does not take.

        >>> METRICS["hit"].check({"level": "level2"})
        Traceback (most recent call last):
        ...
        affectreason.errors.UsageError: metric 'hit' takes no option level; its options: wheel_dir, missing
        """
        extra = [name for name in options if name not in self.options]
        if extra:
            raise UsageError(f"metric {self.name!r} takes no option {', '.join(extra)}; "
                             f"its options: {', '.join(self.options)}")

    def score(self, gold: str | Path, pred: str | Path, options: ScoreOptions | None = None) -> MetricResult:
        """Read, align and score; options this metric does not take are ignored (``score`` refuses them)."""
        options = options or ScoreOptions()
        aligned = align(read_records(gold), read_records(pred), options.missing)  # type: ignore[arg-type]
        return self.compute(aligned, options)


_WHEEL_METRIC = ("wheel_dir", "missing")
METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("ov", "MER2024-OV set-level accuracy, recall and their average.",
               ("groups", "grouping", "threshold", "wheel_dir", "endpoint", "model", "api_key", "cache", "missing"),
               _ov),
    MetricSpec("ew", "Emotion-wheel F-score, precision and recall (mean over 5 wheels) and per wheel.",
               ("level", *_WHEEL_METRIC), _ew),
    MetricSpec("hit", "Hit rate: the basic gold emotion is among the predicted labels (after wheel mapping).",
               _WHEEL_METRIC, _hit),
    MetricSpec("closed", "Closed-set accuracy (WAR), UAR, weighted and macro F1.", ("classes", *_WHEEL_METRIC),
               _closed),
    MetricSpec("sentiment", "Sentiment (positive vs non-positive) accuracy and WAF.", _WHEEL_METRIC, _sentiment),
    MetricSpec("emer", "EMER clue overlap and label overlap (0-10) with an offline embedding judge or an LLM judge.",
               ("judge", "endpoint", "model", "api_key", "cache", "workers", "missing"), _emer),
)}
Metric = StrEnum("Metric", [(name, name) for name in METRICS])  # the metric names as CLI choices
Metric.__doc__ = "The metric names of ``METRICS``, in table order."


def metric_spec(metric: str) -> MetricSpec:
    """The table entry of a metric name.

    >>> metric_spec("ov").name
    'ov'
    >>> metric_spec("f1")
    Traceback (most recent call last):
    ...
    affectreason.errors.UsageError: unknown metric 'f1'; choose one of: ov, ew, hit, closed, sentiment, emer
    """
    spec = METRICS.get(str(metric))
    if spec is None:
        raise UsageError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    return spec


def score(metric: str, gold: str | Path, pred: str | Path, **options: Any) -> MetricResult:
    """Score prediction file ``pred`` against gold file ``gold`` on one metric, with the CLI's options.

    An option the metric does not take is a ``UsageError`` (``MetricSpec.check``); so are options
    that do not fit together, with the CLI's messages.

    >>> score("ov", "gold.csv", "pred.csv", level="level2")
    Traceback (most recent call last):
    ...
    affectreason.errors.UsageError: metric 'ov' takes no option level; its options: groups, grouping, threshold, wheel_dir, endpoint, model, api_key, cache, missing
    """  # noqa: E501
    spec = metric_spec(metric)
    spec.check(options)
    return spec.score(gold, pred, ScoreOptions(**options))
