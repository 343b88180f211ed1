"""Training that fits: reply-only logits compute the model's own loss, token-budget micro-batches keep the steps,
the memory plan refuses (before any weights load) a run that would not fit and names settings that do, and the
README's data -> train flow runs with its exact defaults on generated clips."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.train.recipe import Recipe, load_recipe
from affectreason.train.run import train
from tests.synthetic_task import write_task

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("task"), n_train=64, n_eval=8)


def _recipe(model: Path, train_file: Path, out: Path, eval_file: Path | None = None, **schedule) -> Recipe:
    adapter = {"r": 8, "alpha": 16, "dropout": schedule.pop("dropout", 0.0),
               "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
    return Recipe.model_validate({
        "model": {"path": str(model)}, "adapter": adapter,
        "data": {"train": str(train_file), **({"eval": str(eval_file)} if eval_file else {})},
        "optim": {"lr": 5e-3}, "eval": {"generate": 0},
        "schedule": {"max_steps": 4, "batch_size": 8, **schedule}, "output_dir": str(out)})


def _batch(model_dir: Path, chats: list) -> dict:
    from transformers import AutoTokenizer

    from affectreason.train.sft import collate
    from affectreason.train.sft_data import tokenize_chats

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return collate(tokenize_chats(chats, tokenizer, 512).examples, tokenizer.pad_token_id)


def test_reply_only_logits_give_the_models_own_loss_and_gradients(tiny_qwen2, task):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from affectreason.train.loss import lm_loss, output_head
    from affectreason.train.sft_data import read_chats

    train_file, _ = task
    batch = _batch(tiny_qwen2, read_chats(train_file)[:6])  # padded rows of different lengths
    assert (batch["attention_mask"] == 0).any()
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_qwen2),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    head = output_head(model)
    losses, grads = {}, {}
    for mode in ("all", "reply"):
        model.zero_grad()
        loss = lm_loss(model, head, batch, mode)
        loss.backward()
        losses[mode] = loss.item()
        grads[mode] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert losses["reply"] == pytest.approx(losses["all"], rel=1e-6)
    for name, grad in grads["all"].items():
        assert torch.allclose(grads["reply"][name], grad, rtol=1e-4, atol=1e-7), name
    with torch.inference_mode():  # evaluation takes the same path without the backward recomputation
        assert float(lm_loss(model, head, batch, "reply")) == pytest.approx(losses["all"], rel=1e-6)


def test_training_losses_are_the_unoptimised_paths(tiny_qwen2, task, tmp_path):
    """reply-only logits, gradient checkpointing and token budgets change memory, not the losses."""
    train_file, eval_file = task
    runs = {"unoptimised": {"logits": "all", "gradient_checkpointing": False},
            "reply": {}, "checkpointing": {"gradient_checkpointing": True},
            "budget": {"max_tokens_per_batch": 96, "gradient_checkpointing": True},
            "accumulated": {"batch_size": 4, "grad_accum": 2}}
    results = {name: train(_recipe(tiny_qwen2, train_file, tmp_path / name, eval_file, **schedule))
               for name, schedule in runs.items()}
    reference = [v for _, v in results["unoptimised"].losses]
    for name, result in results.items():
        assert [v for _, v in result.losses] == pytest.approx(reference, rel=1e-5), name
        assert result.eval["eval_loss"] == pytest.approx(results["unoptimised"].eval["eval_loss"], rel=1e-5), name
    assert results["budget"].data["memory"]["micro_batch"][0] < 8  # the batch really was split
    assert results["checkpointing"].data["memory"]["gradient_checkpointing"] is True
    # LoRA dropout draws the same masks on both paths
    dropout = [train(_recipe(tiny_qwen2, train_file, tmp_path / f"dropout-{mode}", logits=mode, dropout=0.1))
               for mode in ("all", "reply")]
    assert [v for _, v in dropout[1].losses] == pytest.approx([v for _, v in dropout[0].losses], rel=1e-5)


def test_micro_batches_respect_the_token_budget():
    from affectreason.train.loop import pack_by_tokens, step_micro_batches

    lengths = [10, 50, 20, 50, 5, 30, 120]
    groups = pack_by_tokens(list(range(7)), lengths, 100)
    assert sorted(i for g in groups for i in g) == list(range(7))
    assert groups[0] == [6]  # longer than the budget: alone
    assert all(len(g) * max(lengths[i] for i in g) <= 100 for g in groups[1:])
    schedule = Recipe.model_validate({"model": {"path": "m"}, "data": {"train": __file__}, "output_dir": "o",
                                      "schedule": {"batch_size": 4, "grad_accum": 2,
                                                   "max_tokens_per_batch": 100}}).schedule
    # the step takes the same 8 examples with or without a budget, only grouped differently
    plain = step_micro_batches(3, 7, schedule.model_copy(update={"max_tokens_per_batch": None}))
    packed = step_micro_batches(3, 7, schedule, lengths=lengths)
    assert sorted(i for g in plain for i in g) == sorted(i for g in packed for i in g)


def test_auto_trades_memory_for_time_only_when_the_run_needs_it():
    from transformers import LlamaConfig, LlamaForCausalLM

    from affectreason.train.memory import GIB, current_rss, estimate, micro_batch_geometry, model_shape, plan_memory

    smollm2 = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                          num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    shape = model_shape(smollm2, LlamaForCausalLM, targets, 16)  # on the meta device: no weights
    assert shape.params == 134_515_008 and shape.layers == 30

    def recipe(**schedule) -> Recipe:
        return Recipe.model_validate({"model": {"path": "m"}, "data": {"train": __file__}, "output_dir": "o",
                                      "adapter": {"dropout": 0.0}, "schedule": {"batch_size": 1, **schedule}})

    one = micro_batch_geometry([1100], [240], recipe().schedule)  # batch 1 at the default prompt
    fast, frugal = (estimate(recipe(), shape, one, on, int(0.55 * GIB), freed=on) for on in (False, True))
    assert frugal.device_peak < 1.5 * GIB < fast.device_peak  # the goal needs both trades
    kept = estimate(recipe(), shape, one, True, int(0.55 * GIB), freed=False)
    assert kept.device_peak > 2 * frugal.device_peak  # glibc's kept heap holds the recomputed layers' buffers
    everything = estimate(recipe(logits="all"), shape, one, True, int(0.55 * GIB), freed=True)
    assert everything.logits > 4 * frugal.logits  # logits of every position vs of the reply only
    rss = current_rss() / GIB
    roomy = plan_memory(recipe(memory_limit_gib=rss + 8), shape, [1100], [240])
    assert not roomy.gradient_checkpointing and not roomy.return_freed_memory  # nothing to trade: fastest
    tight = plan_memory(recipe(memory_limit_gib=rss + 1.2), shape, [1100], [240])
    assert tight.gradient_checkpointing and tight.return_freed_memory and tight.estimate.device_peak <= tight.allowed
    forced = plan_memory(recipe(memory_limit_gib=rss + 8, gradient_checkpointing=True), shape, [1100], [240])
    assert forced.gradient_checkpointing and not forced.return_freed_memory


def test_an_impossible_batch_is_refused_before_weights_load_naming_one_that_fits(tiny_qwen2, task, tmp_path,
                                                                                 monkeypatch):
    import affectreason.train.sft as sft
    from affectreason.train.memory import current_rss

    train_file, _ = task
    limit = round(current_rss() / 2**30 + 0.1, 3)  # 0.1 GiB more than this process holds now
    base = [f"model.path={tiny_qwen2}", f"data.train={train_file}", f"output_dir={tmp_path / 'run'}",
            "schedule.batch_size=4096", "schedule.max_tokens_per_batch=null", "schedule.max_steps=1",
            "schedule.eval_every=0", "schedule.save_every=0", f"schedule.memory_limit_gib={limit}"]
    loaded = []
    real_load = sft.load_model
    monkeypatch.setattr(sft, "load_model", lambda *a, **k: loaded.append(1) or real_load(*a, **k))
    out = runner.invoke(app, ["train", "lora-chat", *base])
    assert out.exit_code == 2 and not loaded, out.output
    message = " ".join(out.output.split())
    assert "this run would not fit in memory: estimated peak" in message and f"memory_limit_gib={limit:g}" in message
    fix = re.search(r"Settings that fit: (.*?) \(estimated", message).group(1).split()
    assert any(f.startswith("schedule.max_tokens_per_batch=") for f in fix)
    result = train(load_recipe("lora-chat", base + fix), stop_after=1)  # the named settings run
    assert result.steps == 1 and loaded and result.data["memory"]["micro_batch"][0] < 4096


def test_an_over_length_error_names_the_options_that_fix_it(tiny_qwen2, task, tmp_path):
    train_file, _ = task
    out = runner.invoke(app, ["train", "lora-chat", f"model.path={tiny_qwen2}", f"data.train={train_file}",
                              f"output_dir={tmp_path}", "data.max_length=16"])
    message = " ".join(out.output.split())
    assert out.exit_code == 2, out.output
    assert "data.max_length=16 tokens (the longest has" in message and "data.over_length=truncate" in message
    assert "prompt=reason/explain_tuned" in message


def test_the_readme_data_to_train_flow_runs_with_its_defaults(media, tiny_qwen2, tmp_path):
    """README: `affectreason data own-clips --data-dir my_corpus --out data/mine`, then `affectreason train lora-chat
    model.path=DIR data.train=data/mine/train.jsonl data.eval=data/mine/validation.jsonl output_dir=runs/mine`:
    nothing but those arguments (the run stops after two of its 600 steps)."""
    from tests.media_factory import SENTENCE

    corpus = tmp_path / "my_corpus"
    (corpus / "clips").mkdir(parents=True)
    clips = {"astronaut": ("astronaut", "['happy']", SENTENCE), "grace": ("grace", "sad", SENTENCE),
             "calm_voice": ("pitch_20", "calm", ""), "loud_voice": ("loudness_180", "angry", ""),
             "fast_voice": ("rate_230", "excited", ""), "still": ("no_audio", "neutral", "")}
    for name, (source, _, _) in clips.items():
        shutil.copy(media[source], corpus / "clips" / f"{name}{media[source].suffix}")
    (corpus / "labels.csv").write_text("name,labels,transcript\n" + "".join(
        f'{name},"{labels}",{words}\n' for name, (_, labels, words) in clips.items()))
    data = tmp_path / "data" / "mine"
    out = runner.invoke(app, ["data", "own-clips", "--data-dir", str(corpus), "--out", str(data)])
    assert out.exit_code == 0, out.output
    args = [f"model.path={tiny_qwen2}", f"data.train={data / 'train.jsonl'}",
            f"data.eval={data / 'validation.jsonl'}", f"output_dir={tmp_path / 'runs' / 'mine'}"]
    recipe = load_recipe("lora-chat", args)
    assert recipe.data.prompt == "reason/explain" and recipe.data.max_length is None  # from the data's manifest
    plans = []
    result = train(recipe, stop_after=2, on_plan=plans.append)
    records = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    assert result.steps == 2 and result.data["examples"] == len(records) and result.data["dropped"] == 0
    assert all(v > 0 for _, v in result.losses) and "eval_loss" in result.eval
    assert (tmp_path / "runs" / "mine" / "adapter" / "adapter_model.safetensors").is_file()
    assert plans and plans[0].estimate.device_peak <= plans[0].allowed
    resolved = json.loads((tmp_path / "runs" / "mine" / "recipe.resolved.json").read_text())
    assert resolved["memory"]["estimated_peak_gib"] > 0 and resolved["max_length"] == 4096  # the model's context


def test_the_native_path_estimates_its_media_tokens_and_is_checked_before_it_loads(tiny_qwen2_5_vl, tmp_path):
    from affectreason.models.native import NativeMLLM
    from affectreason.train.memory import WouldNotFit
    from affectreason.train.native import example_inputs, plan_native, read_media
    from affectreason.train.sft_data import read_chats
    from tests.test_train_native import EXAMPLE, PROMPT

    records = tmp_path / "records.jsonl"
    reply = json.dumps({"conclusion": "She is delighted.", "labels": ["happy"]})
    records.write_text(json.dumps({"messages": PROMPT + [{"role": "assistant", "content": reply}],
                                   "media": {"videos": [str(EXAMPLE)]}}) + "\n")
    recipe = Recipe.model_validate({"model": {"path": str(tiny_qwen2_5_vl)}, "data": {"train": str(records),
                                    "max_frames": 4}, "adapter": {"target_modules": ["q_proj", "v_proj"]},
                                    "schedule": {"batch_size": 1}, "output_dir": str(tmp_path / "run")})
    chats, media = read_chats(records), read_media(records)

    class One:
        num_processes = 1

    plan, lengths = plan_native(recipe, chats, media, "vl", One())
    actual = example_inputs(NativeMLLM(str(tiny_qwen2_5_vl)), chats[0], media[0], recipe)["input_ids"].shape[1]
    assert lengths == [actual]  # media tokens from the header (size, duration) match the processed clip
    tight = recipe.model_copy(deep=True)
    tight.schedule.memory_limit_gib = 0.01
    with pytest.raises(WouldNotFit, match="would not fit in memory"):
        train(tight)


def test_the_feature_path_is_checked_before_its_encoders_load(tiny_qwen2, tmp_path):
    from affectreason.train.memory import check_encoders
    from tests.tiny_models import build_siglip_vision, build_whisper_encoder

    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"messages": [{"role": "user", "content": "<audio>How?"},
                                                {"role": "assistant", "content": "calm"}]}) + "\n")
    vision, audio = build_siglip_vision(tmp_path / "siglip"), build_whisper_encoder(tmp_path / "whisper")
    recipe = Recipe.model_validate({"model": {"path": str(tiny_qwen2)}, "data": {"train": str(records)},
                                    "features": {"vision": str(vision), "audio": str(audio)},
                                    "schedule": {"memory_limit_gib": 0.01}, "output_dir": str(tmp_path / "run")})
    with pytest.raises(Exception, match="feature encoders would not fit in memory"):
        train(recipe)
    recipe.schedule.memory_limit_gib = None
    assert check_encoders(recipe, {"vision": str(vision), "audio": str(audio)}) > 0
