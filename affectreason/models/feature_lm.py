"""A chat LM that reads encoder features through projectors (the AffectGPT / Emotion-LLaMA design).

The prompt marks where media go with ``<video>`` / ``<image>`` and ``<audio>`` (LLaMA-Factory's
markers). Each marker becomes ``tokens`` copies of a special placeholder token; at the embedding layer
those positions receive the projector's output instead of a word embedding. With pre-fusion one block
of fused audio-visual tokens replaces the markers. The placeholders are added to the tokenizer only:
their ids never reach the embedding matrix, so the LLM's vocabulary and weights are unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from affectreason.models.causal_lm import ModelMissing
from affectreason.models.projector import PreFusion, Projector

MARKERS = {"vision": ("<video>", "<image>"), "audio": ("<audio>",)}
PLACEHOLDERS = {"vision": "<|affect_vision|>", "audio": "<|affect_audio|>", "fused": "<|affect_fused|>"}
FEATURE_CONFIG = "feature_config.json"
PROJECTOR_WEIGHTS = "projector.safetensors"


@dataclass
class FeatureSpec:
    """How features reach the LLM; saved beside the adapter as ``feature_config.json``."""

    encoders: dict[str, str]
    dims: dict[str, int]
    projector: str = "mlp"
    tokens: int = 8
    fusion: str = "none"
    fps: float = 2.0
    max_frames: int = 8
    window: float = 0.5

    def save(self, folder: Path) -> None:
        """Write ``feature_config.json``."""
        (folder / FEATURE_CONFIG).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> FeatureSpec:
        """Read ``feature_config.json``."""
        return cls(**json.loads((Path(folder) / FEATURE_CONFIG).read_text(encoding="utf-8")))


def place_markers(text: str, modalities: list[str], fusion: bool, tokens: int) -> str:
    """``text`` with media markers expanded into placeholder tokens (missing markers are put in front)."""
    blocks = {m: PLACEHOLDERS["fused" if fusion else m] * tokens for m in modalities}
    for modality in modalities:
        if not any(marker in text for marker in MARKERS[modality]):
            text = MARKERS[modality][0] + text
    placed_fused = False
    for modality in ("vision", "audio"):
        for marker in MARKERS[modality]:
            while marker in text:
                if modality not in modalities or (fusion and placed_fused):
                    text = text.replace(marker, "", 1)
                    continue
                text = text.replace(marker, blocks[modality], 1)
                placed_fused = fusion
    return text


def add_placeholders(tokenizer) -> dict[str, int]:
    """Add the placeholder tokens to ``tokenizer`` (once) and return their ids by block name."""
    tokenizer.add_tokens(list(PLACEHOLDERS.values()), special_tokens=True)
    return {k: tokenizer.convert_tokens_to_ids(v) for k, v in PLACEHOLDERS.items()}


def feature_chat(messages: list[dict[str, str]], modalities: list[str], spec: FeatureSpec) -> list[dict[str, str]]:
    """``messages`` with the markers of the last user message expanded into ``spec``'s placeholders for
    ``modalities`` (what ``FeatureLM`` reads; needs no model, so chats can be measured before it loads)."""
    out = [dict(m) for m in messages]
    last_user = max(i for i, m in enumerate(out) if m["role"] == "user")
    out[last_user]["content"] = place_markers(out[last_user]["content"], modalities, spec.fusion == "attention",
                                              spec.tokens)
    return out


class FeatureLM(nn.Module):
    """LLM (+ LoRA) with projectors in front of its input embeddings."""

    def __init__(self, llm, tokenizer, spec: FeatureSpec):
        super().__init__()
        self.llm, self.tokenizer, self.spec = llm, tokenizer, spec
        hidden = llm.config.hidden_size
        if spec.fusion == "attention":
            self.fusion = PreFusion(spec.dims, hidden, hidden, spec.tokens, spec.projector)
            self.projectors = nn.ModuleDict()
        else:
            self.fusion = None
            self.projectors = nn.ModuleDict({m: Projector(spec.projector, d, hidden, spec.tokens)
                                             for m, d in spec.dims.items()})
        self.placeholder_ids = add_placeholders(tokenizer)
        self.constraints: dict = {}  # compiled JSON-schema constraints for generate (models.constrained)

    @property
    def config(self):
        return self.llm.config

    def projector_state(self) -> dict[str, torch.Tensor]:
        """Weights of the projectors (and pre-fusion), the part of the model besides the adapter."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("llm.")}

    def chat(self, messages: list[dict[str, str]], modalities: list[str]) -> list[dict[str, str]]:
        """``messages`` with markers in the last user message expanded for ``modalities``."""
        return feature_chat(messages, modalities, self.spec)

    def get_output_embeddings(self):
        """The LLM's head (what the reply-only loss runs on the target tokens)."""
        return self.llm.get_output_embeddings()

    def embed(self, input_ids: torch.Tensor, features: dict[str, torch.Tensor],
              masks: dict[str, torch.Tensor]) -> torch.Tensor:
        """Input embeddings with the projected features at the placeholder positions."""
        table = self.llm.get_input_embeddings()
        ids = set(self.placeholder_ids.values())
        is_placeholder = torch.isin(input_ids, torch.tensor(sorted(ids), device=input_ids.device))
        embeds = table(input_ids.masked_fill(is_placeholder | (input_ids >= table.num_embeddings), 0)).clone()
        if self.fusion is not None and features:
            blocks = {"fused": self.fusion(features, masks)}
        else:
            blocks = {m: self.projectors[m](features[m], masks[m]) for m in features}
        for name, projected in blocks.items():
            where = input_ids == self.placeholder_ids[name]
            rows = where.any(dim=1)
            if not rows.any():
                continue
            if int(where.sum()) != int(rows.sum()) * self.spec.tokens:
                raise ValueError(f"each prompt needs exactly {self.spec.tokens} {name} placeholders")
            embeds[where] = projected[rows].reshape(-1, projected.shape[-1]).to(embeds.dtype)
        return embeds

    def forward(self, input_ids, attention_mask, labels=None, features=None, masks=None):
        """The LLM's output (with ``loss`` when ``labels`` are given)."""
        embeds = self.embed(input_ids, features or {}, masks or {})
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    def generate(self, input_ids, attention_mask, features, masks, max_new_tokens: int = 64,
                 schema: dict | None = None) -> torch.Tensor:
        """Greedy continuation ids (new tokens only), constrained to the JSON ``schema`` when given."""
        from affectreason.models.causal_lm import schema_processors

        embeds = self.embed(input_ids, features, masks)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        return self.llm.generate(inputs_embeds=embeds, attention_mask=attention_mask, do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad,
                                 logits_processor=schema_processors(self.constraints, self.tokenizer, schema,
                                                                    max_new_tokens))


