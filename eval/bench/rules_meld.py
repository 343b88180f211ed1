"""The ``rules`` engine on MELD test transcripts: quality (hit rate, accuracy) and speed.

    python eval/bench/rules_meld.py --anchors ../shared/anchors [--wheel-dir DIR]

Text only: each utterance becomes Cues with a given transcript, so only the words speak (AffectGPT's
MELD hit rate, 55.65, uses video + audio + text). Scores with the evaluator: hit rate (basic emotion
among the predicted labels, after emotion-wheel mapping), closed-set accuracy / UAR / weighted F1 over
MELD's 7 classes, and the always-"neutral" baseline in the same run. Speed: explanations per second over
precomputed cues (target >= 1,000 clips/s on 2 cores), measured on 10,000 explanations.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

from affectreason.eval.alignment import align
from affectreason.eval.classification import closed_set, hit_rate
from affectreason.eval.records import read_records
from affectreason.eval.wheel import EmotionWheel
from affectreason.reason.rules import explain_rules
from affectreason.schema import Cues, LabelRecord, Transcript


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchors", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "anchors")
    parser.add_argument("--wheel-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the predictions JSONL here")
    args = parser.parse_args()
    wheel = EmotionWheel.load(args.wheel_dir or args.anchors / "emotion_wheel")
    meld = args.anchors / "merbench" / "meld_test.jsonl"
    gold = read_records(meld)
    rows = [json.loads(line) for line in meld.read_text().splitlines()]
    cues = [Cues(clip_id=r["name"], transcript=Transcript(text=r["transcript"], source="given")) for r in rows]

    start = time.perf_counter()
    explanations = [explain_rules(c) for c in cues]
    seconds = time.perf_counter() - start
    pred = [LabelRecord(name=e.clip_id, labels=e.labels, reasoning=e.reasoning_text()) for e in explanations]
    if args.out:
        args.out.write_text("".join(p.model_dump_json() + "\n" for p in pred))

    repeats = cues * (10_000 // len(cues) + 1)
    start = time.perf_counter()
    for c in repeats[:10_000]:
        explain_rules(c)
    speed = 10_000 / (time.perf_counter() - start)

    aligned = align(gold, pred)
    hits, closed = hit_rate(aligned, wheel), closed_set(aligned, wheel)
    neutral = closed_set(align(gold, [LabelRecord(name=g.name, labels=["neutral"]) for g in gold]), wheel)
    print(f"MELD test, text only: {len(gold)} utterances ({seconds:.2f} s)")
    print(f"  rules   hit rate {100 * hits.summary['hit_rate']:.2f}  accuracy {100 * closed.summary['accuracy']:.2f}  "
          f"UAR {100 * closed.summary['uar']:.2f}  weighted F1 {100 * closed.summary['weighted_f1']:.2f}")
    print(f"  always 'neutral': accuracy {100 * neutral.summary['accuracy']:.2f}  "
          f"weighted F1 {100 * neutral.summary['weighted_f1']:.2f}")
    print("  reference: AffectGPT hit rate 55.65 (video + audio + text)")
    print(f"speed: {speed:,.0f} explanations/s over precomputed cues (target >= 1,000: "
          f"{'met' if speed >= 1000 else 'NOT met'})")
    figures = {k: round(v, 4) for k, v in closed.summary.items()}
    print(json.dumps({"hit_rate": round(hits.summary["hit_rate"], 4), **figures,
                      "neutral_accuracy": round(neutral.summary["accuracy"], 4), "clips_per_s": round(speed)}))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
