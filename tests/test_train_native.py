"""Native multimodal fine-tuning: a tiny random Qwen2.5-VL takes a real clip as a video input, trains one
LoRA step on its language model only, and the saved adapter reproduces the trained model's logits exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from affectreason.train.recipe import load_recipe
from affectreason.train.run import train

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"
PROMPT = [{"role": "user", "content": "Measured cues: AU12 at 4.2/5. How does the person feel?"}]


def _recipe(folder: Path, model: Path, records: Path, **data) -> Path:
    tree = {"model": {"path": str(model)},
            "adapter": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
            "data": {"train": str(records), "fps": 2.0, "max_frames": 4, **data},
            "optim": {"lr": 1e-2}, "schedule": {"max_steps": 1, "batch_size": 2}, "output_dir": str(folder / "run")}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_one_lora_step_on_video_and_exact_reload(tiny_qwen2_5_vl, tmp_path):
    import torch

    from affectreason.media import read_frames
    from affectreason.models.native import NativeMLLM

    records = tmp_path / "records.jsonl"
    reply = json.dumps({"conclusion": "She is delighted.", "labels": ["happy"]})
    rows = [{"messages": PROMPT + [{"role": "assistant", "content": reply}], "media": {"videos": [str(EXAMPLE)]}},
            {"messages": PROMPT + [{"role": "assistant", "content": reply}], "videos": [str(EXAMPLE)]}]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = train(load_recipe(_recipe(tmp_path, tiny_qwen2_5_vl, records)))
    assert result.steps == 1 and 0 < result.losses[0][1] < 20

    from safetensors.torch import load_file

    keys = load_file(result.adapter_dir / "adapter_model.safetensors").keys()
    assert keys and all("language_model" in k and "visual" not in k for k in keys)

    frames = read_frames(EXAMPLE, 2.0).images
    frames = [frames[i] for i in [0, 2, 3, 5]]
    reloaded = NativeMLLM(str(tiny_qwen2_5_vl), str(result.adapter_dir))
    inputs = reloaded.inputs(PROMPT, frames, video_fps=2.0)
    assert inputs["video_grid_thw"][0, 0] == 2  # four frames -> two temporal patches
    result.model.eval()
    with torch.inference_mode():
        trained = result.model(**inputs).logits
        again = reloaded.lm(**inputs).logits
        base = NativeMLLM(str(tiny_qwen2_5_vl)).lm(**inputs).logits
    assert torch.equal(trained, again)
    assert not torch.allclose(trained, base)


def test_native_data_errors(tiny_qwen2_5_vl, tmp_path):
    from affectreason.train.sft_data import DataError

    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"messages": PROMPT + [{"role": "assistant", "content": "happy"}],
                                   "media": {"videos": ["missing.mp4"]}}) + "\n")
    with pytest.raises(DataError, match=r"records.jsonl:1: videos file .*missing.mp4 does not exist"):
        train(load_recipe(_recipe(tmp_path, tiny_qwen2_5_vl, records)))
    records.write_text(json.dumps({"messages": PROMPT + [{"role": "assistant", "content": "happy"}],
                                   "media": {"audios": [str(EXAMPLE)]}}) + "\n")
    with pytest.raises(DataError, match="cannot hear"):
        train(load_recipe(_recipe(tmp_path, tiny_qwen2_5_vl, records)))


def test_collate_keeps_media_that_only_a_later_record_has():
    import torch

    from affectreason.train.native import collate_native

    text_only = {"input_ids": torch.tensor([[1, 2]]), "attention_mask": torch.ones(1, 2, dtype=torch.long),
                 "labels": torch.tensor([[-100, 2]])}
    with_video = {"input_ids": torch.tensor([[1, 2, 3]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
                  "labels": torch.tensor([[-100, 2, 3]]), "pixel_values_videos": torch.ones(4, 6),
                  "video_grid_thw": torch.tensor([[1, 2, 2]])}
    batch = collate_native([text_only, with_video], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 0], [1, 2, 3]] and batch["labels"][0, 2] == -100
    assert batch["pixel_values_videos"].shape == (4, 6) and batch["video_grid_thw"].tolist() == [[1, 2, 2]]
