"""LLM reasoning backends over textualized cues: a local transformers model (``hf``) or any
OpenAI-compatible server (``openai``, e.g. a vLLM server) with JSON-schema constrained output.

Both render the ``reason/explain`` prompt (or, for a fine-tuned adapter, the prompt recorded beside it at
training time) with the cue block, and parse whatever comes back with
``parse_explanation``; a garbled answer becomes an Explanation with ``parse_status`` failed, never
an exception.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from affectreason.cues.textualize import textualize
from affectreason.reason.parse import parse_explanation
from affectreason.reason.prompts import load_prompt, prompts_dir
from affectreason.schema import Clip, Cues, Explanation


@cache
def explanation_schema() -> dict:
    """The JSON schema the models are asked to answer in (``prompts/reason/explanation.schema.json``)."""
    return json.loads((prompts_dir() / "reason" / "explanation.schema.json").read_text(encoding="utf-8"))


DEFAULT_PROMPT = "reason/explain"
ADAPTER_INFO = "affectreason_adapter.json"


def build_messages(cues: Cues, max_cue_tokens: int = 400, prompt: str = DEFAULT_PROMPT) -> list[dict[str, str]]:
    """The chat messages asking for an explanation of ``cues`` with prompt ``prompt``."""
    return load_prompt(prompt).render(clip_id=cues.clip_id, cues=textualize(cues, max_cue_tokens))


def adapter_info(adapter: str | None) -> dict:
    """What ``affectreason train`` recorded beside an adapter (prompt, and for native models how frames went in)."""
    info = Path(adapter) / ADAPTER_INFO if adapter else None
    return json.loads(info.read_text(encoding="utf-8")) if info is not None and info.is_file() else {}


def adapter_prompt(adapter: str | None) -> str:
    """The prompt an adapter was trained with, else the default one."""
    return adapter_info(adapter).get("prompt") or DEFAULT_PROMPT


class HFReasoner:
    """A local chat LM (+ optional LoRA adapter) reasoning over textualized cues."""

    def __init__(self, model: str, adapter: str | None = None, max_new_tokens: int = 384):
        from affectreason.models.causal_lm import ChatLM

        self.lm = ChatLM(model, adapter, max_new_tokens)
        self.prompt = adapter_prompt(adapter)
        self.name = "hf"
        self.extractor = None

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Generate and parse one explanation."""
        text = self.lm.generate(build_messages(cues, prompt=self.prompt))
        return parse_explanation(text, extractor=self.extractor, clip_id=cues.clip_id, backend=self.name,
                                 model=self.lm.name)


def key_frames(clip: Clip, cues: Cues, count: int) -> list:
    """Up to ``count`` frames of the clip: the apex frame first, then evenly spaced ones."""
    from affectreason.media import IMAGE_SUFFIXES, read_frames

    if not cues.frames and not clip.path.lower().endswith(tuple(IMAGE_SUFFIXES)):
        return []
    frames = read_frames(clip.path, cues.fps or 5.0, start=clip.start, end=clip.end)
    if not frames.times:
        return []
    order = list(np.linspace(0, len(frames.times) - 1, num=min(count, len(frames.times))).round().astype(int))
    if cues.apex_t is not None:
        apex = int(np.argmin(np.abs(np.array(frames.times) - cues.apex_t)))
        order = [apex] + [i for i in order if i != apex][: count - 1]
    return [frames.images[i] for i in sorted(set(order))]


