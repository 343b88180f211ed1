"""Serving without a server: the vLLM command line, LoRA ranks, the bounded schema, media parts, the key
check, and the message when vLLM is not installed."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from affectreason.backends.server import media_parts
from affectreason.reason.messages import bounded_schema, explanation_schema
from affectreason.schema import Clip
from affectreason.serve.auth import authorized
from affectreason.serve.launch import (
    ServerConfig,
    adapter_rank,
    max_lora_rank,
    parse_adapters,
    server_command,
    server_env,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"


def adapter_folder(root: Path, name: str, config: dict) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def model_folder(root: Path) -> Path:
    folder = root / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return folder


def test_lora_rank_is_read_from_the_adapters_and_rounded_up_to_what_vllm_takes(tmp_path):
    small = adapter_folder(tmp_path, "small", {"r": 4})
    patterned = adapter_folder(tmp_path, "patterned", {"r": 8, "rank_pattern": {"q_proj": 24}})
    assert adapter_rank(small) == 4 and adapter_rank(patterned) == 24
    assert max_lora_rank({"a": str(small)}) == 8
    assert max_lora_rank({"a": str(small), "b": str(patterned)}) == 32
    assert max_lora_rank({}) == 1
    huge = adapter_folder(tmp_path, "huge", {"r": 1024})
    with pytest.raises(ValueError, match="ranks up to 512"):
        max_lora_rank({"h": str(huge)})


def test_adapter_specs_are_checked(tmp_path):
    folder = adapter_folder(tmp_path, "tuned", {"r": 8})
    assert parse_adapters([f"tuned={folder}"]) == {"tuned": str(folder.resolve())}
    with pytest.raises(ValueError, match="expected NAME=DIR"):
        parse_adapters([str(folder)])
    with pytest.raises(ValueError, match="no adapter_config.json"):
        parse_adapters([f"x={tmp_path}"])


def test_server_command_has_lora_media_schema_and_cpu_flags(tmp_path):
    model = model_folder(tmp_path)
    tuned = adapter_folder(tmp_path, "tuned", {"r": 16})
    media = tmp_path / "media"
    media.mkdir()
    config = ServerConfig(str(model), {"tuned": str(tuned)}, port=8123, api_key="k3y", media_dir=str(media))
    cmd = server_command(config, "cpu")
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    flags = dict(zip(cmd[3::1], cmd[4::1], strict=False))
    assert flags["--served-model-name"] == "model" and flags["--port"] == "8123"
    assert flags["--max-lora-rank"] == "16" and flags["--lora-modules"] == f"tuned={tuned}"
    assert "--enable-lora" in cmd and "--enforce-eager" in cmd and flags["--dtype"] == "float32"
    assert flags["--allowed-local-media-path"] == str(media.resolve())
    assert json.loads(flags["--structured-outputs-config"]) == {"backend": "guidance", "disable_any_whitespace": True}
    assert flags["--middleware"] == "affectreason.serve.auth.require_key"
    assert "k3y" not in " ".join(cmd)  # the key travels in the environment, not in argv
    env = server_env(config, "cpu")
    assert env["VLLM_API_KEY"] == "k3y" and env["VLLM_CPU_KVCACHE_SPACE"] == "2" and env["HF_HUB_OFFLINE"] == "1"
    gpu = server_command(ServerConfig(str(model)), "gpu")
    assert "--enforce-eager" not in gpu and "--dtype" not in gpu and "--enable-lora" not in gpu
    assert "--allowed-local-media-path" not in gpu
    from affectreason.models.causal_lm import ModelMissing

    with pytest.raises(ModelMissing, match="not a folder, and not a hub id"):  # a hub id would be downloaded
        server_command(ServerConfig(str(tmp_path / "nope")), "cpu")


def test_multimodal_models_get_media_limits(tmp_path):
    model = tmp_path / "vl"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    cmd = server_command(ServerConfig(str(model), max_images=3), "cpu")
    assert json.loads(cmd[cmd.index("--limit-mm-per-prompt") + 1]) == {"image": 3, "video": 1}


def test_bounded_schema_bounds_every_free_string_and_list():
    schema = explanation_schema()
    original = json.dumps(schema)
    bounded = bounded_schema(schema, 50, 3)
    assert bounded != schema and json.dumps(schema) == original  # the original is untouched
    props = bounded["properties"]
    assert props["interpretation"]["maxLength"] == 50 and props["conclusion"]["maxLength"] == 50
    # the schema's own tighter bounds are kept: labels are words of at most 40 characters
    assert props["labels"]["maxItems"] == 3 and props["labels"]["items"]["maxLength"] == 40
    assert bounded_schema(schema, 400, 6)["properties"]["conclusion"]["maxLength"] == 200
    assert props["labels"]["minItems"] == 1 and props["labels"]["items"]["minLength"] == 1
    clue = props["observations"]["items"]["properties"]
    assert props["observations"]["maxItems"] == 3 and clue["text"]["maxLength"] == 50
    assert "maxLength" not in clue["modality"]  # an enum is already bounded
    assert clue["cue_ref"]["maxLength"] == 40  # ["string", "null"], its own bound
    assert bounded_schema(schema, 50, 20)["properties"]["observations"]["maxItems"] == 8  # never loosened
    assert clue["start"]["multipleOf"] == 0.01 and clue["start"]["maximum"] == 100_000
    # the schema's own range kept, split at 0: llguidance admits no negative number under multipleOf
    assert props["valence"]["anyOf"] == [{"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.01},
                                         {"type": "number", "minimum": -1, "maximum": 0}]


def test_media_parts_carry_key_frames_and_16khz_audio():
    from affectreason.cues.pipeline import CueConfig, CueExtractor

    clip = Clip(path=str(EXAMPLE), id="example")
    cues = CueExtractor(CueConfig(asr=False)).extract(clip)
    parts = media_parts(clip, cues, frames=2, audio=True)
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 2 and all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images)
    (sound,) = [p for p in parts if p["type"] == "input_audio"]
    with wave.open(io.BytesIO(base64.b64decode(sound["input_audio"]["data"]))) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1
        assert 2.0 < wav.getnframes() / 16000 <= 3.0  # the audio track of the 3 s clip
    assert media_parts(clip, cues, frames=0, audio=False) == []


def test_a_video_part_is_the_clip_s_frames_as_an_mp4_at_their_rate():
    """``query --video``: evenly spaced frames of the clip as one MPEG-4 ``video_url`` part (vLLM's chat API),
    decodable to the same number of frames at the rate they were thinned to; an image clip still goes as an image."""
    import av
    import numpy as np

    from affectreason.cues.pipeline import CueConfig, CueExtractor
    from affectreason.media import read_frames

    clip = Clip(path=str(EXAMPLE), id="example")
    cues = CueExtractor(CueConfig(asr=False, fps=5.0)).extract(clip)
    (part,) = media_parts(clip, cues, frames=6, audio=False, video=True)
    assert part["type"] == "video_url" and part["video_url"]["url"].startswith("data:video/mp4;base64,")
    data = base64.b64decode(part["video_url"]["url"].split(",", 1)[1])
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = float(stream.average_rate)
    sampled = read_frames(EXAMPLE, 5.0).images
    assert len(decoded) == 6 and decoded[0].shape == sampled[0].shape  # 384 x 384: even sides kept
    assert rate == pytest.approx(5.0 * 6 / len(sampled), rel=1e-3)  # thinned from 5 fps to 6 frames
    # near-lossless: the first frame is the clip's first sampled frame
    assert np.abs(decoded[0].astype(int) - sampled[0].astype(int)).mean() < 4.0
    still = Clip(path=str(EXAMPLE.with_name("demo.png")), id="still")
    assert [p["type"] for p in media_parts(still, cues, frames=2, audio=False, video=True)] == ["image_url"]


def test_the_vllm_engine_is_opened_for_the_media_it_will_be_sent(tiny_qwen2_5_vl, tiny_qwen2):
    from affectreason.backends.server import QueryConfig
    from affectreason.backends.vllm import engine_limits

    assert engine_limits(str(tiny_qwen2_5_vl), QueryConfig(frames=3)) == {"image": 3, "video": 1}
    assert engine_limits(str(tiny_qwen2_5_vl), QueryConfig()) is None  # text only: no media limits asked
    assert engine_limits(str(tiny_qwen2), QueryConfig(frames=3)) is None  # a text model takes no media


def test_key_check():
    assert authorized("Bearer s3cret", "s3cret")
    assert not authorized("Bearer nope", "s3cret") and not authorized(None, "s3cret")
    assert not authorized("s3cret", "s3cret")


def test_serve_without_vllm_names_the_extra(tmp_path):
    """An interpreter that cannot import vLLM (a bare virtualenv) gets the install command, not a traceback."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    model = model_folder(tmp_path)
    out = subprocess.run([sys.executable, "-m", "affectreason.cli", "serve", "--model", str(model),
                          "--python", str(bare / "bin" / "python")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    message = " ".join(out.stderr.split())
    assert "vLLM is not installed" in message and "affectreason[serve]" in message
    assert "affectreason[serve-cpu]" in message and "Traceback" not in out.stderr


def test_query_renders_the_prompt_an_adapter_was_trained_with():
    from affectreason.backends.server import QueryConfig, ServerReasoner
    from affectreason.schema import Cues, Transcript

    cues = Cues(clip_id="x", transcript=Transcript(text="so glad", source="given"))
    default = ServerReasoner(None, QueryConfig()).messages(cues)
    tuned = ServerReasoner(None, QueryConfig(prompt="reason/explain_tuned")).messages(cues)
    assert "Reason in three steps" in default[-1]["content"]
    assert "Reason in three steps" not in tuned[-1]["content"] and '"so glad"' in tuned[-1]["content"]


def test_a_cut_off_last_line_of_the_cue_cache_is_redone_not_fatal(tmp_path):
    from affectreason.batch import read_items as read_cues_jsonl
    from affectreason.schema import Clip, Cues

    good = json.dumps({"clip": Clip(path="a.mp4", id="a").model_dump(mode="json"),
                       "cues": Cues(clip_id="a").model_dump(mode="json")})
    cache = tmp_path / "out.cues.jsonl"
    cache.write_text(good + "\n" + good[:30])
    assert [item.clip.id for item in read_cues_jsonl(cache)] == ["a"]
    cache.write_text(good[:30] + "\n" + good + "\n")
    with pytest.raises(ValueError, match="out.cues.jsonl:1: not valid JSON"):
        read_cues_jsonl(cache)
