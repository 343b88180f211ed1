"""Run tasks: data recipe -> items -> the batch runner (resumable, cached) -> gold and prediction files -> the
registry's metrics, with bootstrap intervals.

Per task, under ``OUT/TASK/``: ``data/`` (the recipe's build), ``predictions-KEY.jsonl`` (the batch output; KEY
hashes the task version, backend, model, adapter and prompt version, so a re-run with the same settings only
scores), ``gold.jsonl`` / ``pred.jsonl`` (what the metrics read) and ``per_sample-METRIC.jsonl``. A task whose
inputs are absent (no transcript, no readable clip) is skipped with the reason, never scored as zero.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.backends.load import BackendSpec
from affectreason.batch import Item, Pool, run
from affectreason.cues.pipeline import CueConfig
from affectreason.data.build import build_dataset
from affectreason.data.recipe import load_data_recipe
from affectreason.errors import AffectReasonError
from affectreason.eval.bootstrap import bootstrap_ci
from affectreason.eval.registry import METRICS, score
from affectreason.eval.report import write_per_sample
from affectreason.jsonl import read_jsonl, write_jsonl
from affectreason.schema import Clip, Cues, Transcript
from affectreason.suites.task import TaskConfig

Note = Callable[[str], None]


@dataclass
class EvalSettings:
    """What every task of a run shares."""

    out: Path
    anchors: Path | None = None
    data_dir: Path = Path(".")
    wheel_dir: Path | None = None
    workers: int = 2
    resamples: int = 1000
    judge_endpoint: str | None = None
    judge_model: str | None = None
    api_key: str | None = None
    cues: CueConfig = field(default_factory=CueConfig)
    pool: Pool | None = None
    """workers elsewhere (``--ray``: a ``cluster.RayPool``) instead of local processes"""


@dataclass
class TaskResult:
    """One task's outcome: figures (or the reason it was skipped)."""

    task: TaskConfig
    status: str = "ok"  # ok | skipped
    reason: str | None = None
    n: int = 0
    failures: int = 0
    figures: list[dict] = field(default_factory=list)  # {metric, key, value, ci95, n}
    files: dict[str, str] = field(default_factory=dict)
    prompt: str | None = None

    def as_json(self) -> dict:
        """The task's entry in ``results.json``."""
        return {"version": self.task.version, "status": self.status, "reason": self.reason, "n": self.n,
                "failures": self.failures, "prompt": self.prompt, "figures": self.figures, "files": self.files,
                "published": [p.model_dump() for p in self.task.published],
                "config": self.task.model_dump(mode="json")}


def cache_key(task: TaskConfig, spec: BackendSpec) -> str:
    """What the predictions depend on: task version and data, backend, model, adapter, prompt version."""
    described = {k: v for k, v in spec.describe().items() if k != "label_model"}
    what = {"task": task.name, "version": task.version, "limit": task.limit, "data": task.data.model_dump(),
            "backend": described, "prompt": spec.prompt()}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def task_items(records: list[dict], task: TaskConfig) -> tuple[list[Item], str | None]:
    """The items a task asks the model about, or why there are none."""
    items = []
    for record in records:
        if task.input == "transcript":
            if not record.get("transcript"):
                continue
            cues = Cues(clip_id=record["id"], transcript=Transcript(text=record["transcript"], source="given"))
            items.append(Item(Clip(path=f"{record['id']} (no media)", id=record["id"],
                                   transcript=record["transcript"]), cues))
        else:
            media = record.get("media") or {}
            files = [f for kind in ("videos", "audios", "images") for f in media.get(kind, []) if Path(f).is_file()]
            if files:
                items.append(Item(Clip(path=files[0], id=record["id"], transcript=record.get("transcript"))))
    if not items:
        needed = "a transcript" if task.input == "transcript" else "a readable clip (give them with --data-dir)"
        return [], f"no record has {needed}: {len(records)} records, 0 usable"
    return items, None


