"""``affectreason merge``: the outputs of ``--shard 1/N .. N/N`` as one JSONL, every clip present exactly once.

Each shard's manifest says its shard and input; the merge refuses (naming the file or the clips) a shard given
twice or missing, shards of different inputs, backends, prompts or cue settings, a record in the wrong shard, and
clips of the input found in no output. Within one output the last record of a clip wins, as a resumed run appends
the retry of a failed clip after its error record; error records are kept, so a merged run reports its failures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.batch import items_in, manifest_path
from affectreason.errors import UsageError
from affectreason.jsonl import iter_jsonl, write_jsonl
from affectreason.shard import Shard, parse_shard, shard_of
from affectreason.textfile import write_atomic

AGREE = ("input", "backend", "prompt", "cues", "affectreason_version")
"""manifest fields every shard of one run shares"""


@dataclass
class MergeResult:
    """What a merge wrote: records, and the failed clips among them with their errors."""

    out: Path
    records: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def _manifest(path: Path) -> tuple[dict, Shard]:
    if not path.is_file():
        raise UsageError(f"{path}: no such output")
    where = manifest_path(path)
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise UsageError(f"{path}: its manifest {where} is missing or unreadable; merge needs the manifest each "
                         "shard's run writes") from None
    if "shard" not in manifest:
        raise UsageError(f"{path}: not a shard (its manifest has no shard); was it run with --shard K/N?")
    return manifest, parse_shard(manifest["shard"])


def _records(path: Path, shard: Shard) -> dict[str, dict]:
    records: dict[str, dict] = {}
    for lineno, record in iter_jsonl(path, bad_lines="skip_last"):
        clip_id = record.get("clip", {}).get("id") if isinstance(record.get("clip"), dict) else None
        if not isinstance(clip_id, str):
            raise UsageError(f"{path}:{lineno}: not a batch record (no clip id)")
        if not shard.holds(clip_id):
            raise UsageError(f"{path}:{lineno}: clip {clip_id!r} belongs to shard "
                             f"{shard_of(clip_id, shard.count)}/{shard.count}, not {shard}")
        records[clip_id] = record  # a retry appended after an error record replaces it
    return records


def _listed(ids, limit: int = 10) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def merge(inputs: list[Path], out: Path, source: Path | None = None) -> MergeResult:
    """Check the shard outputs ``inputs`` and write them to ``out`` (with a manifest) as one run's output.

    ``source`` (the folder or cues JSONL the shards ran over; default: the input their manifests name, where it
    is still there) is what every clip is checked against.
    """
    if not inputs:
        raise UsageError("merge needs the outputs of the shards (OUT1.jsonl OUT2.jsonl ...)")
    manifests = [(path, *_manifest(path)) for path in inputs]
    first = manifests[0][1]
    for path, manifest, _ in manifests[1:]:
        for key in AGREE:
            if manifest.get(key) != first.get(key):
                raise UsageError(f"{path} and {manifests[0][0]} differ in {key!r}: shards of one run share it")
    counts = {shard.count for _, _, shard in manifests}
    if len(counts) > 1:
        raise UsageError(f"the outputs are shards of different splits ({', '.join(f'/{n}' for n in sorted(counts))})")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for path, _, shard in manifests:
        if shard.index in seen:
            raise UsageError(f"shard {shard} given twice: {seen[shard.index]} and {path}")
        seen[shard.index] = path
    missing_shards = [f"{k}/{count}" for k in range(1, count + 1) if k not in seen]
    if missing_shards:
        raise UsageError(f"shard {', '.join(missing_shards)} missing: pass the outputs of all {count} shards")
    merged: dict[str, dict] = {}
    for path, _, shard in manifests:
        merged.update(_records(path, shard))
    source = source or (Path(first["input"]) if first.get("input") and Path(first["input"]).exists() else None)
    order = sorted(merged)
    if source is not None:
        expected = [item.clip.id for item in items_in(source)]
        absent = set(expected) - set(merged)
        if absent:
            raise UsageError(f"{len(absent)} clips of {source} are in no shard's output: {_listed(absent)}; re-run "
                             "their shards (a re-run does only the clips not yet done)")
        extra = set(merged) - set(expected)
        if extra:
            raise UsageError(f"{len(extra)} clips in the outputs are not in {source}: {_listed(extra)}")
        order = expected
    write_jsonl(out, (merged[clip_id] for clip_id in order))
    failed = {clip_id: r["error"] for clip_id, r in merged.items() if "error" in r}
    manifest = {key: value for key, value in first.items() if key not in ("shard", "output", "runs")}
    manifest |= {"output": out.name, "merged": [{"output": str(path), "shard": str(shard), "runs": m.get("runs", [])}
                                                for path, m, shard in sorted(manifests, key=lambda e: e[2].index)],
                 "counts": {"records": len(order), "failed": len(failed)}}
    write_atomic(manifest_path(out), json.dumps(manifest, indent=2, ensure_ascii=False))
    return MergeResult(out, len(order), failed)
