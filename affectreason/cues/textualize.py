"""Cues -> a compact text block for an LLM prompt (the textualized-cue input of the reasoning models).

Sections in priority order: face (active AUs with peak intensity and onset-apex-offset times), the
expression classifier (mean probabilities of its three likeliest labels, and its strongest reading), voice
(figures with their descriptors), speech (transcript, then word times), warnings, provenance. When the
block exceeds ``max_tokens`` (estimated as characters / 4, the usual English ratio for BPE tokenizers),
the least important details go first: provenance, word times, weaker AUs.
"""

from __future__ import annotations

from affectreason.cues.au_mapping import AU_NAMES
from affectreason.schema import Cues

CHARS_PER_TOKEN = 4


def _face(cues: Cues, max_aus: int) -> str | None:
    if not cues.frames:
        return None
    seen = sum(1 for f in cues.frames if f.faces)
    if not seen:
        return f"[Face] no face detected in {len(cues.frames)} sampled frames."
    head = f"[Face] main face in {seen}/{len(cues.frames)} frames"
    if cues.apex_t is not None:
        head += f"; apex at {cues.apex_t:.1f} s"
    events = sorted(cues.au_events, key=lambda e: -e.peak)[:max_aus]
    if not events:
        return head + "; no Action Unit above intensity 1 (neutral face)."
    parts = [f"{e.au} {AU_NAMES.get(e.au, '')} {e.peak:.1f}/5 ({e.onset:.1f}-{e.offset:.1f} s, apex {e.apex:.1f} s)"
             for e in events]
    return head + ". Active AUs: " + "; ".join(parts) + "."


def _expression(cues: Cues) -> str | None:
    e = cues.expression
    if e is None:
        return None
    likeliest = ", ".join(f"{label} {p:.2f}" for label, p in list(e.mean.items())[:3])
    return (f"[Face] expression classifier (mini-Xception, FER-2013) over {e.frames} frames: {likeliest}; "
            f"strongest {e.apex_label} {e.apex_probability:.2f} at {e.apex_t:.1f} s.")


def _voice(cues: Cues) -> str | None:
    p = cues.prosody
    if p is None:
        return None
    bits = []
    if p.f0_mean_hz is not None:
        pitch = f"pitch mean {p.f0_mean_hz:.0f} Hz"
        if p.f0_range_st is not None:
            pitch += f", range {p.f0_range_st:.1f} st"
        if p.f0_slope_st_per_s is not None:
            pitch += f", slope {p.f0_slope_st_per_s:+.1f} st/s"
        bits.append(pitch)
    if p.intensity_mean_db is not None:
        bits.append(f"loudness {p.intensity_mean_db:.0f} dB")
    if p.speech_rate_syl_per_s is not None:
        pauses = f", {p.pause_count} pauses ({p.pause_total_s or 0:.1f} s)" if p.pause_count is not None else ""
        bits.append(f"rate {p.speech_rate_syl_per_s:.1f} syl/s{pauses}")
    if p.hnr_db is not None:
        bits.append(f"HNR {p.hnr_db:.0f} dB, jitter {100 * (p.jitter_local or 0):.1f}%, "
                    f"shimmer {100 * (p.shimmer_local or 0):.1f}%")
    described = f" -> {', '.join(p.descriptors)}" if p.descriptors else ""
    return "[Voice] " + "; ".join(bits) + described + "."


def _speech(cues: Cues, with_times: bool) -> str | None:
    t = cues.transcript
    if t is None:
        return None
    line = f'[Speech] ({t.source}{", " + t.language if t.language else ""}) "{t.text}"'
    if with_times and t.words:
        line += " | words: " + " ".join(f"{w.text}@{w.start:.1f}" for w in t.words)
    return line


def textualize(cues: Cues, max_tokens: int = 400) -> str:
    """The cue block, trimmed to about ``max_tokens`` tokens."""
    options = [(True, True, 8), (False, True, 8), (False, False, 8), (False, False, 4), (False, False, 2)]
    text = ""
    for with_provenance, with_times, max_aus in options:
        sections = [_face(cues, max_aus), _expression(cues), _voice(cues), _speech(cues, with_times)]
        if cues.warnings:
            sections.append("[Warnings] " + "; ".join(cues.warnings) + ".")
        if with_provenance and cues.provenance:
            sections.append("[Provenance] " + "; ".join(f"{p.extractor} {p.version}" for p in cues.provenance))
        text = "\n".join(s for s in sections if s)
        if len(text) / CHARS_PER_TOKEN <= max_tokens:
            return text
    return text[: max_tokens * CHARS_PER_TOKEN]
