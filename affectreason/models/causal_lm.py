"""A chat causal LM from transformers, optionally with a LoRA adapter (peft), for local generation.

The model is configuration: a local folder or a hub id (``org/name[@revision]``, downloaded once into the
Hugging Face cache by ``models.hub``; ``HF_HUB_OFFLINE=1`` keeps to the cache). Generation is greedy by default,
so an explanation is reproducible; given a JSON ``schema``, decoding is constrained to it (``models.constrained``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.models.hub import ModelMissing, adapter_folder, display_name, model_folder

__all__ = ["ChatLM", "ModelMissing", "attach_adapter", "schema_processors"]


def attach_adapter(model, adapter: str | Path):
    """``model`` wrapped with the LoRA adapter ``adapter`` (a peft folder or a hub id)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelMissing("LoRA adapters need peft: `pip install 'affectreason[train]'`") from None
    return PeftModel.from_pretrained(model, adapter_folder(adapter))


def schema_processors(cache: dict, tokenizer, schema: dict | None, max_new_tokens: int) -> list:
    """``[logits processor]`` constraining one generate call to ``schema`` (none without a schema); the compiled
    constraint is kept in ``cache`` (per model), so only the first call per schema pays for compiling."""
    if schema is None:
        return []
    from affectreason.models.constrained import SchemaConstraint

    key = json.dumps(schema, sort_keys=True)
    if key not in cache:
        cache[key] = SchemaConstraint(schema, tokenizer)
    return [cache[key].processor(max_new_tokens)]


def greedy_replies(lm, tokenizer, chats: list[list[dict[str, str]]], batch_size: int, max_new_tokens: int,
                   processors=None) -> list[str]:
    """Greedy replies of ``lm`` to chats, ``batch_size`` at a time with left padding; ``processors()`` gives each
    batch its logits processors (a constraint's state is per batch)."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    replies = []
    for start in range(0, len(chats), batch_size):
        rows = [tokenizer.apply_chat_template(m, add_generation_prompt=True, return_dict=True)["input_ids"]
                for m in chats[start: start + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows], device=lm.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=lm.device)
        with torch.inference_mode():
            output = lm.generate(input_ids=ids, attention_mask=mask, do_sample=False, pad_token_id=pad,
                                 max_new_tokens=max_new_tokens, logits_processor=processors() if processors else None)
        replies += tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
    return replies


@dataclass
class ChatLM:
    """Tokenizer + model (+ adapter), loaded once, generating replies to chat messages."""

    model: str
    adapter: str | None = None
    max_new_tokens: int = 384
    dtype: str = "float32"
    name: str = field(init=False)
    constraints: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = display_name(self.model)
        self.folder = model_folder(self.model, "language model")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
            self.lm = AutoModelForCausalLM.from_pretrained(self.folder, dtype=getattr(torch, self.dtype))
        except (OSError, ValueError) as exc:
            raise ModelMissing(
                f"cannot load the language model {self.model!r} ({str(exc).splitlines()[0][:200]}); give a model "
                "folder (config.json + weights + tokenizer) or a hub id with --model"
            ) from None
        if not self.tokenizer.chat_template:
            raise ModelMissing(f"{self.model}: the tokenizer has no chat template; use a chat/instruct model")
        if self.adapter:
            self.lm = attach_adapter(self.lm, self.adapter)
            self.name += f"+{display_name(self.adapter)}"
        self.lm.eval()

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int | None = None,
                 schema: dict | None = None) -> str:
        """The reply to ``messages`` (greedy decoding; constrained to the JSON ``schema`` when given)."""
        import torch

        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                                    return_tensors="pt")
        budget = max_new_tokens or self.max_new_tokens
        with torch.inference_mode():
            output = self.lm.generate(**inputs, max_new_tokens=budget, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                      logits_processor=schema_processors(self.constraints, self.tokenizer, schema,
                                                                         budget))
        return self.tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def generate_batch(self, chats: list[list[dict[str, str]]], batch_size: int = 8,
                       max_new_tokens: int | None = None, schema: dict | None = None) -> list[str]:
        """Replies to many chats, ``batch_size`` at a time (left padding; greedy and constrained, as ``generate``)."""
        budget = max_new_tokens or self.max_new_tokens
        return greedy_replies(self.lm, self.tokenizer, chats, batch_size, budget,
                              lambda: schema_processors(self.constraints, self.tokenizer, schema, budget))
