"""Vocal cues with Praat (parselmouth): pitch, loudness, speech rate, pauses and voice quality.

Conventions: F0 by Praat's autocorrelation pitch (10 ms steps, 60-600 Hz: with Praat's usual 75 Hz
floor a low voice, espeak-ng -p 20, measured 136 Hz instead of 85 Hz); semitones are relative to
100 Hz; intensity in dB as Praat reports it for a waveform in [-1, 1] (so it depends on recording
level); speech rate counts syllable nuclei (intensity peaks that stand >= 2 dB above the preceding
dip, are within 25 dB of the loudest frame and are voiced — the de Jong & Wempe 2009 method) per
second of speech between the first and last sound; pauses are silent stretches >= 0.25 s. A track longer
than ``WINDOW_S`` is analysed in equal windows of at most that length (Praat's analyses of the whole track cost
~43 MiB per minute of audio: 2.2 GiB for an hour) whose contours are joined; jitter, shimmer and HNR are then the
windows' values weighted by their voiced frames. A track within one window is analysed whole, as before.
Descriptors compare each figure with speaker-independent reference ranges (``REFERENCE``). Optionally,
the openSMILE eGeMAPSv02 functionals are added (``egemaps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectreason.errors import AffectReasonError
from affectreason.media import Audio
from affectreason.schema import Prosody

PITCH_FLOOR, PITCH_CEILING = 60.0, 600.0
SILENCE_DB_BELOW_MAX = 25.0
MIN_DIP_DB = 2.0
MIN_PAUSE_S = 0.25
SILENT_RMS = 1e-4  # below this the track is treated as silent (about -80 dBFS)
WINDOW_S = 300.0
# (low, high) bounds between which a figure is unremarkable, for adult speech of either sex.
REFERENCE = {
    "f0_mean_hz": (110.0, 220.0),
    "f0_range_st": (4.0, 12.0),
    "f0_slope_st_per_s": (-2.0, 2.0),
    "intensity_mean_db": (62.0, 75.0),
    "speech_rate_syl_per_s": (3.0, 5.5),
}


class SilentAudio(ValueError):
    """The track has no sound to measure."""


def semitones(hz: np.ndarray | float) -> np.ndarray | float:
    """Frequency in semitones relative to 100 Hz.

    >>> round(float(semitones(200.0)), 6)
    12.0
    """
    return 12.0 * np.log2(np.asarray(hz) / 100.0)


def _slope(t: np.ndarray, y: np.ndarray) -> float | None:
    if len(t) < 3 or np.ptp(t) == 0:
        return None
    return float(np.polyfit(t, y, 1)[0])


def syllable_nuclei(intensity_db: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Indices of syllable nuclei in an intensity contour (see module docstring)."""
    threshold = intensity_db.max() - SILENCE_DB_BELOW_MAX
    peaks = []
    dip = np.inf
    for i in range(1, len(intensity_db) - 1):
        dip = min(dip, intensity_db[i])
        is_peak = intensity_db[i] >= intensity_db[i - 1] and intensity_db[i] > intensity_db[i + 1]
        if is_peak and intensity_db[i] >= threshold and intensity_db[i] - dip >= MIN_DIP_DB and voiced[i]:
            peaks.append(i)
            dip = intensity_db[i]
    return np.array(peaks, dtype=int)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs of runs of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def describe(p: Prosody) -> list[str]:
    """Words for the figures against the reference ranges: pitch, loudness and rate always, range and
    slope when they stand out.

    >>> describe(Prosody(f0_mean_hz=240.0, f0_slope_st_per_s=3.1, intensity_mean_db=70.0, speech_rate_syl_per_s=6.0))
    ['high pitch', 'rising pitch', 'moderately loud', 'fast']
    """
    words = []

    def grade(key: str, low_word: str, mid_word: str | None, high_word: str) -> None:
        value = getattr(p, key)
        if value is None:
            return
        low, high = REFERENCE[key]
        word = low_word if value < low else high_word if value > high else mid_word
        if word:
            words.append(word)

    grade("f0_mean_hz", "low pitch", "mid pitch", "high pitch")
    grade("f0_range_st", "monotone", None, "varied pitch")
    grade("f0_slope_st_per_s", "falling pitch", None, "rising pitch")
    grade("intensity_mean_db", "quiet", "moderately loud", "loud")
    grade("speech_rate_syl_per_s", "slow", "moderate pace", "fast")
    return words


@dataclass
class Contours:
    """The Praat measurements every voice figure (and the cue plot) is computed from."""

    sound: object  # parselmouth.Sound
    f0_t: np.ndarray
    f0: np.ndarray  # Hz, 0 where unvoiced
    db_t: np.ndarray
    db: np.ndarray


def _sound(samples: np.ndarray, rate: int, start: float = 0.0):
    import parselmouth

    return parselmouth.Sound(samples.astype(np.float64), sampling_frequency=rate, start_time=start)


