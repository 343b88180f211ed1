"""What the demo page does with a clip, without the page: check it, explain it, keep and delete its files.

A job takes one upload (or the bundled example) through the same path as ``affectreason explain CLIP``:
``batch.items_in`` -> ``batch.explain_one`` (cues first, then the explanation from those cues, so the page can say
which step it is on) with a reasoner loaded once at startup, then ``cues.plot.plot_cues`` and the
``{cues, explanation}`` JSON that ``explain --json`` prints. Every file a job makes lives in its own folder under
one private temporary root; the upload itself is moved there at once (the web framework's copy is gone before any
decoding starts), so deleting a job deletes all of it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.backends.load import BackendSpec, load_reasoner
from affectreason.batch import Item, Result, explain_one, items_in
from affectreason.cues.pipeline import CueConfig
from affectreason.errors import AffectReasonError, UsageError
from affectreason.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, MediaInfo, probe
from affectreason.reason.explain import Reasoner, RulesReasoner

Progress = Callable[[float, str], None]
JOBS = "jobs"


class UploadRejected(AffectReasonError, ValueError):
    """An upload the demo does not take (type, size, duration, unreadable); the message says which limit."""


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n < 2**30 else f"{n / 2**30:.1f} GB"


@dataclass(frozen=True)
class Limits:
    """What one upload may be."""

    max_bytes: int = 50 * 2**20
    max_duration_s: float = 120.0
    suffixes: frozenset[str] = VIDEO_SUFFIXES | AUDIO_SUFFIXES | IMAGE_SUFFIXES

    def describe(self) -> str:
        """One line for the page: the types, size and length it takes."""
        return (f"video ({', '.join(sorted(VIDEO_SUFFIXES & self.suffixes))}), audio "
                f"({', '.join(sorted(AUDIO_SUFFIXES & self.suffixes))}) or image "
                f"({', '.join(sorted(IMAGE_SUFFIXES & self.suffixes))}); up to {_mb(self.max_bytes)} and "
                f"{self.max_duration_s:g} s")


def check_upload(path: Path, limits: Limits, name: str | None = None) -> MediaInfo:
    """The clip's media info, or ``UploadRejected`` saying which limit it breaks (named by ``name``, the file name
    the user gave, never the server's path)."""
    name = name or path.name
    suffix = path.suffix.lower()
    if suffix not in limits.suffixes:
        raise UploadRejected(f"{name}: {suffix or 'a file without an extension'} is not a type this demo reads; "
                             f"upload a {limits.describe()}")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise UploadRejected(f"{name}: {_mb(size)} is larger than this demo takes ({_mb(limits.max_bytes)}, "
                             "affectreason demo --max-mb)")
    try:
        info = probe(path)
    except AffectReasonError as exc:
        raise UploadRejected(str(exc).replace(str(path), name)) from None
    if info.duration_s is not None and info.duration_s > limits.max_duration_s:
        raise UploadRejected(f"{name}: the clip is {info.duration_s:.1f} s long; this demo takes clips up to "
                             f"{limits.max_duration_s:g} s (affectreason demo --max-duration)")
    return info


@dataclass
class Backend:
    """One reasoner the page offers, loaded once."""

    key: str
    label: str
    reasoner: Reasoner


def _label(kind: str, spec: BackendSpec) -> str:
    if kind == "rules":
        return "rules (cue-grounded engine, no weights)"
    what = Path(spec.model).name if spec.model else spec.server_model or spec.endpoint
    return f"{kind} ({what}{' + ' + Path(spec.adapter).name if spec.adapter else ''})"


def load_backends(spec: BackendSpec, note: Callable[[str], None] | None = None) -> list[Backend]:
    """The configured backend (loaded as ``explain`` loads it), then the rules engine when that is not it: the
    page offers these and nothing else."""
    kind = spec.resolved()
    first = Backend(kind, _label(kind, spec), load_reasoner(spec, note))
    return [first] if kind == "rules" else [first, Backend("rules", _label("rules", spec), RulesReasoner())]


@dataclass
class JobOutput:
    """What a job made: the explained clip, the media kind, the cue plot and the JSON download."""

    result: Result
    kind: str
    clip: Path
    plot: Path
    json: Path
    seconds: float
    backend: str


