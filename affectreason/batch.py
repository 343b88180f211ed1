"""The one runner: items -> cues (cached) -> reasoner -> grounded Explanation, for one clip, a folder, a cues
JSONL, a served model and an offline vLLM engine alike.

An item is a clip (with its cues when they are already known). Every run writes one JSONL line per item as it
finishes: ``{"clip", "cues", "explanation"}`` (``{"clip", "cues"}`` when only cues are asked for) or
``{"clip", "error"}``; a re-run skips the items already done and retries the failed ones, so an interrupted
batch resumes where it stopped and a bad clip never costs the others their results. Beside the output,
``OUT.manifest.json`` says what produced it (backend, model, adapter, prompt name and version, cue settings,
affectreason version, and each run's counts).

How the reasoning runs follows the backend (``BackendSpec.batching``):
- ``processes``: local models and rules; worker processes each load the cue extractor and the reasoner once and
  take an item from decoding to explanation;
- ``threads``: a served model; cues first (worker processes, cached in ``OUT.cues.jsonl`` so a re-run after a
  server failure decodes nothing again), then ``concurrency`` requests in flight;
- ``engine``: a vLLM engine; cues first (cached as above), then one ``explain_many`` batch.

A ``Pool`` (``affectreason.cluster.RayPool``) takes the place of the local worker processes, and ``shard`` keeps
only the items of one ``--shard K/N``; both are recorded in the manifest.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import affectreason
from affectreason.backends.load import BackendSpec, load_reasoner
from affectreason.cues.pipeline import CueConfig, CueExtractor
from affectreason.errors import AffectReasonError, UsageError
from affectreason.jsonl import append_line, drop_torn_tail, iter_jsonl, read_jsonl
from affectreason.media import clips_in
from affectreason.reason.explain import Reasoner, explain_cues
from affectreason.schema import Clip, Cues, Explanation
from affectreason.shard import Shard
from affectreason.textfile import write_atomic

OnDone = Callable[[dict], None]


@dataclass
class Item:
    """One clip to work on: its cues when known, or why there are none."""

    clip: Clip
    cues: Cues | None = None
    error: str | None = None


@dataclass
class Result:
    """What one item became."""

    clip: Clip
    cues: Cues
    explanation: Explanation | None = None

    def record(self) -> dict:
        """The output line of this item."""
        record = {"clip": self.clip.model_dump(mode="json"), "cues": self.cues.model_dump(mode="json")}
        if self.explanation is not None:
            record["explanation"] = self.explanation.model_dump(mode="json")
        return record


@dataclass
class BatchResult:
    """What a batch did: counts, and the ids of the items that failed with their errors."""

    out: Path
    ok: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """``{"skipped", "ok", "failed"}`` as numbers."""
        return {"skipped": self.skipped, "ok": self.ok, "failed": len(self.failed)}

    def add(self, record: dict) -> None:
        """Count one finished record."""
        if "error" in record:
            self.failed[record["clip"]["id"]] = record["error"]
        else:
            self.ok += 1


class Pool(Protocol):
    """Workers elsewhere (a Ray cluster) that take the items a batch would give its local worker processes."""

    def map(self, todo: list[Item], config: CueConfig, spec: BackendSpec | None, emit: OnDone) -> None:
        """Every item of ``todo`` as a record (``_safe_record``), passed to ``emit`` here as each finishes."""

    def describe(self) -> dict:
        """The workers as a manifest records them."""


def cues_cache(out: str | Path) -> Path:
    """Where the cues of a run writing ``out`` are kept (threads and engine batches)."""
    out = Path(out)
    return out.with_name(out.stem + ".cues.jsonl")


def manifest_path(out: str | Path) -> Path:
    """The manifest beside an output file."""
    out = Path(out)
    return out.with_name(out.stem + ".manifest.json")


def read_items(path: str | Path) -> list[Item]:
    """Items from a cues JSONL (``{"clip": ..., "cues": ...}`` or ``{"clip": ..., "error": ...}`` per line).

    A cut-off last line (an interrupted run) is skipped and that clip redone; the last record of a clip wins
    (a cache appends retries after failures).
    """
    items = []
    for lineno, record in iter_jsonl(path, bad_lines="skip_last"):
        try:
            clip = Clip.model_validate(record["clip"])
            item = Item(clip, Cues.model_validate(record["cues"])) if "cues" in record else \
                Item(clip, error=f"cues: {record.get('error', 'missing')}")
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{path}:{lineno}: not a cues record ({type(exc).__name__}: {exc})") from None
        items.append(item)
    return list({item.clip.id: item for item in items}.values())


def items_in(path: str | Path, transcript: str | None = None, subtitles: str | Path | None = None,
             openface: str | Path | None = None) -> list[Item]:
    """The items of a clip, a folder of clips or a cues JSONL; ``transcript``/``subtitles``/``openface`` apply
    to a single clip."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return read_items(path)
    clips = clips_in(path)
    if len(clips) == 1 and not path.is_dir():
        clip = clips[0]
        clips = [clip.model_copy(update={"transcript": transcript,
                                         "subtitles": str(subtitles) if subtitles else clip.subtitles,
                                         "openface_csv": str(openface) if openface else clip.openface_csv})]
    return [Item(clip) for clip in clips]