def _measure(sound) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pitch times, F0 in Hz with 0 where unvoiced, intensity times, dB) at 10 ms steps (pitch 60-600 Hz)."""
    pitch = sound.to_pitch(time_step=0.01, pitch_floor=PITCH_FLOOR, pitch_ceiling=PITCH_CEILING)
    intensity = sound.to_intensity(minimum_pitch=PITCH_FLOOR, time_step=0.01)
    return pitch.xs(), pitch.selected_array["frequency"], intensity.xs(), intensity.values[0]


def contours(audio: Audio) -> Contours:
    """Pitch and intensity contours at 10 ms steps (pitch 60-600 Hz)."""
    sound = _sound(audio.samples, audio.rate)
    return Contours(sound, *_measure(sound))


def windows(n: int, rate: int, window_s: float = WINDOW_S) -> list[tuple[int, int]]:
    """Sample ranges of equal windows of at most ``window_s`` seconds covering ``n`` samples.

    >>> windows(16_000 * 600, 16_000, 300.0)
    [(0, 4800000), (4800000, 9600000)]
    >>> windows(16_000 * 10, 16_000, 300.0)
    [(0, 160000)]
    """
    count = max(1, int(np.ceil(n / (window_s * rate))))
    edges = [round(i * n / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _voice_quality(sound) -> tuple[float, float, float]:
    """Praat's local jitter, local shimmer and mean HNR (dB) of a sound (NaN where undefined)."""
    from parselmouth.praat import call

    points = call(sound, "To PointProcess (periodic, cc)", PITCH_FLOOR, PITCH_CEILING)
    jitter = call(points, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3)
    shimmer = call([sound, points], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6)
    hnr = call(sound.to_harmonicity_cc(time_step=0.01, minimum_pitch=PITCH_FLOOR), "Get mean", 0, 0)
    return float(jitter), float(shimmer), float(hnr)


def _pooled(values: list[tuple[float, int]]) -> float:
    """The mean of the finite values, weighted by their windows' voiced frames (NaN if none)."""
    kept = [(v, w) for v, w in values if np.isfinite(v) and w > 0]
    return float(sum(v * w for v, w in kept) / sum(w for _, w in kept)) if kept else float("nan")


def _windowed(audio: Audio, window_s: float) -> tuple[np.ndarray, ...]:
    """Contours of every window, joined, and the voice quality of each window with its voiced frame count."""
    parts, quality = [], []
    for a, b in windows(len(audio.samples), audio.rate, window_s):
        sound = _sound(audio.samples[a:b], audio.rate, a / audio.rate)
        part = _measure(sound)
        parts.append(part)
        voiced = int((part[1] > 0).sum())
        quality.append((_voice_quality(sound) if voiced >= 3 else (float("nan"),) * 3, voiced))
        del sound  # one window's Praat objects at a time
    f0_t, f0, db_t, db = (np.concatenate([part[i] for part in parts]) for i in range(4))
    jitter, shimmer, hnr = (_pooled([(q[i], w) for q, w in quality]) for i in range(3))
    return f0_t, f0, db_t, db, jitter, shimmer, hnr


def prosody(audio: Audio, window_s: float = WINDOW_S) -> Prosody:
    """Utterance-level prosody of a mono waveform; raises ``SilentAudio`` when there is nothing to measure."""
    if len(audio.samples) < audio.rate * 0.1 or float(np.sqrt(np.mean(audio.samples**2))) < SILENT_RMS:
        raise SilentAudio("the audio track is silent or shorter than 0.1 s")
    f0_t, f0, db_t, db, jitter, shimmer, hnr = _windowed(audio, window_s)
    voiced = f0 > 0
    p = Prosody()
    if voiced.sum() >= 3:
        hz, st, tv = f0[voiced], semitones(f0[voiced]), f0_t[voiced]
        p.f0_mean_hz, p.f0_sd_hz = round(float(hz.mean()), 2), round(float(hz.std()), 2)
        p.f0_min_hz, p.f0_max_hz = round(float(np.percentile(hz, 5)), 2), round(float(np.percentile(hz, 95)), 2)
        p.f0_range_st = round(float(np.percentile(st, 95) - np.percentile(st, 5)), 2)
        hz_slope, st_slope = _slope(tv, hz), _slope(tv, st)
        p.f0_slope_hz_per_s = round(hz_slope, 2) if hz_slope is not None else None
        p.f0_slope_st_per_s = round(st_slope, 2) if st_slope is not None else None
    sounding = db >= db.max() - SILENCE_DB_BELOW_MAX
    if sounding.any():
        p.intensity_mean_db = round(float(db[sounding].mean()), 2)
        p.intensity_sd_db = round(float(db[sounding].std()), 2)
        first, last = np.flatnonzero(sounding)[[0, -1]]
        voiced_at_db = np.interp(db_t, f0_t, voiced.astype(float)) > 0.5 if len(f0_t) else np.zeros_like(db, bool)
        nuclei = syllable_nuclei(db, voiced_at_db)
        span = float(db_t[last] - db_t[first])
        p.speech_rate_syl_per_s = round(len(nuclei) / span, 2) if span > 0.2 else None
        step = float(db_t[1] - db_t[0]) if len(db_t) > 1 else 0.01
        gaps = [(b - a) * step for a, b in _runs(~sounding[first:last + 1])]
        pauses = [g for g in gaps if g >= MIN_PAUSE_S]
        p.pause_count, p.pause_total_s = len(pauses), round(float(sum(pauses)), 2)
    if voiced.sum() >= 3:
        p.jitter_local = round(jitter, 5) if np.isfinite(jitter) else None
        p.shimmer_local = round(shimmer, 5) if np.isfinite(shimmer) else None
        p.hnr_db = round(hnr, 2) if np.isfinite(hnr) else None
    p.descriptors = describe(p)
    return p


def egemaps(audio: Audio) -> dict[str, float]:
    """The 88 eGeMAPSv02 functionals of openSMILE (Eyben et al. 2016), the standard affective voice set."""
    try:
        import opensmile
    except ImportError:
        raise AffectReasonError("eGeMAPS needs openSMILE: `pip install opensmile`") from None
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    row = smile.process_signal(audio.samples, audio.rate).iloc[0]
    return {name: round(float(value), 6) for name, value in row.items()}
