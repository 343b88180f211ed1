"""Peak memory, before any weights load: an estimate from the model's config, the examples' token lengths and
the batch plan, held against the memory that is free; a run that would not fit is refused with the numbers
and with settings that would fit, instead of being killed by the kernel half-way into its first step.

The estimate of one process's peak (bytes):
- runtime: this process as it is now (Python, torch, transformers, the tokenizer, the tokenized data);
- weights: parameters (counted on a meta-device copy of the architecture, so exactly) x dtype bytes; QLoRA
  keeps linear layers in 4 bits;
- trainable: LoRA (and projector) parameters in float32 with their gradient and AdamW's two moments;
- activations of the largest micro-batch (rows x padded width): per token and decoder layer, with frozen base
  weights, about 9 hidden + 2 key/value + 4 intermediate values + r per adapted projection, plus a copy of each
  adapted projection's input and its mask under LoRA dropout; with gradient checkpointing each layer keeps only
  its input and one layer is recomputed at a time (on the CPU only when freed memory is returned: in glibc's kept
  heap the recomputed layers' buffers stay, and the peak is about that of no checkpointing); eager attention adds
  heads x width^2 scores per row and layer (sdpa keeps none); the padding mask is rows x width^2 bytes;
- logits: three float32 copies (logits, log-softmax, gradient) of tokens x vocabulary with
  ``schedule.logits=all``, of one ``train.loss`` chunk with ``reply``;
- heap: unless freed memory is returned (``schedule.return_freed_memory``), glibc keeps freed buffers in its heap:
  about 70% of the transient memory above or 1.1 GiB, whichever is more (measured on SmolLM2-135M); 10% otherwise;
- other: what a path adds (the feature cache, a vision tower's activations, which need no gradients).
``eval/bench/train_memory.py`` prints the estimate beside the measured peak of every configuration it runs.

``plan_memory`` then resolves the two ``auto`` trades of time for memory (gradient checkpointing, returning freed
memory) to the fastest combination that fits, and refuses the run if none does.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.train.loop import TrainError
from affectreason.train.loss import CHUNK_BYTES
from affectreason.train.recipe import Recipe

GIB = 2**30
SAFETY = 0.9  # the share of the free memory a run may plan to take
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def return_freed_memory(threshold: int = 512 * 1024) -> bool:
    """glibc only: serve allocations above ``threshold`` bytes with their own mappings, returned to the system when
    freed. By default glibc raises that threshold as large blocks are freed and then serves activation-sized
    buffers from a heap it does not shrink, which nearly doubled the peak RSS of SmolLM2 training (2.46 -> 1.33 GB
    at batch 1 with checkpointing); the price is a page fault per fresh page of every large buffer (about a third
    of the CPU throughput). Returns whether it was applied."""
    if platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc":
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


@dataclass
class ModelShape:
    """What the estimate needs of a model, read from its config (no weights)."""

    params: int
    linear_params: int  # weights of linear layers other than the LM head (4-bit under QLoRA)
    lora_params: int
    lora_per_layer: float  # adapted projections per decoder layer
    lora_inputs_per_layer: float  # their input features, summed
    rank: int
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    context: int | None


def _targeted(name: str, targets: list[str] | str) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def model_shape(config, build, targets: list[str] | str, rank: int) -> ModelShape:
    """The shape of the model ``build(config)`` makes (built on the meta device: no memory, no weights)."""
    import torch
    from torch import nn

    with torch.device("meta"):
        model = build(config)
    head = model.get_output_embeddings()
    params = sum(p.numel() for p in model.parameters())
    linear = lora = count = inputs = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module is not head:
            linear += module.weight.numel()
            if _targeted(name, targets):
                lora += rank * (module.in_features + module.out_features)
                count += 1
                inputs += module.in_features
    text = config.get_text_config()
    layers = text.num_hidden_layers
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    context = getattr(text, "max_position_embeddings", None)
    return ModelShape(params, linear, lora, count / layers, inputs / layers, rank, layers, text.hidden_size,
                      getattr(text, "intermediate_size", 4 * text.hidden_size), heads,
                      getattr(text, "num_key_value_heads", None) or heads, head_dim, text.vocab_size, context)


def causal_lm_shape(path: str, targets: list[str] | str, rank: int) -> tuple[object, ModelShape]:
    """(config, shape) of the causal LM in folder ``path``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TrainError(f"cannot read the config of model.path {path!r} ({str(exc).splitlines()[0][:200]}); "
                         "give a local model folder; nothing is downloaded") from None
    return config, model_shape(config, AutoModelForCausalLM.from_config, targets, rank)


