"""The batch runner's workers on a Ray cluster (``--ray``): one actor per worker loads the cue extractor and the
reasoner once; this process (the driver) hands each actor one item at a time and writes every record the moment it
comes back, exactly as the local runner does (same ``batch._safe_record``, same JSONL, same resume).

Addresses: ``local`` starts a cluster of this machine for the run and stops it afterwards; ``auto`` joins the
cluster this machine is part of (``ray start`` here, or ``RAY_ADDRESS``); ``HOST:PORT`` (the head's GCS port, as
``ray start --head`` prints it) or ``ray://HOST:PORT`` (Ray Client) joins that one. Every node needs affectreason
installed (same version) and the clips at the same paths.

Failures: a worker that dies (killed, out of memory, its node lost) or hangs past ``item_timeout_s`` is restarted
by Ray (``max_restarts=-1``) and its item handed out again, to the first free worker, up to ``tries`` times in all;
an item that costs its worker on every try is recorded with that error and the others go on. Only the driver
writes, and only results that arrived, so no item is lost or written twice.

Plain actors rather than Ray Data: Ray Data writes per-block files and retries whole blocks, where the runner wants
one line per clip as it finishes and a resume that skips the clips already done. Ray is imported here only,
lazily: the base install runs without it (the ``cluster`` extra installs it).
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.backends.load import BackendSpec, load_reasoner
from affectreason.batch import Item, OnDone, _safe_record
from affectreason.cues.pipeline import CueConfig, CueExtractor
from affectreason.cues.speech import ASR_THREADS_ENV
from affectreason.errors import AffectReasonError, UsageError

START_TIMEOUT_S = 300.0
"""how long workers may take to start (load their models) before the run gives up"""
ENV_PREFIXES = ("AFFECTREASON_", "HF_")
"""settings of the driver's environment that travel to the workers (model paths, offline mode)"""

# Ray ties the GCS, the raylet and the workers of a cluster started by ray.init to the driver, but its dashboard and
# runtime-env agents outlive a driver killed with SIGKILL (checked with ray 2.60: still there minutes later). This
# watcher, in its own session so the signal that killed the driver spares it, kills them when the driver is gone.
_WATCH = """
import os, signal, sys, time
parent, pids = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
while os.getppid() == parent:
    time.sleep(0.5)
for pid in pids:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'affectreason[cluster]'") from None
    return ray


class _Worker:
    """A Ray actor: the cue extractor and the reasoner, loaded once, then one item at a time."""

    def __init__(self, config: CueConfig, spec: BackendSpec | None, cpus: float = 1.0):
        # speech recognition runs on the CPUs this actor reserved (Ray already pins OpenMP to them): with
        # CTranslate2's 2 threads a 1-CPU worker kept 1.29 cores busy (ray_scale.py: 2 workers 1.59x one, now 1.75x)
        os.environ[ASR_THREADS_ENV] = str(max(1, int(cpus)))
        self.extractor = CueExtractor(config)
        self.reasoner = load_reasoner(spec) if spec is not None else None

    def pid(self) -> int:
        """This worker's process id (a test kills it)."""
        return os.getpid()

    def record(self, item: Item) -> dict:
        """The item's output record, errors of the clip included, as the local runner writes it."""
        return _safe_record(item, self.extractor, self.reasoner)


