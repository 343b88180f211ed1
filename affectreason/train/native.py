"""LoRA fine-tuning of a native multimodal model (Qwen2-VL / Qwen2.5-VL, Qwen2.5-Omni thinker).

Records are the trainer's chats plus media: ``{"messages": [...], "media": {"videos": [...], "images":
[...], "audios": [...]}}`` (the data recipes' records; top-level ``videos``/``images``/``audios`` lists, as
in LLaMA-Factory's sharegpt files, work too). Relative paths are read from the JSONL file's folder. Frames
go in as one video input (or as images), audio (Omni thinker) through its Whisper features, both in
front of the last user message, as ``NativeMLLM`` does at inference. LoRA wraps the language model's
projections only: the vision and audio towers stay frozen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from affectreason.media import media_audio, media_frames
from affectreason.train.adapter import TrainResult, restore_adapter, save_adapter, wrap_lora
from affectreason.train.loop import LoopParts, TrainError, make_accelerator, run_loop, seed_all
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


def train_native(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
                 on_step: Callable[[dict], None] | None = None) -> TrainResult:
    """LoRA on the language model of a native multimodal model, per ``recipe``."""
    from affectreason.models.native import NativeMLLM

    if recipe.adapter.kind == "qlora":
        raise TrainError("adapter.kind=qlora is for text models; native multimodal models train with lora")
    chats, media = read_chats(recipe.data.train), read_media(recipe.data.train)
    accelerator = make_accelerator(recipe, Path(recipe.output_dir))
    seed_all(recipe.schedule.seed)
    lm = NativeMLLM(recipe.model.path)
    if any(m["audios"] for m in media) and lm.kind != "omni":
        raise DataError(f"{recipe.data.train}: records have audio, which {lm.name} cannot hear (use an Omni thinker)")
    model = lm.lm = wrap_lora(lm.lm, recipe, language_model_targets(recipe.adapter.target_modules))
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0

    def make_batch(indices: list[int]) -> dict:
        examples = [example_inputs(lm, chats[i], media[i], recipe) for i in indices]
        return {k: v.to(accelerator.device) for k, v in collate_native(examples, pad).items()}

    parts = LoopParts(model=model, n_examples=len(chats), make_batch=make_batch,
                      save=lambda folder, trained, state_dict: save_adapter(folder, trained, lm.tokenizer, recipe,
                                                                            state_dict),
                      restore=restore_adapter)
    step, losses, _ = run_loop(recipe, parts, accelerator, resume, stop_after, on_step)
    output_dir = Path(recipe.output_dir)
    return TrainResult(output_dir, output_dir / "adapter", step, losses, {}, {"examples": len(chats)}, model)
