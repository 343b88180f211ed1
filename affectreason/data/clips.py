"""Your own clips: cue extraction for every record with a media file, through the resumable cue batch.

Cues go to ``OUT/cues.jsonl`` as they finish (``affectreason.batch.extract``), so an
interrupted build resumes where it stopped; a clip that cannot be read becomes an issue naming it and
the other clips go on. A transcript from the labels file is used as given (no ASR); a same-stem
``.srt``/``.vtt``/``.txt`` or OpenFace ``.csv`` beside a clip is picked up as ``affectreason cues`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from affectreason.data.mapping import Draft
from affectreason.data.recipe import CueSpec
from affectreason.data.record import Issue
from affectreason.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES
from affectreason.schema import Cues


def media_kind(path: str) -> str:
    """LLaMA-Factory's media column for a file: images, audios or videos.

    >>> media_kind("a/b.PNG"), media_kind("x.wav"), media_kind("clip.mp4")
    ('images', 'audios', 'videos')
    """
    suffix = Path(path).suffix.lower()
    return "images" if suffix in IMAGE_SUFFIXES else "audios" if suffix in AUDIO_SUFFIXES else "videos"


def extract_cues(drafts: list[Draft], out: Path, spec: CueSpec,
                 on_done: Callable[[dict], None] | None = None) -> tuple[dict[str, Cues], list[Issue]]:
    """Cues by clip id for the drafts that name a media file, and an issue per clip that failed."""
    from affectreason.batch import Item, extract
    from affectreason.cues.pipeline import CueConfig
    from affectreason.jsonl import read_jsonl
    from affectreason.media import clips_in

    clips, issues = [], []
    for draft in drafts:
        media = draft.fields.get("media")
        if not media:
            issues.append(Issue(draft.where, "media", "no media file to extract cues from; record skipped"))
            continue
        if not Path(media).is_file():
            issues.append(Issue(draft.where, "media", f"{media} does not exist; record skipped"))
            continue
        clip = clips_in(media)[0].model_copy(update={"id": draft.id, "transcript": draft.fields.get("transcript")})
        clips.append(clip)
    if clips:
        extract([Item(clip) for clip in clips], out, CueConfig(fps=spec.fps, asr=spec.asr), spec.workers, on_done)
    wanted = {clip.id for clip in clips}
    found: dict[str, Cues] = {}
    errors: dict[str, str] = {}
    for record in read_jsonl(out, bad_lines="skip"):
        clip_id = record.get("clip", {}).get("id")
        if clip_id not in wanted:
            continue
        if "cues" in record:
            found[clip_id] = Cues.model_validate(record["cues"])
            errors.pop(clip_id, None)
        elif clip_id not in found:
            errors[clip_id] = record.get("error", "unknown error")
    issues += [Issue(next(c.path for c in clips if c.id == clip_id), "media", f"cue extraction failed: {error}")
               for clip_id, error in errors.items()]
    return found, issues
