"""The cue block of a record's prompt, in the sections ``affectreason.cues.textualize`` writes.

With measured cues (clips run through the cue pipeline) the block is ``textualize(cues)``. Corpora
that ship cues as words instead (MERR's peak-frame AUs and visual/audio priors, FEA-20K's AU lists)
get the same ``[Face]`` / ``[Voice]`` / ``[Speech]`` sections from those words, so one prompt format
serves every source.
"""

from __future__ import annotations

import re

from affectreason.cues.au_mapping import AU_NAMES
from affectreason.cues.textualize import textualize
from affectreason.schema import Cues, Transcript

AU_TOKEN = re.compile(r"^(?:AU)?\s*0*(\d{1,2})(?:_[rc])?$", re.IGNORECASE)
NO_CUES = "[No cues] nothing was measured for this clip."


def normalize_au(name: object) -> str | None:
    """``AU01``-style id of an AU written as ``AU1``, ``AU01_r``, ``au12`` or ``12``; None if it is not one.

    >>> normalize_au("AU1"), normalize_au("AU12_r"), normalize_au(6), normalize_au("smile")
    ('AU01', 'AU12', 'AU06', None)
    """
    match = AU_TOKEN.match(str(name).strip())
    if not match or not 1 <= int(match.group(1)) <= 45:
        return None
    return f"AU{int(match.group(1)):02d}"


def parse_aus(value: object) -> tuple[list[tuple[str, float | None]], list[str]]:
    """(AUs with intensity if given, unreadable items) from a list, an AU -> value object or 'AU1, AU12'.

    >>> parse_aus({"AU12": 2.5, "AU6": 1})
    ([('AU12', 2.5), ('AU06', 1.0)], [])
    >>> parse_aus("AU1, AU2, brows")
    ([('AU01', None), ('AU02', None)], ['brows'])
    """
    if isinstance(value, dict):
        items = list(value.items())
    else:
        raw = value if isinstance(value, list | tuple) else re.split(r"[,;]", str(value))
        items = [(item, None) for item in raw if str(item).strip()]
    aus, bad = [], []
    for name, intensity in items:
        au = normalize_au(name)
        if au is None:
            bad.append(str(name).strip())
            continue
        try:
            aus.append((au, float(intensity) if intensity is not None else None))
        except (TypeError, ValueError):
            aus.append((au, None))
    return aus, bad


def _words(value: object) -> str:
    items = value if isinstance(value, list | tuple) else [value]
    return ", ".join(str(v).strip() for v in items if str(v).strip())


def described_cues(fields: dict) -> tuple[str, list[str], list[str]]:
    """(cue block, cue modalities, unreadable AU items) from a record's word-level cue fields."""
    sections, modalities, bad = [], [], []
    face_parts = []
    if fields.get("aus") is not None:
        aus, bad = parse_aus(fields["aus"])
        if aus:
            face_parts.append("Active AUs: " + "; ".join(
                f"{au} {AU_NAMES.get(au, '')}".strip() + (f" {value:.1f}/5" if value is not None else "")
                for au, value in aus))
    if fields.get("face"):
        face_parts.append("expression: " + _words(fields["face"]))
    if face_parts:
        sections.append("[Face] " + "; ".join(face_parts) + ".")
        modalities.append("face")
    if fields.get("voice"):
        sections.append("[Voice] " + _words(fields["voice"]).rstrip(".") + ".")
        modalities.append("voice")
    if fields.get("transcript"):
        sections.append(f'[Speech] (given) "{fields["transcript"]}"')
        modalities.append("text")
    if fields.get("question"):
        sections.append(f"[Question] {fields['question']}")
    return "\n".join(sections) or NO_CUES, modalities, bad


def transcript_cues(clip_id: str, transcript: str | None) -> Cues:
    """Cues of a clip known only by what is said (MELD, CMU-MOSI transcripts)."""
    return Cues(clip_id=clip_id, transcript=Transcript(text=transcript, source="given") if transcript else None)


def measured_cues(cues: Cues) -> tuple[str, list[str]]:
    """(cue block, cue modalities) of extracted cues."""
    modalities = []
    if any(f.faces and f.aus for f in cues.frames):
        modalities.append("face")
    if cues.prosody is not None:
        modalities.append("voice")
    if cues.transcript is not None and cues.transcript.text.strip():
        modalities.append("text")
    return textualize(cues) or NO_CUES, modalities
