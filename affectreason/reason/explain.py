"""The reasoning contract: a ``Reasoner`` turns cues into an ``Explanation``; ``explain_cues`` runs one and
grounds what it says against the measurements, whoever produced it. The rules engine is the reasoner that needs
no weights; reasoners that run models live in ``affectreason.backends``.
"""

from __future__ import annotations

from typing import Protocol

from affectreason.reason.grounding import ground
from affectreason.reason.messages import example_observations
from affectreason.reason.rules import explain_rules
from affectreason.schema import Clip, Cues, Explanation


class Reasoner(Protocol):
    """Anything that turns cues into an explanation."""

    name: str

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """One explanation (ungrounded); ``clip`` lets multimodal models see the media."""
        ...


class RulesReasoner:
    """The cue-grounded rules engine."""

    name = "rules"

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Rules explanation."""
        return explain_rules(cues)


def explain_cues(cues: Cues, reasoner: Reasoner | None = None, clip: Clip | None = None) -> Explanation:
    """An explanation of precomputed cues (rules by default), with its grounding check (and the copy check
    against the worked example of the prompt the reasoner rendered)."""
    explanation = (reasoner or RulesReasoner()).explain(cues, clip)
    explanation.grounding = ground(explanation.observations, cues, example_observations(explanation.prompt))
    return explanation
