"""Scoring speed: OV and EW metrics over 100,000 synthetic prediction records.

    python eval/bench/score_speed.py --wheel-dir ../shared/anchors/emotion_wheel [--records 100000]

Prints records/s per metric, the total for all OV and EW metrics (target: 100k records in < 10 s on
2 CPU cores), the speed-up of the memoised wheel mapping over the reference algorithm run on the same
records (the MERTools/AffectGPT code maps every label occurrence from scratch), and, unless
--no-embedding, the embedding grouping's time and label-cache hit rate. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from timing import machine_line, timed  # eval/bench/timing.py (scripts run from their folder)

from affectreason.eval.alignment import align
from affectreason.eval.classification import hit_rate
from affectreason.eval.ew import score_ew
from affectreason.eval.grouping import CachedGroups, WheelGrouping
from affectreason.eval.ov import score_ov, set_overlap
from affectreason.eval.wheel import WHEELS, EmotionWheel
from affectreason.schema import LabelRecord

VOCABULARY = 2000  # distinct label words in play, about what a large OV prediction set uses


def synthetic(wheel: EmotionWheel, n: int, seed: int = 0) -> tuple[list[LabelRecord], list[LabelRecord]]:
    """Gold and predicted records with Zipf-distributed labels from the wheel's word forms (+ unknowns)."""
    rng = random.Random(seed)
    words = sorted(wheel.format_mapping)
    vocab = rng.sample(words, VOCABULARY - 50) + [f"unknownword{i}" for i in range(50)]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]

    def labels() -> list[str]:
        return rng.choices(vocab, weights, k=rng.randint(1, 6))

    gold = [LabelRecord(name=f"clip{i:06d}", labels=labels()) for i in range(n)]
    pred = [LabelRecord(name=f"clip{i:06d}", labels=labels() if rng.random() > 0.02 else []) for i in range(n)]
    return gold, pred


def reference_ew_fs(wheel: EmotionWheel, gold, pred, level: str = "level1") -> float:
    """The reference algorithm: every label occurrence is mapped from scratch (no memo)."""
    fs = []
    for w in WHEELS:
        wmap = wheel.wheel_maps[w][level]

        def ring(label: str, wmap=wmap) -> str | None:
            for c in sorted({s for b in wheel.format_mapping.get(label, ()) for s in wheel.raw_mapping.get(b, ())}):
                if c in wmap:
                    return wmap[c]
            return None

        accs, recs = [], []
        for g, p in zip(gold, pred, strict=True):
            gs = {r for r in map(ring, g.labels) if r}
            if not gs:
                continue
            a, r = set_overlap(gs, {r for r in map(ring, p.labels) if r})
            accs.append(a)
            recs.append(r)
        pm, rm = sum(accs) / len(accs), sum(recs) / len(recs)
        fs.append(2 * pm * rm / (pm + rm))
    return sum(fs) / len(fs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel-dir", default=None, help="emotion-wheel folder (or AFFECTREASON_WHEEL_DIR)")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--baseline-records", type=int, default=10_000)
    parser.add_argument("--no-embedding", action="store_true")
    args = parser.parse_args()

    wheel = EmotionWheel.load(args.wheel_dir)
    gold, pred = synthetic(wheel, args.records)
    aligned = align(gold, pred)
    with tempfile.TemporaryDirectory() as tmp:
        # Cached groups in the MERTools file format: one group per wheel base word among the clip's labels.
        groups_path = Path(tmp) / "groups.json"
        cache = {}
        for g, p in zip(gold, pred, strict=True):
            groups: dict[str, list[str]] = {}
            for label in dict.fromkeys(g.labels + p.labels):
                groups.setdefault(wheel.base_word(label), []).append(label)
            cache[g.name] = str(list(groups.values()))
        groups_path.write_text(json.dumps(cache))
        cached, t_load = timed(lambda: CachedGroups(groups_path))

    figures: dict[str, float] = {}
    runs = {
        "ov_cached": lambda: score_ov(aligned, cached),
        "ov_wheel": lambda: score_ov(aligned, WheelGrouping(wheel)),
        "ew_level1": lambda: score_ew(aligned, wheel, "level1"),
        "ew_level2": lambda: score_ew(aligned, wheel, "level2"),
        "hit_rate": lambda: hit_rate(aligned, wheel),
    }
    total = 0.0
    print(f"{args.records:,} synthetic records, {VOCABULARY} label words; groups file parsed in {t_load:.2f} s")
    for name, run in runs.items():
        result, seconds = timed(run)
        total += seconds
        figures[f"{name}_s"] = round(seconds, 3)
        print(f"  {name:<10} {seconds:6.2f} s  {args.records / seconds:>10,.0f} records/s  "
              f"{ {k: round(v, 4) for k, v in result.summary.items()} }")
    figures["all_ov_ew_s"] = round(total, 3)
    print(f"all OV + EW metrics: {total:.2f} s for {args.records:,} records "
          f"({args.records / total:,.0f} records/s; target < 10 s: {'met' if total < 10 else 'NOT met'})")

    n_base = min(args.baseline_records, args.records)
    fresh = EmotionWheel.load(args.wheel_dir)
    ours, t_ours = timed(lambda: score_ew(align(gold[:n_base], pred[:n_base]), fresh, "level1").summary["fs"])
    ref, t_ref = timed(lambda: reference_ew_fs(fresh, gold[:n_base], pred[:n_base]))
    assert abs(ours - ref) < 1e-12, (ours, ref)
    figures["ew_speedup_vs_reference"] = round(t_ref / t_ours, 2)
    print(f"EW level1 on {n_base:,} records: reference algorithm {t_ref:.2f} s, ours {t_ours:.2f} s "
          f"(x{t_ref / t_ours:.1f}, same F-score {ours:.6f})")

    if not args.no_embedding:
        from affectreason.eval.embeddings import TextEncoder
        from affectreason.eval.grouping import EmbeddingGrouping

        encoder, t_model = timed(TextEncoder)
        result, seconds = timed(lambda: score_ov(aligned, EmbeddingGrouping(encoder, 0.5)))
        figures.update(ov_embedding_s=round(seconds, 3), embedding_cache_hit_rate=round(encoder.hit_rate, 4),
                       embedding_distinct_labels=encoder.misses)
        print(f"OV with embedding grouping: model load {t_model:.1f} s, scoring {seconds:.2f} s "
              f"({args.records / seconds:,.0f} records/s); {encoder.misses} distinct labels encoded once, "
              f"label cache hit rate {encoder.hit_rate:.4f}")
    print(json.dumps({"records": args.records, **figures}))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
