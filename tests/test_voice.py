"""Vocal cues with Praat: espeak-ng renderings of one sentence at three pitches, rates and loudness levels
must come out in that order, in figures and in words; plus the pure helpers."""

from __future__ import annotations

import numpy as np
import pytest

from affectreason.cues.voice import SilentAudio, describe, prosody, semitones, syllable_nuclei
from affectreason.media import Audio, read_audio
from affectreason.schema import Prosody

pytestmark = pytest.mark.integration

SERIES = {
    "pitch": (("pitch_20", "pitch_50", "pitch_85"), "f0_mean_hz", ("low pitch", "mid pitch", "high pitch")),
    "rate": (("rate_120", "rate_170", "rate_230"), "speech_rate_syl_per_s", ("slow", "moderate pace", "fast")),
    "loudness": (("loudness_50", "loudness_100", "loudness_180"), "intensity_mean_db",
                 ("quiet", "moderately loud", "loud")),
}


@pytest.fixture(scope="module")
def voices(media) -> dict[str, Prosody]:
    """Prosody of every espeak rendering (and the test sentence), measured once."""
    names = [n for clips, _, _ in SERIES.values() for n in clips] + ["speech_wav"]
    return {name: prosody(read_audio(media[name])[0]) for name in names}


def _grade(p: Prosody, words: tuple[str, str, str]) -> int:
    found = [i for i, w in enumerate(words) if w in p.descriptors]
    assert len(found) == 1, f"expected exactly one of {words} in {p.descriptors}"
    return found[0]


@pytest.mark.parametrize("series", SERIES)
def test_figures_follow_the_espeak_settings(voices, series):
    clips, field, _ = SERIES[series]
    values = [getattr(voices[c], field) for c in clips]
    assert all(v is not None for v in values)
    assert values[0] < values[1] < values[2], f"{field} of {clips}: {values}"


@pytest.mark.parametrize("series", SERIES)
def test_descriptors_follow_the_figures(voices, series):
    clips, _, words = SERIES[series]
    grades = [_grade(voices[c], words) for c in clips]
    assert grades == sorted(grades), f"{series} words of {clips}: {[voices[c].descriptors for c in clips]}"
    assert grades[0] < grades[-1]


def test_pitch_is_measured_on_the_right_scale(voices):
    low, high = voices["pitch_20"].f0_mean_hz, voices["pitch_85"].f0_mean_hz
    assert 70 < low < 100 < high < 200
    assert high - low > 40
    for name in ("pitch_20", "pitch_85"):
        p = voices[name]
        assert p.f0_min_hz < p.f0_mean_hz < p.f0_max_hz
        assert p.f0_range_st == pytest.approx(float(semitones(p.f0_max_hz) - semitones(p.f0_min_hz)), abs=0.02)


def test_rate_and_loudness_leave_pitch_alone(voices):
    """Changing -s or -a does not move F0 much; changing -p does not move the rate."""
    for name in ("rate_120", "rate_230", "loudness_50", "loudness_180"):
        assert voices[name].f0_mean_hz == pytest.approx(voices["pitch_50"].f0_mean_hz, rel=0.05)
    rates = [voices[n].speech_rate_syl_per_s for n in ("pitch_20", "pitch_50", "pitch_85")]
    assert max(rates) - min(rates) < 0.5


def test_voice_quality_and_pauses_of_fluent_speech(voices):
    p = voices["speech_wav"]
    assert p.pause_count == 0 and p.pause_total_s == 0.0
    assert 0 < p.jitter_local < 0.05
    assert 0 < p.shimmer_local < 0.5
    assert 0 < p.hnr_db < 40
    assert p.intensity_sd_db > 0 and p.f0_sd_hz > 0
    assert p.descriptors == describe(p)


def test_slow_speech_has_a_lower_rate_than_the_fast_one_by_a_wide_margin(voices):
    assert voices["rate_230"].speech_rate_syl_per_s / voices["rate_120"].speech_rate_syl_per_s > 1.5


def test_pure_tone_pitch_is_exact():
    t = np.arange(16_000) / 16_000
    tone = Audio((0.5 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32))
    p = prosody(tone)
    assert p.f0_mean_hz == pytest.approx(220.0, abs=0.5)
    assert p.f0_range_st == pytest.approx(0.0, abs=0.05)
    # Praat's dB of a waveform: 20 log10(RMS / 2e-5); a 0.5-amplitude sine has RMS 0.5 / sqrt(2)
    assert p.intensity_mean_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2) / 2e-5), abs=0.5)
    assert p.pause_count == 0
    assert "monotone" in p.descriptors and "mid pitch" in p.descriptors


def test_silence_raises_silent_audio():
    with pytest.raises(SilentAudio, match="silent"):
        prosody(Audio(np.zeros(16_000, dtype=np.float32)))


