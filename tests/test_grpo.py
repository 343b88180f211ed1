"""GRPO after SFT (``affectreason train grpo-chat``): the tiny random Qwen2, SFT-trained on the synthetic cue -> label
task to an imperfect start, then GRPO with ew + format through the CLI, stopped half-way and resumed: per-reward
figures every step, held-out figures at the SFT start and the end, the run folder as SFT's; bad recipes are refused
naming the key.

The issue's acceptance (mean reward rises and held-out EW F-score improves over the SFT start) is NOT asserted: it did
not hold on this model in the budget of a CI test. Measured (60 SFT steps, then 12 GRPO steps of 8 prompts x 4
completions, lr 5e-4, temperature 0.4, beta 0): held-out EW F-score 0.358 at the SFT start, 0.358 after 6 steps,
0.291 after 12; the training reward by step 0.44 0.42 0.44 0.23 0.36 0.42 0.30 0.49 0.26 0.35 0.53 0.57 (noisy, no
clear rise); with lr 2e-3 and temperature 0.7 the sampled answers lost the format (format reward 0.03 -> 0)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.schema import Cues, FaceFrame
from affectreason.train.recipe import RecipeError, RewardName, load_recipe
from affectreason.train.rewards import REWARDS
from tests.synthetic_task import example

pytestmark = pytest.mark.integration
runner = CliRunner()
SFT_STEPS, GRPO_STEPS, HALF = 60, 4, 2


def records(n: int, seed: int) -> list[dict]:
    """The synthetic task with a three-section reply (the strong AUs, the label) and the cues as a Cues object."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cue_text, label = example(rng)
        aus = {m.group(1): float(m.group(2)) for m in re.finditer(r"(AU\d\d) (\d\.\d)", cue_text)}
        strong = " ".join(au for au, value in aus.items() if value >= 2)
        cues = Cues(clip_id=f"s{seed}-{i}", frames=[FaceFrame(t=0.0, faces=1, aus=aus)])
        out.append({"id": cues.clip_id, "labels": [label], "cues": json.loads(cues.model_dump_json()),
                    "messages": [{"role": "user", "content": cue_text},
                                 {"role": "assistant", "content": f"Key observations: {strong}\nConclusion: {label}\n"
                                                                  f"Labels: {label}"}]})
    return out


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("rl_task")
    paths = []
    for name, n, seed in (("train", 400, 0), ("eval", 48, 1)):
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records(n, seed)))
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def sft_start(task, tmp_path_factory) -> tuple[Path, Path]:
    """(tiny Qwen2 folder, its SFT adapter after SFT_STEPS steps: the format learned, the labels not yet)."""
    from tests.tiny_models import build_qwen2

    folder = tmp_path_factory.mktemp("rl_models")
    model = build_qwen2(folder / "qwen2")
    train, _ = task
    out = runner.invoke(app, ["train", "lora-chat", f"model.path={model}", f"data.train={train}", "data.max_length=128",
                              f"schedule.max_steps={SFT_STEPS}", "schedule.eval_every=0", "schedule.save_every=0",
                              "optim.lr=3e-3", "optim.warmup_steps=5", f"output_dir={folder / 'sft'}"])
    assert out.exit_code == 0, out.output
    return model, folder / "sft" / "adapter"


def grpo_args(model: Path, adapter: Path, task, out: Path, anchors: Path) -> list[str]:
    train, eval_ = task
    return ["train", "grpo-chat", f"model.path={model}", f"rl.init_adapter={adapter}", f"data.train={train}",
            f"data.eval={eval_}", f"rl.wheel_dir={anchors / 'emotion_wheel'}", "rl.rewards={ew: 1.0, format: 0.5}",
            "rl.num_generations=4", "rl.beta=0.0", "rl.max_completion_length=28", "rl.temperature=0.4",
            "schedule.batch_size=32", f"schedule.max_steps={GRPO_STEPS}", f"schedule.save_every={HALF}",
            f"schedule.eval_every={GRPO_STEPS}", "eval.generate=16", "optim.lr=5e-4", "optim.warmup_steps=0",
            f"output_dir={out}"]


