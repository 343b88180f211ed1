"""Models named as transformers users name them, in the verbs that load them: ``explain --backend hf --model
org/name@rev`` downloads the tiny Qwen2 from a hub stand-in on 127.0.0.1 (HF_ENDPOINT) into a temporary HF_HOME and
explains the example clip; with HF_HUB_OFFLINE=1 and the stand-in gone, the cache answers. A training recipe whose
``model.path`` is a hub id trains. A full Qwen2.5-Omni checkpoint (thinker + talker + token2wav, ``model_type:
qwen2_5_omni``, one preprocessor_config.json for images and audio, as Qwen publishes it) loads its thinker for
explain (hf-native) and for native training.

The CLI runs in a subprocess: huggingface_hub reads HF_HOME / HF_ENDPOINT / HF_HUB_OFFLINE when it is imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hub_server import HubServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "happy_astronaut.mp4"
CLI = [sys.executable, "-c", "from affectreason.cli import app; app()"]
SAID = ["--no-asr", "--transcript", "I am so happy to see you again today.", "--fps", "2"]


def _run(args: list[str], hf_home: Path, endpoint: str | None = None, resolve: str | None = None):
    """The CLI with ``args`` (or, with ``resolve``, only ``model_folder(resolve)``) against ``endpoint``, else
    offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(hf_home), PYTHONPATH=str(ROOT))
    env.update({"HF_ENDPOINT": endpoint} if endpoint else {"HF_HUB_OFFLINE": "1"})
    command = [sys.executable, "-c", f"from affectreason.models.hub import model_folder; model_folder({resolve!r})"] \
        if resolve else CLI + args
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)


def test_explain_by_hub_id_downloads_once_then_runs_from_the_cache(tiny_qwen2, tmp_path):
    from affectreason.backends.local import HFReasoner
    from affectreason.schema import Cues

    hf_home = tmp_path / "hf"
    explain = ["explain", str(EXAMPLE), "--backend", "hf", "--model", "affect/tiny@v1", "--max-new-tokens", "64",
               "--json", *SAID]
    with HubServer({"affect/tiny@v1": tiny_qwen2}) as hub:
        online = _run(explain, hf_home, hub.url)
        assert online.returncode == 0, online.stderr[-2000:]
        assert "affect/tiny/config.json" in hub.downloads and "affect/tiny/model.safetensors" in hub.downloads
        wrong = _run([], hf_home, hub.url, resolve="affect/tiny@v2")
    assert wrong.returncode == 1 and "RevisionNotFoundError" in wrong.stderr  # an unknown revision, as the Hub says
    first = json.loads(online.stdout)
    # the stand-in is gone; offline, the cache answers with the same model
    offline = _run(explain, hf_home)
    assert offline.returncode == 0, offline.stderr[-2000:]
    again = json.loads(offline.stdout)["explanation"]
    explanation = first["explanation"]
    assert explanation["backend"] == "hf" and explanation["model"] == "affect/tiny@v1"
    assert explanation["parse_status"] in ("ok", "partial") and explanation["labels"]  # constrained decoding
    assert again["raw_text"] == explanation["raw_text"] and again["labels"] == explanation["labels"]
    # ... and it is the tiny model itself: the local folder answers the same cues identically
    local = HFReasoner(str(tiny_qwen2), max_new_tokens=64).explain(Cues.model_validate(first["cues"]))
    assert local.raw_text == explanation["raw_text"]


