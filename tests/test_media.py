"""Probing and decoding real clips with PyAV: kinds, durations, sampled frames, the 16 kHz audio, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from affectreason.media import AUDIO_RATE, MediaError, probe, read_audio, read_frames


@pytest.mark.parametrize(("name", "kind", "duration", "has_video", "has_audio"), [
    ("astronaut", "video", 3.0, True, True),
    ("no_audio", "video", 2.0, True, False),
    ("no_face_silent", "video", 2.0, True, True),
    ("astronaut_png", "image", None, True, False),
    ("grace_jpg", "image", None, True, False),
    ("speech_wav", "audio", 2.24, False, True),
])
def test_probe_kind_duration_and_streams(media, name, kind, duration, has_video, has_audio):
    info = probe(media[name])
    assert info.kind == kind
    assert (info.has_video, info.has_audio) == (has_video, has_audio)
    if duration is None:
        assert info.duration_s is None
    else:
        assert info.duration_s == pytest.approx(duration, abs=0.05)


def test_probe_reports_frame_size_and_rate(media):
    video = probe(media["astronaut"])
    assert (video.width, video.height, video.native_fps) == (512, 512, 25.0)
    image = probe(media["grace_jpg"])
    assert (image.width, image.height) == Image.open(media["grace_jpg"]).size
    assert image.native_fps is None
    audio = probe(media["speech_wav"])
    assert (audio.width, audio.height, audio.native_fps) == (None, None, None)


def test_read_frames_at_5_fps_on_a_3_s_clip(media):
    frames = read_frames(media["astronaut"], fps=5)
    assert len(frames.times) == len(frames.images) == 15
    assert frames.times == pytest.approx([round(0.2 * i, 1) for i in range(15)], abs=1e-3)
    assert frames.times[:3] == [0.0, 0.2, 0.4]
    assert frames.fps == 5 and frames.warnings == []
    assert all(img.shape == (512, 512, 3) and img.dtype == np.uint8 for img in frames.images)


def test_key_frames_are_decoded_alone_and_are_the_frames_sampled_at_those_times(media):
    """``frames_at`` streams and keeps only the frames asked for (nearest sampled time; past the end, the last);
    ``key_frames`` picks the apex and evenly spaced times among the cues' and gets exactly those frames."""
    from affectreason.media import frames_at, key_frames
    from affectreason.schema import Clip, Cues, FaceFrame

    every = read_frames(media["astronaut"], fps=5)
    picked = frames_at(media["astronaut"], 5, [0.0, 0.41, 0.5, 2.79, 9.0])
    expected = [0, 2, 3, 14, 14]  # 0.41 is nearer 0.4 than 0.6; 0.5, halfway, takes the later 0.6; 9.0 the last
    assert len(picked) == 5 and all(np.array_equal(a, every.images[i]) for a, i in zip(picked, expected, strict=True))
    cues = Cues(clip_id="a", fps=5.0, apex_t=1.6, frames=[FaceFrame(t=t, faces=1) for t in every.times])
    frames = key_frames(Clip(path=str(media["astronaut"]), id="a"), cues, 3)
    # the apex (1.6 s, frame 8) and two of the evenly spaced 0, 7, 14, in time order
    assert [next(i for i, f in enumerate(every.images) if np.array_equal(f, k)) for k in frames] == [0, 7, 8]


def test_read_frames_are_rgb_pixels_of_the_source_image(media):
    """The first frame is the astronaut picture (H.264 is lossy, so compare per-channel means)."""
    frame = read_frames(media["astronaut"], fps=5).images[0].astype(float)
    source = np.asarray(Image.open(media["astronaut_png"]).convert("RGB"), dtype=float)
    assert frame.shape == source.shape
    assert np.abs(frame - source).mean() < 8
    assert frame.mean(axis=(0, 1)) == pytest.approx(source.mean(axis=(0, 1)), abs=4)  # RGB, not BGR


def test_read_frames_other_rates(media):
    # 25 fps frames fall every 0.04 s: each 0.5 s tick takes the first frame at or after it
    two = read_frames(media["astronaut"], fps=2)
    assert two.times == pytest.approx([0.0, 0.52, 1.0, 1.52, 2.0, 2.52], abs=1e-3)
    # asking for more than the native 25 fps gives every native frame once
    every = read_frames(media["astronaut"], fps=50)
    assert len(every.times) == 75
    assert np.allclose(np.diff(every.times), 0.04, atol=1e-3)


