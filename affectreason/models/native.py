"""Native multimodal mode: Qwen2-VL / Qwen2.5-VL models see key frames (as images, or as one video), the
Qwen2.5-Omni thinker sees key frames and hears the audio, both alongside the textualized cues.

Two ways to the same inputs. Where torchvision loads beside torch (a GPU machine's install, or the `[gpu]` extra's
versions), a Qwen-VL model's or a full Qwen2.5-Omni checkpoint's inputs go through its official processor
(``AutoProcessor``) after ``qwen_vl_utils.process_vision_info`` has sized the frames, as the model cards show.
Where it does not (the CPU torch of these machines: PyPI's torchvision cannot load beside it), and for a thinker
folder of this project's layout (which holds no Omni processor), they are built here to the same result
(``tests/test_official_processors.py`` requires identical ``input_ids``, ``mm_token_type_ids``, grids and
``second_per_grid_ts``, and pixel values within float tolerance): frames through the PIL image processor
(``Qwen2VLImageProcessorPil``; vision start + one image token per merged patch + vision end), a video as frame
pairs patchified in the layout of Qwen's video processor (``video_pixels``, sized as qwen-vl-utils sizes a list of
frames: ``video_size``), audio through ``WhisperFeatureExtractor`` (audio start + one audio token per 4 feature
frames, the thinker's downsampling, + audio end), placed before the text of the last user message. Frames are
sized within the processor's ``min_pixels`` / ``max_pixels`` (the video processor's for a video, capped per frame
as qwen-vl-utils caps it), the budget the model cards tell users to set. A thinker folder keeps its Whisper
feature extractor in ``audio/`` (both processors save ``preprocessor_config.json``); a full Qwen2.5-Omni
checkpoint (``model_type: qwen2_5_omni``, thinker + talker + token2wav, as Qwen publishes it) keeps one
``preprocessor_config.json`` with the keys of both, and only its thinker is loaded (the ``thinker.`` weights; the
talker's are never read). The model is a folder or a hub id (``models.hub``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectreason.errors import UsageError
from affectreason.models.causal_lm import ModelMissing, attach_adapter, schema_processors
from affectreason.models.hub import display_name, is_hub_id, model_folder

VISION_LANGUAGE = ("qwen2_vl", "qwen2_5_vl")
OMNI_THINKER = ("qwen2_5_omni_thinker",)
OMNI_FULL = ("qwen2_5_omni",)  # thinker + talker + token2wav: the thinker is what reasons and trains


def model_type(model: str | Path) -> str | None:
    """``model_type`` of a model folder or hub id (a hub id is downloaded or taken from the cache first); None for
    a name that is neither a folder nor a hub id, or a folder without config.json."""
    if not Path(model).expanduser().is_dir() and not is_hub_id(str(model)):
        return None
    config = model_folder(model) / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise ModelMissing(f"{config}: not a JSON object of a transformers config") from None


def native_kind(model: str | Path) -> str | None:
    """"vl", "omni" or None (not a model this mode runs), from the model's config.json."""
    kind = model_type(model)
    return "vl" if kind in VISION_LANGUAGE else "omni" if kind in OMNI_THINKER + OMNI_FULL else None


def thinker_config(folder: Path):
    """The transformers config of what this mode loads from ``folder``: a full Omni checkpoint's thinker config,
    else the folder's own config."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    return config.thinker_config if config.model_type in OMNI_FULL else config


def load_omni_thinker(folder: Path):
    """The Qwen2.5-Omni thinker of a thinker folder or of a full checkpoint (its ``thinker.`` weights only)."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration
    from transformers.utils import logging as hf_logging

    config = thinker_config(folder)
    full = config.model_type != json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"]
    # the class's base_model_prefix is "thinker": transformers strips it from a full checkpoint's keys, and the
    # talker / token2wav tensors are unexpected keys, skipped without being read (their loading report is expected
    # and hidden; missing thinker weights are checked below)
    level = hf_logging.get_verbosity()
    if full:
        hf_logging.set_verbosity_error()
    try:
        lm, info = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(folder, config=config,
                                                                             output_loading_info=True)
    finally:
        hf_logging.set_verbosity(level)
    if info["missing_keys"]:
        raise ModelMissing(f"{folder}: {len(info['missing_keys'])} thinker weights are missing from the checkpoint "
                           f"(e.g. {sorted(info['missing_keys'])[0]}); is it a Qwen2.5-Omni checkpoint?")
    return lm


VIDEO_FRAME_MAX_TOKENS = 768  # qwen-vl-utils' cap on one video frame (tokens of 28 x 28 pixels)


