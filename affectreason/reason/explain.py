"""Explain a clip: cues -> a reasoning backend -> a grounded ``Explanation``.

Backends available in this release: ``rules`` (no weights) and ``auto``, which picks a configured
model backend when one is given and can be loaded, and otherwise says so in one line and uses ``rules``.
The grounding check runs on every explanation, whatever produced it.
"""

from __future__ import annotations

from collections.abc import Callable

from affectreason.reason.grounding import ground
from affectreason.reason.rules import explain_rules
from affectreason.schema import Cues, Explanation

BACKENDS = ("auto", "rules")


def resolve_backend(backend: str, note: Callable[[str], None] | None = None) -> str:
    """The backend that will run; ``auto`` falls back to ``rules`` (no model backend is configured)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if note:
            note("auto: no model is configured, using the rules engine (cue-grounded, no weights)")
        return "rules"
    return backend


def explain_cues(cues: Cues, backend: str = "rules") -> Explanation:
    """An explanation of precomputed cues, with its grounding check."""
    if resolve_backend(backend) == "rules":
        explanation = explain_rules(cues)
    explanation.grounding = ground(explanation.observations, cues)
    return explanation