def _gold_and_pred(records: list[dict], outputs: list[dict], folder: Path) -> tuple[Path, Path, int]:
    """``gold.jsonl`` and ``pred.jsonl`` for the registry; failed items are empty predictions (scored 0)."""
    by_id = {}
    for output in outputs:  # the last record of an item wins (a re-run appends retries)
        by_id[output["clip"]["id"]] = output
    gold, pred, failures = [], [], 0
    for record in records:
        output = by_id.get(record["id"])
        if output is None:
            continue
        gold.append({"name": record["id"], "labels": record["labels"], "reasoning": record.get("reasoning"),
                     "sentiment": record.get("sentiment")})
        explanation = output.get("explanation")
        if explanation is None:
            failures += 1
            pred.append({"name": record["id"], "labels": [], "reasoning": ""})
            continue
        reasoning = " ".join([*(c["text"] for c in explanation["observations"]), explanation["interpretation"],
                              explanation["conclusion"]]).strip()
        pred.append({"name": record["id"], "labels": explanation["labels"], "reasoning": reasoning,
                     "sentiment": explanation.get("valence")})
    return write_jsonl(folder / "gold.jsonl", gold), write_jsonl(folder / "pred.jsonl", pred), failures


def metric_options(metric: str, task_options: dict, settings: EvalSettings) -> dict:
    """A metric's options with the run's wheel and judge filled in (where the metric takes them)."""
    options = dict(task_options)
    if "wheel_dir" in METRICS[metric].options:
        options.setdefault("wheel_dir", settings.wheel_dir)
    if "judge" in METRICS[metric].options and settings.judge_endpoint:
        options.update(judge="llm", endpoint=settings.judge_endpoint, model=settings.judge_model,
                       api_key=settings.api_key)
    return options


def run_task(task: TaskConfig, spec: BackendSpec, settings: EvalSettings, reasoner=None,
             note: Note | None = None) -> TaskResult:
    """One task end to end; a missing input skips it, a bad item is a failure, not a crash."""
    say = note or (lambda line: None)
    folder = settings.out / task.name
    spec = _with_prompt(spec, task.prompt)
    result = TaskResult(task, prompt=spec.prompt())
    recipe = load_data_recipe(task.data.recipe, [*task.data.overrides, *([f"limit={task.limit}"] if task.limit
                                                                           else [])])
    recipe.prompt = task.prompt
    try:
        build_dataset(recipe, folder / "data", settings.anchors, settings.data_dir)
    except AffectReasonError as exc:
        result.status, result.reason = "skipped", f"data: {exc}"
        return result
    records = [r for path in sorted((folder / "data").glob("*.jsonl")) if path.stem in recipe.splits
               for r in read_jsonl(path)]
    items, reason = task_items(records, task)
    if reason:
        result.status, result.reason = "skipped", reason
        say(f"{task.name}: skipped ({reason})")
        return result
    predictions = folder / f"predictions-{cache_key(task, spec)}.jsonl"
    batch = run(items, predictions, settings.cues, spec, reasoner, settings.workers, source=task.name,
                pool=settings.pool)
    say(f"{task.name}: {batch.ok} explained, {len(batch.failed)} failed, {batch.skipped} cached")
    gold, pred, result.failures = _gold_and_pred(records, read_jsonl(predictions, "skip_last"), folder)
    result.files = {"predictions": predictions.name, "gold": gold.name, "pred": pred.name}
    for spec_metric in task.metrics:
        options = metric_options(spec_metric.metric, spec_metric.options, settings)
        scored = score(spec_metric.metric, gold, pred, **options)
        key = spec_metric.key or next(iter(scored.summary))
        ci = bootstrap_ci(scored, settings.resamples) if settings.resamples and scored.n else None
        per_sample = folder / f"per_sample-{spec_metric.metric}.jsonl"
        write_per_sample(scored, per_sample)
        result.files[f"per_sample_{spec_metric.metric}"] = per_sample.name
        result.figures.append({"metric": spec_metric.metric, "key": key, "value": scored.summary[key],
                               "ci95": list(ci[key]) if ci else None, "n": scored.n,
                               "options": {k: str(v) for k, v in spec_metric.options.items()}})
        result.n = max(result.n, scored.n)
    return result


def _with_prompt(spec: BackendSpec, prompt: str) -> BackendSpec:
    """The spec with the task's prompt for server backends (a local adapter renders the prompt it was trained
    with; ``TaskResult.prompt`` records the one used)."""
    from dataclasses import replace

    return replace(spec, server=replace(spec.server, prompt=prompt))
