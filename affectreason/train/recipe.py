"""Training recipes: typed sections, loaded from YAML, overridable with ``key=value``, validated before any
weights load. An unknown key, a wrong type or a missing file is an error that names the key path."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from affectreason.config import load_validated
from affectreason.errors import RecipeError
from affectreason.models.hub import is_hub_id


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(Section):
    path: str = Field(description="local model folder (or a model id in the local Hugging Face cache)")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attention: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        default="sdpa", description="attention kernel: sdpa never materialises the (tokens x tokens) score matrix "
        "(a flash kernel on CPU and GPU); eager does, per layer")


class AdapterSection(Section):
    kind: Literal["lora", "qlora"] = "lora"
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class DataSection(Section):
    train: str = Field(description="JSONL of {'messages': [...]} chats; the last (assistant) turn is the target")
    eval: str | None = None
    max_length: int | None = Field(default=None, ge=16, description="longest example in tokens (prompt + reply); "
                                   "default: the model's context length, so no example of the data is lost")
    over_length: Literal["truncate", "drop"] = "drop"
    frames: Literal["video", "images"] = Field(default="video", description="native models: how clip frames are "
                                               "given (one video input, or separate images)")
    fps: float = Field(default=2.0, gt=0, description="native models: frames sampled per second of video")
    max_frames: int = Field(default=8, ge=1, description="native models: at most this many frames per clip")
    prompt: str = Field(default="reason/explain", description="the prompt the chats were rendered with; recorded "
                        "beside the adapter so that explain and query render the same one")


class OptimSection(Section):
    lr: float = Field(default=2e-4, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=0, ge=0)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float = Field(default=1.0, gt=0)


class ScheduleSection(Section):
    max_steps: int = Field(default=100, ge=1)
    batch_size: int = Field(default=8, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    eval_every: int = Field(default=0, ge=0, description="0: evaluate only at the end")
    save_every: int = Field(default=0, ge=0, description="0: checkpoint only at the end")
    seed: int = 0
    max_tokens_per_batch: int | None = Field(
        default=None, ge=16, description="split each step's examples into micro-batches of at most this many "
        "(padded) tokens, gradients accumulated and token-weighted: the step and its loss stay the same, "
        "peak memory follows the budget instead of batch_size x the longest example")
    gradient_checkpointing: bool | Literal["auto"] = Field(
        default="auto", description="recompute each layer in the backward pass instead of keeping its activations "
        "(about a third slower on the CPU); auto: when the run would not fit otherwise")
    logits: Literal["reply", "all"] = Field(
        default="reply", description="reply: the LM head runs only on the reply tokens the loss covers (in chunks, "
        "recomputed in the backward pass); all: logits for every position, as the model's own loss does")
    memory_check: bool = Field(default=True, description="refuse, before weights load, a run whose estimated peak "
                               "memory exceeds what is free (and say which settings would fit)")
    memory_limit_gib: float | None = Field(
        default=None, gt=0, description="plan for a peak of at most this many GiB (resident memory of each process, "
        "or of the GPU); default: what is free when the run starts")
    return_freed_memory: bool | Literal["auto"] = Field(
        default="auto", description="glibc: hand freed activation buffers back to the system (mallopt, for the rest "
        "of the process) instead of keeping them in the heap, which saves ~1 GiB of RSS for page faults that cost "
        "about a third of the throughput on the CPU; auto: when the run would not fit otherwise")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(default="no", description="autocast through accelerate")
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=list, description="trackers besides train_log.jsonl (their packages must be installed)")


class EvalSection(Section):
    generate: int = Field(default=32, ge=0, description="held-out chats answered by generation at each evaluation")
    max_new_tokens: int = Field(default=64, ge=1)
    wheel_dir: str | None = Field(default=None, description="emotion-wheel folder: adds the EW F-score")


class FeatureSection(Section):
    """The feature path: frozen encoders -> projector(s) -> placeholder tokens of the LLM (trains projector + LoRA)."""

    vision: str | None = Field(default=None, description="SigLIP / CLIP folder (frames of videos, or images)")
    audio: str | None = Field(default=None, description="Whisper / HuBERT folder (audio of audios, or of videos)")
    projector: Literal["linear", "mlp", "qformer"] = "mlp"
    tokens: int = Field(default=8, ge=1, description="LLM tokens per modality (or fused block)")
    fusion: Literal["none", "attention"] = Field(default="none", description="attention: AffectGPT pre-fusion")
    cache: str | None = Field(default=None, description="feature cache folder (default: <output_dir>/features)")
    window: float = Field(default=0.5, gt=0, description="seconds of audio per audio feature step")

    @model_validator(mode="after")
    def _some_encoder(self) -> FeatureSection:
        if not self.vision and not self.audio:
            raise ValueError("give features.vision and/or features.audio")
        if self.fusion == "attention" and not (self.vision and self.audio):
            raise ValueError("fusion=attention fuses audio with video: give both features.vision and features.audio")
        return self


RewardName = Literal["format", "ew", "ov", "hit", "grounding", "au", "length"]  # train.rewards.REWARDS (tested)
WHEEL_REWARDS = ("ew", "hit")  # the rewards that read the emotion wheel


class RLSection(Section):
    """GRPO after SFT (``train.grpo``, TRL's GRPOTrainer): what is rewarded, how completions are sampled, the KL term.
    A step scores ``schedule.batch_size x schedule.grad_accum`` completions, ``num_generations`` per prompt."""

    rewards: dict[RewardName, float] = Field(
        default_factory=lambda: {"ew": 1.0, "format": 0.5, "grounding": 1.0, "length": 1.0},
        description="reward name -> weight (train.rewards; weights are divided by the total of the rewards that "
        "can be positive, so the combined reward of a perfect answer is 1)")
    init_adapter: str | None = Field(default=None, description="an SFT adapter (folder or hub id) to continue "
                                     "training (its base must be model.path); default: a fresh LoRA per the adapter "
                                     "section")
    num_generations: int = Field(default=8, ge=2, description="completions sampled per prompt (the GRPO group)")
    beta: float = Field(default=0.04, ge=0, description="KL coefficient against the reference model (0: no "
                        "reference model, no KL term)")
    reference: Literal["start", "base"] = Field(
        default="start", description="the KL reference: the policy at step 0 (the SFT adapter, or the base model "
        "for a fresh adapter) or the base model without any adapter")
    max_completion_length: int = Field(default=256, ge=1, description="tokens generated per completion at most")
    temperature: float = Field(default=1.0, gt=0, description="sampling temperature of the completions")
    top_p: float = Field(default=1.0, gt=0, le=1)
    wheel_dir: str | None = Field(default=None, description="emotion-wheel folder for the ew and hit rewards "
                                  "(default: eval.wheel_dir, else $AFFECTREASON_WHEEL_DIR)")
    au_beta: float = Field(default=1.0, gt=0, description="F-beta of the au reward (> 1 weighs recall)")
    grounding_floor: float = Field(default=0.0, ge=0, le=1, description="grounding reward of an answer that names "
                                   "no checkable cue")
    length_factor: float = Field(default=2.0, ge=1, description="label sets up to this many times gold go "
                                 "unpenalised by the length reward")
    use_vllm: bool = Field(default=False, description="generate through vLLM (TRL's colocate mode; needs vllm "
                           "installed and a GPU); default: transformers generate")

    @model_validator(mode="after")
    def _some_reward(self) -> RLSection:
        if not any(w > 0 for name, w in self.rewards.items() if name != "length"):
            raise ValueError("rewards: give a positive weight to at least one reward besides length")
        if any(w < 0 for w in self.rewards.values()):
            raise ValueError("rewards: weights must not be negative (length is a penalty already)")
        return self


class Recipe(Section):
    """One training setup."""

    model: ModelSection
    adapter: AdapterSection = Field(default_factory=AdapterSection)
    data: DataSection
    optim: OptimSection = Field(default_factory=OptimSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    features: FeatureSection | None = None
    rl: RLSection | None = Field(default=None, description="GRPO instead of supervised fine-tuning (train.grpo)")
    output_dir: str

    @model_validator(mode="after")
    def _files_exist(self) -> Recipe:
        for key in ("train", "eval"):
            value = getattr(self.data, key)
            if value is not None and not Path(value).is_file():
                raise ValueError(f"data.{key}: {value} does not exist")
        return self

    @model_validator(mode="after")
    def _rl_fits(self) -> Recipe:
        if self.rl is None:
            return self
        if self.features is not None:
            raise ValueError("rl: GRPO trains a text chat LM; remove the features section")
        completions = self.schedule.batch_size * self.schedule.grad_accum
        if completions % self.rl.num_generations:
            raise ValueError(f"schedule.batch_size: batch_size x grad_accum ({completions} completions a step) must "
                             f"be a multiple of rl.num_generations ({self.rl.num_generations})")
        adapter = self.rl.init_adapter
        if adapter is not None and not is_hub_id(adapter) and not (Path(adapter) / "adapter_config.json").is_file():
            raise ValueError(f"rl.init_adapter: {adapter} is not a peft adapter folder (no adapter_config.json)")
        wheel = self.rl.wheel_dir or self.eval.wheel_dir or os.environ.get("AFFECTREASON_WHEEL_DIR")
        needs = [name for name in WHEEL_REWARDS if self.rl.rewards.get(name)]
        if needs and not wheel:
            raise ValueError(f"rl.wheel_dir: the {' and '.join(needs)} reward needs the emotion wheel; give "
                             "rl.wheel_dir (or eval.wheel_dir, or $AFFECTREASON_WHEEL_DIR)")
        return self

    @model_validator(mode="after")
    def _prompt_of_the_data(self) -> Recipe:
        # a dataset built by `affectreason data` names the prompt its chats were rendered with
        manifest = Path(self.data.train).parent / "manifest.json"
        if not manifest.is_file():
            return self
        try:
            built = json.loads(manifest.read_text(encoding="utf-8")).get("recipe", {}).get("prompt")
        except (json.JSONDecodeError, AttributeError):
            return self
        if not built or built == self.data.prompt:
            return self
        if "prompt" in self.data.model_fields_set:
            raise ValueError(f"data.prompt: {self.data.prompt} but {manifest} says the chats were rendered with "
                             f"{built}")
        self.data.prompt = built
        return self


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped with the library."""
    folder = resources.files("affectreason.train") / "recipes"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(source: str | Path, overrides: list[str] | None = None) -> Recipe:
    """A validated recipe from a YAML file (or a packaged recipe name) plus ``key=value`` overrides."""
    path = Path(source)
    if not path.is_file():
        packaged = resources.files("affectreason.train") / "recipes" / f"{source}.yaml"
        if not packaged.is_file():
            raise RecipeError(f"recipe {source!r} not found (a YAML path, or one of {packaged_recipes()})")
        path = Path(str(packaged))
    return load_validated(path, Recipe, overrides or [], RecipeError)