def test_a_50_ms_clip_raises_silent_audio(media):
    audio, _ = read_audio(media["speech_wav"])
    loud = audio.samples[np.argmax(np.abs(audio.samples)) - 400:][:800]  # 0.05 s around the loudest sample
    assert np.abs(loud).max() > 0.3
    with pytest.raises(SilentAudio, match="shorter than 0.1 s"):
        prosody(Audio(loud))


def test_silent_audio_is_a_value_error():
    assert issubclass(SilentAudio, ValueError)


def test_semitones():
    assert semitones(200) == 12
    assert semitones(100.0) == 0
    assert semitones(50.0) == -12
    assert np.allclose(semitones(np.array([100.0, 400.0])), [0.0, 24.0])


def test_describe_docstring_case():
    p = Prosody(f0_mean_hz=240.0, f0_slope_st_per_s=3.1, intensity_mean_db=70.0, speech_rate_syl_per_s=6.0)
    assert describe(p) == ["high pitch", "rising pitch", "moderately loud", "fast"]


def test_describe_unremarkable_voice():
    p = Prosody(f0_mean_hz=160.0, f0_range_st=8.0, f0_slope_st_per_s=0.5, intensity_mean_db=68.0,
                speech_rate_syl_per_s=4.0)
    assert describe(p) == ["mid pitch", "moderately loud", "moderate pace"]


def test_describe_low_end():
    p = Prosody(f0_mean_hz=90.0, f0_range_st=2.0, f0_slope_st_per_s=-3.0, intensity_mean_db=55.0,
                speech_rate_syl_per_s=2.0)
    assert describe(p) == ["low pitch", "monotone", "falling pitch", "quiet", "slow"]


def test_describe_high_end_and_bounds():
    p = Prosody(f0_range_st=15.0, intensity_mean_db=80.0, speech_rate_syl_per_s=5.6)
    assert describe(p) == ["varied pitch", "loud", "fast"]
    # the reference bounds themselves are unremarkable
    edge = Prosody(f0_mean_hz=110.0, intensity_mean_db=75.0, speech_rate_syl_per_s=3.0)
    assert describe(edge) == ["mid pitch", "moderately loud", "moderate pace"]


def test_describe_skips_missing_figures():
    assert describe(Prosody()) == []
    assert describe(Prosody(intensity_mean_db=50.0)) == ["quiet"]


BUMPS = np.array([40, 50, 60, 70, 60, 50, 45, 55, 65, 72, 62, 50, 44, 52, 64, 71, 60, 50, 40], dtype=float)


def test_syllable_nuclei_three_bumps():
    nuclei = syllable_nuclei(BUMPS, np.ones(len(BUMPS), dtype=bool))
    assert nuclei.tolist() == [3, 9, 15]


def test_syllable_nuclei_skips_an_unvoiced_bump():
    voiced = np.ones(len(BUMPS), dtype=bool)
    voiced[7:12] = False  # the middle bump is a voiceless fricative
    assert syllable_nuclei(BUMPS, voiced).tolist() == [3, 15]


def test_syllable_nuclei_needs_a_dip_and_loudness():
    contour = np.array([40, 60, 70, 69, 70.5, 60, 40, 30, 40, 44, 40, 30], dtype=float)
    # 70.5 stands only 1 dB above the 69 dip; 44 is more than 25 dB below the loudest frame
    assert syllable_nuclei(contour, np.ones(len(contour), dtype=bool)).tolist() == [2]


def test_egemaps_functionals(media):
    from affectreason.cues.voice import egemaps
    from affectreason.media import read_audio

    low, _ = read_audio(media["pitch_20"])
    high, _ = read_audio(media["pitch_85"])
    a, b = egemaps(low), egemaps(high)
    assert len(a) == 88
    key = "F0semitoneFrom27.5Hz_sma3nz_amean"
    assert a[key] < b[key]  # the same ordering Praat measures


def test_a_long_track_is_analysed_in_windows_that_agree_with_the_whole(media, voices):
    """Windows (here 1 s, for a long track 5 minutes) give the whole track's figures to within a few percent."""
    from affectreason.cues.voice import windows

    audio = read_audio(media["speech_wav"])[0]
    whole, windowed = voices["speech_wav"], prosody(audio, window_s=1.0)
    assert len(windows(len(audio.samples), audio.rate, 1.0)) >= 2
    assert windowed.f0_mean_hz == pytest.approx(whole.f0_mean_hz, rel=0.03)
    assert windowed.intensity_mean_db == pytest.approx(whole.intensity_mean_db, abs=1.0)
    assert windowed.speech_rate_syl_per_s == pytest.approx(whole.speech_rate_syl_per_s, rel=0.2)
    assert windowed.jitter_local == pytest.approx(whole.jitter_local, rel=0.25)
    assert windowed.hnr_db == pytest.approx(whole.hnr_db, abs=1.5)
    assert prosody(audio, window_s=600.0) == whole  # within one window: the whole-track analysis, exactly
