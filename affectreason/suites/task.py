"""Evaluation tasks and suites as typed YAML (the lm-evaluation-harness convention: a task names its data, what the
model is given, the prompt, the metrics and its own version; a suite is a list of tasks).

Shipped tasks live in ``affectreason/suites/tasks/``, suites in ``affectreason/suites/suites/``; any YAML path works
too. A typo is an error naming the file and the key (``extra="forbid"``, as the training recipes).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from affectreason.config import load_validated
from affectreason.errors import RecipeError
from affectreason.eval.registry import METRICS

InputKind = Literal["transcript", "media"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataRef(Section):
    """Which records the task reads: a data recipe (``data_recipes/``) and its overrides."""

    recipe: str
    overrides: list[str] = Field(default_factory=list, description="key=value overrides of the data recipe")


class MetricSpec(Section):
    """One metric of the registry (``affectreason score``) with its options."""

    metric: str
    options: dict[str, str | float | int | bool] = Field(default_factory=dict)
    key: str | None = Field(default=None, description="the summary figure reported (default: the metric's first)")

    @model_validator(mode="after")
    def _known(self) -> MetricSpec:
        if self.metric not in METRICS:
            raise ValueError(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        unknown = set(self.options) - set(METRICS[self.metric].options)
        if unknown:
            raise ValueError(f"{self.metric} takes no option {sorted(unknown)} (it takes "
                             f"{', '.join(METRICS[self.metric].options)})")
        return self


class Published(Section):
    """A published figure to print beside ours, marked as such."""

    system: str
    figure: str = Field(description="which of the task's figures it corresponds to, e.g. hit:hit_rate")
    value: float = Field(description="as published, on the table's scale (percent for shares)")
    inputs: str = Field(description="what that system was given, e.g. video + audio + text")
    source: str


class TaskConfig(Section):
    """One benchmark task."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: int = Field(ge=1, description="bumped whenever data, input, prompt or metrics change")
    description: str
    data: DataRef
    input: InputKind = Field(description="transcript: the words only; media: cues extracted from the clips "
                                         "(and the clip itself for multimodal backends)")
    prompt: str = "reason/explain"
    metrics: list[MetricSpec] = Field(min_length=1, description="the first is the task's primary figure")
    published: list[Published] = Field(default_factory=list)
    limit: int | None = Field(default=None, ge=1)


class SuiteConfig(Section):
    """A named list of tasks."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: int = Field(ge=1)
    description: str
    tasks: list[str] = Field(min_length=1)
    limit: int | None = Field(default=None, ge=1, description="records per task (a smoke run)")


def _folder(kind: str) -> Path:
    return Path(str(resources.files("affectreason.suites") / kind))


def shipped(kind: str) -> list[str]:
    """Names of the packaged ``tasks`` or ``suites``."""
    return sorted(p.stem for p in _folder(kind).glob("*.yaml"))


def load_task(source: str | Path) -> TaskConfig:
    """A task from a YAML path or a packaged task name."""
    path = Path(source)
    if not path.is_file():
        path = _folder("tasks") / f"{source}.yaml"
    if not path.is_file():
        raise RecipeError(f"task {source!r} not found (a YAML path, or one of {', '.join(shipped('tasks'))})")
    return load_validated(path, TaskConfig, [], RecipeError)


def resolve(target: str | Path, limit: int | None = None) -> tuple[str, list[TaskConfig]]:
    """(suite name, its tasks) for a suite or a single task, name or path; ``limit`` caps records per task."""
    path = Path(target)
    suite_path = path if path.is_file() else _folder("suites") / f"{target}.yaml"
    if suite_path.is_file():
        import yaml

        tree = yaml.safe_load(suite_path.read_text(encoding="utf-8")) or {}
        if isinstance(tree, dict) and "tasks" in tree:
            suite = load_validated(suite_path, SuiteConfig, [], RecipeError)
            tasks = [load_task(t if not (suite_path.parent / t).is_file() else suite_path.parent / t)
                     for t in suite.tasks]
            cap = limit or suite.limit
            return suite.name, [t.model_copy(update={"limit": min(t.limit or cap, cap)}) if cap else t for t in tasks]
    task = load_task(target)
    return task.name, [task.model_copy(update={"limit": limit}) if limit else task]
