"""Probe and decode clips with PyAV: sampled RGB frames and a 16 kHz mono audio track.

A clip is a video file, an image (``.jpg``/``.png``/...: one frame, no audio) or an audio file
(``.wav``/``.mp3``/``.flac``/...: no frames). Anything that cannot be read raises ``MediaError``
with the path and the reason; a clip that is merely incomplete (no audio track, nothing decodable in
a stream) is read as far as it goes and the caller records a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectreason.errors import AffectReasonError, UsageError
from affectreason.schema import Clip, Cues

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus"})
AUDIO_RATE = 16_000
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"})
CLIP_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES | AUDIO_SUFFIXES
SUBTITLE_SUFFIXES = (".srt", ".vtt", ".txt")
DEFAULT_MAX_DURATION_S = 600.0  # longer clips are cut (with a warning): cues are per-utterance


class MediaError(AffectReasonError, ValueError):
    """A clip cannot be read at all."""


@dataclass
class MediaInfo:
    """What a clip holds, from its container header."""

    path: str
    kind: str  # "video", "image" or "audio"
    duration_s: float | None
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    native_fps: float | None = None


@dataclass
class Frames:
    """RGB frames (uint8, H x W x 3) sampled at ``fps``, with their times in seconds."""

    times: list[float]
    images: list[np.ndarray]
    fps: float
    warnings: list[str] = field(default_factory=list)


@dataclass
class Audio:
    """A mono float32 waveform in [-1, 1] at ``rate`` Hz."""

    samples: np.ndarray
    rate: int = AUDIO_RATE

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.rate


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: the file is empty (0 bytes)")


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise MediaError(f"{path}: cannot be decoded ({exc}); is it a complete video, image or audio file?") from None


def probe(path: str | Path) -> MediaInfo:
    """Read the container header: kind, duration, streams."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = _read_image(path)
        return MediaInfo(str(path), "image", None, True, False, image.shape[1], image.shape[0])
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        has_audio = bool(container.streams.audio)
        duration = container.duration / 1_000_000 if container.duration else None
        if video is None and not has_audio:
            raise MediaError(f"{path}: no video or audio stream")
        kind = "video" if video is not None and path.suffix.lower() not in AUDIO_SUFFIXES else "audio"
        return MediaInfo(
            str(path), kind, duration, video is not None and kind == "video", has_audio,
            video.codec_context.width if video is not None else None,
            video.codec_context.height if video is not None else None,
            float(video.average_rate) if video is not None and video.average_rate else None,
        )


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError(f"{path}: not a readable image ({exc})") from None


class FrameStream:
    """Frames sampled at ``fps`` decoded one at a time: iterate for ``(t, image)`` pairs; ``warnings`` fills in as
    decoding goes. Only the frame in hand is in memory, so a long clip costs no more than a short one (a 60-minute
    clip at 5 fps is 18,000 frames, 2 GB at 192 x 192 if kept: eval/bench/long_clip.py)."""

    def __init__(self, path: str | Path, fps: float = 5.0, max_duration_s: float = DEFAULT_MAX_DURATION_S,
                 start: float | None = None, end: float | None = None):
        self.path = Path(path)
        _check_file(self.path)
        if fps <= 0:
            raise UsageError(f"fps must be positive, got {fps}")
        self.fps, self.max_duration_s, self.start, self.end = fps, max_duration_s, start, end
        self.warnings: list[str] = []

    def __iter__(self):
        import av

        path, fps, start, end = self.path, self.fps, self.start, self.end
        if path.suffix.lower() in IMAGE_SUFFIXES:
            yield 0.0, _read_image(path)
            return
        sampled = 0
        with _open(path) as container:
            if not container.streams.video:
                return
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            next_t = start or 0.0
            try:
                for frame in container.decode(stream):
                    t = float(frame.time) if frame.time is not None else sampled / fps
                    if end is not None and t > end:
                        break
                    if t > (start or 0.0) + self.max_duration_s:
                        self.warnings.append(f"video longer than {self.max_duration_s:.0f} s: only the start was read")
                        break
                    if t + 1e-6 >= next_t:
                        sampled += 1
                        yield round(t, 4), frame.to_ndarray(format="rgb24")
                        next_t += 1.0 / fps
                        while next_t <= t:
                            next_t += 1.0 / fps
            except av.error.FFmpegError as exc:
                self.warnings.append(f"video stream damaged after {sampled} sampled frames ({exc})")


def read_frames(path: str | Path, fps: float = 5.0, max_duration_s: float = DEFAULT_MAX_DURATION_S,
                start: float | None = None, end: float | None = None) -> Frames:
    """Frames sampled at ``fps`` (the first frame at or after each 1/fps tick from ``start``), up to ``end``, all
    in memory (``FrameStream`` decodes them one at a time).

    Times stay those of the file. An image is one frame at t=0.
    """
    stream = FrameStream(path, fps, max_duration_s, start, end)
    frames = Frames([], [], fps)
    for t, image in stream:
        frames.times.append(t)
        frames.images.append(image)
    frames.warnings = stream.warnings
    return frames


