"""Run by ``tests/test_official_processors.py`` inside the second virtualenv (``.venv-vision``: torch 2.14.1 with
torchvision 0.29.1, transformers, qwen-vl-utils): a tiny Qwen2.5-VL with its official processor saved beside it
gets the frames of the bundled example clip through ``AutoProcessor`` + ``qwen_vl_utils.process_vision_info`` and
through the path ``models.native`` builds without torchvision; the two must agree: identical ``input_ids``,
``mm_token_type_ids``, grids, ``second_per_grid_ts`` and labels, pixel values within float tolerance, and the
same greedy reply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from affectreason.media import read_frames
from affectreason.models.native import NativeMLLM
from tests.tiny_models import build_qwen2_5_vl

CLIP = Path(__file__).resolve().parents[2] / "examples" / "happy_astronaut.mp4"
CHAT = [{"role": "system", "content": "Read the clip."}, {"role": "user", "content": "Face: AU12 4.1 (strong)"}]
BOUNDS = {"min_pixels": 56 * 56, "max_pixels": 112 * 112}  # the tiny model's budget: 4 to 16 merged patches


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> NativeMLLM:
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    folder = build_qwen2_5_vl(tmp_path_factory.mktemp("official") / "vl")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**BOUNDS), tokenizer=tokenizer,
                        video_processor=Qwen2VLVideoProcessor(**BOUNDS)).save_pretrained(folder)
    model = NativeMLLM(str(folder))
    assert type(model.processor).__name__ == "Qwen2_5_VLProcessor"  # the official path is the one taken here
    return model


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    images = read_frames(CLIP, fps=2.0).images
    assert len(images) >= 5 and images[0].shape == (384, 384, 3)
    # 4:3 crops (not square: height and width are sized apart); an odd count: the video's last frame is repeated
    return [np.ascontiguousarray(image[48:336]) for image in images[:5]]


def both(lm: NativeMLLM, make):
    """(official, built here) results of ``make()``."""
    official = make()
    processor, lm.processor = lm.processor, None
    try:
        return official, make()
    finally:
        lm.processor = processor


def same(official: dict, built: dict) -> None:
    assert sorted(official) == sorted(built)
    for key, value in official.items():
        if key.startswith("pixel_values"):
            assert value.shape == built[key].shape, key
            torch.testing.assert_close(built[key].float(), value.float(), atol=1e-5, rtol=1e-5)
        else:
            assert torch.equal(torch.as_tensor(built[key]), torch.as_tensor(value)), key


@pytest.mark.parametrize("count", [1, 3])
def test_images_agree(lm, frames, count):
    official, built = both(lm, lambda: lm.inputs(CHAT, frames[:count]))
    same(official, built)
    assert official["image_grid_thw"].shape == (count, 3)


@pytest.mark.parametrize("fps", [2.0, 5.0])
def test_a_video_agrees(lm, frames, fps):
    official, built = both(lm, lambda: lm.inputs(CHAT, frames, video_fps=fps))
    same(official, built)
    assert official["video_grid_thw"].tolist() == [[3, 4, 8]]  # 5 frames -> 3 temporal patches; 56 x 112 px
    assert official["second_per_grid_ts"].tolist() == [pytest.approx(2 / fps)]


def test_training_inputs_agree(lm, frames):
    chat = [*CHAT, {"role": "assistant", "content": "Labels: happy"}]
    official, built = both(lm, lambda: lm.training_inputs(chat, frames, video_fps=2.0))
    same(official, built)
    assert (official["labels"] != -100).sum() > 0


def test_the_same_reply(lm, frames):
    official, built = both(lm, lambda: lm.generate(CHAT, frames, max_new_tokens=8, video_fps=2.0))
    assert official == built and official


OMNI_TOKENS = {"image_token": "<|IMAGE|>", "audio_token": "<|AUDIO|>", "video_token": "<|VIDEO|>",
               "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
               "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}


@pytest.fixture(scope="module")
def omni(tmp_path_factory) -> tuple[NativeMLLM, NativeMLLM]:
    """(the tiny Omni thinker with the official Qwen2_5OmniProcessor saved beside it, the same thinker in this
    project's folder layout, whose inputs are built here)."""
    import shutil

    from transformers import AutoTokenizer, Qwen2_5OmniProcessor, WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from tests.tiny_models import build_qwen2_5_omni_thinker

    root = tmp_path_factory.mktemp("omni")
    thinker = build_qwen2_5_omni_thinker(root / "thinker")
    official = root / "official"
    shutil.copytree(thinker, official)
    Qwen2_5OmniProcessor(image_processor=Qwen2VLImageProcessor(**BOUNDS),
                         video_processor=Qwen2VLVideoProcessor(**BOUNDS),
                         feature_extractor=WhisperFeatureExtractor.from_pretrained(thinker / "audio"),
                         tokenizer=AutoTokenizer.from_pretrained(thinker, extra_special_tokens=OMNI_TOKENS),
                         ).save_pretrained(official)
    with_processor, without = NativeMLLM(str(official)), NativeMLLM(str(thinker))
    assert type(with_processor.processor).__name__ == "Qwen2_5OmniProcessor" and without.processor is None
    return with_processor, without


def test_omni_images_and_audio_agree(omni, frames):
    from affectreason.media import read_audio

    official, built_here = omni
    audio = read_audio(CLIP)[0].samples
    for count, sound in ((2, audio), (0, audio), (2, None)):
        same(official.inputs(CHAT, frames[:count], sound), built_here.inputs(CHAT, frames[:count], sound))
    chat = [*CHAT, {"role": "assistant", "content": "Labels: happy"}]
    same(official.training_inputs(chat, frames[:2], audio), built_here.training_inputs(chat, frames[:2], audio))
    assert official.generate(CHAT, frames[:2], audio, max_new_tokens=8) == \
        built_here.generate(CHAT, frames[:2], audio, max_new_tokens=8)
