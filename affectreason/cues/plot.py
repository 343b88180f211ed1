"""One figure of a clip's cues: AU timelines, pitch and loudness, words on the time axis, the apex face and
the expression classifier's mean probabilities.

People look at this before they trust a label, so it shows the measurements behind the cues (the
pitch contour and loudness are recomputed from the audio; the face crop is the apex frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectreason.cues.au_mapping import AU_NAMES
from affectreason.cues.voice import contours
from affectreason.media import frames_at, read_audio
from affectreason.schema import Clip, Cues

TOP_AUS = 5


def _apex_crop(clip: Clip, cues: Cues, fps: float) -> np.ndarray | None:
    if cues.apex_t is None:
        return None
    frame = next((f for f in cues.frames if f.t == cues.apex_t), None)
    if frame is None or frame.main_face_box is None:
        return None
    found = frames_at(clip.path, fps, [cues.apex_t])
    if not found:
        return None
    image = found[0]
    h, w = image.shape[:2]
    x, y, bw, bh = frame.main_face_box
    pad = 0.15
    x0, y0 = int(max(0, (x - pad * bw) * w)), int(max(0, (y - pad * bh) * h))
    x1, y1 = int(min(w, (x + bw * (1 + pad)) * w)), int(min(h, (y + bh * (1 + pad)) * h))
    return image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else None


def plot_cues(clip: Clip, cues: Cues, out: str | Path) -> Path:
    """Write the figure as PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 7), constrained_layout=True)
    grid = fig.add_gridspec(3, 4)
    ax_au, ax_voice, ax_words = (fig.add_subplot(grid[i, :3]) for i in range(3))
    ax_face = fig.add_subplot(grid[:2, 3])
    ax_expr = fig.add_subplot(grid[2, 3])
    end = cues.duration_s or (cues.frames[-1].t if cues.frames else 1.0)

    peaks = sorted(cues.au_events, key=lambda e: -e.peak)[:TOP_AUS]
    times = [f.t for f in cues.frames]
    for event in peaks:
        ax_au.plot(times, [f.aus.get(event.au, np.nan) for f in cues.frames], marker=".",
                   label=f"{event.au} {AU_NAMES.get(event.au, '')}")
    if cues.apex_t is not None:
        ax_au.axvline(cues.apex_t, color="k", linestyle="--", linewidth=1, label="apex")
    ax_au.set(ylim=(0, 5.2), ylabel="AU intensity (0-5)", title=f"{cues.clip_id}: facial Action Units")
    if peaks or cues.apex_t is not None:
        ax_au.legend(loc="upper right", fontsize=8)
    if not cues.frames:
        ax_au.text(0.5, 0.5, "no video", ha="center", transform=ax_au.transAxes)

    audio, _ = read_audio(clip.path)
    if audio is not None and cues.prosody is not None:
        c = contours(audio)
        ax_voice.plot(c.f0_t, np.where(c.f0 > 0, c.f0, np.nan), color="tab:blue", label="F0 (Hz)")
        ax_voice.set_ylabel("pitch (Hz)", color="tab:blue")
        twin = ax_voice.twinx()
        db = c.db
        floor = db.max() - 50  # Praat reports digital silence as -300 dB; keep the axis on the speech
        twin.plot(c.db_t, np.where(db > floor, db, np.nan), color="tab:orange", alpha=0.7)
        twin.set(ylim=(floor, db.max() + 5))
        twin.set_ylabel("loudness (dB)", color="tab:orange")
        ax_voice.set_title("voice: " + ", ".join(cues.prosody.descriptors))
    else:
        ax_voice.text(0.5, 0.5, "no usable audio", ha="center", transform=ax_voice.transAxes)

    ax_words.set(ylim=(0, 1), yticks=[], xlabel="time (s)", title="transcript")
    if cues.transcript and cues.transcript.words:
        for i, word in enumerate(cues.transcript.words):
            ax_words.text(word.start, 0.3 + 0.4 * (i % 2), word.text, fontsize=9)
            ax_words.axvspan(word.start, word.end, color="tab:green", alpha=0.15)
    elif cues.transcript:
        ax_words.text(0.01, 0.5, cues.transcript.text[:120], transform=ax_words.transAxes)
    for ax in (ax_au, ax_voice, ax_words):
        ax.set_xlim(0, max(end, 0.1))

    crop = _apex_crop(clip, cues, cues.fps or 5.0)
    ax_face.axis("off")
    if crop is not None:
        ax_face.imshow(crop)
        ax_face.set_title(f"apex face, {cues.apex_t:.1f} s")
    else:
        ax_face.text(0.5, 0.5, "no face", ha="center")
    if cues.expression is not None:
        labels = list(cues.expression.mean)[::-1]  # highest on top
        ax_expr.barh(labels, [cues.expression.mean[label] for label in labels], color="tab:purple")
        ax_expr.set(xlim=(0, 1), xlabel="mean probability",
                    title=f"expression classifier ({cues.expression.frames} frames)")
        ax_expr.tick_params(axis="y", labelsize=8)
    else:
        ax_expr.axis("off")
        ax_expr.text(0.5, 0.5, "no expression-classifier reading", ha="center", fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
