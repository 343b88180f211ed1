"""LoRA fine-tuning of a native multimodal model (Qwen2-VL / Qwen2.5-VL, a Qwen2.5-Omni thinker, or the thinker
of a full Qwen2.5-Omni checkpoint; a folder or a hub id).

Records are the trainer's chats plus media: ``{"messages": [...], "media": {"videos": [...], "images":
[...], "audios": [...]}}`` (the data recipes' records; top-level ``videos``/``images``/``audios`` lists, as
in LLaMA-Factory's sharegpt files, work too). Relative paths are read from the JSONL file's folder. Frames
go in as one video input (or as images), audio (Omni thinker) through its Whisper features, both in
front of the last user message, as ``NativeMLLM`` does at inference. LoRA wraps the language model's
projections only: the vision and audio towers stay frozen.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

from affectreason.media import media_audio, media_frames
from affectreason.train.adapter import (
    TrainResult,
    enable_checkpointing,
    local_model,
    restore_adapter,
    save_adapter,
    wrap_lora,
)
from affectreason.train.loop import LoopParts, TrainError, local_processes, make_accelerator, run_loop, seed_all
from affectreason.train.loss import lm_loss, logit_transform, output_head
from affectreason.train.memory import MemoryPlan, model_shape, plan_memory, return_freed_memory
from affectreason.train.recipe import Recipe
from affectreason.train.sft_data import DataError, read_chats

TOWERS = ("visual", "audio_tower")
MEDIA_KEYS = ("videos", "images", "audios")


def language_model_targets(names: list[str]) -> str:
    """A peft ``target_modules`` pattern: the named projections everywhere except in the media towers."""
    return rf"^(?!.*\b({'|'.join(TOWERS)})\b).*\.({'|'.join(map(re.escape, names))})$"


def read_media(path: str | Path) -> list[dict[str, list[str]]]:
    """Each record's media lists (absolute paths), in file order; a missing file is an error naming the line."""
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        lists = record.get("media") or {k: record.get(k) or [] for k in MEDIA_KEYS}
        media = {k: [str((path.parent / p).resolve()) for p in lists.get(k) or []] for k in MEDIA_KEYS}
        for key, files in media.items():
            for file in files:
                if not Path(file).is_file():
                    raise DataError(f"{path}:{lineno}: {key} file {file} does not exist")
        out.append(media)
    return out


def example_inputs(lm, messages: list[dict[str, str]], media: dict[str, list[str]], recipe: Recipe) -> dict:
    """One record's model inputs with reply-only labels (frames as a video where the model takes video)."""
    frames, rate = media_frames(media, recipe.data.fps, recipe.data.max_frames)
    as_video = media["videos"] and recipe.data.frames == "video" and lm.video_token is not None
    track = media_audio(media) if lm.kind == "omni" else None
    return lm.training_inputs(messages, frames, track.samples if track else None,
                              video_fps=rate if as_video else None)


def collate_native(examples: list[dict], pad_id: int) -> dict:
    """Right-padded text tensors; media tensors of all examples concatenated (the models index them in order)."""
    import torch

    width = max(e["input_ids"].shape[1] for e in examples)
    batch: dict = {}
    keys = dict.fromkeys(k for e in examples for k in e)  # a later record may bring media the first lacks
    for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("labels", -100), ("mm_token_type_ids", 0)):
        if key in keys:
            rows = [torch.nn.functional.pad(e[key], (0, width - e[key].shape[1]), value=fill) for e in examples]
            batch[key] = torch.cat(rows)
    for key in keys:
        if key not in batch:
            present = [e[key] for e in examples if key in e]
            batch[key] = torch.cat(present)
    return batch


