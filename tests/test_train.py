"""Fine-tuning: recipes, data, a tiny Qwen2 + LoRA learning a cue -> label task, exact resume, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.train.recipe import RecipeError, load_recipe, packaged_recipes
from affectreason.train.sft_data import DataError, read_chats, tokenize_chats
from tests.synthetic_task import write_task

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("task"))


@pytest.fixture(scope="module")
def learner(tmp_path_factory):
    """A tiny Qwen2 of the issue's shape (hidden 128, 2 layers)."""
    from tests.tiny_models import build_qwen2

    return build_qwen2(tmp_path_factory.mktemp("models") / "qwen2_128", hidden=128)


def recipe_file(folder: Path, model: Path, train: Path, eval_: Path | None, **schedule) -> Path:
    tree = {"model": {"path": str(model)},
            "adapter": {"r": 16, "alpha": 32, "dropout": 0.0,
                        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"]},
            "data": {"train": str(train), "max_length": 128, **({"eval": str(eval_)} if eval_ else {})},
            "optim": {"lr": 1e-3, "warmup_steps": 10},
            "schedule": {"batch_size": 16, **schedule}, "output_dir": str(folder / "run")}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_every_packaged_recipe_loads_with_the_required_fields(task, tmp_path, anchors):
    train, _ = task
    assert packaged_recipes() == ["grpo-chat", "lora-chat", "qlora-chat"]
    steps = {"grpo-chat": 200, "lora-chat": 600, "qlora-chat": 600}
    for name in packaged_recipes():
        extra = [f"rl.wheel_dir={anchors / 'emotion_wheel'}"] if name == "grpo-chat" else []
        recipe = load_recipe(name, [f"model.path={tmp_path}", f"data.train={train}", f"output_dir={tmp_path}", *extra])
        assert recipe.schedule.max_steps == steps[name]
    assert load_recipe("grpo-chat", [f"model.path={tmp_path}", f"data.train={train}", f"output_dir={tmp_path}",
                                     f"rl.wheel_dir={anchors / 'emotion_wheel'}"]).rl.num_generations >= 2


def test_recipe_errors_name_the_key(task, tmp_path):
    train, _ = task
    base = [f"model.path={tmp_path}", f"data.train={train}", f"output_dir={tmp_path}"]
    with pytest.raises(RecipeError, match=r"optim\.lrr: Extra inputs are not permitted"):
        load_recipe("lora-chat", base + ["optim.lrr=0.1"])
    with pytest.raises(RecipeError, match=r"schedule\.max_steps: Input should be greater than or equal to 1"):
        load_recipe("lora-chat", base + ["schedule.max_steps=0"])
    with pytest.raises(RecipeError, match="data.eval: .* does not exist"):
        load_recipe("lora-chat", base + ["data.eval=/no/such.jsonl"])
    with pytest.raises(RecipeError, match="not key=value"):
        load_recipe("lora-chat", base + ["optim.lr"])
    with pytest.raises(RecipeError, match="recipe 'nope' not found"):
        load_recipe("nope")


def test_data_errors_and_reply_only_labels(tmp_path, learner):
    from transformers import AutoTokenizer

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(DataError, match="bad.jsonl:1: the last message must be the assistant"):
        read_chats(bad)
    bad.write_text('{"text": "hi"}\n')
    with pytest.raises(DataError, match="needs a non-empty 'messages' list"):
        read_chats(bad)
    bad.write_text("\n")
    with pytest.raises(DataError, match="no training examples"):
        read_chats(bad)
    tokenizer = AutoTokenizer.from_pretrained(learner)
    chats = [[{"role": "user", "content": "Face: AU12 4.0"}, {"role": "assistant", "content": "happy"}],
             [{"role": "user", "content": "Face: AU15"}, {"role": "assistant", "content": "sad " * 100}],
             [{"role": "user", "content": "x " * 200}, {"role": "assistant", "content": "sad"}]]
    data = tokenize_chats(chats, tokenizer, max_length=64, over_length="drop")
    assert data.dropped == 2 and len(data.examples) == 1
    example = data.examples[0]
    reply = tokenizer.decode([t for t, label in zip(example.input_ids, example.labels, strict=True) if label != -100])
    assert reply.startswith("happy<|im_end|>")
    truncated = tokenize_chats(chats, tokenizer, max_length=64, over_length="truncate")
    # the long reply is cut to 64 tokens; the long prompt leaves no reply at all and is dropped
    assert truncated.truncated == 1 and truncated.dropped == 1 and len(truncated.examples[1].input_ids) == 64


def test_qlora_trains_through_the_cli(task, learner, tmp_path):
    """QLoRA runs wherever bitsandbytes does (here: the CPU); tests/test_qlora_cpu.py checks what it learns."""
    pytest.importorskip("bitsandbytes")
    train, _ = task
    out = runner.invoke(app, ["train", "qlora-chat", f"model.path={learner}", f"data.train={train}",
                              f"output_dir={tmp_path}", "data.max_length=128", "schedule.max_steps=2",
                              "schedule.batch_size=4", "schedule.grad_accum=1",
                              "schedule.gradient_checkpointing=false"])
    assert out.exit_code == 0, out.output
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(0 < r["loss"] < 20 for r in log)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_tiny_qwen2_lora_learns_the_task(task, learner, tmp_path, anchors):
    """Acceptance: held-out label F1 >= 0.9 (single-label task: F1 = accuracy)."""
    from affectreason.models.causal_lm import ChatLM

    train, eval_ = task
    recipe = recipe_file(tmp_path, learner, train, eval_, max_steps=400, eval_every=100)
    out = runner.invoke(app, ["train", str(recipe), "eval.generate=40", f"eval.wheel_dir={anchors / 'emotion_wheel'}"])
    assert out.exit_code == 0, out.output
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 400 and log[-1]["loss"] < 0.1 * log[0]["loss"]
    assert [r["step"] for r in log if "eval_loss" in r] == [100, 200, 300, 400]
    assert log[-1]["label_f1"] >= 0.9 and log[-1]["ew_fs"] >= 0.9  # the evaluator, run during training
    lm = ChatLM(str(learner), str(tmp_path / "run" / "adapter"), max_new_tokens=4)
    rows = [json.loads(line)["messages"] for line in eval_.read_text().splitlines()]
    correct = sum(lm.generate(m[:-1]).split()[:1] == [m[-1]["content"]] for m in rows)
    assert correct / len(rows) >= 0.9


def test_resume_reproduces_the_uninterrupted_run(task, learner, tmp_path):
    from affectreason.train.run import train

    train_file, _ = task
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = train(load_recipe(recipe_file(tmp_path / "a", learner, train_file, None, max_steps=8, save_every=4)))
    recipe_b = load_recipe(recipe_file(tmp_path / "b", learner, train_file, None, max_steps=8, save_every=4))
    first = train(recipe_b, stop_after=4)
    assert first.steps == 4 and (tmp_path / "b" / "run" / "checkpoints" / "step-4").is_dir()
    resumed = train(recipe_b, resume=True)
    assert resumed.steps == 8
    assert [s for s, _ in resumed.losses] == list(range(1, 9))
    assert [v for _, v in resumed.losses] == [v for _, v in whole.losses]  # bit-exact, as the README says


def test_export_merges_and_refuses_quantized_base(task, learner, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from affectreason.models.causal_lm import ChatLM

    train_file, _ = task
    out = runner.invoke(app, ["train", str(recipe_file(tmp_path, learner, train_file, None, max_steps=3))])
    assert out.exit_code == 0, out.output
    adapter = tmp_path / "run" / "adapter"
    merged_dir = tmp_path / "merged"
    out = runner.invoke(app, ["export", str(adapter), "--base", str(learner), "--out", str(merged_dir), "--merge"])
    assert out.exit_code == 0, out.output
    ids = AutoTokenizer.from_pretrained(learner)("Face: AU12 4.0", return_tensors="pt")
    with torch.inference_mode():
        merged = AutoModelForCausalLM.from_pretrained(merged_dir)(**ids).logits
        with_adapter = ChatLM(str(learner), str(adapter)).lm(**ids).logits
    assert torch.allclose(merged, with_adapter, atol=1e-4)
    quantized = tmp_path / "quantized"
    quantized.mkdir()
    config = json.loads((learner / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes"}
    (quantized / "config.json").write_text(json.dumps(config))
    out = runner.invoke(app, ["export", str(adapter), "--base", str(quantized), "--out", str(tmp_path / "x"),
                              "--merge"])
    assert out.exit_code == 2 and "is quantized (bitsandbytes)" in out.output
