"""Explain a clip: cues -> a reasoning backend -> a grounded ``Explanation``.

Backends: ``rules`` (no weights), ``hf`` (a local chat LM over textualized cues, optional LoRA
adapter; a Qwen-VL folder runs natively and also sees key frames, an Omni thinker also hears), ``openai``
(any OpenAI-compatible server, JSON-schema constrained), ``vllm`` (a local model in an in-process
``vllm.LLM`` engine; a folder goes through it as one batch, ``affectreason.serve.offline``), and
``auto``: ``hf`` when a model is given and loads, ``openai`` when an endpoint is given, else ``rules``,
saying which in one line.
The grounding check runs on every explanation, whatever produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from affectreason.reason.grounding import ground
from affectreason.reason.rules import explain_rules
from affectreason.schema import Clip, Cues, Explanation

BACKENDS = ("auto", "rules", "hf", "openai", "vllm")


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


@dataclass
class BackendSpec:
    """Which backend to run and with what (picklable, so batch workers can load their own)."""

    name: str = "auto"
    model: str | None = None
    adapter: str | None = None
    endpoint: str | None = None
    server_model: str | None = None
    api_key: str | None = None
    max_new_tokens: int = 384
    label_endpoint: str | None = None
    label_model: str | None = None


def load_reasoner(spec: BackendSpec, note: Callable[[str], None] | None = None) -> Reasoner:
    """The reasoner a spec asks for (with an LLM label extractor when one is configured)."""
    reasoner = _load(spec, note)
    if spec.label_endpoint and hasattr(reasoner, "extractor"):
        if not spec.label_model:
            raise ValueError("--label-endpoint needs --label-model NAME")
        from affectreason.eval.judges.llm import LLMJudge
        from affectreason.serve.client import ChatClient

        judge = LLMJudge(ChatClient(spec.label_endpoint, spec.label_model, api_key=spec.api_key))
        reasoner.extractor = judge.extract_labels
    return reasoner


def _load(spec: BackendSpec, note: Callable[[str], None] | None) -> Reasoner:
    """The reasoner a spec asks for; ``auto`` falls back to ``rules`` with a one-line note."""
    say = note or (lambda line: None)
    if spec.name not in BACKENDS:
        raise ValueError(f"unknown backend {spec.name!r}; choose one of {', '.join(BACKENDS)}")
    if spec.name == "rules":
        return RulesReasoner()
    if spec.name == "vllm":
        from affectreason.serve.offline import OfflineVLLM

        if not spec.model:
            raise ValueError("--backend vllm needs --model (a local model folder)")
        return OfflineVLLM(spec.model, spec.adapter, spec.max_new_tokens)
    if spec.name == "hf" or (spec.name == "auto" and spec.model):
        from affectreason.models.causal_lm import ModelMissing
        from affectreason.models.feature_lm import FEATURE_CONFIG
        from affectreason.models.native import native_kind
        from affectreason.reason.llm import FeatureReasoner, HFReasoner, NativeReasoner

        if not spec.model:
            raise ValueError("--backend hf needs --model (a local chat model folder)")
        try:
            if spec.adapter and (Path(spec.adapter) / FEATURE_CONFIG).is_file():
                return FeatureReasoner(spec.model, spec.adapter, spec.max_new_tokens)
            if native_kind(spec.model):
                return NativeReasoner(spec.model, spec.adapter, spec.max_new_tokens)
            return HFReasoner(spec.model, spec.adapter, spec.max_new_tokens)
        except ModelMissing as exc:
            if spec.name == "hf":
                raise
            say(f"auto: {exc}; using the rules engine instead")
            return RulesReasoner()
    if spec.name == "openai" or (spec.name == "auto" and spec.endpoint):
        from affectreason.reason.llm import OpenAIReasoner
        from affectreason.serve.client import ChatClient

        if not spec.endpoint or not spec.server_model:
            raise ValueError("--backend openai needs --endpoint URL and --server-model NAME")
        return OpenAIReasoner(ChatClient(spec.endpoint, spec.server_model, api_key=spec.api_key))
    say("auto: no model is configured, using the rules engine (cue-grounded, no weights)")
    return RulesReasoner()


def explain_cues(cues: Cues, reasoner: Reasoner | None = None, clip: Clip | None = None) -> Explanation:
    """An explanation of precomputed cues (rules by default), with its grounding check."""
    explanation = (reasoner or RulesReasoner()).explain(cues, clip)
    explanation.grounding = ground(explanation.observations, cues)
    return explanation
