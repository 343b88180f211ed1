"""Local models answer in the schema (issue 19): constrained decoding of the tiny random Qwen2 (whose free output is
garbage), labels that are emotion words, and the copy check against the prompt's worked example."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from affectreason.backends.load import BackendSpec, load_reasoner
from affectreason.cli import app
from affectreason.labels import LABEL_MAX_CHARS, LABEL_PATTERN, is_label_word
from affectreason.models.constrained import SchemaLogitsProcessor, in_string
from affectreason.reason.explain import explain_cues
from affectreason.reason.grounding import ground
from affectreason.reason.messages import (
    answer_schema,
    build_messages,
    example_observations,
    explanation_schema,
    schema_violations,
)
from affectreason.reason.parse import parse_explanation
from affectreason.schema import AUEvent, Clue, Cues, FaceFrame, Prosody, Transcript

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "happy_astronaut.mp4"
SMILING = Cues(clip_id="smile", duration_s=2.0, frames=[FaceFrame(t=0.4, faces=1, aus={"AU12": 4.2, "AU06": 2.5})],
               apex_t=0.4, au_events=[AUEvent(au="AU12", onset=0.2, apex=0.4, offset=1.2, peak=4.2)],
               prosody=Prosody(f0_mean_hz=100.0, intensity_mean_db=71.0, speech_rate_syl_per_s=5.8,
                               descriptors=["low pitch", "moderately loud", "fast"]),
               transcript=Transcript(text="I am so happy to see you again today", source="given"))
ANGRY = Cues(clip_id="angry", duration_s=2.0, frames=[FaceFrame(t=1.0, faces=1, aus={"AU04": 3.1})], apex_t=1.0,
             au_events=[AUEvent(au="AU04", onset=0.2, apex=1.0, offset=1.6, peak=3.1)],
             prosody=Prosody(intensity_mean_db=78.0, speech_rate_syl_per_s=6.1, descriptors=["loud", "fast"]),
             transcript=Transcript(text="get out of my office", source="given"))
PROMPTS = [  # (cues, prompt): face + voice + words, words only (a MELD utterance), nothing, the tuned prompt
    (SMILING, "reason/explain"),
    (Cues(clip_id="meld_dia1_utt0", transcript=Transcript(text="Oh my God, you're back!", source="given")),
     "reason/explain"),
    (Cues(clip_id="empty"), "reason/explain"),
    (ANGRY, "reason/explain_tuned"),
]
BUDGET = 120  # new tokens: enough for the close-out (40) after some free text, a few seconds on the tiny model


def test_the_schema_constrains_labels_with_the_parsers_word_pattern():
    labels = explanation_schema()["properties"]["labels"]["items"]
    assert labels["pattern"] == LABEL_PATTERN and labels["maxLength"] == LABEL_MAX_CHARS
    assert answer_schema()["properties"]["labels"]["items"]["minLength"] == 1
    assert schema_violations({"observations": [], "interpretation": "", "conclusion": "", "labels": ["{"]},
                             answer_schema()) == ["$.labels[0]: '{' does not match " + LABEL_PATTERN]


@pytest.mark.integration
@pytest.mark.parametrize(("cues", "prompt"), PROMPTS, ids=[f"{c.clip_id}-{p}" for c, p in PROMPTS])
def test_constrained_random_qwen2_always_answers_in_the_schema(tiny_qwen2, cues, prompt):
    reasoner = load_reasoner(BackendSpec("hf", model=str(tiny_qwen2), max_new_tokens=BUDGET))
    reasoner.prompt = prompt
    explanation = explain_cues(cues, reasoner)
    answer = json.loads(explanation.raw_text)  # complete JSON, closed within the token budget
    assert schema_violations(answer, answer_schema()) == []
    assert explanation.parse_status in ("ok", "partial") and explanation.labels
    assert all(is_label_word(label) for label in explanation.labels)
    assert not any("cut off" in e or "not emotion words" in e for e in explanation.parse_errors)


@pytest.mark.integration
def test_free_decoding_of_the_random_qwen2_is_not_parseable(tiny_qwen2):
    """The same model and prompts without the constraint: the test above could fail."""
    reasoner = load_reasoner(BackendSpec("hf", model=str(tiny_qwen2), max_new_tokens=BUDGET, constrain=False))
    assert reasoner.schema is None
    for cues, _ in PROMPTS[:2]:
        explanation = explain_cues(cues, reasoner)
        with pytest.raises(json.JSONDecodeError):
            json.loads(explanation.raw_text)
        assert explanation.parse_status == "failed" and "no emotion label found" in explanation.parse_errors


@pytest.mark.integration
def test_batched_constrained_generation_closes_every_row(tiny_qwen2):
    from affectreason.models.causal_lm import ChatLM

    lm = ChatLM(str(tiny_qwen2), max_new_tokens=80)
    chats = [build_messages(c, prompt=p) for c, p in PROMPTS]  # different lengths: left padding
    replies = lm.generate_batch(chats, batch_size=4, schema=answer_schema())
    assert [schema_violations(json.loads(r), answer_schema()) for r in replies] == [[]] * len(chats)
    assert len(lm.constraints) == 1  # compiled once, reused by every call and row


def test_close_mode_tracks_strings():
    assert in_string('{"a":"b') and not in_string('{"a":"b"') and in_string('{"a":"say \\"hi\\" ')
    assert not in_string('{"a":"\\\\"')


@pytest.mark.integration
def test_no_constrain_reaches_the_model(tiny_qwen2, tmp_path):
    base = ["explain", str(EXAMPLE), "--backend", "hf", "--model", str(tiny_qwen2), "--max-new-tokens", "90",
            "--json"]
    constrained = CliRunner().invoke(app, base)
    free = CliRunner().invoke(app, [*base, "--no-constrain"])
    assert constrained.exit_code == 0 and free.exit_code == 0, constrained.output + free.output
    json.loads(json.loads(constrained.stdout)["explanation"]["raw_text"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(json.loads(free.stdout)["explanation"]["raw_text"])
    assert BackendSpec("hf", model="m", constrain=False).describe()["constrain"] is False
    assert "constrain" not in BackendSpec("openai", endpoint="http://x", server_model="m").describe()


@pytest.mark.integration
def test_training_time_generation_is_constrained_for_json_references(tiny_qwen2, monkeypatch):
    from affectreason.models.causal_lm import ChatLM
    from affectreason.train.sft import _label_metrics

    lm = ChatLM(str(tiny_qwen2))
    seen = []
    generate = lm.lm.generate

    def spy(**kwargs):
        seen.append([type(p) for p in kwargs.get("logits_processor") or []])
        return generate(**kwargs)

    monkeypatch.setattr(lm.lm, "generate", spy)
    prompt = build_messages(SMILING)
    reference = json.dumps({"observations": [{"modality": "face", "text": "AU12 at 4.2/5"}], "interpretation": "",
                            "conclusion": "She is happy.", "labels": ["happy"]})
    chats = [[*prompt, {"role": "assistant", "content": reference}],
             [*prompt, {"role": "assistant", "content": "Conclusion: she is happy.\nLabels: happy"}]]
    recipe = SimpleNamespace(eval=SimpleNamespace(max_new_tokens=70, wheel_dir=None))
    figures = _label_metrics(lm.lm, lm.tokenizer, chats, recipe)
    assert seen == [[SchemaLogitsProcessor], []]  # the JSON reference: constrained; the text one: free
    assert set(figures) >= {"label_accuracy", "label_recall", "label_f1"}


def test_brace_label_parses_to_no_labels_and_a_parse_error():
    # what SmolLM2-135M-Instruct answered through `affectreason serve` (issue 19)
    served = ('{"observations": [{"modality": "voice", "text": "loud, fast speech (78 dB, 6.1 syllables/s)"}], '
              '"interpretation": "A loud fast voice.", "conclusion": "The speaker is speaking.", "labels": ["{"]}')
    explanation = parse_explanation(served)
    assert explanation.labels == [] and explanation.parse_status == "failed"
    assert "not emotion words, dropped from labels: '{'" in explanation.parse_errors
    mixed = parse_explanation(served.replace('["{"]', '["Angry", "AU12", "0.8", "zorbish"]'))
    assert mixed.labels == ["angry", "zorbish"] and mixed.unknown_labels == ["zorbish"]
    assert mixed.parse_errors == ["not emotion words, dropped from labels: 'au12', '0.8'"]
    text = parse_explanation("Conclusion: calm.\nLabels: slightly annoyed, {, happy")
    assert text.labels == ["slightly annoyed", "happy"] and text.unknown_labels == []


def test_copy_check_flags_the_worked_example_and_not_genuine_observations():
    copies = example_observations("reason/explain_example@1")
    assert len(copies) == 3 and copies[1] == "loud, fast speech (78 dB, 6.1 syllables/s)"
    genuine = [Clue(modality="face", text="AU12 lip corner puller at 4.2/5 from 0.2 to 1.2 s"),
               Clue(modality="voice", text="moderately loud, fast speech (71 dB, 5.8 syllables/s)"),
               Clue(modality="text", text='says "so happy to see you"')]
    honest = ground(genuine, SMILING, copies)
    assert honest.copied == [] and honest.score == 1.0
    copied = ground(genuine + [Clue(modality=m, text=t) for m, t in zip(("face", "voice", "text"), copies,
                                                                          strict=True)], SMILING, copies)
    assert copied.copied == [3, 4, 5]
    details = {c.clue: c.detail for c in copied.checks if c.status == "copied"}
    assert "3.1/5" in details[3] and "78 dB" in details[4] and "get out of my office" in details[5]
    # what a copied clue "supports" (6.1 syllables/s is within 1.0 of the measured 5.8) does not count
    assert any(c.clue == 4 and c.status == "supported" for c in copied.checks)
    assert copied.score < honest.score
    # the same words about a clip that has those measurements are not copies, nor without the example
    assert ground([Clue(modality="face", text=copies[0]), Clue(modality="text", text=copies[2])], ANGRY,
                  copies).copied == []
    assert ground([Clue(modality="face", text=copies[0])], SMILING).copied == []
    reworded = ground([Clue(modality="text", text="He says: get out of my office!")], SMILING, copies)
    assert reworded.copied == [0]


def test_explain_cues_checks_copies_against_the_prompt_the_reasoner_used():
    class Copier:
        name = "copier"

        def explain(self, cues, clip=None):
            answer = parse_explanation(json.dumps({"observations": [{"modality": "face", "text": copies[0]}],
                                                   "interpretation": "x", "conclusion": "y", "labels": ["angry"]}))
            answer.prompt = "reason/explain_example@1"
            return answer

    copies = example_observations("reason/explain_example")
    explanation = explain_cues(SMILING, Copier())
    assert explanation.grounding.copied == [0] and explanation.grounding.score == 0.0
    assert example_observations("reason/explain_tuned@1") == () and example_observations(None) == ()
    assert example_observations("reason/explain") == ()  # version 3 shows no example


@pytest.mark.parametrize("module", ["affectreason.labels", "affectreason.reason.lexicon",
                                    "affectreason.reason.messages", "affectreason.models.constrained"])
def test_doctests_of_the_constrained_path(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
