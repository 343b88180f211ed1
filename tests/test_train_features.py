"""The feature path: tiny random SigLIP + Whisper encoders, cached features, projector + LoRA on a tiny Qwen2.

The synthetic task is learnable only through the media: each of four emotions has its own picture colour
and tone pitch, and the text says nothing about which one it is.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from affectreason.train.recipe import RecipeError, load_recipe
from affectreason.train.run import train

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"
CLASSES = {"happy": ((230, 200, 40), 220.0), "sad": ((40, 60, 200), 440.0), "angry": ((200, 30, 30), 880.0),
           "calm": ((40, 180, 80), 1760.0)}


def _media(folder: Path, name: str, label: str, rng: np.random.Generator) -> tuple[Path, Path]:
    from PIL import Image

    colour, pitch = CLASSES[label]
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (48, 48, 3)), 0, 255).astype(np.uint8)
    image = folder / f"{name}.png"
    Image.fromarray(pixels).save(image)
    t = np.arange(int(16_000 * rng.uniform(0.6, 1.2))) / 16_000
    tone = 0.4 * np.sin(2 * np.pi * pitch * rng.uniform(0.95, 1.05) * t) + rng.normal(0, 0.02, len(t))
    audio = folder / f"{name}.wav"
    with wave.open(str(audio), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((tone * 32767).astype(np.int16).tobytes())
    return image, audio


def _records(folder: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        label = sorted(CLASSES)[i % 4]
        image, audio = _media(folder, f"clip{i}", label, rng)
        lines.append({"id": f"clip{i}", "labels": [label],
                      "messages": [{"role": "user", "content": "<image><audio>How does the person feel?"},
                                   {"role": "assistant", "content": label}],
                      "media": {"images": [image.name], "audios": [audio.name]}})
    path = folder / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    from tests.tiny_models import build_siglip_vision, build_whisper_encoder

    root = tmp_path_factory.mktemp("encoders")
    return build_siglip_vision(root / "siglip"), build_whisper_encoder(root / "whisper")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("feature_task")
    return _records(root / "train", 96, 0), _records(root / "eval", 32, 1)


def _recipe(folder: Path, model: Path, records: Path, vision: Path, audio: Path, steps: int, **features) -> Path:
    tree = {"model": {"path": str(model)},
            "adapter": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
            "data": {"train": str(records), "max_length": 128},
            "optim": {"lr": 3e-3, "warmup_steps": 5},
            "schedule": {"max_steps": steps, "batch_size": 16},
            "features": {"vision": str(vision), "audio": str(audio), "tokens": 2, **features},
            "output_dir": str(folder / "run")}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _eval_set(spec, records: Path) -> list[tuple[dict, dict]]:
    """(record, features) of each held-out record, encoded once."""
    import torch

    from affectreason.models.encoders import FrozenEncoder, clip_features
    from affectreason.train.native import read_media

    encoders = {m: FrozenEncoder(path, window=spec.window) for m, path in spec.encoders.items()}
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    return [(row, {m: torch.from_numpy(a) for m, a in clip_features(encoders, media, 2.0, 8).items()})
            for row, media in zip(rows, read_media(records), strict=True)]


def _accuracy(model, held_out: list[tuple[dict, dict]]) -> float:
    import torch

    from affectreason.models.feature_lm import pad_features

    correct = 0
    for row, found in held_out:
        chat = model.chat(row["messages"][:-1], sorted(found))
        ids = model.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True,
                                                  return_tensors="pt")
        feats, masks = pad_features([found], model.spec.dims)
        with torch.inference_mode():
            out = model.generate(ids["input_ids"], ids["attention_mask"], feats, masks, max_new_tokens=4)
        reply = model.tokenizer.decode(out[0], skip_special_tokens=True).strip()
        correct += reply.split()[:1] == row["labels"]
    return correct / len(held_out)


def test_projector_learns_the_media_mapping(task, encoders, tiny_qwen2, tmp_path):
    """Acceptance: loss falls >= 50% and held-out accuracy is well above chance (0.25)."""
    from affectreason.models.feature_lm import load_feature_lm

    train_records, eval_records = task
    vision, audio = encoders
    result = train(load_recipe(_recipe(tmp_path, tiny_qwen2, train_records, vision, audio, 150, projector="mlp")))
    losses = [loss for _, loss in result.losses]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last <= 0.5 * first, (first, last)
    held_out = _eval_set(result.model.spec, eval_records)
    accuracy = _accuracy(result.model.eval(), held_out)
    assert accuracy >= 0.6, accuracy
    reloaded = load_feature_lm(str(tiny_qwen2), result.adapter_dir)
    assert _accuracy(reloaded, held_out) == accuracy
    manifest = json.loads((tmp_path / "run" / "features" / "features.json").read_text())
    assert len(manifest["done"]) == 96 and manifest["signature"]["encoders"]["vision"] == str(vision)

    # explain with the adapter: the hf backend sees feature_config.json and encodes the clip itself
    from affectreason.backends.load import BackendSpec, load_reasoner
    from affectreason.reason.explain import explain_cues
    from affectreason.schema import Clip, Cues

    reasoner = load_reasoner(BackendSpec("hf", model=str(tiny_qwen2), adapter=str(result.adapter_dir),
                                         max_new_tokens=4))
    clip = Clip(path=str(EXAMPLE), id="astronaut")
    explanation = explain_cues(Cues(clip_id="astronaut"), reasoner, clip)
    assert explanation.backend == "hf-features" and explanation.model == "qwen2+adapter" and explanation.raw_text
    assert not any("did not get" in e for e in explanation.parse_errors)
    blind = explain_cues(Cues(clip_id="astronaut"), reasoner, None)
    assert "no audio or vision in the clip" in " ".join(blind.parse_errors)


def test_prefusion_qformer_trains_and_the_cache_is_reused(task, encoders, tiny_qwen2, tmp_path):
    train_records, _ = task
    vision, audio = encoders
    recipe = _recipe(tmp_path, tiny_qwen2, train_records, vision, audio, 30, projector="qformer",
                     fusion="attention", cache=str(tmp_path / "cache"))
    result = train(load_recipe(recipe))
    losses = [loss for _, loss in result.losses]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert result.model.fusion is not None and json.loads((result.adapter_dir / "feature_config.json").read_text())[
        "fusion"] == "attention"
    cache = tmp_path / "cache" / "features.safetensors"
    stamp = cache.stat().st_mtime_ns
    train(load_recipe(recipe, ["schedule.max_steps=1", f"output_dir={tmp_path / 'again'}"]))
    assert cache.stat().st_mtime_ns == stamp  # nothing re-encoded


def test_feature_recipe_errors(task, encoders, tiny_qwen2, tmp_path):
    train_records, _ = task
    vision, audio = encoders
    recipe = _recipe(tmp_path, tiny_qwen2, train_records, vision, audio, 1)
    with pytest.raises(RecipeError, match="fusion=attention fuses audio with video"):
        load_recipe(recipe, ["features.audio=null", "features.fusion=attention"])
    with pytest.raises(RecipeError, match=r"features\.projector: Input should be 'linear', 'mlp' or 'qformer'"):
        load_recipe(recipe, ["features.projector=perceiver"])
    from affectreason.models.causal_lm import ModelMissing

    with pytest.raises(ModelMissing, match="not one of"):
        train(load_recipe(recipe, [f"features.vision={tiny_qwen2}"]))


def test_padding_keeps_every_modality_when_a_record_lacks_one():
    import torch

    from affectreason.models.feature_lm import pad_features, place_markers

    rows = [{"vision": torch.ones(3, 4)}, {"vision": torch.ones(1, 4), "audio": torch.ones(5, 2)}]
    features, masks = pad_features(rows, {"vision": 4, "audio": 2})
    assert features["audio"].shape == (2, 5, 2) and masks["audio"].sum(dim=1).tolist() == [0, 5]
    only_vision, _ = pad_features(rows[:1], {"vision": 4, "audio": 2})
    assert only_vision["audio"].shape == (1, 1, 2)
    text = place_markers("<video> and <audio>: how?", ["vision"], fusion=False, tokens=2)
    assert text == "<|affect_vision|><|affect_vision|> and : how?"
    fused = place_markers("how?", ["vision", "audio"], fusion=True, tokens=2)
    assert fused.count("<|affect_fused|>") == 2 and "<|affect_vision|>" not in fused