def done_ids(out: str | Path) -> set[str]:
    """Ids of the items with a successful record in an existing output (errors are retried)."""
    return {r["clip"]["id"] for r in read_jsonl(out, bad_lines="skip")
            if "error" not in r and isinstance(r.get("clip"), dict) and "id" in r["clip"]}


def process(item: Item, extractor: CueExtractor | None, reasoner: Reasoner | None) -> Result:
    """One item: its cues (extracted unless known), then, with a reasoner, its grounded explanation. Raises on a
    clip that cannot be read; a batch records that instead."""
    if item.cues is None and item.error is not None:
        raise AffectReasonError(f"{item.clip.id}: {item.error}")
    cues = item.cues if item.cues is not None else (extractor or CueExtractor()).extract(item.clip)
    if reasoner is None:
        return Result(item.clip, cues)
    # a cues JSONL may name media that is not on this machine: the model then sees the cue text only
    clip = item.clip if Path(item.clip.path).is_file() else None
    return Result(item.clip, cues, explain_cues(cues, reasoner, clip))


def _error_record(item: Item, exc: BaseException | None = None) -> dict:
    error = item.error if exc is None else f"{type(exc).__name__}: {exc}"
    return {"clip": item.clip.model_dump(mode="json"), "error": error or "no cues"}


def _safe_record(item: Item, extractor: CueExtractor | None, reasoner: Reasoner | None) -> dict:
    if item.cues is None and item.error is not None:
        return _error_record(item)
    try:
        return process(item, extractor, reasoner).record()
    except Exception as exc:  # a bad clip is recorded and the batch goes on
        return _error_record(item, exc)


# --- worker processes ----------------------------------------------------------------------------------------

_extractor: CueExtractor | None = None
_reasoner: Reasoner | None = None


def _watch_parent(parent: int) -> None:
    # A worker whose parent died (SIGKILL, OOM killer) is re-parented; it exits rather than run on as an orphan.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _init_worker(config: CueConfig, spec: BackendSpec | None, parent: int) -> None:
    global _extractor, _reasoner
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _extractor = CueExtractor(config)
    _reasoner = load_reasoner(spec) if spec is not None else None


def _worker_record(item: Item) -> dict:
    return _safe_record(item, _extractor, _reasoner)


def _in_processes(todo: list[Item], handle, result: BatchResult, config: CueConfig, spec: BackendSpec | None,
                  workers: int, on_done: OnDone | None) -> None:
    # spawn, not fork: MediaPipe and CTranslate2 start threads that a forked child inherits broken.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context, initializer=_init_worker,
                             initargs=(config, spec, os.getpid())) as pool:
        futures = {pool.submit(_worker_record, item): item for item in todo}
        for future in as_completed(futures):
            try:
                record = future.result()
            except Exception as exc:  # a worker died (e.g. killed for memory): record it, keep going
                record = {"clip": futures[future].clip.model_dump(mode="json"),
                          "error": f"worker failed: {type(exc).__name__}: {exc}"}
            _finish(record, handle, result, on_done)


def _finish(record: dict, handle, result: BatchResult, on_done: OnDone | None) -> None:
    append_line(handle, record)
    result.add(record)
    if on_done:
        on_done(record)


# --- the runner ----------------------------------------------------------------------------------------------

def extract(items: list[Item], out: str | Path, config: CueConfig | None = None, workers: int = 2,
            on_done: OnDone | None = None, pool: Pool | None = None) -> BatchResult:
    """Cues of every item not yet in ``out`` (resumable JSONL)."""
    return run(items, out, config, None, workers=workers, on_done=on_done, pool=pool)


def with_cues(items: list[Item], out: str | Path, config: CueConfig | None, workers: int,
              on_cue: OnDone | None, pool: Pool | None = None) -> list[Item]:
    """``items`` with their cues, those not known extracted into ``cues_cache(out)`` (resumable)."""
    missing = [item for item in items if item.cues is None and item.error is None]
    if not missing:
        return items
    cache = cues_cache(out)
    extract(missing, cache, config, workers, on_cue, pool)
    found = {item.clip.id: item for item in read_items(cache)}
    return [found.get(item.clip.id, Item(item.clip, error="cues: not extracted"))
            if item.cues is None and item.error is None else item for item in items]