def frames_at(path: str | Path, fps: float, times: list[float], start: float | None = None,
              end: float | None = None) -> list[np.ndarray]:
    """For each of ``times`` (seconds, ascending), the frame sampled at ``fps`` nearest to it, streamed: only the
    chosen frames are kept and decoding stops past the last time (key frames of a long clip cost no more memory
    than a short one's)."""
    chosen: list[np.ndarray] = []
    wanted = iter(times)
    target = next(wanted, None)
    previous: tuple[float, np.ndarray] | None = None
    for t, image in FrameStream(path, fps, start=start, end=end):
        while target is not None and t >= target:
            near = previous is not None and target - previous[0] < t - target
            chosen.append(previous[1] if near else image)
            target = next(wanted, None)
        if target is None:
            break
        previous = (t, image)
    if target is not None and previous is not None:  # times past the last sampled frame take the last one
        chosen += [previous[1]] * (1 + sum(1 for _ in wanted))
    return chosen


def read_audio(path: str | Path, rate: int = AUDIO_RATE, max_duration_s: float = DEFAULT_MAX_DURATION_S,
               start: float | None = None, end: float | None = None) -> tuple[Audio | None, list[str]]:
    """The audio track (from ``start`` to ``end`` s) as 16 kHz mono float32, or None with a warning if absent."""
    import av

    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return None, []
    warnings: list[str] = []
    with _open(path) as container:
        if not container.streams.audio:
            return None, ["no audio track"]
        resampler = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        total = 0
        first = int((start or 0.0) * rate)
        limit = first + int(max_duration_s * rate)
        if end is not None:
            limit = min(limit, int(end * rate))
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
                if total >= limit:
                    if end is None or limit < int(end * rate):
                        warnings.append(f"audio longer than {max_duration_s:.0f} s: only the start was read")
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            warnings.append(f"audio stream damaged after {total / rate:.1f} s ({exc})")
    if not chunks:
        return None, warnings + ["the audio track holds no decodable samples"]
    samples = np.concatenate(chunks)
    chunks.clear()  # one copy of the track in memory, not two (a 60-minute track is 230 MB)
    samples = samples[first:limit].astype(np.float32, copy=False)
    if not len(samples):
        return None, warnings + [f"no audio between {start or 0:.1f} s and the end of the clip"]
    return Audio(samples, rate), warnings


def media_frames(media: dict[str, list[str]], fps: float, max_frames: int, start: float | None = None,
                 end: float | None = None) -> tuple[list[np.ndarray], float]:
    """A record's frames (its first video sampled at ``fps``, evenly thinned to ``max_frames``; else its images)
    and the frame rate they now have."""
    if media["videos"]:
        frames = read_frames(media["videos"][0], fps, start=start, end=end).images
        if len(frames) > max_frames:
            rate = fps * max_frames / len(frames)
            keep = np.linspace(0, len(frames) - 1, num=max_frames).round().astype(int)
            return [frames[i] for i in keep], rate
        return frames, fps
    return [read_frames(image, 1.0).images[0] for image in media["images"][:max_frames]], fps


def media_audio(media: dict[str, list[str]], start: float | None = None, end: float | None = None) -> Audio | None:
    """A record's audio track (its first audio file, else its video's sound), or None."""
    source = (media["audios"] or media["videos"] or [None])[0]
    if source is None:
        return None
    track, _ = read_audio(source, start=start, end=end)
    return track if track is not None and len(track.samples) else None


def clip_media(path: str) -> dict[str, list[str]]:
    """One clip file as a record's media lists (an image is an image, anything else a video or audio source)."""
    if path.lower().endswith(tuple(IMAGE_SUFFIXES)):
        return {"videos": [], "images": [path], "audios": []}
    return {"videos": [path], "images": [], "audios": []}


def key_frames(clip: Clip, cues: Cues, count: int) -> list[np.ndarray]:
    """Up to ``count`` frames of the clip in time order: the apex frame and evenly spaced ones, chosen among the
    times the cues were sampled at (``cues.frames``) and then decoded alone (``frames_at``)."""
    if clip.path.lower().endswith(tuple(IMAGE_SUFFIXES)):
        return read_frames(clip.path).images[:1] if count else []
    times = [f.t for f in cues.frames]
    if not times or count <= 0:
        return []
    order = list(np.linspace(0, len(times) - 1, num=min(count, len(times))).round().astype(int))
    if cues.apex_t is not None:
        apex = int(np.argmin(np.abs(np.array(times) - cues.apex_t)))
        order = [apex] + [i for i in order if i != apex][: count - 1]
    return frames_at(clip.path, cues.fps or 5.0, [times[i] for i in sorted(set(order))], clip.start, clip.end)


def clips_in(path: str | Path) -> list[Clip]:
    """The clips of a file or a folder (sorted).

    Beside a clip, a same-stem .srt/.vtt/.txt is its subtitles and a same-stem .csv (OpenFace's output
    name) its AUs.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in CLIP_SUFFIXES)
        if not files:
            raise MediaError(f"{path}: no clips (looked for {', '.join(sorted(CLIP_SUFFIXES))})")
    else:
        files = [path]
    clips = []
    for file in files:
        subtitles = next((file.with_suffix(s) for s in SUBTITLE_SUFFIXES if file.with_suffix(s).is_file()), None)
        openface = file.with_suffix(".csv")
        clips.append(Clip(path=str(file), id=file.stem, subtitles=str(subtitles) if subtitles else None,
                          openface_csv=str(openface) if openface.is_file() else None))
    return clips
