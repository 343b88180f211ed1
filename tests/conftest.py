"""Shared fixtures: the public anchor data (beside the checkout) and a small file writer."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from affectreason.eval.wheel import EmotionWheel

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
ANCHORS = Path(os.environ.get("AFFECTREASON_ANCHORS", Path(__file__).resolve().parents[2] / "shared" / "anchors"))


@pytest.fixture(scope="session")
def anchors() -> Path:
    """The anchor data folder (``shared/anchors`` beside the repository, or $AFFECTREASON_ANCHORS)."""
    if not ANCHORS.is_dir():
        pytest.fail(f"anchor data not found at {ANCHORS}; put shared/anchors beside the checkout "
                    "or set AFFECTREASON_ANCHORS")
    return ANCHORS


@pytest.fixture(scope="session")
def wheel(anchors: Path) -> EmotionWheel:
    """The MERTools emotion wheel from the anchors, loaded once per session."""
    return EmotionWheel.load(anchors / "emotion_wheel")


@pytest.fixture
def tmp_file(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """``tmp_file(name, content)`` writes text (UTF-8) or bytes to ``tmp_path / name`` and returns the path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Real clips (package images + espeak-ng speech, assembled with ffmpeg), built once per session."""
    from tests.media_factory import build_media

    return build_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory) -> Path:
    """A random-init Qwen2 chat model with an offline-trained tokenizer (tests/tiny_models.py)."""
    from tests.tiny_models import build_qwen2

    return build_qwen2(tmp_path_factory.mktemp("models") / "qwen2")


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tmp_path_factory) -> Path:
    """A random-init Qwen2.5-VL with a PIL image processor (tests/tiny_models.py)."""
    from tests.tiny_models import build_qwen2_5_vl

    return build_qwen2_5_vl(tmp_path_factory.mktemp("models") / "qwen2_5_vl")


@pytest.fixture(scope="session")
def tiny_omni_thinker(tmp_path_factory) -> Path:
    """A random-init Qwen2.5-Omni thinker with image processor and Whisper feature extractor."""
    from tests.tiny_models import build_qwen2_5_omni_thinker

    return build_qwen2_5_omni_thinker(tmp_path_factory.mktemp("models") / "omni_thinker")