def test_grpo_from_the_sft_start_logs_every_reward_and_resumes(sft_start, task, tmp_path, anchors):
    """GRPO continues the SFT adapter; TRL's checkpoint at step 2 resumes to step 4 through the CLI."""
    from affectreason.train.recipe import load_recipe as load
    from affectreason.train.run import train

    model, adapter = sft_start
    args = grpo_args(model, adapter, task, tmp_path / "grpo", anchors)
    recipe = load(args[1], args[2:])
    first = train(recipe, stop_after=HALF)
    assert first.steps == HALF and (tmp_path / "grpo" / "checkpoints" / f"checkpoint-{HALF}").is_dir()
    out = runner.invoke(app, [*args, "--resume"])
    assert out.exit_code == 0, out.output
    log = [json.loads(line) for line in (tmp_path / "grpo" / "train_log.jsonl").read_text().splitlines()]
    start, steps = log[0], [r for r in log if r["step"] > 0]
    assert start["step"] == 0 and [r["step"] for r in steps] == list(range(1, GRPO_STEPS + 1))
    for record in steps:
        assert {"reward", "reward_std", "reward_ew_mean", "reward_ew_std", "reward_format_mean",
                "reward_format_std", "loss", "lr", "completion_length"} <= set(record)
        assert 0.0 <= record["reward_ew_mean"] <= 1.0 and 0.0 <= record["reward_format_mean"] <= 1.0
        # TRL's reward is the weighted sum with the normalised weights (ew 1/1.5, format 0.5/1.5): train.rewards.combine
        combined = (record["reward_ew_mean"] + 0.5 * record["reward_format_mean"]) / 1.5
        assert record["reward"] == pytest.approx(combined, abs=2e-3)
    end = steps[-1]
    print(f"SFT start: ew_fs {start['ew_fs']}, reward {start['eval_reward']}; GRPO rewards "
          f"{[r['reward'] for r in steps]}; end: ew_fs {end['ew_fs']}, reward {end['eval_reward']}")
    assert start["eval_reward_format"] >= 0.9 and 0.1 < start["ew_fs"] < 0.8  # the format learned, the labels not
    assert "ew_fs" in end and "eval_reward" in end
    saved = tmp_path / "grpo" / "adapter"
    info = json.loads((saved / "affectreason_adapter.json").read_text())
    assert info["training"] == "grpo" and info["init_adapter"] == str(adapter) and info["prompt"] == "reason/explain"
    assert (saved / "adapter_model.safetensors").is_file() and not (saved / "ref").exists()
    resolved = json.loads((tmp_path / "grpo" / "recipe.resolved.json").read_text())
    assert resolved["recipe"]["rl"]["num_generations"] == 4 and resolved["trl_version"]


def test_grpo_recipe_errors_name_the_key(task, tmp_path, anchors, monkeypatch):
    monkeypatch.delenv("AFFECTREASON_WHEEL_DIR", raising=False)
    train, _ = task
    base = [f"model.path={tmp_path}", f"data.train={train}", f"output_dir={tmp_path / 'o'}",
            f"rl.wheel_dir={anchors / 'emotion_wheel'}"]
    recipe = load_recipe("grpo-chat", base)
    assert recipe.rl.rewards == {"ew": 1.0, "format": 0.5, "grounding": 1.0, "length": 1.0}
    with pytest.raises(RecipeError, match=r"rl\.rewards\.fromat"):
        load_recipe("grpo-chat", base + ["rl.rewards.fromat=1"])
    with pytest.raises(RecipeError, match=r"rl\.num_generation: Extra inputs are not permitted"):
        load_recipe("grpo-chat", base + ["rl.num_generation=4"])
    with pytest.raises(RecipeError, match=r"must be a multiple of rl\.num_generations \(5\)"):
        load_recipe("grpo-chat", base + ["rl.num_generations=5"])
    with pytest.raises(RecipeError, match=r"rl\.init_adapter: /nope is not a peft adapter folder"):
        load_recipe("grpo-chat", base + ["rl.init_adapter=/nope"])
    with pytest.raises(RecipeError, match=r"rl\.wheel_dir: the ew reward needs the emotion wheel"):
        load_recipe("grpo-chat", base[:3])
    with pytest.raises(RecipeError, match="at least one reward besides length"):
        load_recipe("grpo-chat", base + ["rl.rewards={length: 1.0}"])
    assert set(get_args(RewardName)) == set(REWARDS)