def run(items: list[Item], out: str | Path, config: CueConfig | None = None, spec: BackendSpec | None = None,
        reasoner: Reasoner | None = None, workers: int = 2, on_done: OnDone | None = None,
        on_cue: OnDone | None = None, source: str | Path | None = None, pool: Pool | None = None,
        shard: Shard | None = None) -> BatchResult:
    """Cues (and, with ``spec`` or ``reasoner``, explanations) of every item not yet in ``out``, written as they
    finish.

    Without ``reasoner``, ``spec`` says how the batch runs: processes load their own reasoner in each worker,
    threads and engine batches load it here once. A loaded ``reasoner`` runs here: with threads (a server), as
    one engine batch (vLLM) or one item at a time (anything else). ``on_cue`` sees each cue record of a
    cue-first batch. ``pool`` runs the items of local worker processes elsewhere; ``shard`` keeps its own items.
    """
    config = config or CueConfig()
    if shard is not None:
        items = [item for item in items if shard.holds(item.clip.id)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torn = drop_torn_tail(out)
    finished = done_ids(out)
    todo = [item for item in items if item.clip.id not in finished]
    result = BatchResult(out, skipped=len(items) - len(todo), warnings=[torn] if torn else [])
    if reasoner is not None:
        batching = getattr(reasoner, "batching", "inline")
    else:
        batching = spec.batching() if spec is not None else "processes"
    started = _now()
    if todo and batching != "processes":
        todo = with_cues(todo, out, config, workers, on_cue, pool)
        reasoner = reasoner or load_reasoner(spec)
    with out.open("a", encoding="utf-8") as handle:
        if batching == "processes" and todo and pool is not None:
            pool.map(todo, config, spec, lambda record: _finish(record, handle, result, on_done))
        elif batching == "processes" and todo:
            _in_processes(todo, handle, result, config, spec, workers, on_done)
        elif batching == "inline":
            for item in todo:
                _finish(_safe_record(item, None, reasoner), handle, result, on_done)
        elif batching == "threads" and todo:
            concurrency = max(1, reasoner.config.concurrency)
            with ThreadPoolExecutor(max_workers=concurrency) as threads:
                futures = [threads.submit(_safe_record, item, None, reasoner) for item in todo]
                for future in as_completed(futures):
                    _finish(future.result(), handle, result, on_done)
        elif todo:
            _engine_batch(todo, handle, result, reasoner, on_done)
    write_manifest(out, spec, config, result, started, source, reasoner, pool, shard)
    return result


def _engine_batch(todo: list[Item], handle, result: BatchResult, reasoner, on_done: OnDone | None) -> None:
    from affectreason.reason.grounding import ground
    from affectreason.reason.messages import example_observations

    ready = [item for item in todo if item.cues is not None]
    explanations = reasoner.explain_many([item.cues for item in ready], [item.clip for item in ready]) if ready else []
    for item, explanation in zip(ready, explanations, strict=True):
        if isinstance(explanation, Exception):  # this clip's media could not be read: its own error record
            _finish(_error_record(item, explanation), handle, result, on_done)
            continue
        explanation.grounding = ground(explanation.observations, item.cues, example_observations(explanation.prompt))
        _finish(Result(item.clip, item.cues, explanation).record(), handle, result, on_done)
    for item in todo:
        if item.cues is None:
            _finish(_error_record(item), handle, result, on_done)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _described(spec: BackendSpec | None, reasoner: Reasoner | None) -> tuple[dict | None, str | None]:
    """(backend, prompt) as a manifest records them."""
    if spec is not None:
        return spec.describe(), spec.prompt()
    if reasoner is None:
        return None, None
    from affectreason.reason.messages import prompt_id

    client = getattr(reasoner, "client", None)
    model = getattr(client, "model", None) or getattr(reasoner, "model", None) or getattr(
        getattr(reasoner, "lm", None), "name", None)
    prompt = getattr(reasoner, "prompt", None)
    return {"name": reasoner.name, "model": model}, prompt_id(prompt) if prompt else None


def write_manifest(out: Path, spec: BackendSpec | None, config: CueConfig, result: BatchResult, started: str,
                   source: str | Path | None = None, reasoner: Reasoner | None = None, pool: Pool | None = None,
                   shard: Shard | None = None) -> Path:
    """``OUT.manifest.json``: what produced the output, with this run appended to the runs before it (and the
    cluster it ran on, if any)."""
    path = manifest_path(out)
    runs = []
    if path.is_file():
        try:
            runs = json.loads(path.read_text(encoding="utf-8")).get("runs", [])
        except (json.JSONDecodeError, AttributeError):
            runs = []  # a manifest cut off by a killed run: start the history again
    backend, prompt = _described(spec, reasoner)
    manifest = {
        "output": out.name,
        "input": str(source) if source is not None else None,
        "affectreason_version": affectreason.__version__,
        "backend": backend,
        "prompt": prompt,
        "cues": asdict(config),
        **({"shard": str(shard)} if shard is not None else {}),
        "runs": [*runs, {"started": started, "finished": _now(), **result.counts(),
                         **({"cluster": pool.describe()} if pool is not None else {})}],
    }
    return write_atomic(path, json.dumps(manifest, indent=2, ensure_ascii=False))


def explain_one(item: Item, config: CueConfig | None, reasoner: Reasoner | None) -> Result:
    """One item through the same path as a batch, errors raised (for ``explain CLIP`` / ``cues CLIP``)."""
    return process(item, CueExtractor(config or CueConfig()), reasoner)
