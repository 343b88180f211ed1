"""Which reasoner a run uses: a ``BackendSpec`` (picklable, so batch workers load their own) and ``load_reasoner``.

Backends: ``rules`` (no weights), ``hf`` (a local chat LM over textualized cues, optional LoRA adapter; a Qwen-VL
folder runs natively and also sees key frames, an Omni thinker also hears, a feature-path adapter reads the clip
through its encoders; decoding is constrained to the bounded Explanation schema unless ``constrain`` is False),
``openai`` (any OpenAI-compatible server, bounded JSON schema), ``vllm`` (a local model in an in-process
``vllm.LLM`` engine) and ``auto``: ``hf`` when a model is given and loads, ``openai`` when an endpoint is
given, else ``rules``, saying which in one line. ``server`` is ``openai`` as ``affectreason query`` uses it (the
model may be left to the server's first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from affectreason.backends.server import QueryConfig
from affectreason.errors import UsageError
from affectreason.reason.explain import Reasoner, RulesReasoner
from affectreason.reason.messages import bounded_schema

BACKENDS = ("auto", "rules", "hf", "openai", "vllm")
Batching = Literal["processes", "threads", "engine"]


@dataclass
class BackendSpec:
    """Which backend to run and with what."""

    name: str = "auto"
    model: str | None = None
    adapter: str | None = None
    endpoint: str | None = None
    server_model: str | None = None
    api_key: str | None = None
    max_new_tokens: int = 384
    label_endpoint: str | None = None
    label_model: str | None = None
    server: QueryConfig = field(default_factory=QueryConfig)
    """how the openai / server backend asks (bounded schema, retries, concurrency, media)"""
    constrain: bool = True
    """hf: decode under the bounded Explanation schema (False: freely, ``--no-constrain``)"""

    def resolved(self) -> str:
        """The backend ``auto`` stands for with these settings (before any model is loaded)."""
        if self.name != "auto":
            return self.name
        return "hf" if self.model else "openai" if self.endpoint else "rules"

    def batching(self) -> Batching:
        """How a batch runs this backend: in worker processes (local models, rules), with threads of requests
        (a server), or as one engine batch (vLLM)."""
        kind = self.resolved()
        return "engine" if kind == "vllm" else "threads" if kind in ("openai", "server") else "processes"

    def prompt(self) -> str | None:
        """``name@version`` of the prompt this backend renders (None for the rules engine)."""
        from affectreason.models.adapter import adapter_prompt
        from affectreason.reason.messages import DEFAULT_PROMPT, prompt_id

        kind = self.resolved()
        if kind == "rules":
            return None
        if kind in ("openai", "server"):
            return prompt_id(self.server.prompt)
        return prompt_id(adapter_prompt(self.adapter, DEFAULT_PROMPT))

    def describe(self) -> dict:
        """The spec as an output manifest records it (no API key)."""
        server = {k: v for k, v in vars(self.server).items() if k != "schema"}
        return {"name": self.name, "resolved": self.resolved(), "model": self.model, "adapter": self.adapter,
                "endpoint": self.endpoint, "server_model": self.server_model, "max_new_tokens": self.max_new_tokens,
                "label_model": self.label_model, **({"constrain": self.constrain} if self.resolved() == "hf" else {}),
                **({"server": server} if self.batching() == "threads" else {})}


def load_reasoner(spec: BackendSpec, note: Callable[[str], None] | None = None) -> Reasoner:
    """The reasoner a spec asks for (with an LLM label extractor when one is configured)."""
    reasoner = _load(spec, note or (lambda line: None))
    if spec.label_endpoint and hasattr(reasoner, "extractor"):
        if not spec.label_model:
            raise UsageError("--label-endpoint needs --label-model NAME")
        from affectreason.endpoint import ChatClient
        from affectreason.eval.judges.llm import LLMJudge

        judge = LLMJudge(ChatClient(spec.label_endpoint, spec.label_model, api_key=spec.api_key))
        reasoner.extractor = judge.extract_labels
    return reasoner


def _load(spec: BackendSpec, say: Callable[[str], None]) -> Reasoner:
    if spec.name not in (*BACKENDS, "server"):
        raise UsageError(f"unknown backend {spec.name!r}; choose one of {', '.join(BACKENDS)}")
    kind = spec.resolved()
    if kind == "rules":
        if spec.name == "auto":
            say("auto: no model is configured, using the rules engine (cue-grounded, no weights)")
        return RulesReasoner()
    if kind == "vllm":
        from affectreason.backends.vllm import OfflineVLLM

        if not spec.model:
            raise UsageError("--backend vllm needs --model (a local model folder)")
        return OfflineVLLM(spec.model, spec.adapter, spec.max_new_tokens, spec.server)
    if kind == "hf":
        return _local(spec, say)
    from affectreason.backends.server import connect

    if kind == "openai" and (not spec.endpoint or not spec.server_model):
        raise UsageError("--backend openai needs --endpoint URL and --server-model NAME")
    return connect(spec.endpoint or "", spec.server_model, spec.api_key, spec.server, name=kind)


def _local(spec: BackendSpec, say: Callable[[str], None]) -> Reasoner:
    from affectreason.backends.local import FeatureReasoner, HFReasoner, NativeReasoner
    from affectreason.models.causal_lm import ModelMissing
    from affectreason.models.feature_lm import FEATURE_CONFIG
    from affectreason.models.hub import adapter_folder
    from affectreason.models.native import native_kind

    if not spec.model:
        raise UsageError("--backend hf needs --model (a local chat model folder)")
    # the bounds a server would be sent (--max-chars / --max-items), so local and served answers match
    options = {"constrain": spec.constrain,
               "schema": bounded_schema(spec.server.schema, spec.server.max_chars, spec.server.max_items)}
    try:
        if spec.adapter and (adapter_folder(spec.adapter) / FEATURE_CONFIG).is_file():
            return FeatureReasoner(spec.model, spec.adapter, spec.max_new_tokens, **options)
        if native_kind(spec.model):
            return NativeReasoner(spec.model, spec.adapter, spec.max_new_tokens, **options)
        return HFReasoner(spec.model, spec.adapter, spec.max_new_tokens, **options)
    except ModelMissing as exc:
        if spec.name == "hf":
            raise
        say(f"auto: {exc}; using the rules engine instead")
        return RulesReasoner()
