"""A long clip through ``affectreason cues``: peak RSS, wall time and real-time factor (target: < 2 GiB peak).

    python eval/bench/long_clip.py [--minutes 60] [--size 192] [--no-asr] [--clip PATH] [--keep DIR]

Builds the clip with PyAV by looping the bundled example (examples/happy_astronaut.mp4: a smiling face saying
a sentence), scaled to ``--size`` px square, 25 fps H.264 with its AAC speech track, ``--minutes`` long; then
runs ``affectreason cues CLIP --json --max-duration SECONDS`` (the whole clip is read: the default
``--max-duration`` of 600 s would cut it) in a child process and reads its peak RSS from ``os.wait4``
(``ru_maxrss``: the largest resident set the process reached). Prints the figures with the machine's cores and
load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "happy_astronaut.mp4"


def build_long_clip(path: Path, minutes: float, size: int = 192, fps: int = 25) -> Path:
    """``minutes`` of the example clip looped, ``size`` x ``size`` at ``fps``, with its speech; streamed to disk
    (one loop of frames and samples in memory)."""
    import av
    import numpy as np

    with av.open(str(EXAMPLE)) as source:
        frames = [f.reformat(width=size, height=size, format="rgb24").to_ndarray()
                  for f in source.decode(source.streams.video[0])]
    with av.open(str(EXAMPLE)) as source:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
        chunks = [out.to_ndarray().reshape(-1) for f in source.decode(source.streams.audio[0])
                  for out in resampler.resample(f)]
    samples = np.concatenate(chunks)
    loop_s = len(frames) / fps
    samples = np.resize(samples, int(loop_s * 16_000))  # exactly one loop of sound per loop of frames
    loops = max(1, round(minutes * 60 / loop_s))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = size, size, "yuv420p"
        sound = container.add_stream("aac", rate=16_000, layout="mono")
        encoder = av.AudioResampler(format="fltp", layout="mono", rate=16_000)
        pts = apts = 0
        for _ in range(loops):
            for image in frames:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = pts
                pts += 1
                container.mux(video.encode(frame))
            for start in range(0, len(samples), 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="s16", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 16_000, apts, Fraction(1, 16_000)
                apts += chunk.samples
                for out in encoder.resample(chunk):
                    container.mux(sound.encode(out))
        container.mux(video.encode())
        container.mux(sound.encode())
    return path


def measure(clip: Path, seconds: float, asr: bool) -> dict:
    """Run ``affectreason cues`` on ``clip`` in a child; its wall time, peak RSS and what it found."""
    cmd = [sys.executable, "-m", "affectreason.cli", "cues", str(clip), "--json",
           "--max-duration", f"{seconds + 60:.0f}"]
    if not asr:
        cmd.append("--no-asr")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({child.returncode}):\n{stderr[-3000:]}")
    cues = json.loads(stdout)
    return {"command": " ".join(cmd[2:]), "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024,
            "frames": len(cues["frames"]), "faces": sum(1 for f in cues["frames"] if f["faces"]),
            "words": len((cues.get("transcript") or {}).get("words") or []), "duration_s": cues["duration_s"],
            "warnings": cues["warnings"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=192, help="frame width and height (px)")
    parser.add_argument("--no-asr", action="store_true", help="skip speech recognition")
    parser.add_argument("--clip", type=Path, help="measure this clip instead of building one")
    parser.add_argument("--keep", type=Path, help="build the clip into this folder and keep it")
    args = parser.parse_args()

    print(machine_line("start"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip
        if clip is None:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            clip = folder / f"long_{args.minutes:g}min.mp4"
            start = time.perf_counter()
            build_long_clip(clip, args.minutes, args.size)
            print(f"built {clip.name}: {args.minutes:g} min, {args.size}x{args.size} at 25 fps with speech, "
                  f"{clip.stat().st_size / 2**20:.0f} MiB, in {time.perf_counter() - start:.0f} s")
        from affectreason.media import probe

        seconds = probe(clip).duration_s or args.minutes * 60
        m = measure(clip, seconds, not args.no_asr)
    print(f"affectreason {m['command']}")
    print(f"clip {seconds:.0f} s: wall {m['wall_s']:.0f} s, real-time factor {m['wall_s'] / seconds:.3f}x, "
          f"peak RSS {m['peak_rss_mib']:.0f} MiB ({m['peak_rss_mib'] / 1024:.2f} GiB; target < 2 GiB)")
    print(f"cues: {m['frames']} sampled frames, {m['faces']} with a face, {m['words']} words, "
          f"duration {m['duration_s']} s, warnings {m['warnings']}")
    print(machine_line("end"))


if __name__ == "__main__":
    main()