class NativeReasoner:
    """A Qwen-VL model (key frames) or Qwen2.5-Omni thinker (key frames + audio) plus the textualized cues."""

    def __init__(self, model: str, adapter: str | None = None, max_new_tokens: int = 384, max_frames: int = 4):
        from affectreason.models.native import NativeMLLM

        self.lm = NativeMLLM(model, adapter, max_new_tokens)
        info = adapter_info(adapter)
        self.prompt = info.get("prompt") or DEFAULT_PROMPT
        # an adapter trained on frames as one video input is given the clip the same way
        self.video = info.get("frames") == "video" and self.lm.video_token is not None
        self.fps, self.max_frames = info.get("fps", 2.0), info.get("max_frames", max_frames)
        self.name = "hf-native"
        self.extractor = None

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Generate (frames + cue text) and parse one explanation."""
        from affectreason.media import IMAGE_SUFFIXES
        from affectreason.train.native import media_audio, media_frames

        frames, video_fps = [], None
        if clip is not None and self.video and not clip.path.lower().endswith(tuple(IMAGE_SUFFIXES)):
            media = {"videos": [clip.path], "images": [], "audios": []}
            frames, video_fps = media_frames(media, self.fps, self.max_frames, clip.start, clip.end)
        elif clip is not None:
            frames = key_frames(clip, cues, self.max_frames)
        audio = None
        if clip is not None and self.lm.kind == "omni":
            track = media_audio({"videos": [clip.path], "images": [], "audios": []}, clip.start, clip.end)
            audio = track.samples if track is not None else None
        text = self.lm.generate(build_messages(cues, prompt=self.prompt), frames, audio,
                                video_fps=video_fps if frames else None)
        explanation = parse_explanation(text, extractor=self.extractor, clip_id=cues.clip_id, backend=self.name,
                                        model=self.lm.name)
        if clip is None:
            explanation.parse_errors.append("no clip given: the model saw the cue text only")
        return explanation


class FeatureReasoner:
    """A chat LM reading the clip through frozen encoders and trained projectors (a feature-path adapter)."""

    def __init__(self, model: str, adapter: str, max_new_tokens: int = 384):
        from affectreason.models.encoders import FrozenEncoder
        from affectreason.models.feature_lm import load_feature_lm

        self.lm = load_feature_lm(model, adapter)
        spec = self.lm.spec
        self.encoders = {m: FrozenEncoder(path, window=spec.window) for m, path in spec.encoders.items()}
        self.prompt = adapter_prompt(adapter)
        self.max_new_tokens = max_new_tokens
        self.name, self.model_name = "hf-features", f"{Path(model).name}+{Path(adapter).name}"
        self.extractor = None

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Encode the clip's frames and audio, generate and parse one explanation."""
        import torch

        from affectreason.models.feature_lm import pad_features
        from affectreason.train.features import clip_features

        found = {}
        if clip is not None:
            media = {"videos": [clip.path], "images": [], "audios": []}
            arrays = clip_features(self.encoders, media, self.lm.spec.fps, self.lm.spec.max_frames, clip.start,
                                   clip.end)
            found = {m: torch.from_numpy(a) for m, a in arrays.items()}
        chat = self.lm.chat(build_messages(cues, prompt=self.prompt), sorted(found))
        ids = self.lm.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True,
                                                    return_tensors="pt")
        features, masks = pad_features([found], self.lm.spec.dims) if found else ({}, {})
        with torch.inference_mode():
            out = self.lm.generate(ids["input_ids"], ids["attention_mask"], features, masks, self.max_new_tokens)
        text = self.lm.tokenizer.decode(out[0], skip_special_tokens=True)
        explanation = parse_explanation(text, extractor=self.extractor, clip_id=cues.clip_id, backend=self.name,
                                        model=self.model_name)
        missing = sorted(set(self.encoders) - set(found))
        if missing:
            explanation.parse_errors.append(f"no {' or '.join(missing)} in the clip: the model did not get those "
                                            "features (nothing was filled in for them)")
        return explanation


class OpenAIReasoner:
    """An OpenAI-compatible chat endpoint, asked for JSON that follows the Explanation schema."""

    def __init__(self, client, max_tokens: int = 768):
        self.client = client
        self.max_tokens = max_tokens
        self.name = "openai"
        self.extractor = None

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Request (schema-constrained), then parse one explanation."""
        schema = {"type": "json_schema", "json_schema": {"name": "explanation", "schema": explanation_schema()}}
        text = self.client.complete(build_messages(cues), temperature=0.0, max_tokens=self.max_tokens,
                                    response_format=schema, use_cache=False)
        return parse_explanation(text, extractor=self.extractor, clip_id=cues.clip_id, backend=self.name,
                                 model=self.client.model)
