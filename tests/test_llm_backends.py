"""The hf backend (tiny random Qwen2, with and without a LoRA adapter) and the openai backend
(against a real OpenAI-compatible HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from affectreason.backends.load import BackendSpec, load_reasoner
from affectreason.cli import app
from affectreason.models.causal_lm import ChatLM, ModelMissing
from affectreason.reason.explain import explain_cues
from affectreason.reason.messages import bounded_schema, build_messages, explanation_schema
from affectreason.schema import AUEvent, Cues, FaceFrame, Transcript
from tests.judge_server import JudgeServer

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"
CUES = Cues(clip_id="c1", duration_s=2.0, frames=[FaceFrame(t=0.4, faces=1, aus={"AU12": 4.2, "AU06": 2.5})],
            apex_t=0.4, au_events=[AUEvent(au="AU12", onset=0.2, apex=0.4, offset=1.2, peak=4.2)],
            transcript=Transcript(text="so glad you came", source="given"))


@pytest.fixture(scope="module")
def adapter(tiny_qwen2, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with non-zero weights, so it changes the outputs."""
    from tests.tiny_models import build_lora_adapter

    return build_lora_adapter(tiny_qwen2, tmp_path_factory.mktemp("adapters") / "lora")


def test_prompt_carries_the_cues_and_schema():
    messages = build_messages(CUES)
    assert messages[0]["role"] == "system" and "AU12 lip corner puller 4.2/5" in messages[-1]["content"]
    assert '"so glad you came"' in messages[-1]["content"]
    assert explanation_schema()["required"] == ["observations", "interpretation", "conclusion", "labels"]


def test_hf_backend_with_random_model_reports_failure_not_crash(tiny_qwen2):
    reasoner = load_reasoner(BackendSpec("hf", model=str(tiny_qwen2), max_new_tokens=16))
    explanation = explain_cues(CUES, reasoner)
    assert explanation.backend == "hf" and explanation.model == "qwen2"
    assert explanation.parse_status == "failed" and "no emotion label found" in explanation.parse_errors
    assert explanation.raw_text is not None


def test_lora_adapter_is_loaded_and_changes_the_model(tiny_qwen2, adapter):
    import torch

    base, tuned = ChatLM(str(tiny_qwen2)), ChatLM(str(tiny_qwen2), str(adapter))
    assert tuned.name == "qwen2+lora" and type(tuned.lm).__name__.startswith("Peft")
    ids = base.tokenizer("The face shows AU12", return_tensors="pt")
    with torch.inference_mode():
        assert not torch.allclose(base.lm(**ids).logits, tuned.lm(**ids).logits)


def test_missing_model_and_adapter_are_clear_errors(tiny_qwen2, tmp_path):
    with pytest.raises(ModelMissing, match="nothing is downloaded"):
        ChatLM(str(tmp_path / "nope"))
    with pytest.raises(ModelMissing, match="not a peft adapter folder"):
        ChatLM(str(tiny_qwen2), str(tmp_path))
    notes = []
    reasoner = load_reasoner(BackendSpec("auto", model=str(tmp_path / "nope")), notes.append)
    assert reasoner.name == "rules" and "using the rules engine instead" in notes[0]


def test_cli_hf_backend_end_to_end(tiny_qwen2, adapter):
    out = CliRunner().invoke(app, ["explain", str(EXAMPLE), "--backend", "hf", "--model", str(tiny_qwen2),
                                   "--adapter", str(adapter), "--max-new-tokens", "12", "--json"])
    assert out.exit_code == 0, out.output
    explanation = json.loads(out.stdout)["explanation"]
    assert explanation["model"] == "qwen2+lora" and explanation["parse_status"] == "failed"


def test_openai_backend_sends_the_schema_and_is_grounded():
    with JudgeServer() as server:
        reasoner = load_reasoner(BackendSpec("openai", endpoint=server.url, server_model="served"))
        explanation = explain_cues(CUES, reasoner)
        request = server.state.requests[-1]
    assert request["response_format"]["type"] == "json_schema"
    # the same bounded schema `affectreason query` sends (the redesign: one OpenAI-compatible reasoner)
    assert request["response_format"]["json_schema"]["schema"] == bounded_schema(explanation_schema(), 400, 6)
    assert request["temperature"] == 0.0
    assert explanation.labels == ["happy"] and explanation.parse_status == "ok"
    assert explanation.backend == "openai" and explanation.model == "served"
    assert explanation.grounding.score == 1.0  # "AU12 at 4.2/5" matches the cues


