"""Local transformers reasoners: a chat LM over textualized cues (``hf``), a Qwen-VL / Omni thinker that also
sees key frames and hears the audio (``hf-native``), and a chat LM reading the clip through frozen encoders and
trained projectors (``hf-features``, a feature-path adapter). A model is a folder or a hub id (``org/name[@revision]``,
downloaded once into the Hugging Face cache; ``HF_HUB_OFFLINE=1`` keeps to it): ``models.hub``.

Each renders the ``reason/explain`` prompt (or, for a fine-tuned adapter, the prompt recorded beside it at
training time) with the cue block and decodes under the same bounded Explanation schema the served paths send
(``constrain=True``, the default; ``explain --no-constrain`` decodes freely, to compare), then parses whatever comes
back with ``parse_explanation``; a garbled answer becomes an Explanation with ``parse_status`` failed, never an
exception.
"""

from __future__ import annotations

from affectreason.media import IMAGE_SUFFIXES, key_frames, media_audio, media_frames
from affectreason.models.adapter import adapter_info, adapter_prompt
from affectreason.models.hub import display_name
from affectreason.reason.messages import DEFAULT_PROMPT, answer_schema, build_messages, prompt_id
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Clip, Cues, Explanation


def _parsed(text: str, reasoner, cues: Cues, model: str) -> Explanation:
    explanation = parse_explanation(text, extractor=reasoner.extractor, clip_id=cues.clip_id, backend=reasoner.name,
                                    model=model)
    explanation.prompt = prompt_id(reasoner.prompt)
    return explanation


def _schema(constrain: bool, schema: dict | None) -> dict | None:
    """What decoding is constrained to: ``schema`` (the bounded Explanation schema by default), or nothing."""
    return (schema or answer_schema()) if constrain else None


class HFReasoner:
    """A local chat LM (+ optional LoRA adapter) reasoning over textualized cues."""

    def __init__(self, model: str, adapter: str | None = None, max_new_tokens: int = 384, constrain: bool = True,
                 schema: dict | None = None):
        from affectreason.models.causal_lm import ChatLM

        self.lm = ChatLM(model, adapter, max_new_tokens)
        self.prompt = adapter_prompt(adapter, DEFAULT_PROMPT)
        self.schema = _schema(constrain, schema)
        self.name = "hf"
        self.extractor = None

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Generate and parse one explanation."""
        text = self.lm.generate(build_messages(cues, prompt=self.prompt), schema=self.schema)
        return _parsed(text, self, cues, self.lm.name)


class NativeReasoner:
    """A Qwen-VL model (key frames) or Qwen2.5-Omni thinker (key frames + audio) plus the textualized cues."""

    def __init__(self, model: str, adapter: str | None = None, max_new_tokens: int = 384, max_frames: int = 4,
                 constrain: bool = True, schema: dict | None = None):
        from affectreason.models.native import NativeMLLM

        self.lm = NativeMLLM(model, adapter, max_new_tokens)
        self.schema = _schema(constrain, schema)
        info = adapter_info(adapter)
        self.prompt = info.get("prompt") or DEFAULT_PROMPT
        # an adapter trained on frames as one video input is given the clip the same way
        self.video = info.get("frames") == "video" and self.lm.video_token is not None
        self.fps, self.max_frames = info.get("fps", 2.0), info.get("max_frames", max_frames)
        self.name = "hf-native"
        self.extractor = None

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Generate (frames + cue text) and parse one explanation."""
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
                                video_fps=video_fps if frames else None, schema=self.schema)
        explanation = _parsed(text, self, cues, self.lm.name)
        if clip is None:
            explanation.parse_errors.append("no clip given: the model saw the cue text only")
        return explanation


class FeatureReasoner:
    """A chat LM reading the clip through frozen encoders and trained projectors (a feature-path adapter)."""

    def __init__(self, model: str, adapter: str, max_new_tokens: int = 384, constrain: bool = True,
                 schema: dict | None = None):
        from affectreason.models.encoders import FrozenEncoder
        from affectreason.models.feature_lm import load_feature_lm

        self.lm = load_feature_lm(model, adapter)
        self.schema = _schema(constrain, schema)
        spec = self.lm.spec
        self.encoders = {m: FrozenEncoder(path, window=spec.window) for m, path in spec.encoders.items()}
        self.prompt = adapter_prompt(adapter, DEFAULT_PROMPT)
        self.max_new_tokens = max_new_tokens
        self.name, self.model_name = "hf-features", f"{display_name(model)}+{display_name(adapter)}"
        self.extractor = None

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Encode the clip's frames and audio, generate and parse one explanation."""
        import torch

        from affectreason.models.encoders import clip_features
        from affectreason.models.feature_lm import pad_features

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
            out = self.lm.generate(ids["input_ids"], ids["attention_mask"], features, masks, self.max_new_tokens,
                                   schema=self.schema)
        explanation = _parsed(self.lm.tokenizer.decode(out[0], skip_special_tokens=True), self, cues, self.model_name)
        missing = sorted(set(self.encoders) - set(found))
        if missing:
            explanation.parse_errors.append(f"no {' or '.join(missing)} in the clip: the model did not get those "
                                            "features (nothing was filled in for them)")
        return explanation