@dataclass
class RayPool:
    """Batch workers on a Ray cluster; use as a context manager (connects, and stops a ``local`` cluster)."""

    address: str = "local"
    """``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``"""
    workers: int | None = None
    """actors; None: as many as the cluster's CPUs hold (``cpus_per_worker`` each)"""
    tries: int = 3
    """times an item is handed out before a dying worker makes it an error record"""
    item_timeout_s: float | None = None
    """an item still running after this long has hung its worker: restart it, try again (None: wait)"""
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    """None: one GPU per worker for an ``hf`` backend where the cluster has GPUs, else none"""
    pids: list[int] = field(default_factory=list, init=False)
    """the worker processes of the last ``map`` as they started"""
    _info: dict = field(default_factory=dict, init=False, repr=False)
    _watcher: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _actors: list = field(default_factory=list, init=False, repr=False)
    _loaded: bytes | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> RayPool:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        """Join (or, for ``local``, start) the cluster; a bad or unreachable address is a usage error."""
        ray = _ray()
        if not ray.is_initialized():
            self._init(ray)
            self._info = {}
        if not self._info:
            resources = ray.cluster_resources()
            self._info = {"address": self.address, "gcs": ray.get_runtime_context().gcs_address,
                          "nodes": sum(1 for node in ray.nodes() if node.get("Alive")),
                          "cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0)}

    def _init(self, ray) -> None:
        """``ray.init`` for this pool's address (quiet: no dashboard, worker logs kept on the nodes)."""
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report to Ray's servers unless the user asks
        quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
        if self.address == "local":
            cpus = int(self.workers * self.cpus_per_worker) if self.workers else None
            # address="local": a new cluster even where RAY_ADDRESS names another one
            ray.init(address="local", num_cpus=cpus, _node_ip_address="127.0.0.1", **quiet)
            self._watcher = subprocess.Popen([sys.executable, "-c", _WATCH, str(os.getpid()),
                                              *map(str, _descendants(os.getpid()))], start_new_session=True)
        else:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, runtime_env={"env_vars": env} if env else None, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UsageError(f"--ray {self.address}: cannot join the cluster ({first}); start one with "
                                 "`ray start --head`, or use --ray local") from None

    def close(self) -> None:
        """Stop the workers and disconnect; a cluster this pool started is stopped."""
        ray = _ray()
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors, self._loaded = [], None
        if ray.is_initialized():
            ray.shutdown()  # for ``local`` this stops the cluster ray.init started
        if self._watcher is not None:
            self._watcher.kill()
            self._watcher.wait()
            self._watcher = None

    def describe(self) -> dict:
        """The cluster as the manifest records it: address, nodes, CPUs, GPUs, workers, retries seen."""
        return dict(self._info)

    def map(self, todo: list[Item], config: CueConfig, spec: BackendSpec | None, emit: OnDone) -> None:
        """Every item of ``todo`` through a worker, each record passed to ``emit`` here as it arrives. Workers stay
        up for the next call with the same settings (the tasks of an eval suite load their models once)."""
        self.connect()
        ray = _ray()
        actors = self._start(ray, config, spec, len(todo))
        pending: deque[Item] = deque(todo)
        tries: dict[str, int] = {}
        running: dict = {}  # result ref -> (slot, item, started)
        hung: set[int] = set()
        idle = list(range(len(actors)))
        restarts = 0
        try:
            while pending or running:
                while idle and pending:
                    slot, item = idle.pop(), pending.popleft()
                    running[actors[slot].record.remote(item)] = (slot, item, time.monotonic())
                done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in done:
                    slot, item, _started = running.pop(ref)
                    idle.append(slot)
                    timed_out = slot in hung
                    hung.discard(slot)
                    try:
                        record = ray.get(ref)
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                        reason = (f"timed out after {self.item_timeout_s:g} s" if timed_out
                                  else f"worker died ({type(exc).__name__})")
                    else:
                        emit(record)
                        continue
                    restarts += 1
                    tries[item.clip.id] = tries.get(item.clip.id, 0) + 1
                    if tries[item.clip.id] < self.tries:
                        pending.appendleft(item)  # the first free worker takes it next
                    else:
                        emit({"clip": item.clip.model_dump(mode="json"),
                              "error": f"worker failed on each of {self.tries} tries: {reason}"})
                if self.item_timeout_s is not None:
                    now = time.monotonic()
                    for slot, _item, started in running.values():
                        if slot not in hung and now - started > self.item_timeout_s:
                            hung.add(slot)
                            ray.kill(actors[slot], no_restart=False)  # Ray restarts it; the item fails and returns
        finally:
            self._info["restarts"] = restarts

    def _start(self, ray, config: CueConfig, spec: BackendSpec | None, items: int) -> list:
        """Workers for ``config`` and ``spec``: those already up where they match, more where more are useful."""
        capacity = max(1, int(self._info["cpus"] // self.cpus_per_worker))
        count = max(1, min(self.workers or capacity, capacity, items))
        loaded = pickle.dumps((config, spec))
        if loaded != self._loaded:
            for actor in self._actors:
                ray.kill(actor, no_restart=True)
            self._actors, self._loaded = [], loaded
        if len(self._actors) >= count:
            return self._actors
        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if spec is not None and spec.resolved() == "hf" and self._info["gpus"] >= 1 else 0.0
        worker = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=gpus, max_restarts=-1,
                            max_task_retries=0)(_Worker)
        actors = [*self._actors, *(worker.remote(config, spec, self.cpus_per_worker)
                                   for _ in range(count - len(self._actors)))]
        try:
            self.pids = ray.get([actor.pid.remote() for actor in actors], timeout=START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise AffectReasonError(f"Ray workers did not start within {START_TIMEOUT_S:g} s (cluster "
                                    f"resources: {ray.cluster_resources()})") from None
        except ray.exceptions.RayError as exc:
            raise AffectReasonError(f"Ray workers could not start: {_cause(exc)}") from None
        self._info.update(workers=count, cpus_per_worker=self.cpus_per_worker, gpus_per_worker=gpus,
                          tries=self.tries)
        self._actors = actors
        return actors


def _cause(exc: Exception) -> str:
    """The user's error inside a Ray error (e.g. a missing model raised while a worker loads it), as its last line
    says it: ``affectreason.models.hub.ModelMissing: ...`` -> ``ModelMissing: ...``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return re.sub(r"^(?:\w+\.)+(\w+): ", r"\1: ", lines[-1]) if lines else type(exc).__name__


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc").is_dir() else []:
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _check_reachable(address: str) -> None:
    """A usage error unless something listens at ``address`` (``auto`` is Ray's to find); Ray itself would retry
    for a minute and then print a traceback."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray {address!r}: expected local, auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5.0).close()
    except OSError as exc:
        raise UsageError(f"--ray {address}: nothing answers there ({exc.strerror or exc}); start a cluster with "
                         "`ray start --head`, or use --ray local") from None