def test_native_vl_mode_sees_the_example_clip_frames(tiny_qwen2_5_vl):
    from affectreason.cues.pipeline import CueExtractor
    from affectreason.media import key_frames
    from affectreason.models.native import native_kind
    from affectreason.schema import Clip

    assert native_kind(str(tiny_qwen2_5_vl)) == "vl" and native_kind(str(EXAMPLE.parent)) is None
    clip = Clip(path=str(EXAMPLE), id="example")
    cues = CueExtractor().extract(clip)
    frames = key_frames(clip, cues, 4)
    assert len(frames) == 4 and frames[0].shape[2] == 3
    reasoner = load_reasoner(BackendSpec("hf", model=str(tiny_qwen2_5_vl), max_new_tokens=8))
    assert reasoner.name == "hf-native"
    explanation = explain_cues(cues, reasoner, clip)
    assert explanation.backend == "hf-native" and explanation.parse_status == "failed"
    without = explain_cues(cues, reasoner)
    assert "no clip given" in without.parse_errors[-1]
    # the frames really reach the model: one <|image_pad|> per merged patch, and they change the logits
    import torch

    from affectreason.reason.messages import build_messages

    lm = reasoner.lm
    with_frames, text_only = lm.inputs(build_messages(cues), frames), lm.inputs(build_messages(cues), [])
    pads = int((with_frames["input_ids"] == lm.image_token_id).sum())
    assert pads == int(with_frames["image_grid_thw"].prod(dim=1).sum()) // 4 > 0
    with torch.inference_mode():
        last_with = lm.lm(**with_frames).logits[0, -1]
        last_without = lm.lm(**text_only).logits[0, -1]
    assert not torch.allclose(last_with, last_without)


def test_llm_label_extractor_for_free_text_answers(tiny_qwen2):
    from affectreason.reason.parse import parse_explanation

    with JudgeServer() as server:
        reasoner = load_reasoner(BackendSpec("hf", model=str(tiny_qwen2), max_new_tokens=4,
                                             label_endpoint=server.url, label_model="extractor"))
        assert reasoner.extractor is not None
        # the judge server's extractor finds emotion words from its list in the text
        parsed = parse_explanation("Overall the speaker seems worried, maybe anxious.", extractor=reasoner.extractor)
        assert parsed.labels == ["worried", "anxious"]
        assert "labels extracted from the prose by the label extractor" in parsed.parse_errors
        server.state.fail_next = 10
        reasoner.extractor.__self__.client.max_retries = 0
        fallback = parse_explanation("She is clearly happy.", extractor=reasoner.extractor)
    assert fallback.labels == ["happy"] and any("label extractor failed" in e for e in fallback.parse_errors)


def test_omni_thinker_hears_the_audio_and_sees_frames(tiny_omni_thinker):
    import torch

    from affectreason.cues.pipeline import CueExtractor
    from affectreason.media import key_frames, read_audio
    from affectreason.models.native import native_kind
    from affectreason.reason.messages import build_messages
    from affectreason.schema import Clip

    assert native_kind(str(tiny_omni_thinker)) == "omni"
    clip = Clip(path=str(EXAMPLE), id="example")
    cues = CueExtractor().extract(clip)
    reasoner = load_reasoner(BackendSpec("hf", model=str(tiny_omni_thinker), max_new_tokens=8))
    explanation = explain_cues(cues, reasoner, clip)
    assert explanation.backend == "hf-native" and explanation.parse_status == "failed"
    lm = reasoner.lm
    audio, _ = read_audio(EXAMPLE)
    frames = key_frames(clip, cues, 2)
    full = lm.inputs(build_messages(cues), frames, audio.samples)
    audio_pads = int((full["input_ids"] == lm.lm.config.audio_token_index).sum())
    # one audio token per 4 feature frames (10 ms each) of the ~2.3 s of speech
    assert audio_pads == int(((full["feature_attention_mask"].sum() - 1) // 2 + 1 - 2) // 2 + 1)
    assert 50 <= audio_pads <= 80
    no_audio = lm.inputs(build_messages(cues), frames, None)
    with torch.inference_mode():
        assert not torch.allclose(lm.lm(**full).logits[0, -1], lm.lm(**no_audio).logits[0, -1])


def test_batched_generation_matches_one_at_a_time(tiny_qwen2):
    lm = ChatLM(str(tiny_qwen2), max_new_tokens=8)
    chats = [build_messages(CUES), [{"role": "user", "content": "hi"}],
             build_messages(CUES, prompt="reason/explain_tuned")]
    assert lm.generate_batch(chats, batch_size=3) == [lm.generate(chat) for chat in chats]


def test_adapter_records_the_prompt_it_was_trained_with(tiny_qwen2, adapter, tmp_path):
    import shutil

    from affectreason.backends.local import HFReasoner
    from affectreason.models.adapter import ADAPTER_INFO

    assert HFReasoner(str(tiny_qwen2), str(adapter)).prompt == "reason/explain"
    tuned = tmp_path / "tuned"
    shutil.copytree(adapter, tuned)
    (tuned / ADAPTER_INFO).write_text(json.dumps({"prompt": "reason/explain_tuned"}))
    reasoner = HFReasoner(str(tiny_qwen2), str(tuned), max_new_tokens=4)
    assert reasoner.prompt == "reason/explain_tuned"
    assert "Reason in three steps" not in build_messages(CUES, prompt=reasoner.prompt)[-1]["content"]
