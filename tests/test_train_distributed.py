"""Training under ``accelerate launch`` (2 CPU processes, gloo) computes what one process computes,
and the optional trackers write real logs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.train.launch import accelerate_config, accelerate_configs, launch_command
from affectreason.train.loop import TrainError
from tests.synthetic_task import write_task
from tests.test_train import recipe_file

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return write_task(tmp_path_factory.mktemp("task"), n_train=64, n_eval=8)


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_two_processes_match_one(task, tiny_qwen2, tmp_path):
    import torch
    from safetensors.torch import load_file

    train_file, _ = task
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    single = recipe_file(tmp_path / "one", tiny_qwen2, train_file, None, max_steps=5, batch_size=6)
    double = recipe_file(tmp_path / "two", tiny_qwen2, train_file, None, max_steps=5, batch_size=6)
    out = runner.invoke(app, ["train", str(single)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["train", str(double), "--launch", "cpu-ddp"])
    assert out.exit_code == 0, out.output
    resolved = json.loads((tmp_path / "two" / "run" / "recipe.resolved.json").read_text())
    assert resolved["processes"] == 2
    assert _losses(tmp_path / "two" / "run") == pytest.approx(_losses(tmp_path / "one" / "run"), rel=1e-6, abs=1e-6)
    a = load_file(tmp_path / "one" / "run" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "two" / "run" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def test_tensorboard_tracker_writes_events(task, tiny_qwen2, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_file, _ = task
    recipe = recipe_file(tmp_path, tiny_qwen2, train_file, None, max_steps=3, batch_size=4)
    out = runner.invoke(app, ["train", str(recipe), "schedule.report_to=[tensorboard]"])
    assert out.exit_code == 0, out.output
    events = list((tmp_path / "run").rglob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("loss")] == [1, 2, 3]


def test_launch_configs_and_errors(task, tmp_path):
    assert accelerate_configs() == ["cpu-ddp", "ddp", "deepspeed-zero2", "deepspeed-zero3", "fsdp"]
    command = launch_command("fsdp", ["lora-chat", "x=1"], num_processes=4)
    assert command[1:3] == ["-m", "accelerate.commands.launch"] and str(accelerate_config("fsdp")) in command
    assert command[-4:] == ["affectreason.cli", "train", "lora-chat", "x=1"]
    assert command[command.index("--num_processes") + 1] == "4"
    assert launch_command("cpu-ddp", ["r.yaml"])[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
    with pytest.raises(TrainError, match="not a file and not one of"):
        launch_command("ddpp", [])
    train_file, _ = task
    import importlib.util

    real_find_spec = importlib.util.find_spec
    # as on a machine without wandb, whether or not this one has it (CI does not)
    hidden = lambda name, *args: None if name == "wandb" else real_find_spec(name, *args)  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(importlib.util, "find_spec", hidden)
        out = runner.invoke(app, ["train", "lora-chat", f"model.path={tmp_path}", f"data.train={train_file}",
                                  f"output_dir={tmp_path}", "schedule.report_to=[wandb]"])
    assert out.exit_code == 2 and "the wandb package is not installed: `pip install wandb`" in out.output