def test_an_adapter_by_hub_id_explains_and_serves_then_offline_from_the_cache(tiny_qwen2, tmp_path):
    """``--adapter org/name`` (explain) and ``--adapter NAME=org/name`` (serve) download a LoRA adapter as a model
    is downloaded; ``affectreason --offline`` then answers from the cache with the stand-in gone."""
    from tests.tiny_models import build_lora_adapter

    lora = build_lora_adapter(tiny_qwen2, tmp_path / "lora")
    hf_home = tmp_path / "hf"
    explain = ["explain", str(EXAMPLE), "--backend", "hf", "--model", "affect/tiny", "--adapter", "affect/tiny-lora",
               "--max-new-tokens", "48", "--json", *SAID]
    parse = ("from affectreason.serve.launch import parse_adapters; "
             "print(parse_adapters(['tuned=affect/tiny-lora'])['tuned'])")
    with HubServer({"affect/tiny": tiny_qwen2, "affect/tiny-lora": lora}) as hub:
        online = _run(explain, hf_home, hub.url)
        assert online.returncode == 0, online.stderr[-2000:]
        assert "affect/tiny-lora/adapter_model.safetensors" in hub.downloads
        served = subprocess.run([sys.executable, "-c", parse], capture_output=True, text=True, timeout=120, cwd=ROOT,
                                env={**{k: v for k, v in os.environ.items() if not k.startswith("HF_")},
                                     "HF_HOME": str(hf_home), "HF_ENDPOINT": hub.url})
    assert served.returncode == 0, served.stderr[-2000:]
    folder = Path(served.stdout.strip())
    assert folder.is_relative_to(hf_home) and (folder / "adapter_config.json").is_file()
    explanation = json.loads(online.stdout)["explanation"]
    assert explanation["model"] == "affect/tiny+affect/tiny-lora"
    # offline by the switch (no HF_HUB_OFFLINE in the environment, no stand-in): the cache answers identically
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    offline = subprocess.run(CLI + ["--offline", *explain], env={**env, "HF_HOME": str(hf_home),
                                                                 "HF_ENDPOINT": "http://127.0.0.1:9"},
                             capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert offline.returncode == 0, offline.stderr[-2000:]
    assert json.loads(offline.stdout)["explanation"]["raw_text"] == explanation["raw_text"]
    # the same adapter from its folder gives the same answer: the download is the adapter
    local = subprocess.run(CLI + [*explain[:5], str(tiny_qwen2), "--adapter", str(lora), *explain[8:]],
                           env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert local.returncode == 0, local.stderr[-2000:]
    assert json.loads(local.stdout)["explanation"]["raw_text"] == explanation["raw_text"]
    missing = subprocess.run(CLI + ["--offline", *explain[:7], "affect/other-lora", *explain[8:]],
                             env={**env, "HF_HOME": str(hf_home)}, capture_output=True, text=True, timeout=240,
                             cwd=ROOT)
    assert missing.returncode == 2 and "'affect/other-lora' is not in the local Hugging Face cache" in missing.stderr


def test_a_recipe_whose_model_path_is_a_hub_id_trains(tiny_qwen2, tmp_path):
    from tests.synthetic_task import write_task

    train, _ = write_task(tmp_path, n_train=16, n_eval=1)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"path": "affect/tiny@v1"}, "data": {"train": str(train), "max_length": 128},
        "adapter": {"r": 4, "alpha": 8, "dropout": 0.0}, "optim": {"lr": 1e-2},
        "schedule": {"max_steps": 3, "batch_size": 4, "save_every": 3}, "output_dir": str(tmp_path / "run")}))
    with HubServer({"affect/tiny@v1": tiny_qwen2}) as hub:
        out = _run(["train", str(recipe)], tmp_path / "hf", hub.url)
    assert out.returncode == 0, out.stderr[-2000:]
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(0 < r["loss"] < 20 for r in log)
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((adapter / "affectreason_adapter.json").read_text())["base_model"] == "affect/tiny@v1"
    resolved = json.loads((tmp_path / "run" / "recipe.resolved.json").read_text())
    assert resolved["model"]["name"] == "affect/tiny@v1"
    assert Path(resolved["model"]["folder"]).is_relative_to(tmp_path / "hf")  # the cached snapshot trained


def build_full_omni(thinker: Path, folder: Path) -> Path:
    """A full Qwen2.5-Omni checkpoint around the tiny thinker's weights: a 1-layer talker and a tiny token2wav,
    the thinker's tokenizer, and one preprocessor_config.json holding the image processor's and the Whisper
    feature extractor's keys (the layout of Qwen/Qwen2.5-Omni-7B)."""
    import torch
    from transformers import AutoConfig, Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    from affectreason.models.native import load_omni_thinker

    config = AutoConfig.from_pretrained(thinker)
    vocab = config.text_config.vocab_size
    ids = {k: getattr(config, k) for k in ("audio_token_index", "image_token_index", "video_token_index",
                                           "vision_start_token_id", "vision_end_token_id", "audio_start_token_id",
                                           "audio_end_token_id")}
    talker = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=16, embedding_size=config.text_config.hidden_size,
                  tts_codec_start_token_id=60, tts_codec_end_token_id=61, tts_codec_pad_token_id=62,
                  tts_codec_mask_token_id=63, tts_text_start_token_id=vocab - 3, tts_text_end_token_id=vocab - 2,
                  tts_text_pad_token_id=vocab - 1, **ids,
                  rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6})
    dit = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, head_dim=16, emb_dim=16, num_embeds=64,
               mel_dim=16, enc_emb_dim=16, enc_dim=16, enc_channels=[16, 16, 16, 16, 48], enc_attention_channels=8,
               enc_se_channels=8, look_ahead_layers=[1], look_backward_layers=[0])
    bigvgan = dict(mel_dim=16, upsample_initial_channel=16, resblock_kernel_sizes=[3],
                   resblock_dilation_sizes=[[1, 3, 5]], upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4])
    full_config = Qwen2_5OmniConfig(thinker_config=config.to_dict(), talker_config=talker,
                                    token2wav_config=dict(dit_config=dit, bigvgan_config=bigvgan))
    torch.manual_seed(0)
    model = Qwen2_5OmniForConditionalGeneration(full_config)
    model.thinker.load_state_dict(load_omni_thinker(thinker).state_dict())
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (thinker / name).is_file():
            shutil.copy(thinker / name, folder / name)
    images = json.loads((thinker / "preprocessor_config.json").read_text())
    audio = json.loads((thinker / "audio" / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {**audio, **images, "processor_class": "Qwen2_5OmniProcessor"}, indent=2))
    return folder


