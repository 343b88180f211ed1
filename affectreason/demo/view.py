"""An explained clip as HTML for the demo page: labels and figures, and the chain of thought with every
grounding check beside the observation it checks (status, the cue, and the measured value behind it).

The page's counterpart of ``reason/render.py`` (which prints the same parts to a terminal). Every text that came
from a model or a file is escaped; nothing here runs script or loads anything.
"""

from __future__ import annotations

from html import escape

from affectreason.schema import Clue, Cues, Explanation, GroundingCheck

STATUS_TEXT = {"supported": "✓ borne out", "contradicted": "✗ not borne out", "unverifiable": "? not checkable",
               "copied": "✗ copied from the prompt"}
OBSERVATION_TEXT = {"grounded": "grounded", "ungrounded": "not borne out", "unverifiable": "not checkable",
                    "none": "no measurable claim"}

CSS = """
.ar-summary, .ar-chain-box { font-size: 15px; line-height: 1.45; }
.ar-labels { margin: 0 0 6px 0; }
.ar-label { display: inline-block; padding: 2px 12px; margin: 0 6px 6px 0; border-radius: 14px;
            background: #2563eb; color: #fff; font-weight: 600; font-size: 17px; }
.ar-none { color: #6b7280; font-style: italic; }
.ar-figures span { margin-right: 16px; white-space: nowrap; }
.ar-meta { color: #6b7280; font-size: 13px; margin-top: 4px; }
.ar-warn { color: #b45309; font-size: 13px; margin: 4px 0 0 0; padding-left: 18px; }
.ar-chain { padding-left: 22px; margin: 0; }
.ar-obs { margin: 0 0 10px 0; padding: 6px 10px; border-left: 4px solid #9ca3af; }
.ar-obs.grounded { border-left-color: #16a34a; }
.ar-obs.ungrounded { border-left-color: #dc2626; }
.ar-obs-head { font-size: 13px; color: #6b7280; }
.ar-badge { font-weight: 600; margin-left: 8px; }
.ar-obs.grounded .ar-badge { color: #16a34a; }
.ar-obs.ungrounded .ar-badge { color: #dc2626; }
.ar-obs-text { margin: 2px 0 4px 0; }
.ar-checks { border-collapse: collapse; font-size: 13px; }
.ar-checks td { padding: 1px 10px 1px 0; vertical-align: top; }
.ar-check.supported td:first-child { color: #16a34a; }
.ar-check.contradicted td:first-child, .ar-check.copied td:first-child { color: #dc2626; }
.ar-check.unverifiable td:first-child { color: #6b7280; }
.ar-step { margin: 6px 0 0 0; }
"""


def _span(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    return f"{start:.1f} s" if end is None or end == start else f"{start:.1f}-{end:.1f} s"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def observation_status(checks: list[GroundingCheck]) -> str:
    """``grounded`` (what it names is borne out), ``ungrounded`` (something it names is contradicted or copied),
    ``unverifiable`` or ``none`` (it names no measurable cue)."""
    statuses = {c.status for c in checks}
    if statuses & {"contradicted", "copied"}:
        return "ungrounded"
    if "supported" in statuses:
        return "grounded"
    return "unverifiable" if statuses else "none"


def _observation(i: int, clue: Clue, checks: list[GroundingCheck]) -> str:
    status = observation_status(checks)
    rows = "".join(f'<tr class="ar-check {c.status}"><td>{STATUS_TEXT[c.status]}</td><td>{escape(c.cue)}</td>'
                   f"<td>{escape(c.detail)}</td></tr>" for c in checks)
    table = f'<table class="ar-checks">{rows}</table>' if rows else ""
    when = _span(clue.start, clue.end)
    return (f'<li class="ar-obs {status}" data-status="{status}" data-index="{i}">'
            f'<div class="ar-obs-head">{escape(clue.modality)}{" · " + when if when else ""}'
            f'<span class="ar-badge">{OBSERVATION_TEXT[status]}</span></div>'
            f'<p class="ar-obs-text">{escape(clue.text)}</p>{table}</li>')


def chain_html(explanation: Explanation) -> str:
    """Observations (each with its grounding checks) -> interpretation -> conclusion."""
    checks = explanation.grounding.checks if explanation.grounding else []
    items = "".join(_observation(i, clue, [c for c in checks if c.clue == i])
                    for i, clue in enumerate(explanation.observations))
    chain = f'<ol class="ar-chain">{items}</ol>' if items else '<p class="ar-none">no observations</p>'
    return (f'<div class="ar-chain-box">{chain}'
            f'<p class="ar-step ar-interpretation"><b>Interpretation</b> {escape(explanation.interpretation)}</p>'
            f'<p class="ar-step ar-conclusion"><b>Conclusion</b> {escape(explanation.conclusion)}</p></div>')


def summary_html(explanation: Explanation, cues: Cues, backend: str, seconds: float) -> str:
    """Labels, valence, arousal, the grounding score, what answered and how long it took, warnings."""
    labels = "".join(f'<span class="ar-label">{escape(label)}</span>' for label in explanation.labels) or \
        '<span class="ar-none">no labels</span>'
    grounding = explanation.grounding
    checks = grounding.checks if grounding else []
    supported = sum(c.status == "supported" for c in checks)
    counted = sum(c.status in ("supported", "contradicted", "copied") for c in checks)
    score = "n/a" if grounding is None or grounding.score is None else \
        f"{grounding.score:.2f} ({supported} of {counted} named cues borne out)"
    notes = [*cues.warnings]
    if explanation.unknown_labels:
        notes.append("labels not in the emotion lexicon: " + ", ".join(explanation.unknown_labels))
    if explanation.parse_status != "ok":
        notes.append(f"parse {explanation.parse_status}: " + "; ".join(explanation.parse_errors))
    warn = "".join(f"<li>{escape(n)}</li>" for n in notes)
    meta = " · ".join(x for x in (backend, explanation.model, explanation.prompt, f"{seconds:.1f} s") if x)
    return (f'<div class="ar-summary"><div class="ar-labels">{labels}</div><div class="ar-figures">'
            f'<span class="ar-valence">valence {_signed(explanation.valence)}</span>'
            f'<span class="ar-arousal">arousal {_signed(explanation.arousal)}</span>'
            f'<span class="ar-grounding">grounding {score}</span></div>'
            f'<div class="ar-meta">{escape(meta)}</div>{f"<ul class=ar-warn>{warn}</ul>" if warn else ""}</div>')
