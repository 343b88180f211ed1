"""Generation throughput: transformers ``generate`` one prompt at a time vs a vLLM server with 16 requests in flight.

    python eval/bench/serve_throughput.py [--model DIR] [--prompts 64] [--concurrency 16] [--new-tokens 64]

The same model on both sides (default: the tiny random Qwen2 of the tests, hidden 128, built into a temp
folder), the same 64 explain prompts over varied cues, greedy, exactly ``--new-tokens`` tokens per answer
(EOS ignored on both sides, so both do the same work). Prints generated tokens/s of each, their ratio
(target >= 5x), p50/p95 latency per request, and the server's start time (not counted in its rate).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

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


def run_transformers(model: Path, chats: list[list[dict]], new_tokens: int) -> dict:
    """One prompt at a time through ``generate`` (what the ``hf`` backend does)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model).eval()
    latencies, tokens = [], 0
    start = time.perf_counter()
    for chat in chats:
        ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        began = time.perf_counter()
        with torch.inference_mode():
            out = lm.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        latencies.append(time.perf_counter() - began)
        tokens += out.shape[1] - ids["input_ids"].shape[1]
    return {"tokens": tokens, "seconds": time.perf_counter() - start, "latencies": latencies}


def run_vllm(model: Path, chats: list[list[dict]], new_tokens: int, concurrency: int) -> dict:
    """The same prompts against ``affectreason serve``'s vLLM server, ``concurrency`` in flight."""
    import httpx

    from affectreason.serve.launch import ServerConfig, VLLMServer

    began = time.perf_counter()
    with VLLMServer(ServerConfig(str(model), port=0), log=Path(tempfile.mkdtemp()) / "vllm.log") as server:
        ready = time.perf_counter() - began
        client = httpx.Client(base_url=server.url, timeout=600)

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
            "server_start_s": ready}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the tests' tiny Qwen2)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    model = args.model
    if model is None:
        sys.path.insert(0, str(ROOT))
        from tests.tiny_models import build_qwen2

        model = build_qwen2(Path(tempfile.mkdtemp()) / "qwen2_128", hidden=128)
    chats = prompts(args.prompts)
    results = {"transformers": run_transformers(model, chats, args.new_tokens),
               "vllm": run_vllm(model, chats, args.new_tokens, args.concurrency)}
    report = {"model": model.name, "prompts": len(chats), "new_tokens": args.new_tokens,
              "concurrency": args.concurrency}
    for name, r in results.items():
        rate = r["tokens"] / r["seconds"]
        report[name] = {"tokens_per_s": round(rate, 1), "seconds": round(r["seconds"], 2), "tokens": r["tokens"],
                        "p50_s": round(percentile(r["latencies"], 50), 3),
                        "p95_s": round(percentile(r["latencies"], 95), 3)}
        print(f"{name:12s} {rate:8.1f} tokens/s  {r['tokens']} tokens in {r['seconds']:.1f} s  "
              f"latency p50 {percentile(r['latencies'], 50):.3f} s  p95 {percentile(r['latencies'], 95):.3f} s")
    report["ratio"] = round(report["vllm"]["tokens_per_s"] / report["transformers"]["tokens_per_s"], 2)
    report["vllm"]["server_start_s"] = round(results["vllm"]["server_start_s"], 1)
    print(f"vLLM / transformers: {report['ratio']:.2f}x (target >= 5x); server start "
          f"{results['vllm']['server_start_s']:.0f} s, not counted")
    print(json.dumps(report))


if __name__ == "__main__":
    print(machine_line("start"), flush=True)
    main()
    print(machine_line("end"))
