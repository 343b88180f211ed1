"""A readable terminal rendering of an explained clip: cues, chain of thought, labels, grounding."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from affectreason.cues.textualize import textualize
from affectreason.schema import Cues, Explanation

STATUS_MARK = {"supported": "[green]✓[/green]", "contradicted": "[red]✗[/red]", "unverifiable": "[dim]?[/dim]",
               "copied": "[red]copied[/red]"}


def _span(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    return f"{start:.1f}s" if end is None or end == start else f"{start:.1f}-{end:.1f}s"


def render_explanation(cues: Cues, explanation: Explanation, console: Console | None = None) -> None:
    """Print the cues summary, the three-part chain of thought, the labels and the grounding checks."""
    console = console or Console()
    console.print(Panel(Text(textualize(cues)), title=f"cues: {cues.clip_id}", title_align="left"))
    steps = Table(show_header=True, box=None, pad_edge=False)
    for column in ("", "modality", "time", "key observation"):
        steps.add_column(column, overflow="fold")
    checks = explanation.grounding.checks if explanation.grounding else []
    for i, clue in enumerate(explanation.observations):
        marks = " ".join(STATUS_MARK[c.status] for c in checks if c.clue == i)
        steps.add_row(marks, clue.modality, _span(clue.start, clue.end), clue.text)
    body = [steps, Text(""), Text.from_markup(f"[bold]Interpretation[/bold]  {explanation.interpretation}"),
            Text.from_markup(f"[bold]Conclusion[/bold]  {explanation.conclusion}")]
    console.print(Panel(Group(*body), title=f"chain of thought ({explanation.backend})", title_align="left"))
    grounding = explanation.grounding
    score = "n/a" if grounding is None or grounding.score is None else f"{grounding.score:.2f}"
    console.print(f"[bold]labels:[/bold] {', '.join(explanation.labels) or '(none)'}    "
                  f"[bold]valence[/bold] {explanation.valence if explanation.valence is not None else 'n/a'}    "
                  f"[bold]arousal[/bold] {explanation.arousal if explanation.arousal is not None else 'n/a'}    "
                  f"[bold]grounding[/bold] {score}", highlight=False)
    for check in (c for c in checks if c.status in ("contradicted", "copied")):
        what = "copied" if check.status == "copied" else "unsupported"
        console.print(f"  [red]{what}[/red] in observation {check.clue + 1}: {check.cue} ({check.detail})")
    if explanation.unknown_labels:
        console.print(f"[yellow]labels not in the emotion lexicon:[/yellow] {', '.join(explanation.unknown_labels)}")
    if explanation.parse_status != "ok":
        console.print(f"[yellow]parse {explanation.parse_status}:[/yellow] {'; '.join(explanation.parse_errors)}")
