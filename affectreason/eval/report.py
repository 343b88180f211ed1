"""Reports of metric results: aggregate JSON, per-sample JSONL and a readable table."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

import affectreason
from affectreason.eval.result import MetricResult
from affectreason.textfile import write_atomic


def _clean(value):
    """JSON-safe: NaN becomes null (json.dumps would write the invalid token NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def aggregate(result: MetricResult, ci: dict[str, tuple[float, float]] | None = None) -> dict:
    """The headline figures (+ n, intervals and run information) as one JSON-ready dict."""
    out: dict = {key: value for key, value in result.summary.items()}
    out["n"] = result.n
    if ci:
        out["ci95"] = {key: list(bounds) for key, bounds in ci.items()}
    out["metric"] = result.metric
    out["info"] = result.info
    out["affectreason_version"] = affectreason.__version__
    return _clean(out)


def write_per_sample(result: MetricResult, path: str | Path) -> None:
    """One JSON line per scored clip."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in result.per_sample:
            handle.write(json.dumps(_clean(row), ensure_ascii=False) + "\n")


def write_json(data: dict, path: str | Path) -> None:
    """Write a report dict as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(_clean(data), indent=2, ensure_ascii=False) + "\n")


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def render_table(result: MetricResult, ci: dict[str, tuple[float, float]] | None = None,
                 console: Console | None = None) -> None:
    """Print headline figures (with intervals) and the unpaired-record counts."""
    console = console or Console()
    table = Table(title=f"{result.metric} (n = {result.n})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    if ci:
        table.add_column("95% CI", justify="right")
    for key, value in result.summary.items():
        cells = [key, _fmt(value)]
        if ci:
            low, high = ci[key]
            cells.append(f"[{_fmt(low)}, {_fmt(high)}]")
        table.add_row(*cells)
    per_wheel = result.info.get("per_wheel")
    if per_wheel:
        for wheel, figures in per_wheel.items():
            cells = [f"  {wheel} F / P / R",
                     f"{_fmt(figures['fs'])} / {_fmt(figures['precision'])} / {_fmt(figures['recall'])}"]
            table.add_row(*cells, *([""] if ci else []))
    console.print(table)
    info = result.info
    if info.get("missing_predictions") or info.get("extra_predictions"):
        console.print(
            f"[yellow]{info['missing_predictions']} gold clips had no prediction "
            f"(rule: {info['missing_rule']}; e.g. {', '.join(info['missing_examples'])}); "
            f"{info['extra_predictions']} predictions had no gold record and were ignored"
            + (f" (e.g. {', '.join(info['extra_examples'])})" if info["extra_examples"] else "") + ".[/yellow]"
        )


def render_comparison(metric: str, comparison: dict[str, dict[str, float]], console: Console | None = None) -> None:
    """Print a paired comparison as a table."""
    console = console or Console()
    table = Table(title=f"paired comparison: {metric} (B - A)")
    for column in ("figure", "A", "B", "B - A", "95% CI", "p"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for key, row in comparison.items():
        table.add_row(key, _fmt(row["a"]), _fmt(row["b"]), f"{row['diff']:+.4f}",
                      f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]", f"{row['p_value']:.3f}")
    console.print(table)