@dataclass
class Explainer:
    """Runs jobs with the reasoners and cue settings chosen at startup."""

    backends: list[Backend]
    cues: CueConfig = field(default_factory=CueConfig)
    limits: Limits = field(default_factory=Limits)

    def backend(self, key: str | None) -> Backend:
        """The backend named ``key`` (its key or label; None: the first)."""
        if key is None:
            return self.backends[0]
        for backend in self.backends:
            if key in (backend.key, backend.label):
                return backend
        raise UsageError(f"backend {key!r} is not configured here; this demo runs "
                         f"{', '.join(b.key for b in self.backends)}")

    def run(self, clip: Path, name: str, transcript: str | None, backend: str | None, job: Path,
            progress: Progress | None = None) -> JobOutput:
        """Explain ``clip`` (already in its job folder ``job``); ``name`` is the file name the user gave."""
        say = progress or (lambda fraction, what: None)
        start = time.perf_counter()
        chosen = self.backend(backend)
        say(0.05, "checking the upload")
        info = check_upload(clip, self.limits, name)
        item = items_in(clip, (transcript or "").strip() or None)[0]
        say(0.15, "cues: face Action Units, voice, words")
        try:
            cues = explain_one(item, self.cues, None).cues
            say(0.6, f"reasoning: {chosen.label}")
            result = explain_one(Item(item.clip, cues), self.cues, chosen.reasoner)
        except AffectReasonError as exc:
            raise type(exc)(str(exc).replace(str(clip), name)) from None
        say(0.85, "drawing the cue plot")
        from affectreason.cues.plot import plot_cues

        plot = plot_cues(result.clip, result.cues, job / "cues.png")
        out = job / f"{result.clip.id}.explained.json"
        out.write_text(json.dumps(download(result), ensure_ascii=False, indent=2), encoding="utf-8")
        say(1.0, "done")
        return JobOutput(result, info.kind, clip, plot, out, time.perf_counter() - start, chosen.label)


def download(result: Result) -> dict:
    """The JSON the page offers: ``{cues, explanation}``, as ``affectreason explain --json`` prints it."""
    return {"cues": result.cues.model_dump(mode="json"), "explanation": result.explanation.model_dump(mode="json")}


class Workspace:
    """The one private temporary folder of a demo server: the web framework's uploads and one folder per job.

    Jobs belong to a browser session: ``release(session)`` deletes them (the page was closed or reloaded);
    ``sweep()`` deletes jobs and stray uploads older than ``keep_s`` (pages left open, uploads never run);
    ``close()`` deletes the whole folder (the server stops).
    """

    def __init__(self, keep_s: float = 1800.0, parent: str | Path | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="affectreason-demo-", dir=parent)).resolve()  # mode 0700
        self.keep_s = keep_s
        self._jobs: dict[str, list[Path]] = {}
        self._lock = threading.Lock()

    def new_job(self, session: str | None, upload: Path, name: str, keep_source: bool = False) -> Path:
        """A fresh job folder holding the clip as ``name``: an upload is moved in (nothing of it is left where
        it was); ``keep_source`` copies instead (the bundled example)."""
        if not keep_source and not Path(upload).resolve().is_relative_to(self.root):
            raise UsageError(f"{name}: not an upload of this demo")  # never move a file from anywhere else
        job = self.root / JOBS / uuid.uuid4().hex
        job.mkdir(parents=True)
        clip = job / (Path(name).name or "clip")
        if keep_source:
            shutil.copyfile(upload, clip)
        else:
            shutil.move(str(upload), clip)
            self._drop_empty(upload.parent)
        with self._lock:
            self._jobs.setdefault(session or "", []).append(job)
        self._drop_placeholders()
        return clip

    def _drop_empty(self, folder: Path) -> None:
        if folder.resolve() != self.root and folder.resolve().is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                pass

    def discard(self, path: Path) -> None:
        """Delete an upload that will not become a job (rejected before it was moved)."""
        path = Path(path)
        if path.resolve().is_relative_to(self.root):
            path.unlink(missing_ok=True)
            self._drop_empty(path.parent)

    def drop_job(self, clip: Path) -> None:
        """Delete one job folder (its clip failed: nothing of it is shown)."""
        job = Path(clip).parent
        with self._lock:
            for jobs in self._jobs.values():
                if job in jobs:
                    jobs.remove(job)
        shutil.rmtree(job, ignore_errors=True)

    def release(self, session: str | None) -> int:
        """Delete every job of a session; how many."""
        with self._lock:
            jobs = self._jobs.pop(session or "", [])
        for job in jobs:
            shutil.rmtree(job, ignore_errors=True)
        self._drop_placeholders()
        return len(jobs)

    def _drop_placeholders(self) -> None:
        # Gradio's file preprocessing leaves an empty named temporary file in its cache folder for every call
        for entry in self.root.glob("tmp*"):
            if entry.is_file() and entry.stat().st_size == 0:
                entry.unlink(missing_ok=True)

    def sweep(self, now: float | None = None) -> int:
        """Delete jobs and uploads older than ``keep_s``; how many entries went."""
        now = time.time() if now is None else now
        gone = 0
        entries = [p for p in self.root.iterdir() if p.name != JOBS] if self.root.is_dir() else []
        jobs = self.root / JOBS
        entries += list(jobs.iterdir()) if jobs.is_dir() else []
        for entry in entries:
            try:
                age = now - entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > self.keep_s:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                gone += 1
        with self._lock:
            for session, kept in list(self._jobs.items()):
                self._jobs[session] = [j for j in kept if j.exists()]
        return gone

    def files(self) -> list[Path]:
        """Every file under the root (what a test or an operator can check is gone)."""
        return sorted(p for p in self.root.rglob("*") if p.is_file()) if self.root.is_dir() else []

    def close(self) -> None:
        """Delete everything."""
        shutil.rmtree(self.root, ignore_errors=True)
