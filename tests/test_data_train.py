"""A data recipe's output trains without glue code: the split JSONL files go straight to ``affectreason train``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.train.sft_data import read_chats

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_tiny_lora_run_consumes_a_recipe_output(anchors, tiny_qwen2, tmp_path):
    data = tmp_path / "emer-v1"
    out = runner.invoke(app, ["data", "emer-v1", "--anchors", str(anchors), "--out", str(data),
                              "--tokenizer", str(tiny_qwen2)])
    assert out.exit_code == 0, out.output
    stats = json.loads((data / "stats.json").read_text())
    assert stats["tokens"]["counted_by"] == f"tokenizer {tiny_qwen2}"
    longest = stats["tokens"]["user"]["max"] + stats["tokens"]["assistant"]["max"] + 64  # + system turn + template
    run = tmp_path / "run"
    out = runner.invoke(app, ["train", "lora-chat", f"model.path={tiny_qwen2}", f"data.train={data / 'train.jsonl'}",
                              f"data.eval={data / 'validation.jsonl'}", f"output_dir={run}",
                              f"data.max_length={longest + 256}", "schedule.max_steps=4", "schedule.batch_size=4",
                              "schedule.eval_every=0", "schedule.save_every=0", "optim.warmup_steps=0",
                              "eval.generate=2", "eval.max_new_tokens=8"])
    assert out.exit_code == 0, out.output
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(r["loss"] > 0 for r in log)
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    chats = read_chats(data / "train.jsonl")  # the trainer's own reader, as it read them
    assert len(chats) == 79 and all(c[-1]["role"] == "assistant" and c[-1]["content"].startswith('{"observations"')
                                    for c in chats)


def test_training_takes_the_prompt_the_dataset_was_built_with(anchors, tiny_qwen2, tmp_path):
    from affectreason.train.recipe import RecipeError, load_recipe

    data = tmp_path / "mosi"
    out = runner.invoke(app, ["data", "mosi", "--anchors", str(anchors), "--out", str(data), "limit=20",
                              "prompt=reason/explain_tuned"])
    assert out.exit_code == 0, out.output
    base = [f"model.path={tiny_qwen2}", f"data.train={data / 'train.jsonl'}", f"output_dir={tmp_path / 'run'}"]
    assert load_recipe("lora-chat", base).data.prompt == "reason/explain_tuned"
    with pytest.raises(RecipeError, match="says the chats were rendered with reason/explain_tuned"):
        load_recipe("lora-chat", base + ["data.prompt=reason/explain"])
