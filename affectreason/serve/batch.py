"""Dataset plumbing shared by ``affectreason query`` and ``explain --backend vllm``: what to reason about.

An input is a clip, a folder of clips, or a cues JSONL (``affectreason cues DIR --out cues.jsonl``). Cues
of clips are extracted here, in worker processes, into a cache file beside the output
(``OUT.cues.jsonl``), so a re-run after a failure (a server that went away) reasons again without
decoding a single frame again. A clip whose cues could not be extracted is an ``Item`` with an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from affectreason.schema import Clip, Cues


@dataclass
class Item:
    """One clip to reason about: its cues, or why there are none."""

    clip: Clip
    cues: Cues | None = None
    error: str | None = None


def read_cues_jsonl(path: str | Path) -> list[Item]:
    """Items from a cues JSONL (``{"clip": ..., "cues": ...}`` or ``{"clip": ..., "error": ...}`` per line)."""
    items = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            clip = Clip.model_validate(record["clip"])
        except json.JSONDecodeError:
            if lineno == len(lines):
                continue  # the last line of a cache cut off by an interrupted run; that clip is redone
            raise ValueError(f"{path}:{lineno}: not valid JSON") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{lineno}: not a cues record ({type(exc).__name__}: {exc})") from None
        if "cues" in record:
            items.append(Item(clip, Cues.model_validate(record["cues"])))
        else:
            items.append(Item(clip, error=f"cues: {record.get('error', 'missing')}"))
    # the last record of a clip wins: a cache file appends retries after failures
    return list({item.clip.id: item for item in items}.values())


def cues_cache(out: str | Path) -> Path:
    """Where the cues of a run writing ``out`` are kept."""
    out = Path(out)
    return out.with_name(out.stem + ".cues.jsonl")


def load_items(path: str | Path, out: str | Path, config=None, workers: int = 2,
               on_cue: Callable[[dict], None] | None = None) -> list[Item]:
    """The items of a clip, a folder of clips or a cues JSONL; clips' cues are extracted into ``cues_cache(out)``."""
    from affectreason.cues.pipeline import clips_in, extract_batch

    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return read_cues_jsonl(path)
    clips = clips_in(path)
    cache = cues_cache(out)
    extract_batch(clips, cache, config, workers, on_done=on_cue)
    found = {item.clip.id: item for item in read_cues_jsonl(cache)}
    return [found.get(clip.id, Item(clip, error="cues: not extracted")) for clip in clips]

