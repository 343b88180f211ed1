"""The feature path: frozen encoders -> cached features -> projector(s) + LoRA on a chat LM.

Encoders run once per record and their outputs are cached in ``features.safetensors`` (one array per
record and modality) with a manifest naming the encoders, so later epochs and later runs only train the
projector and the adapter; a cache made with other encoders is rebuilt, one missing records is topped up.
Records are the trainer's chats plus media lists (see ``train.native``); media markers in the user text
(``<video>``, ``<audio>``) say where the features go.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from affectreason.models.encoders import clip_features
from affectreason.train.adapter import (
    TrainResult,
    check_qlora,
    load_model,
    load_tokenizer,
    local_model,
    restore_adapter,
    save_adapter,
)
from affectreason.train.loop import LoopParts, local_processes, make_accelerator, run_loop, seed_all
from affectreason.train.loss import lm_loss, logit_transform, output_head
from affectreason.train.memory import MemoryPlan, causal_lm_shape, check_encoders, plan_memory, return_freed_memory
from affectreason.train.native import read_media
from affectreason.train.recipe import Recipe
from affectreason.train.sft import collate, resolve_max_length
from affectreason.train.sft_data import DataError, read_chats, target_counts, tokenize_chats

CACHE_FILE, CACHE_MANIFEST = "features.safetensors", "features.json"


def record_ids(path: str | Path) -> list[str]:
    """Each record's ``id`` (its line number when it has none); duplicates are an error naming the line."""
    ids, seen = [], {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        rid = str(json.loads(line).get("id") or f"line-{lineno}")
        if rid in seen:
            raise DataError(f"{path}:{lineno}: id {rid!r} repeats line {seen[rid]}; the feature cache needs unique ids")
        seen[rid] = lineno
        ids.append(rid)
    return ids


def cache_features(ids: list[str], media: list[dict], encoders: dict, folder: Path, fps: float,
                   max_frames: int, save_every: int = 50) -> tuple[dict[str, dict], dict[str, str]]:
    """Per record id, its features by modality (computed once and kept in ``folder``), and the records whose
    media could not be read, with the reason (they train on their text alone)."""
    from safetensors.numpy import load_file, save_file

    from affectreason.media import MediaError

    folder.mkdir(parents=True, exist_ok=True)
    signature = {"encoders": {m: e.path for m, e in sorted(encoders.items())}, "fps": fps, "max_frames": max_frames,
                 "window": {m: e.window for m, e in encoders.items() if e.modality == "audio"}}
    manifest_path, cache_path = folder / CACHE_MANIFEST, folder / CACHE_FILE
    stored: dict[str, np.ndarray] = {}
    done: set[str] = set()  # records already encoded, with or without media
    failed: dict[str, str] = {}
    if manifest_path.is_file() and cache_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("signature") == signature:
            stored, done, failed = load_file(str(cache_path)), set(manifest["done"]), manifest.get("failed", {})

    def save() -> None:
        save_file(stored, str(cache_path))
        manifest_path.write_text(json.dumps({"signature": signature, "done": sorted(done), "failed": failed},
                                            indent=2))

    todo = [(rid, m) for rid, m in zip(ids, media, strict=True) if rid not in done]
    for count, (rid, record_media) in enumerate(todo, start=1):
        try:
            found = clip_features(encoders, record_media, fps, max_frames)
        except MediaError as exc:
            found, failed[rid] = {}, str(exc)
        stored.update({f"{rid}::{modality}": array.astype(np.float32) for modality, array in found.items()})
        done.add(rid)
        if count % save_every == 0:  # an interrupted run keeps what it encoded
            save()
    if todo:
        save()
    by_id: dict[str, dict] = {rid: {} for rid in ids}
    for key, array in stored.items():
        rid, modality = key.rsplit("::", 1)
        if rid in by_id:
            by_id[rid][modality] = array
    return by_id, {rid: failed[rid] for rid in ids if rid in failed}


def _projector_params(spec, hidden: int) -> int:
    import torch

    from affectreason.models.projector import PreFusion, Projector

    with torch.device("meta"):
        if spec.fusion == "attention":
            modules = [PreFusion(spec.dims, hidden, hidden, spec.tokens, spec.projector)]
        else:
            modules = [Projector(spec.projector, d, hidden, spec.tokens) for d in spec.dims.values()]
    return sum(p.numel() for m in modules for p in m.parameters())


def train_features(recipe: Recipe, resume: bool = False, stop_after: int | None = None,
                   on_step: Callable[[dict], None] | None = None,
                   on_plan: Callable[[MemoryPlan], None] | None = None) -> TrainResult:
    """Train projector(s) + LoRA per ``recipe.features``. Memory is checked twice before weights load: for the
    encoders, then (after the feature cache is complete and the encoders are gone) for the LLM's training."""
    import torch
    from safetensors.torch import load_file, save_file

    from affectreason.models.encoders import FrozenEncoder
    from affectreason.models.feature_lm import (
        PROJECTOR_WEIGHTS,
        FeatureLM,
        FeatureSpec,
        add_placeholders,
        feature_chat,
        pad_features,
    )
    from affectreason.models.hub import model_folder

    check_qlora(recipe)
    recipe, model_name = local_model(recipe)
    spec_section, output_dir = recipe.features, Path(recipe.output_dir)
    chats, media, ids = read_chats(recipe.data.train), read_media(recipe.data.train), record_ids(recipe.data.train)
    accelerator = make_accelerator(recipe, output_dir)
    paths = {m: p for m, p in (("vision", spec_section.vision), ("audio", spec_section.audio)) if p}
    check_encoders(recipe, {m: str(model_folder(p, "encoder")) for m, p in paths.items()},
                   local_processes(accelerator))
    encoders = {m: FrozenEncoder(path, window=spec_section.window) for m, path in paths.items()}
    for modality, encoder in encoders.items():
        if encoder.modality != modality:
            raise DataError(f"features.{modality}: {encoder.path} is a {encoder.modality} encoder")
    cache = Path(spec_section.cache) if spec_section.cache else output_dir / "features"
    with accelerator.main_process_first():  # one process encodes, the others read its cache
        features, failed = cache_features(ids, media, encoders, cache, recipe.data.fps, recipe.data.max_frames)
    spec = FeatureSpec(encoders={m: e.path for m, e in encoders.items()}, dims={m: e.dim for m, e in encoders.items()},
                       projector=spec_section.projector, tokens=spec_section.tokens, fusion=spec_section.fusion,
                       fps=recipe.data.fps, max_frames=recipe.data.max_frames, window=spec_section.window)
    encoders = None  # their weights are not needed any more: the cache holds what they computed
    seed_all(recipe.schedule.seed)
    tokenizer = load_tokenizer(recipe)
    add_placeholders(tokenizer)
    _, shape = causal_lm_shape(recipe.model.path, recipe.adapter.target_modules, recipe.adapter.r)
    present = [sorted(features[rid]) for rid in ids]
    data = tokenize_chats([feature_chat(chat, mods, spec) for chat, mods in zip(chats, present, strict=True)],
                          tokenizer, resolve_max_length(recipe, shape.context), recipe.data.over_length)
    lengths = [len(e.input_ids) for e in data.examples]
    cached = sum(a.nbytes for by_modality in features.values() for a in by_modality.values())
    plan = plan_memory(recipe, shape, lengths, target_counts(data), accelerator.num_processes,
                       local_processes(accelerator), other={"features": cached},
                       extra_trainable=_projector_params(spec, shape.hidden))
    if on_plan:
        on_plan(plan)
    if plan.return_freed_memory:
        return_freed_memory()
    _, llm = load_model(recipe, plan.gradient_checkpointing, tokenizer)
    model = FeatureLM(llm, tokenizer, spec)
    rows = [{m: torch.from_numpy(a) for m, a in features[ids[i]].items()} for i in data.kept]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    head, transform = output_head(model), logit_transform(llm.config)

    def make_batch(indices: list[int]) -> dict:
        batch = collate([data.examples[i] for i in indices], pad)
        feats, masks = pad_features([rows[i] for i in indices], spec.dims)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        batch["features"] = {m: v.to(accelerator.device) for m, v in feats.items()}
        batch["masks"] = {m: v.to(accelerator.device) for m, v in masks.items()}
        return batch

    def save(folder: Path, trained, state_dict) -> None:
        save_adapter(folder, trained.llm, tokenizer, recipe, base_model=model_name)
        save_file({k: v.detach().cpu().contiguous() for k, v in trained.projector_state().items()},
                  str(folder / PROJECTOR_WEIGHTS))
        spec.save(folder)

    def restore(folder: Path, trained) -> None:
        restore_adapter(folder, trained.llm)
        trained.load_state_dict(load_file(str(folder / "adapter" / PROJECTOR_WEIGHTS)), strict=False)

    parts = LoopParts(model=model, n_examples=len(data.examples), make_batch=make_batch, save=save, restore=restore,
                      lengths=lengths, info={"memory": plan.figures(),
                                             "model": {"name": model_name, "folder": recipe.model.path}},
                      loss=lambda trained, batch: lm_loss(trained, head, batch, recipe.schedule.logits, transform))
    step, losses, _ = run_loop(recipe, parts, accelerator, resume, stop_after, on_step)
    return TrainResult(output_dir, output_dir / "adapter", step, losses, {},
                       {"examples": len(data.examples), "dropped": data.dropped, "truncated": data.truncated,
                        "cache": str(cache), "media_errors": failed, "memory": plan.figures()}, model)