def pad_features(rows: list[dict[str, torch.Tensor]], dims: dict[str, int]) -> tuple[dict, dict]:
    """Per modality of ``dims``, (batch, steps, dim) zero-padded features and a (batch, steps) mask of real
    steps; a record without that modality has an all-false mask (projectors then ignore it)."""
    features, masks = {}, {}
    for modality, dim in dims.items():
        seqs = [r.get(modality) for r in rows]
        width = max([1] + [len(s) for s in seqs if s is not None])
        batch = torch.zeros(len(rows), width, dim)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, s in enumerate(seqs):
            if s is not None and len(s):
                batch[i, : len(s)] = s
                mask[i, : len(s)] = True
        features[modality], masks[modality] = batch, mask
    return features, masks


def load_feature_lm(base: str, adapter: str | Path) -> FeatureLM:
    """A trained feature-path model: base LLM + LoRA adapter + projectors from ``adapter``."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from affectreason.models.causal_lm import attach_adapter
    from affectreason.models.hub import adapter_folder, model_folder

    adapter = adapter_folder(adapter)
    spec = FeatureSpec.load(adapter)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    try:
        llm = AutoModelForCausalLM.from_pretrained(model_folder(base, "base model"))
    except (OSError, ValueError) as exc:
        if isinstance(exc, ModelMissing):
            raise
        raise ModelMissing(f"cannot load the base model {base!r} ({str(exc).splitlines()[0][:200]}); give a model "
                           "folder or a hub id with --model") from None
    llm = attach_adapter(llm, adapter)
    model = FeatureLM(llm, tokenizer, spec)
    missing = model.load_state_dict(load_file(str(Path(adapter) / PROJECTOR_WEIGHTS)), strict=False)
    if missing.unexpected_keys or any(not k.startswith("llm.") for k in missing.missing_keys):
        raise ModelMissing(f"{adapter}: projector weights do not match {FEATURE_CONFIG}")
    return model.eval()