@pytest.fixture(scope="module")
def full_omni(tiny_omni_thinker, tmp_path_factory) -> Path:
    return build_full_omni(tiny_omni_thinker, tmp_path_factory.mktemp("models") / "qwen2_5_omni")


def test_a_full_omni_checkpoint_explains_with_its_thinker(full_omni, tiny_omni_thinker):
    import torch
    from safetensors import safe_open

    from affectreason.backends.load import BackendSpec, load_reasoner
    from affectreason.cues.pipeline import CueExtractor
    from affectreason.media import key_frames, read_audio
    from affectreason.models.native import NativeMLLM, native_kind
    from affectreason.reason.explain import explain_cues
    from affectreason.reason.messages import build_messages
    from affectreason.schema import Clip

    config = json.loads((full_omni / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_omni" and native_kind(str(full_omni)) == "omni"
    with safe_open(str(full_omni / "model.safetensors"), "pt") as weights:
        assert {key.split(".")[0] for key in weights.keys()} == {"thinker", "talker", "token2wav"}
    clip = Clip(path=str(EXAMPLE), id="example")
    cues = CueExtractor().extract(clip)
    reasoner = load_reasoner(BackendSpec("hf", model=str(full_omni), max_new_tokens=128))
    explanation = explain_cues(cues, reasoner, clip)
    assert explanation.backend == "hf-native" and explanation.model == "qwen2_5_omni"
    assert explanation.parse_status in ("ok", "partial") and explanation.labels
    lm = reasoner.lm
    assert type(lm.lm).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration" and not hasattr(lm.lm, "talker")
    # the thinker is the checkpoint's own: it hears and sees exactly as the thinker folder it was built from
    audio, _ = read_audio(EXAMPLE)
    frames = key_frames(clip, cues, 2)
    inputs = lm.inputs(build_messages(cues), frames, audio.samples)
    assert int((inputs["input_ids"] == lm.lm.config.audio_token_index).sum()) > 0
    thinker = NativeMLLM(str(tiny_omni_thinker))
    reference = thinker.inputs(build_messages(cues), frames, audio.samples)
    assert torch.equal(inputs["input_ids"], reference["input_ids"])
    assert torch.equal(inputs["input_features"], reference["input_features"])
    with torch.inference_mode():
        assert torch.equal(lm.lm(**inputs).logits, thinker.lm(**reference).logits)


def test_a_full_omni_checkpoint_trains_its_thinker(full_omni, tmp_path):
    import torch
    from safetensors.torch import load_file

    from affectreason.media import read_audio, read_frames
    from affectreason.models.native import NativeMLLM
    from affectreason.train.recipe import load_recipe
    from affectreason.train.run import train

    prompt = [{"role": "user", "content": "Measured cues: AU12 at 4.2/5. How does the person feel?"}]
    reply = json.dumps({"conclusion": "She is delighted.", "labels": ["happy"]})
    records = tmp_path / "records.jsonl"
    row = {"messages": prompt + [{"role": "assistant", "content": reply}],
           "media": {"videos": [str(EXAMPLE)], "audios": [str(EXAMPLE)]}}
    records.write_text(json.dumps(row) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"path": str(full_omni)},
        "adapter": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "data": {"train": str(records), "frames": "images", "fps": 2.0, "max_frames": 2}, "optim": {"lr": 1e-2},
        "schedule": {"max_steps": 1, "batch_size": 1}, "output_dir": str(tmp_path / "run")}))
    result = train(load_recipe(recipe))
    assert result.steps == 1 and 0 < result.losses[0][1] < 20
    keys = load_file(result.adapter_dir / "adapter_model.safetensors").keys()
    assert keys and all("talker" not in k and "audio_tower" not in k and "visual" not in k for k in keys)

    reloaded = NativeMLLM(str(full_omni), str(result.adapter_dir))
    frames = read_frames(EXAMPLE, 2.0).images[:2]
    audio, _ = read_audio(EXAMPLE)
    inputs = reloaded.inputs(prompt, frames, audio.samples)
    result.model.eval()
    with torch.inference_mode():
        trained, again = result.model(**inputs).logits, reloaded.lm(**inputs).logits
        base = NativeMLLM(str(full_omni)).lm(**inputs).logits
    assert torch.equal(trained, again) and not torch.allclose(trained, base)
