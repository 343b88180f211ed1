"""Multi-process training through ``accelerate launch`` with the configurations shipped in
``affectreason/train/accelerate/`` (cpu-ddp, ddp, fsdp, deepspeed-zero2, deepspeed-zero3) or your own."""

from __future__ import annotations

import importlib.util
import sys
from importlib import resources
from pathlib import Path

import yaml

from affectreason.train.loop import TrainError


def accelerate_configs() -> list[str]:
    """Names of the shipped ``accelerate launch`` configurations."""
    folder = resources.files("affectreason.train") / "accelerate"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def accelerate_config(name_or_path: str) -> Path:
    """The path of a shipped configuration (by name) or of a configuration file of your own."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = resources.files("affectreason.train") / "accelerate" / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise TrainError(f"--launch {name_or_path!r}: not a file and not one of {accelerate_configs()}")
    return Path(str(shipped))


def launch_command(config: str, train_args: list[str], num_processes: int | None = None) -> list[str]:
    """The ``accelerate launch`` command that runs ``affectreason train`` with ``train_args`` per ``config``."""
    path = accelerate_config(config)
    settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    kind = settings.get("distributed_type")
    if kind == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        raise TrainError(f"{path.name} uses DeepSpeed, which is not installed: `pip install deepspeed`")
    program = ["-m", "affectreason.cli", "train", *train_args]
    if kind == "MULTI_CPU" and settings.get("num_machines", 1) == 1:
        # accelerate launches multi-CPU runs only through mpirun and a hostfile; on one machine torchrun
        # starts the gloo processes and the Accelerator reads their rank from the environment
        processes = num_processes or settings.get("num_processes", 2)
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), *program]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path)]
    if num_processes:
        command += ["--num_processes", str(num_processes)]
    return command + program
