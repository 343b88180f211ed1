"""Long, huge and repeated inputs: frames are decoded one at a time (memory does not grow with a clip's length),
speech is transcribed in windows, a 2 GB non-media file is refused without being read, and a retried item has one
record (the last) whatever the number of its lines. The 60-minute figure is eval/bench/long_clip.py's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from affectreason.batch import Item, done_ids, extract, read_items
from affectreason.cues.pipeline import CueConfig
from affectreason.cues.speech import SpeechRecognizer, asr_windows, read_subtitles
from affectreason.media import FrameStream, MediaError, clips_in, probe, read_audio, read_frames
from tests.media_factory import SENTENCE, word_error_rate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "happy_astronaut.mp4"
GIB = 2**30


def test_a_frame_stream_holds_no_frame_it_has_handed_over():
    stream = FrameStream(EXAMPLE, fps=25.0)
    seen: list[weakref.ref] = []
    alive_before = []
    for _, image in stream:
        alive_before.append(sum(ref() is not None for ref in seen))  # earlier frames still referenced anywhere
        seen.append(weakref.ref(image))
    assert len(seen) == 75 and max(alive_before) == 0
    frames = read_frames(EXAMPLE, fps=25.0)  # the all-in-memory reader gives the same frames
    again = list(FrameStream(EXAMPLE, fps=25.0))
    assert frames.times == [t for t, _ in again]
    assert all(np.array_equal(a, b) for a, (_, b) in zip(frames.images, again, strict=True))


MEASURE = """
import json, resource, sys
from affectreason.cues.pipeline import CueConfig, CueExtractor
from affectreason.schema import Clip
extractor, peaks = CueExtractor(CueConfig(fps=25.0, asr=False)), []
for path in sys.argv[1:]:
    cues = extractor.extract(Clip(path=path, id="x"))
    peaks.append((len(cues.frames), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
print(json.dumps(peaks))
"""


@pytest.mark.integration
def test_cue_extraction_memory_does_not_grow_with_the_clip(tmp_path):
    """Peak RSS after the 3 s example, then after a 21 s clip, at 25 fps (one process, models loaded once): kept,
    the 450 more frames of 384 x 384 would be 200 MB more; streamed, the peak stays (< 40 MB more)."""
    import av

    from tests.media_factory import encode_clip

    with av.open(str(EXAMPLE)) as source:
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    long = encode_clip(tmp_path / "long.mp4", frames * 7, 25)
    # started through a small process: a child forked by pytest starts with pytest's peak (see PEAK below)
    relay = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", relay, sys.executable, "-c", MEASURE, str(EXAMPLE), str(long)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    (short_frames, short_peak), (long_frames, long_peak) = json.loads(out.stdout.splitlines()[-1])
    assert (short_frames, long_frames) == (75, 525)
    assert short_peak < 2**30 and long_peak - short_peak < 40 * 2**20, (short_peak, long_peak)


def test_asr_windows_cut_in_the_quiet():
    rate = 1000
    rng = np.random.default_rng(0)
    samples = rng.uniform(-0.5, 0.5, 12 * rate)
    for quiet in (4.2, 8.6):  # 50 ms of near-silence inside each search span
        samples[int(quiet * rate):int((quiet + 0.05) * rate)] = 1e-4
    windows = asr_windows(samples, rate, window_s=5.0, search_s=2.0)
    assert windows[0][0] == 0 and windows[-1][1] == len(samples)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))  # contiguous, no overlap
    assert all(b - a <= 5 * rate for a, b in windows)
    cuts = [a for a, _ in windows[1:]]
    assert [round(c / rate, 1) for c in cuts] == [4.2, 8.6]


@pytest.mark.integration
def test_speech_across_windows_is_transcribed_with_times_of_the_whole_track(media):
    """Two sentences 1 s apart, transcribed in one pass and in 3.5 s windows: the same words, and the second
    sentence's words timed after the first's (offsets added)."""
    audio, _ = read_audio(media["speech_wav"])
    gap = np.zeros(audio.rate, np.float32)
    audio.samples = np.concatenate([audio.samples, gap, audio.samples])
    whole = SpeechRecognizer().transcribe(audio)
    windowed = SpeechRecognizer(window_s=audio.duration_s / 2 + 0.5).transcribe(audio)
    assert word_error_rate(f"{SENTENCE} {SENTENCE}", windowed.text) <= 0.3, windowed.text
    assert word_error_rate(whole.text, windowed.text) <= 0.2, (whole.text, windowed.text)
    starts = [w.start for w in windowed.words]
    assert starts == sorted(starts) and starts[-1] > audio.duration_s / 2 and windowed.words[-1].end <= audio.duration_s


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> dict[str, Path]:
    """2 GiB sparse files (zeros, nothing written to disk) under clip and subtitle names."""
    folder = tmp_path_factory.mktemp("huge")
    files = {}
    for suffix in (".mp4", ".wav", ".png", ".mkv"):
        path = folder / f"huge{suffix}"
        with path.open("wb") as handle:
            handle.truncate(2 * GIB)
        files[suffix] = path
    shutil.copy(EXAMPLE, folder / "talk.mp4")
    with (folder / "talk.srt").open("wb") as handle:
        handle.truncate(2 * GIB)
    files["subtitles"] = folder / "talk.srt"
    return files


@pytest.mark.parametrize("suffix", [".mp4", ".wav", ".png", ".mkv"])
def test_a_2_gb_non_media_file_is_refused_quickly(huge, suffix):
    start = time.perf_counter()
    with pytest.raises(MediaError, match="cannot be decoded|not a readable image") as info:
        probe(huge[suffix])
    assert str(huge[suffix]) in str(info.value) and time.perf_counter() - start < 10


def test_2_gb_subtitles_are_refused_before_reading(huge):
    start = time.perf_counter()
    with pytest.raises(MediaError, match="too large for subtitles"):
        read_subtitles(huge["subtitles"])
    assert time.perf_counter() - start < 1
    assert clips_in(huge["subtitles"].with_suffix(".mp4"))[0].subtitles == str(huge["subtitles"])


# The child is started by a small Python process, not by pytest: a forked child's ru_maxrss counts the parent's
# pages it shared until exec (1.5 GB under a full test session, with models loaded).
PEAK = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
stderr = child.stderr.read().decode()
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
sys.stdout.write(stderr)
"""


@pytest.mark.parametrize("which", ["clip", "subtitles"])
def test_the_cues_command_refuses_a_2_gb_file_in_little_memory(huge, which):
    """``affectreason cues`` in a child, its peak RSS from os.wait4: a file read whole would be > 2 GiB."""
    path = huge[".mp4"] if which == "clip" else huge["subtitles"].with_suffix(".mp4")
    out = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "affectreason.cli", "cues", str(path),
                          "--no-asr"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    first, *stderr = out.stdout.splitlines()
    code, peak = map(int, first.split())
    assert code == 2, stderr  # a usage error
    last = stderr[-1]
    assert last.startswith("error:") and str(path if which == "clip" else huge["subtitles"]) in last, stderr
    assert ("cannot be decoded" if which == "clip" else "too large for subtitles") in last
    assert not any("FaceBlendshapesGraph" in line for line in stderr)  # refused before any decoding
    assert peak < GIB / 2, peak


def test_a_retried_item_has_one_record_the_last(media, tmp_path):
    """The one-line-per-item policy: outputs are append-only, so a retried item adds a line; every reader takes
    the last record of an item and every count is of items."""
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(media["astronaut_png"], folder / "good.png")
    (folder / "later.mp4").write_bytes(b"not a video yet")
    out = tmp_path / "cues.jsonl"
    config = CueConfig(asr=False)
    items = [Item(clip) for clip in clips_in(folder)]

    first = extract(items, out, config, workers=1)
    assert first.counts() == {"skipped": 0, "ok": 1, "failed": 1}
    second = extract(items, out, config, workers=1)  # the failed item is retried, and fails again
    assert second.counts() == {"skipped": 1, "ok": 0, "failed": 1} and list(second.failed) == ["later"]
    assert len(out.read_text().splitlines()) == 3  # two error lines for "later"
    by_id = {item.clip.id: item for item in read_items(out)}
    assert sorted(by_id) == ["good", "later"] and by_id["later"].error and by_id["good"].cues is not None

    shutil.copy(EXAMPLE, folder / "later.mp4")  # the user fixes the file; the next run completes it
    third = extract(items, out, config, workers=1)
    assert third.counts() == {"skipped": 1, "ok": 1, "failed": 0}
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and done_ids(out) == {"good", "later"}
    by_id = {item.clip.id: item for item in read_items(out)}
    assert len(by_id) == 2 and by_id["later"].cues is not None and by_id["later"].error is None
    assert extract(items, out, config, workers=1).counts() == {"skipped": 2, "ok": 0, "failed": 0}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("random.mp4", np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes(), "cannot be decoded"),
    ("text.mp4", b"hello, this is not a video\n", "cannot be decoded"),
    ("empty.wav", b"", "the file is empty"),
])
def test_bad_bytes_under_a_media_name_are_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError, match=message) as info:
        probe(path)
    assert str(path) in str(info.value)
