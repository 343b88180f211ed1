"""A run's results: ``results.json`` (per task: figures with 95% bootstrap intervals, n, failures, versions, the
resolved config), ``results.md``, a terminal table, and the paired comparison of two result folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

import affectreason
from affectreason.errors import UsageError
from affectreason.eval.bootstrap import paired_comparison
from affectreason.eval.registry import METRICS, score
from affectreason.suites.run import TaskResult
from affectreason.textfile import write_atomic

RESULTS = "results.json"


def results_json(suite: str, results: list[TaskResult], backend: dict, settings: dict) -> dict:
    """The whole run as one JSON-ready dict."""
    return {"suite": suite, "affectreason_version": affectreason.__version__, "backend": backend,
            "settings": settings, "tasks": {r.task.name: r.as_json() for r in results}}


RAW_SCALE = {"emer"}  # clue / label overlap are on their own 0-10 scale; every other figure is a share, shown in %


def _fmt(value: float | None, share: bool) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:.2f}" if share else f"{value:.2f}"


def _ci(ci: list | None, share: bool) -> str:
    if not ci or any(v is None or math.isnan(v) for v in ci):
        return "-"
    return f"{_fmt(ci[0], share)}-{_fmt(ci[1], share)}"


def rows(report: dict, sources: bool = False) -> list[list[str]]:
    """Table rows: task, figure, value, 95% CI, n, failures, note (ours first, published rows marked)."""
    out = []
    for name, task in report["tasks"].items():
        if task["status"] != "ok":
            out.append([name, "-", "-", "-", "-", "-", f"skipped: {task['reason']}"])
            continue
        for figure in task["figures"]:
            share = figure["metric"] not in RAW_SCALE
            out.append([name, f"{figure['metric']}:{figure['key']}", _fmt(figure["value"], share),
                        _ci(figure["ci95"], share), str(figure["n"]), str(task["failures"]), ""])
        for published in task["published"]:  # as published, on the scale of the table
            out.append([name, published["figure"], f"{published['value']:.2f}", "", "", "",
                        f"published: {published['system']} ({published['inputs']})"
                        + (f"; {published['source']}" if sources else "")])
    return out


HEADER = ["task", "figure", "value", "95% CI", "n", "failures", "note"]


def write_results(report: dict, out: Path) -> tuple[Path, Path]:
    """``results.json`` and ``results.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / RESULTS, json.dumps(report, indent=2, ensure_ascii=False, default=str))
    lines = [f"# {report['suite']}: {report['backend'].get('resolved')} {report['backend'].get('model') or ''}",
             "", f"affectreason {report['affectreason_version']}; values are percentages where the metric is a "
             "share, clue/label overlap on its 0-10 scale.", "", "| " + " | ".join(HEADER) + " |",
             "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(report, sources=True)]
    write_atomic(out / "results.md", "\n".join(lines) + "\n")
    return out / RESULTS, out / "results.md"


def render(report: dict, console: Console) -> None:
    """The results table on the terminal."""
    table = Table(title=f"{report['suite']} ({report['backend'].get('resolved')})")
    for column in HEADER:
        table.add_column(column, justify="right" if column in ("value", "n", "failures") else "left")
    for row in rows(report):
        table.add_row(*row)
    console.print(table)


def load_results(folder: Path) -> dict:
    """A run's ``results.json``."""
    path = Path(folder) / RESULTS
    if not path.is_file():
        raise UsageError(f"{folder}: no {RESULTS} (run `affectreason eval SUITE --out {folder}` first)")
    return json.loads(path.read_text(encoding="utf-8"))


def compare(folder_a: Path, folder_b: Path, resamples: int = 1000, wheel_dir: Path | None = None) -> list[dict]:
    """Per task and figure: B - A with a paired-bootstrap interval and p-value, over the clips both scored."""
    a, b = load_results(folder_a), load_results(folder_b)
    out = []
    for name in [n for n in a["tasks"] if n in b["tasks"]]:
        ta, tb = a["tasks"][name], b["tasks"][name]
        if ta["status"] != "ok" or tb["status"] != "ok":
            out.append({"task": name, "status": "skipped", "reason": ta["reason"] or tb["reason"]})
            continue
        if ta["version"] != tb["version"]:
            raise UsageError(f"{name}: task version {ta['version']} in {folder_a} but {tb['version']} in {folder_b}")
        gold = Path(folder_a) / name / ta["files"]["gold"]
        for figure in ta["figures"]:
            options = dict(figure["options"])
            if "wheel_dir" in METRICS[figure["metric"]].options:
                options.setdefault("wheel_dir", wheel_dir)
            ra = score(figure["metric"], gold, Path(folder_a) / name / ta["files"]["pred"], **options)
            rb = score(figure["metric"], gold, Path(folder_b) / name / tb["files"]["pred"], **options)
            paired = paired_comparison(ra, rb, max(resamples, 1))[figure["key"]]
            out.append({"task": name, "figure": f"{figure['metric']}:{figure['key']}", "n": ra.n, **paired})
    return out