def pixel_bounds(config: dict) -> tuple[int, int]:
    """(min_pixels, max_pixels) of a Qwen image or video processor config (``size`` or the older keys)."""
    size = config.get("size") or {}
    low = size.get("shortest_edge", config.get("min_pixels"))
    high = size.get("longest_edge", config.get("max_pixels"))
    if low is None or high is None:
        raise ModelMissing("the processor config gives no min_pixels / max_pixels")
    return int(low), int(high)


def video_bounds(folder: Path, images: tuple[int, int], factor: int) -> tuple[int, int]:
    """The pixel bounds of one video frame: the video processor's (``video_preprocessor_config.json``, else the
    image processor's ``images``), ``max_pixels`` capped at qwen-vl-utils' per-frame budget (its total-pixel budget
    divided among the frames binds only beyond ~300 frames: key frames never reach it)."""
    config = folder / "video_preprocessor_config.json"
    low, high = pixel_bounds(json.loads(config.read_text(encoding="utf-8"))) if config.is_file() else images
    cap = max(VIDEO_FRAME_MAX_TOKENS * factor * factor, int(low * 1.05))
    return low, min(high, cap)


def video_size(height: int, width: int, factor: int, bounds: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a video's frames: qwen-vl-utils 0.0.14 sizes each frame of a list as an image whose patch
    is ``factor`` (merged patches of 2 x ``factor``), so the sides are multiples of 2 x ``factor``; the video-wide
    resize that follows then keeps that size (it lies within the same bounds)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    return smart_resize(height, width, factor=2 * factor, min_pixels=bounds[0], max_pixels=bounds[1])


def video_pixels(processor, frames: list[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
    """Qwen-VL video patches of ``frames`` (RGB arrays) resized to ``size`` and their (t, h, w) grid.

    Each pair of consecutive frames forms one temporal patch (an odd last frame is repeated), flattened in the
    order of Qwen's own video processor.
    """
    from PIL import Image

    p, m, tp = processor.patch_size, processor.merge_size, processor.temporal_patch_size
    rh, rw = size
    clip = np.stack([np.asarray(Image.fromarray(f).convert("RGB").resize((rw, rh), Image.BICUBIC), np.float32)
                     for f in frames]) / 255.0
    clip = ((clip - np.array(processor.image_mean)) / np.array(processor.image_std)).transpose(0, 3, 1, 2)
    if len(clip) % tp:
        clip = np.concatenate([clip, np.repeat(clip[-1:], tp - len(clip) % tp, axis=0)])
    grid = [len(clip) // tp, rh // p, rw // p]
    channels = clip.shape[1]
    patches = clip.reshape(grid[0], tp, channels, grid[1] // m, m, p, grid[2] // m, m, p)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(grid[0] * grid[1] * grid[2], channels * tp * p * p).astype(np.float32), grid


OFFICIAL = {"vl": ("Qwen2VLProcessor", "Qwen2_5_VLProcessor"), "omni": ("Qwen2_5OmniProcessor",)}


def official_processor(folder: Path, kind: str):
    """The model's own processor (``AutoProcessor``) where torchvision and qwen-vl-utils load and the folder holds
    one (a thinker folder of this project's layout does not: its inputs are built here), else None."""
    try:
        import qwen_vl_utils  # noqa: F401
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError, OSError):  # PyPI's torchvision beside a CPU torch fails with RuntimeError
        return None
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(folder)
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    return processor if type(processor).__name__ in OFFICIAL[kind] else None


@dataclass
class NativeMLLM:
    """Model + tokenizer + image processor (+ audio feature extractor) of a Qwen-VL / Omni thinker; ``processor``
    is the model's official one where it loads (see the module's docstring), else None."""

    model: str
    adapter: str | None = None
    max_new_tokens: int = 384
    name: str = field(init=False)
    constraints: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoTokenizer, WhisperFeatureExtractor
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        self.kind = native_kind(self.model)
        if self.kind is None:
            raise ModelMissing(f"{self.model} is not a Qwen2-VL, Qwen2.5-VL or Qwen2.5-Omni model (folder or hub id)")
        self.name = display_name(self.model)
        folder = self.folder = model_folder(self.model, "multimodal model")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            if self.kind == "omni":
                self.lm = load_omni_thinker(folder)
                audio_dir = folder / "audio"
                self.audio = WhisperFeatureExtractor.from_pretrained(audio_dir if audio_dir.is_dir() else folder)
            else:
                self.lm = AutoModelForImageTextToText.from_pretrained(folder)
                self.audio = None
            self.images = Qwen2VLImageProcessorPil.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise ModelMissing(f"cannot load the multimodal model {self.model!r} "
                               f"({str(exc).splitlines()[0][:200]})") from None
        if self.adapter:
            self.lm = attach_adapter(self.lm, self.adapter)
            self.name += f"+{display_name(self.adapter)}"
        config = self.lm.config
        image_id = getattr(config, "image_token_id", None) or config.image_token_index
        self.image_token_id = image_id
        token = self.tokenizer.convert_ids_to_tokens
        self.vision_tokens = [token(i) for i in (config.vision_start_token_id, image_id, config.vision_end_token_id)]
        video_id = getattr(config, "video_token_id", None)
        self.video_token = token(video_id) if self.kind == "vl" and video_id is not None else None
        if self.kind == "omni":
            self.audio_tokens = [token(i) for i in (config.audio_start_token_id, config.audio_token_index,
                                                    config.audio_end_token_id)]
        self.merge = self.images.merge_size ** 2
        self.processor = official_processor(folder, self.kind)
        self.lm.eval()

    def media(self, frames: list[np.ndarray], audio: np.ndarray | None = None, rate: int = 16_000,
              video_fps: float | None = None) -> tuple[str, dict]:
        """The placeholder text and tensors for ``frames`` (images, or one video sampled at ``video_fps``)
        and, for an Omni thinker, ``audio``."""
        import torch
        from PIL import Image

        extra: dict = {}
        prefix = ""
        if frames and video_fps:
            if self.video_token is None:
                raise UsageError(f"{self.name}: video input is supported for Qwen2-VL / Qwen2.5-VL models")
            patches, grid = video_pixels(self.images, frames, self.video_size(frames))
            start, _, end = self.vision_tokens
            prefix += start + self.video_token * (grid[0] * grid[1] * grid[2] // self.merge) + end
            extra.update(pixel_values_videos=torch.from_numpy(patches), video_grid_thw=torch.tensor([grid]))
            if self.lm.config.model_type == "qwen2_5_vl":
                extra["second_per_grid_ts"] = torch.tensor([self.images.temporal_patch_size / video_fps])
        elif frames:
            pixels = self.images(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
            start, pad, end = self.vision_tokens
            prefix += "".join(start + pad * (int(grid.prod()) // self.merge) + end for grid in pixels["image_grid_thw"])
            extra.update(pixel_values=pixels["pixel_values"], image_grid_thw=pixels["image_grid_thw"])
        if audio is not None and self.kind == "omni" and len(audio):
            features = self.audio(audio, sampling_rate=rate, return_attention_mask=True, padding="max_length",
                                  return_tensors="pt")
            mask = features["attention_mask"]
            count = int(((mask.sum(-1) - 1) // 2 + 1 - 2) // 2 + 1)
            start, pad, end = self.audio_tokens
            prefix += start + pad * count + end
            extra.update(input_features=features["input_features"], feature_attention_mask=mask)
        return prefix, extra

    def image_bounds(self) -> tuple[int, int]:
        return int(self.images.size.shortest_edge), int(self.images.size.longest_edge)

    def video_size(self, frames: list[np.ndarray]) -> tuple[int, int]:
        factor = self.images.patch_size * self.images.merge_size
        bounds = video_bounds(self.folder, self.image_bounds(), factor)
        return video_size(*frames[0].shape[:2], factor, bounds)

    def hears(self, audio: np.ndarray | None) -> bool:
        return audio is not None and self.kind == "omni" and len(audio) > 0

    def placeholders(self, frames: list[np.ndarray], video_fps: float | None, audio: np.ndarray | None = None) -> str:
        """The official processor's text for the media: one pad token per image, video or audio, which it expands
        (media ordered as ``media`` orders them)."""
        start, pad, end = self.vision_tokens
        if frames and video_fps:
            if self.video_token is None:
                raise UsageError(f"{self.name}: video input is supported for Qwen2-VL / Qwen2.5-VL models")
            text = start + self.video_token + end
        else:
            text = (start + pad + end) * len(frames)
        if self.hears(audio):
            bos, token, eos = self.audio_tokens
            text += bos + token + eos
        return text

    def official_inputs(self, text: str, frames: list[np.ndarray], video_fps: float | None,
                        audio: np.ndarray | None = None, rate: int = 16_000) -> dict:
        """The official processor's inputs for ``text`` (with ``placeholders``), the frames, sized by
        ``qwen_vl_utils.process_vision_info`` within the bounds ``media`` uses, and (Omni) the audio."""
        from PIL import Image
        from qwen_vl_utils import process_vision_info

        pictures = [Image.fromarray(f).convert("RGB") for f in frames]
        if pictures and video_fps:
            factor = self.images.patch_size * self.images.merge_size
            low, high = video_bounds(self.folder, self.image_bounds(), factor)
            content = [{"type": "video", "video": pictures, "min_pixels": low, "max_pixels": high,
                        "sample_fps": video_fps}]
        else:
            low, high = self.image_bounds()
            content = [{"type": "image", "image": p, "min_pixels": low, "max_pixels": high} for p in pictures]
        images, videos, options = process_vision_info([{"role": "user", "content": content}],
                                                      return_video_kwargs=True, return_video_metadata=True) \
            if content else (None, None, {})
        if self.hears(audio):
            options.update(audio=[audio], sampling_rate=rate)
        if videos:
            videos, metadata = (list(x) for x in zip(*videos, strict=True))
            options.update(videos=videos, video_metadata=metadata)
        # do_resize=False: process_vision_info has sized the frames (the model cards' call)
        return dict(self.processor(text=[text], images=images, return_tensors="pt", do_resize=False, **options))

    def token_types(self, input_ids):
        """Qwen-VL's ``mm_token_type_ids``: 1 for image tokens, 2 for video tokens, 0 for text."""
        types = (input_ids == self.image_token_id).int()
        if self.video_token is not None:
            types[input_ids == self.tokenizer.convert_tokens_to_ids(self.video_token)] = 2
        return types

    def inputs(self, messages: list[dict[str, str]], frames: list[np.ndarray], audio: np.ndarray | None = None,
               rate: int = 16_000, video_fps: float | None = None) -> dict:
        """Model inputs with the media placed before the text of the last user message."""
        if self.processor is not None and (frames or self.hears(audio)):
            chat = [dict(m) for m in messages]
            chat[-1]["content"] = self.placeholders(frames, video_fps, audio) + chat[-1]["content"]
            text = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            return self.official_inputs(text, frames, video_fps, audio, rate)
        prefix, extra = self.media(frames, audio, rate, video_fps)
        messages = [dict(m) for m in messages]
        messages[-1]["content"] = prefix + messages[-1]["content"]
        inputs = dict(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                                         return_tensors="pt"))
        if self.kind == "vl":
            inputs["mm_token_type_ids"] = self.token_types(inputs["input_ids"])
        return {**inputs, **extra}

    def training_inputs(self, messages: list[dict[str, str]], frames: list[np.ndarray],
                        audio: np.ndarray | None = None, video_fps: float | None = None) -> dict:
        """Inputs for a chat whose last message is the reply to learn, with reply-only ``labels``."""
        import torch

        official = self.processor is not None and (bool(frames) or self.hears(audio))
        prefix, extra = ((self.placeholders(frames, video_fps, audio), {}) if official
                         else self.media(frames, audio, video_fps=video_fps))
        chat = [dict(m) for m in messages]
        last_user = max(i for i, m in enumerate(chat) if m["role"] == "user")
        chat[last_user]["content"] = prefix + chat[last_user]["content"]
        prompt = self.tokenizer.apply_chat_template(chat[:-1], add_generation_prompt=True, tokenize=False)
        full = self.tokenizer.apply_chat_template(chat, tokenize=False)
        if not full.startswith(prompt):
            raise ValueError("the chat template renders the prompt differently inside the full chat")
        reply_ids = self.tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
        if official:
            extra = self.official_inputs(prompt, frames, video_fps, audio)
            prompt_ids = extra.pop("input_ids")[0].tolist()
            extra.pop("attention_mask")
            extra.pop("mm_token_type_ids", None)
        else:
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + reply_ids])
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                  "labels": torch.tensor([[-100] * len(prompt_ids) + reply_ids])}
        if self.kind == "vl":
            inputs["mm_token_type_ids"] = self.token_types(ids)
        return {**inputs, **extra}

    def generate(self, messages: list[dict[str, str]], frames: list[np.ndarray], audio: np.ndarray | None = None,
                 max_new_tokens: int | None = None, video_fps: float | None = None, schema: dict | None = None) -> str:
        """The reply (greedy decoding; constrained to the JSON ``schema`` when given); with ``video_fps`` the
        frames go in as one video."""
        import torch

        inputs = self.inputs(messages, frames, audio, video_fps=video_fps)
        budget = max_new_tokens or self.max_new_tokens
        with torch.inference_mode():
            output = self.lm.generate(**inputs, max_new_tokens=budget, do_sample=False,
                                      logits_processor=schema_processors(self.constraints, self.tokenizer, schema,
                                                                         budget))
        return self.tokenizer.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