def test_read_frames_stops_at_max_duration_with_a_warning(media):
    frames = read_frames(media["astronaut"], fps=5, max_duration_s=1.0)
    assert frames.times == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], abs=1e-3)
    assert frames.warnings == ["video longer than 1 s: only the start was read"]


@pytest.mark.parametrize("name", ["astronaut_png", "grace_jpg"])
def test_image_is_one_frame_at_t0(media, name):
    frames = read_frames(media[name], fps=5)
    assert frames.times == [0.0]
    expected = np.asarray(Image.open(media[name]).convert("RGB"))
    assert np.array_equal(frames.images[0], expected)


def test_audio_only_file_has_no_frames(media):
    frames = read_frames(media["speech_wav"], fps=5)
    assert frames.times == [] and frames.images == [] and frames.warnings == []


def test_read_audio_is_16k_mono_float32_in_range(media):
    audio, warnings = read_audio(media["astronaut"])
    assert warnings == []
    assert audio.rate == AUDIO_RATE == 16_000
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert -1.0 <= audio.samples.min() < 0 < audio.samples.max() <= 1.0
    assert float(np.sqrt(np.mean(audio.samples ** 2))) > 0.01  # real speech, not silence
    # the 22.05 kHz espeak WAV resampled to 16 kHz keeps its length
    wav, _ = read_audio(media["speech_wav"])
    assert wav.rate == 16_000
    assert wav.duration_s == pytest.approx(probe(media["speech_wav"]).duration_s, abs=0.02)
    assert audio.duration_s == pytest.approx(wav.duration_s, abs=0.1)


def test_read_audio_without_audio_track(media):
    assert read_audio(media["no_audio"]) == (None, ["no audio track"])


def test_read_audio_of_an_image_is_none_without_warning(media):
    assert read_audio(media["grace_jpg"]) == (None, [])


def test_read_audio_cut_at_max_duration(media):
    audio, warnings = read_audio(media["speech_wav"], max_duration_s=1.0)
    assert len(audio.samples) == 16_000
    assert warnings == ["audio longer than 1 s: only the start was read"]


def test_silent_track_decodes_to_zeros(media):
    audio, warnings = read_audio(media["no_face_silent"])
    assert warnings == []
    assert audio.duration_s == pytest.approx(2.0, abs=0.1)
    assert np.abs(audio.samples).max() == 0.0


@pytest.mark.parametrize("reader", [probe, read_frames, read_audio])
def test_empty_file_is_a_media_error(media, reader):
    with pytest.raises(MediaError, match=r"empty \(0 bytes\)") as info:
        reader(media["empty"])
    assert str(media["empty"]) in str(info.value)


@pytest.mark.parametrize("reader", [probe, read_frames, read_audio])
def test_truncated_mp4_cannot_be_decoded(media, reader):
    with pytest.raises(MediaError, match="cannot be decoded") as info:
        reader(media["truncated"])
    assert str(media["truncated"]) in str(info.value)


@pytest.mark.parametrize("reader", [probe, read_frames, read_audio])
def test_missing_path(tmp_path, reader):
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(MediaError, match="no such file") as info:
        reader(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("reader", [probe, read_frames, read_audio])
def test_directory_is_not_a_clip(tmp_path, reader):
    with pytest.raises(MediaError, match="not a file"):
        reader(tmp_path)


@pytest.mark.parametrize("fps", [0, -5.0])
def test_non_positive_fps(media, fps):
    with pytest.raises(ValueError, match="fps must be positive"):
        read_frames(media["astronaut"], fps=fps)


@pytest.mark.parametrize("reader", [probe, read_frames])
def test_text_file_named_png_is_a_media_error(tmp_file, reader):
    fake = tmp_file("photo.png", "this is not an image\n")
    with pytest.raises(MediaError, match="not a readable image"):
        reader(fake)


def test_media_error_is_a_value_error():
    assert issubclass(MediaError, ValueError)


def test_time_span_limits_frames_and_audio(media):
    from affectreason.media import read_audio, read_frames

    frames = read_frames(media["astronaut"], fps=5.0, start=1.0, end=2.0)
    assert frames.times[0] == pytest.approx(1.0) and frames.times[-1] <= 2.0
    assert len(frames.times) == 6  # 1.0, 1.2, ..., 2.0
    audio, warnings = read_audio(media["astronaut"], start=0.5, end=1.5)
    assert audio.duration_s == pytest.approx(1.0, abs=0.01) and warnings == []
    none, warnings = read_audio(media["speech_wav"], start=60.0)
    assert none is None and "no audio between 60.0 s" in warnings[0]
