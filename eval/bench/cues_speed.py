"""Cue extraction speed: a 20 s clip (face + speech) end to end, real-time factor per stage.

    python eval/bench/cues_speed.py [--seconds 20] [--fps 5]

The whole pipeline includes the facial-expression classifier (fer's mini-Xception under LiteRT, on the main face
of every sampled frame); its own stages (loading it, classifying the frames' face crops) are timed apart too.
Builds the clip with PyAV + eSpeak NG (tests/media_factory.py) from skimage's astronaut photo, slowly zoomed so every
frame differs, with a spoken paragraph. Prints seconds and real-time factor (seconds of work per second
of clip) of each stage and of the whole pipeline as the user runs it (model loading included), and the
peak RSS. Targets: whole pipeline <= 0.35x real time at 5 fps on 2 cores; peak RSS < 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

from timing import machine_line, timed  # eval/bench/timing.py (scripts run from their folder)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.media_factory

TEXT = ("Honestly, I did not expect the results to be this good. We worked on it for months, and today "
        "everything finally came together. I am so happy and proud of the whole team. Thank you all for "
        "your patience and your hard work. Let us celebrate tonight, and tomorrow we start again.")


def build_clip(folder: Path, seconds: float) -> Path:
    """A clip of ``seconds`` with a slowly zooming face and a spoken paragraph (padded with silence)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from tests.media_factory import encode_clip, speak

    face = Image.fromarray(data.astronaut())
    frames = []
    for i in range(int(seconds * 25)):  # zoom 0.06% per frame, so every frame differs
        margin = face.width * (1 - 1 / (1 + 0.0006 * i)) / 2
        box = (margin, margin, face.width - margin, face.height - margin)
        frames.append(np.asarray(face.resize((640, 640), Image.BICUBIC, box=box)))
    samples, rate = speak(TEXT, "-s", "140")
    padded = np.zeros(int(seconds * rate), np.int16)
    padded[: min(len(samples), len(padded))] = samples[: len(padded)]
    return encode_clip(folder / "clip.mp4", frames, 25, (padded, rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=5.0)
    args = parser.parse_args()

    from affectreason.cues.expression import ExpressionClassifier
    from affectreason.cues.face import FaceExtractor
    from affectreason.cues.pipeline import CueConfig, CueExtractor
    from affectreason.cues.speech import SpeechRecognizer
    from affectreason.cues.voice import prosody
    from affectreason.media import read_audio, read_frames
    from affectreason.schema import Clip

    with tempfile.TemporaryDirectory() as tmp:
        clip_path = build_clip(Path(tmp), args.seconds)
        duration = args.seconds
        clip = Clip(path=str(clip_path), id="bench")
        stages: dict[str, float] = {}
        # The whole pipeline first, cold, as a user runs it: models load inside.
        cues, stages["whole pipeline (cold)"] = timed(lambda: CueExtractor(CueConfig(fps=args.fps)).extract(clip))
        frames, stages["decode frames"] = timed(lambda: read_frames(clip_path, args.fps))

        def faces():
            with FaceExtractor() as extractor:
                return extractor.run(frames)

        face_frames, stages["face landmarks + AUs"] = timed(faces)
        classifier, stages["load expression model"] = timed(ExpressionClassifier)
        boxes = [(image, f.main_face_box) for image, f in zip(frames.images, face_frames, strict=True)
                 if f.main_face_box]
        _, stages["expression classifier"] = timed(lambda: [classifier(image, box) for image, box in boxes])
        (audio, _), stages["decode audio"] = timed(lambda: read_audio(clip_path))
        _, stages["prosody (praat)"] = timed(lambda: prosody(audio))
        recognizer, stages["load ASR model"] = timed(SpeechRecognizer)
        transcript, stages["ASR (faster-whisper)"] = timed(lambda: recognizer.transcribe(audio))
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    au12 = max((e.peak for e in cues.au_events if e.au == "AU12"), default=0)
    reading = (f"expression {cues.expression.top} {cues.expression.mean[cues.expression.top]:.2f} over "
               f"{cues.expression.frames} frames" if cues.expression else "no expression reading")
    print(f"{duration:.0f} s clip at {args.fps:g} fps: {len(cues.frames)} frames, "
          f"{len(transcript.words)} words, AU12 peak {au12}, {reading}")
    for stage, seconds in stages.items():
        print(f"  {stage:<24} {seconds:6.2f} s   RTF {seconds / duration:.3f}")
    rtf = stages["whole pipeline (cold)"] / duration
    print(f"whole pipeline: {rtf:.3f}x real time (target <= 0.35: {'met' if rtf <= 0.35 else 'NOT met'}); "
          f"peak RSS {peak_gib:.2f} GiB (target < 2: {'met' if peak_gib < 2 else 'NOT met'})")
    print(json.dumps({"clip_s": duration, "fps": args.fps, "rtf_whole": round(rtf, 4),
                      "peak_rss_gib": round(peak_gib, 3), **{k: round(v, 3) for k, v in stages.items()}}))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