@dataclass
class Geometry:
    """The largest micro-batch a run makes: ``rows`` examples padded to ``width`` tokens, ``reply`` targets."""

    rows: int
    width: int
    reply: int

    @property
    def tokens(self) -> int:
        return self.rows * self.width


def micro_batch_geometry(lengths: list[int], replies: list[int], schedule, world: int = 1) -> Geometry:
    """The largest micro-batch of a run over examples of these token lengths (and target counts)."""
    width = max(lengths)
    per_micro = math.ceil(schedule.batch_size / world)
    rows = per_micro
    if schedule.max_tokens_per_batch:
        rows = max(1, min(per_micro * schedule.grad_accum, schedule.max_tokens_per_batch // width))
    ordered = sorted(replies, reverse=True)  # a batch larger than the data repeats examples
    return Geometry(rows, width, sum(ordered[i % len(ordered)] for i in range(rows)))


@dataclass
class Estimate:
    """A process's estimated peak memory, by part (bytes), for the settings it was made with."""

    runtime: int
    weights: int
    trainable: int
    activations: int
    logits: int
    heap: int
    geometry: Geometry
    gradient_checkpointing: bool
    device: str = "cpu"
    other: dict[str, int] = field(default_factory=dict)

    @property
    def device_peak(self) -> int:
        """What the accelerator holds (everything but the runtime), or the whole peak on the CPU."""
        parts = self.weights + self.trainable + self.activations + self.logits + self.heap + sum(self.other.values())
        return parts if self.device != "cpu" else parts + self.runtime

    @property
    def host_peak(self) -> int:
        """What the process holds in RAM (on an accelerator: the runtime and the weights while they load)."""
        return self.device_peak if self.device == "cpu" else self.runtime + self.weights

    def summary(self) -> str:
        parts = {"runtime": self.runtime, "weights": self.weights, "trainable": self.trainable,
                 "activations": self.activations, "logits": self.logits, "heap": self.heap, **self.other}
        shown = ", ".join(f"{k} {v / GIB:.2f}" for k, v in parts.items() if v >= 0.005 * GIB)
        where = "" if self.device == "cpu" else f" on {self.device}"
        return (f"{self.device_peak / GIB:.2f} GiB{where} ({shown}) for micro-batches of up to "
                f"{self.geometry.rows} x {self.geometry.width:,} tokens, gradient checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'}")

    def figures(self) -> dict:
        return {"estimated_peak_gib": round(self.device_peak / GIB, 3), "device": self.device,
                "micro_batch": [self.geometry.rows, self.geometry.width],
                "gradient_checkpointing": self.gradient_checkpointing,
                **{f"{k}_gib": round(v / GIB, 3) for k, v in (("runtime", self.runtime), ("weights", self.weights),
                                                              ("trainable", self.trainable),
                                                              ("activations", self.activations),
                                                              ("logits", self.logits), ("heap", self.heap),
                                                              *self.other.items())}}


def current_rss() -> int:
    """This process's resident memory now."""
    import psutil

    return psutil.Process().memory_info().rss


def estimate(recipe: Recipe, shape: ModelShape, geometry: Geometry, gradient_checkpointing: bool,
             runtime: int | None = None, device: str = "cpu", other: dict[str, int] | None = None,
             extra_trainable: int = 0, freed: bool = False) -> Estimate:
    """The estimated peak of a run of ``recipe`` (see the module's description)."""
    sched = recipe.schedule
    b = DTYPE_BYTES[recipe.model.dtype]
    act = 3 if sched.mixed_precision != "no" and b == 4 else b  # autocast keeps matmul outputs in half precision
    if recipe.adapter.kind == "qlora":
        weights = int(shape.linear_params * 0.53 + (shape.params - shape.linear_params) * b)
    else:
        weights = shape.params * b
    trainable = (shape.lora_params + extra_trainable) * 16
    rows, width, tokens = geometry.rows, geometry.width, geometry.tokens
    kv = shape.kv_heads * shape.head_dim
    per_token_layer = act * (9 * shape.hidden + 2 * kv + 4 * shape.intermediate + shape.lora_per_layer * shape.rank)
    if recipe.adapter.dropout > 0:
        per_token_layer += shape.lora_inputs_per_layer * (act + 1)
    scores = rows * shape.heads * width * width * 4 * 2 if recipe.model.attention == "eager" else 0
    # glibc's kept heap defeats checkpointing: the buffers of each recomputed layer stay in it (SmolLM2, batch 4 x 859
    # tokens: 4.79 GiB measured with the heap kept, 1.62 GiB with freed memory returned, 5.97 GiB without
    # checkpointing), so that combination is estimated as no checkpointing
    kept_heap = device == "cpu" and not (freed and platform.system() == "Linux")
    if gradient_checkpointing and not kept_heap:
        activations = shape.layers * tokens * shape.hidden * act + per_token_layer * tokens + scores
    else:
        activations = shape.layers * (per_token_layer * tokens + scores)
    activations += rows * width * width + 2 * tokens * shape.hidden * act  # padding mask, gradient buffers
    if sched.logits == "all":
        logits = 3 * tokens * shape.vocab * 4
    else:
        logits = 3 * min(CHUNK_BYTES, geometry.reply * shape.vocab * 4) + geometry.reply * shape.hidden * act
    other = dict(other or {})
    transient = activations + logits
    if device != "cpu" or not kept_heap or gradient_checkpointing:
        heap = int(0.1 * transient)  # (checkpointing with the heap kept: the kept buffers are the activations above)
    else:
        heap = int(max(0.7 * transient, 1.1 * GIB))
    return Estimate(current_rss() if runtime is None else runtime, int(weights), int(trainable), int(activations),
                    int(logits), heap, geometry, gradient_checkpointing, device, other)


def _cgroup_free() -> tuple[int, str] | None:
    """Room left under this process's cgroup memory limit (v2, or v1), if it has one."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            folder = Path("/sys/fs/cgroup") / path.lstrip("/")
            files = (folder / "memory.max", folder / "memory.current")
        elif "memory" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            files = (folder / "memory.limit_in_bytes", folder / "memory.usage_in_bytes")
        else:
            continue
        try:
            limit, used = (f.read_text().strip() for f in files)
        except OSError:
            continue
        if limit != "max" and int(limit) < 2**60:
            return int(limit) - int(used), f"cgroup limit {int(limit) / GIB:.1f} GiB"
    return None


def free_memory() -> tuple[int, str]:
    """(bytes this machine can still give, where the figure comes from): MemAvailable, or the cgroup's room."""
    import psutil

    free, source = psutil.virtual_memory().available, "available memory"
    limited = _cgroup_free()
    if limited is not None and limited[0] < free:
        free, source = limited
    return free, source


def _device() -> tuple[str, int | None]:
    import torch

    if torch.cuda.is_available():
        index = int(os.environ.get("LOCAL_RANK", "0"))
        free, _ = torch.cuda.mem_get_info(index)
        return f"cuda:{index}", free
    return "cpu", None


def _apply(recipe: Recipe, overrides: dict[str, object]) -> Recipe:
    changed = recipe.model_copy(deep=True)
    for key, value in overrides.items():
        node = changed
        *path, last = key.split(".")
        for part in path:
            node = getattr(node, part)
        setattr(node, last, value)
    return changed


class WouldNotFit(TrainError):
    """The memory plan of a run exceeds what is allowed; ``plan`` holds the estimate."""

    def __init__(self, message: str, plan: MemoryPlan):
        super().__init__(message)
        self.plan = plan


@dataclass
class MemoryPlan:
    """The checked plan: its estimate, the memory-for-time trades it chose, and what was allowed."""

    estimate: Estimate
    gradient_checkpointing: bool
    return_freed_memory: bool
    allowed: int
    source: str

    def line(self) -> str:
        freed = ", freed memory returned" if self.return_freed_memory else ""
        return (f"memory: estimated peak {self.estimate.summary()}{freed}; {self.allowed / GIB:.2f} GiB allowed "
                f"({self.source})")

    def figures(self) -> dict:
        return {**self.estimate.figures(), "return_freed_memory": self.return_freed_memory,
                "allowed_gib": round(self.allowed / GIB, 3), "allowed_by": self.source}


def _choices(setting: bool | str) -> list[bool]:
    return [False, True] if setting == "auto" else [bool(setting)]


def plan_memory(recipe: Recipe, shape: ModelShape, lengths: list[int], replies: list[int], world: int = 1,
                local_world: int | None = None, other: dict[str, int] | None = None,
                extra_trainable: int = 0) -> MemoryPlan:
    """Resolve the ``auto`` trades of memory for time and check the run fits; a run that does not is a
    ``WouldNotFit`` error with the estimate, what is allowed and settings that would fit. ``local_world``:
    processes on this machine (they share its memory).

    Both trades cost time on the CPU (measured on SmolLM2-135M, batch 1 at the default prompt, 2 threads: gradient
    checkpointing about a third of the throughput, returning freed memory about a third, for page faults on every
    large buffer), so ``auto`` takes the fastest of: neither, returning freed memory, checkpointing, both, whose
    estimate fits."""
    import torch  # noqa: F401  (imported before the runtime is measured: the run needs it)
    import transformers  # noqa: F401

    local_world = local_world or world
    runtime = current_rss()
    device, device_free = _device()
    free, _ = free_memory()
    # every process of this machine grows by its peak minus what it holds already
    allowed, source = _allowed(recipe, runtime, local_world)
    if device != "cpu":
        allowed, source = int(SAFETY * device_free), f"free memory of {device}"
        if recipe.schedule.memory_limit_gib:
            allowed, source = min(allowed, int(recipe.schedule.memory_limit_gib * GIB)), \
                f"schedule.memory_limit_gib={recipe.schedule.memory_limit_gib:g}"

    def make(r: Recipe, gc: bool, freed: bool, lens=lengths, reps=replies) -> Estimate:
        geometry = micro_batch_geometry(lens, reps, r.schedule, world)
        return estimate(r, shape, geometry, gc, runtime, device, other, extra_trainable, freed)

    def fits(e: Estimate) -> bool:
        return e.device_peak <= allowed and (device == "cpu" or e.host_peak <= runtime + SAFETY * free)

    sched = recipe.schedule
    trades = [(gc, freed) for gc in _choices(sched.gradient_checkpointing)
              for freed in _choices(sched.return_freed_memory)]
    trades.sort(key=lambda t: (t[0] + t[1], t[0]))  # fastest first; returning memory before recomputing layers
    for gc, freed in trades:
        chosen = make(recipe, gc, freed)
        if fits(chosen):
            return MemoryPlan(chosen, gc, freed, allowed, source)
    plan = MemoryPlan(chosen, gc, freed, allowed, source)  # the most frugal choice
    if not sched.memory_check:
        return plan
    suggestion = _suggest(recipe, make, fits, lengths, replies)
    raise WouldNotFit(f"this run would not fit in memory: estimated peak {chosen.summary()}, but {allowed / GIB:.2f} "
                      f"GiB is allowed ({source}). {suggestion} (schedule.memory_check=false runs it anyway)", plan)


def _suggest(recipe: Recipe, make, fits, lengths: list[int], replies: list[int]) -> str:
    """The first settings (least change first) whose estimate fits, as ``key=value`` overrides."""
    sched = recipe.schedule
    longest = max(lengths)
    current = micro_batch_geometry(lengths, replies, sched).tokens
    budgets = []
    budget = 2 ** int(math.log2(max(current, 16)))
    while budget >= 16:
        if budget < current:
            budgets.append(budget)
        budget //= 2
    budgets = [b for b in budgets if b >= longest] or [longest]
    frugal = {"schedule.gradient_checkpointing": True, "schedule.return_freed_memory": True}
    frugal = {k: v for k, v in frugal.items() if getattr(sched, k.split(".")[1]) is not True}
    same: list[dict] = [frugal] if frugal else []  # settings that keep the steps and losses exactly
    same += [{"schedule.max_tokens_per_batch": b, **frugal} for b in budgets]
    for overrides in same:
        e = make(_apply(recipe, overrides), True, True)
        if fits(e):
            return (f"Settings that fit: {' '.join(f'{k}={_show(v)}' for k, v in overrides.items())} (estimated "
                    f"{e.device_peak / GIB:.2f} GiB; the same steps and losses: the batch of {sched.batch_size} is "
                    f"split into micro-batches of at most {e.geometry.rows} x {e.geometry.width:,} tokens whose "
                    f"gradients accumulate).")
    if recipe.model.dtype == "float32" and recipe.adapter.kind == "lora":
        overrides = {"model.dtype": "bfloat16", **frugal, "schedule.max_tokens_per_batch": max(longest, 16)}
        e = make(_apply(recipe, overrides), True, True)
        if fits(e):
            return (f"Even one example of {longest:,} tokens per micro-batch does not fit in float32; settings that "
                    f"fit: {' '.join(f'{k}={_show(v)}' for k, v in overrides.items())} (estimated "
                    f"{e.device_peak / GIB:.2f} GiB).")
    cut = longest
    while cut > 64:
        cut = int(cut * 0.75)
        overrides = {"data.max_length": cut, "data.over_length": "truncate", **frugal,
                     "schedule.max_tokens_per_batch": cut}
        e = make(_apply(recipe, overrides), True, True, [min(n, cut) for n in lengths],
                 [min(n, cut) for n in replies])
        if fits(e):
            return (f"Even one example of {longest:,} tokens per micro-batch does not fit; settings that fit: "
                    f"{' '.join(f'{k}={_show(v)}' for k, v in overrides.items())} (estimated "
                    f"{e.device_peak / GIB:.2f} GiB; longer examples are cut), or a shorter prompt for the data.")
    return "No batch plan of this model fits; free memory, or use a smaller model."


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _allowed(recipe: Recipe, runtime: int, local_world: int = 1) -> tuple[int, str]:
    free, source = free_memory()
    allowed = runtime + int(SAFETY * free / local_world)
    if recipe.schedule.memory_limit_gib:
        allowed, source = min(allowed, int(recipe.schedule.memory_limit_gib * GIB)), \
            f"schedule.memory_limit_gib={recipe.schedule.memory_limit_gib:g}"
    return allowed, source


def check_encoders(recipe: Recipe, folders: dict[str, str], local_world: int = 1) -> int:
    """The feature path's first phase, before its encoders load: their float32 weights plus the activations of
    one clip (no gradients), against what is allowed; returns the estimated peak (bytes)."""
    import torch
    from transformers import AutoConfig, AutoModel

    runtime = current_rss()
    weights = transient = 0
    for modality, folder in folders.items():
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        with torch.device("meta"):
            model = AutoModel.from_config(config)
        weights += 4 * sum(p.numel() for p in model.parameters())
        inner = getattr(config, "vision_config", None) or config
        width = getattr(inner, "hidden_size", None) or getattr(inner, "d_model", 768)
        if modality == "vision":
            patches = (getattr(inner, "image_size", 224) // getattr(inner, "patch_size", 16)) ** 2
            steps = recipe.data.max_frames * patches
        else:
            steps = getattr(inner, "max_source_positions", 1500)
        transient = max(transient, 4 * 16 * steps * width)
    peak = runtime + weights + transient
    allowed, source = _allowed(recipe, runtime, local_world)
    if peak > allowed and recipe.schedule.memory_check:
        raise TrainError(f"the feature encoders would not fit in memory: estimated peak {peak / GIB:.2f} GiB (runtime "
                         f"{runtime / GIB:.2f}, encoder weights {weights / GIB:.2f}, one clip {transient / GIB:.2f}), "
                         f"but {allowed / GIB:.2f} GiB is allowed ({source}); lower data.max_frames or use smaller "
                         "encoders (schedule.memory_check=false runs it anyway)")
    return peak