def media_tokens(media: dict[str, list[str]], images, recipe: Recipe, omni: bool, video: bool) -> tuple[int, int]:
    """A record's estimated (media tokens in its prompt, patches its vision tower encodes), from the media's
    headers (``media.probe``: size and duration, no decoding) and the image processor's resizing rule."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from affectreason.media import probe
    from affectreason.models.native import video_bounds, video_size

    p, m, tp = images.patch_size, images.merge_size, images.temporal_patch_size

    def patches(width: int, height: int) -> int:
        rh, rw = smart_resize(height, width, factor=p * m, min_pixels=images.size.shortest_edge,
                              max_pixels=images.size.longest_edge)
        return (rh // p) * (rw // p)

    tokens = vision = 0
    if media["videos"]:
        info = probe(media["videos"][0])
        last = max(0.0, (info.duration_s or 0) - 1 / (info.native_fps or 25.0))  # the last frame's time
        frames = min(recipe.data.max_frames, int(last * recipe.data.fps + 1e-6) + 1)
        per_frame = patches(info.width or 224, info.height or 224) if info.has_video else 0
        if video and recipe.data.frames == "video":
            # a video's frames are sized as models.native sizes them (qwen-vl-utils' rule for a frame list)
            bounds = video_bounds(Path(recipe.model.path), (images.size.shortest_edge, images.size.longest_edge), p * m)
            rh, rw = video_size(info.height or 224, info.width or 224, p * m, bounds)
            per_frame = (rh // p) * (rw // p) if info.has_video else 0
            vision = math.ceil(frames / tp) * per_frame
            tokens = vision // (m * m) + 2 if per_frame else 0
        else:
            vision = frames * per_frame
            tokens = frames * (per_frame // (m * m) + 2) if per_frame else 0
    else:
        for image in media["images"][: recipe.data.max_frames]:
            info = probe(image)
            vision += patches(info.width, info.height)
            tokens += patches(info.width, info.height) // (m * m) + 2
    if omni:
        sources = media["audios"][:1] or media["videos"][:1]
        duration = (probe(sources[0]).duration_s or 0) if sources else 0
        if duration:
            frames = min(3000, int(duration * 100))  # Whisper features: 100 per second, 30 s window
            tokens += ((frames - 1) // 2 + 1 - 2) // 2 + 1 + 2
    return tokens, vision


def plan_native(recipe: Recipe, chats: list, media: list, kind: str, accelerator) -> tuple[MemoryPlan, list[int]]:
    """The native path's memory plan, before the model loads: the language model's training over text + media
    tokens (estimated from the media headers) and the frozen vision tower's activations for one micro-batch."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from affectreason.models.native import thinker_config

    path = recipe.model.path  # a local folder (train_native resolved a hub id)
    try:
        config = thinker_config(Path(path))  # a full Omni checkpoint: the thinker's, which is what trains
        tokenizer = AutoTokenizer.from_pretrained(path)
        images = Qwen2VLImageProcessorPil.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot read model.path {path!r} ({str(exc).splitlines()[0][:200]})") from None
    if kind == "omni":
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration

        build = Qwen2_5OmniThinkerForConditionalGeneration._from_config
    else:
        build = AutoModelForImageTextToText.from_config
    shape = model_shape(config, build, language_model_targets(recipe.adapter.target_modules), recipe.adapter.r)
    lengths, replies, patches = [], [], []
    for messages, record_media in zip(chats, media, strict=True):
        prompt = _count(tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True))
        full = _count(tokenizer.apply_chat_template(messages, tokenize=True))
        extra, vision = media_tokens(record_media, images, recipe, kind == "omni",
                                     kind == "vl" and getattr(config, "video_token_id", None) is not None)
        lengths.append(full + extra)
        replies.append(full - prompt)
        patches.append(vision)
    vision_config = getattr(config, "vision_config", None)
    width = getattr(vision_config, "hidden_size", 0) or getattr(vision_config, "embed_dim", 0) or 0
    rows = min(len(patches), recipe.schedule.batch_size)
    tower = 4 * 16 * width * sum(sorted(patches, reverse=True)[:rows])
    plan = plan_memory(recipe, shape, lengths, replies, accelerator.num_processes, local_processes(accelerator),
                       other={"vision_tower": tower})
    return plan, lengths


def _count(encoded) -> int:
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return len(ids)


def train_native(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
                 on_step: Callable[[dict], None] | None = None,
                 on_plan: Callable[[MemoryPlan], None] | None = None) -> TrainResult:
    """LoRA on the language model of a native multimodal model, per ``recipe``."""
    from affectreason.models.native import NativeMLLM, native_kind

    if recipe.adapter.kind == "qlora":
        raise TrainError("adapter.kind=qlora is for text models; native multimodal models train with lora")
    recipe, model_name = local_model(recipe)
    chats, media = read_chats(recipe.data.train), read_media(recipe.data.train)
    accelerator = make_accelerator(recipe, Path(recipe.output_dir))
    kind = native_kind(recipe.model.path)
    if any(m["audios"] for m in media) and kind != "omni":
        raise DataError(f"{recipe.data.train}: records have audio, which {model_name} cannot hear "
                        "(use an Omni thinker)")
    plan, lengths = plan_native(recipe, chats, media, kind, accelerator)
    if on_plan:
        on_plan(plan)
    if plan.return_freed_memory:
        return_freed_memory()
    seed_all(recipe.schedule.seed)
    lm = NativeMLLM(recipe.model.path)
    if lm.lm.config._attn_implementation != recipe.model.attention:
        try:
            lm.lm.set_attn_implementation(recipe.model.attention)
        except (ValueError, ImportError) as exc:
            raise TrainError(f"model.attention={recipe.model.attention}: {str(exc).splitlines()[0][:200]}") from None
    if plan.gradient_checkpointing:
        enable_checkpointing(lm.lm)
    model = lm.lm = wrap_lora(lm.lm, recipe, language_model_targets(recipe.adapter.target_modules))
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    head, transform = output_head(model), logit_transform(model.config)

    def make_batch(indices: list[int]) -> dict:
        examples = [example_inputs(lm, chats[i], media[i], recipe) for i in indices]
        return {k: v.to(accelerator.device) for k, v in collate_native(examples, pad).items()}

    parts = LoopParts(model=model, n_examples=len(chats), make_batch=make_batch,
                      save=lambda folder, trained, state_dict: save_adapter(folder, trained, lm.tokenizer, recipe,
                                                                            state_dict, model_name),
                      restore=restore_adapter, lengths=lengths,
                      info={"memory": plan.figures(), "model": {"name": model_name, "folder": recipe.model.path}},
                      loss=lambda trained, batch: lm_loss(trained, head, batch, recipe.schedule.logits, transform))
    step, losses, _ = run_loop(recipe, parts, accelerator, resume, stop_after, on_step)
    output_dir = Path(recipe.output_dir)
    return TrainResult(output_dir, output_dir / "adapter", step, losses, {},
                       {"examples": len(chats), "memory": plan.figures()}, model)
