"""The server under load: ``affectreason serve`` (vLLM) with the tiny model and 64 concurrent ``query`` clients for
a bounded time, on 127.0.0.1 only.

    python eval/bench/serve_load.py [--clients 64] [--seconds 120] [--warmup 20] [--short-timeout-clients 8]
                                    [--model DIR]

Each client is what ``affectreason query CLIP --out OUT.jsonl`` does: its own ``connect()`` (its own HTTP
connection pool), then one clip after another through the batch runner (``batch.run``, the server reasoner's
threads), appending to its own resumable JSONL, until the time is up. ``--short-timeout-clients`` of them are given
a request timeout (``--short-timeout`` s) shorter than the server's latency under this load: their requests time
out, are retried by the client with backoff and end as error records; after the timed run every client runs its
output again with the normal timeout, which retries exactly its failed items (the fault: clients that give up
under load; the check: nothing lost, the re-run completes them).

Counted: items started, records written (the last record per item), explanations, error records, HTTP requests
sent (attempts, so retries show), items missing (none expected). The server's RSS (the API server process and
all its children: engine core, workers; psutil) is sampled every second; growth is measured from the first sample
after ``--warmup`` seconds of load to the largest later one (target < 10%). The model is the tests' tiny random
Qwen2 (hidden 128), built into a temp folder, unless ``--model DIR``. Prints the machine's cores and load before
and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from timing import machine_line  # eval/bench/timing.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.tiny_models
KEY = "load-test-key"
WORDS = ["so glad you came", "I can't believe it", "leave me alone", "what a surprise", "this is fine"]


def cue_item(name: str, i: int):
    """An item with varied cues (so the prompts differ) and no media file (the model sees the cue text)."""
    from affectreason.batch import Item
    from affectreason.schema import AUEvent, Clip, Cues, FaceFrame, Transcript

    au = round(1.0 + (i % 40) / 10, 1)
    cues = Cues(clip_id=name, duration_s=2.0, frames=[FaceFrame(t=0.4, faces=1, aus={"AU12": au})], apex_t=0.4,
                au_events=[AUEvent(au="AU12", onset=0.2, apex=0.4, offset=1.2, peak=au)],
                transcript=Transcript(text=WORDS[i % len(WORDS)], source="given"))
    return Item(Clip(path=f"/nonexistent/{name}.mp4", id=name), cues)


def server_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


@dataclass
class Client:
    """One ``query`` client: its reasoner, its output and what it did."""

    index: int
    out: Path
    timeout_s: float
    items: list = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    reasoner: object = None
    rerun: object = None


def run_client(client: Client, url: str, deadline: float, config) -> None:
    """Clips one after another through the batch runner until ``deadline``."""
    from dataclasses import replace

    from affectreason.backends.server import connect
    from affectreason.batch import run

    client.reasoner = connect(url, None, KEY, replace(config, concurrency=1, timeout_s=client.timeout_s))
    while time.monotonic() < deadline:
        item = cue_item(f"c{client.index:02d}-{len(client.items):04d}", client.index * 1000 + len(client.items))
        client.items.append(item)
        start = time.perf_counter()
        run([item], client.out, reasoner=client.reasoner)
        client.seconds.append(time.perf_counter() - start)


def last_records(out: Path) -> dict[str, dict]:
    """The last record per item id of a batch output (a retried item's later line replaces its error)."""
    from affectreason.jsonl import read_jsonl

    return {r["clip"]["id"]: r for r in read_jsonl(out, bad_lines="skip")}


def load_test(url: str, pid: int, folder: Path, clients: int = 64, seconds: float = 120.0, warmup_s: float = 20.0,
              short_timeout_clients: int = 8, short_timeout_s: float = 1.0, config=None) -> dict:
    """Run ``clients`` query clients against ``url`` for ``seconds``, sampling the server's RSS; the figures."""
    from dataclasses import replace

    from affectreason.backends.server import QueryConfig
    from affectreason.batch import run

    config = config or QueryConfig(max_tokens=400, max_chars=24, max_items=2, retries=2, backoff_s=0.5)
    folder.mkdir(parents=True, exist_ok=True)
    team = [Client(i, folder / f"client{i:02d}.jsonl", short_timeout_s if i < short_timeout_clients
                   else config.timeout_s) for i in range(clients)]
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), server_rss(pid)))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.monotonic()
    sampler.start()
    threads = [threading.Thread(target=run_client, args=(c, url, start + seconds, config)) for c in team]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load_s = time.monotonic() - start
    stop.set()
    sampler.join()

    first_pass = {c.index: last_records(c.out) for c in team}
    errors_first = sum(1 for records in first_pass.values() for r in records.values() if "error" in r)
    # the re-run: each client runs its items again with the normal timeout; only the failed ones are sent
    rerun_start = time.monotonic()
    reruns = [threading.Thread(target=run, args=(c.items, c.out),
                               kwargs={"reasoner": connect_like(c, url, replace(config, concurrency=1))})
              for c in team if any("error" in r for r in first_pass[c.index].values())]
    for thread in reruns:
        thread.start()
    for thread in reruns:
        thread.join()
    rerun_s = time.monotonic() - rerun_start

    started = {item.clip.id for c in team for item in c.items}
    final = {k: v for c in team for k, v in last_records(c.out).items()}
    lines = sum(len(c.out.read_text(encoding="utf-8").splitlines()) for c in team if c.out.is_file())
    after = [rss for t, rss in samples if t >= start + warmup_s]
    latencies = sorted(s for c in team for s in c.seconds)
    return {
        "clients": clients, "short_timeout_clients": short_timeout_clients, "load_s": load_s,
        "items": len(started), "records": len(final), "lines": lines,
        "missing": sorted(started - set(final)), "unexpected": sorted(set(final) - started),
        "errors_first_pass": errors_first,
        "explanations": sum(1 for r in final.values() if "explanation" in r),
        "errors": sum(1 for r in final.values() if "error" in r),
        "neither": sum(1 for r in final.values() if "explanation" not in r and "error" not in r),
        "requests_sent": sum(r.client.requests_sent for c in team for r in (c.reasoner, c.rerun) if r is not None),
        "rerun_clients": len(reruns), "rerun_s": rerun_s,
        "items_per_s": len(started) / load_s if load_s else 0.0,
        "latency_p50_s": latencies[len(latencies) // 2] if latencies else None,
        "latency_p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None,
        "rss_samples_after_warmup": len(after),
        "rss_first_mib": after[0] / 2**20 if after else None,
        "rss_max_mib": max(after) / 2**20 if after else None,
        "rss_last_mib": after[-1] / 2**20 if after else None,
        "rss_growth": (max(after) - after[0]) / after[0] if after and after[0] else None,
        "rss_every_10s_mib": [round(rss / 2**20) for rss in after[::10]],
        "errors_by_kind": error_kinds(final),
    }


def connect_like(client: Client, url: str, config):
    """A fresh reasoner for a client's re-run (the normal timeout), counted with its first one."""
    from affectreason.backends.server import connect

    reasoner = connect(url, None, KEY, config)
    client.rerun = reasoner
    return reasoner


def error_kinds(records: dict[str, dict]) -> dict[str, int]:
    """Error records counted by their first words."""
    kinds: dict[str, int] = {}
    for record in records.values():
        if "error" in record:
            kind = record["error"].split(";")[0][:80]
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def start_server(model: Path, folder: Path):
    """``affectreason serve``'s server for ``model`` on 127.0.0.1 (any free port), healthy."""
    from affectreason.serve.launch import ServerConfig, VLLMServer

    server = VLLMServer(ServerConfig(str(model), port=0, api_key=KEY), log=folder / "vllm.log").start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the clients send clips")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of load before RSS is compared")
    parser.add_argument("--short-timeout-clients", type=int, default=8,
                        help="clients whose requests time out under load (retried, then re-run)")
    parser.add_argument("--short-timeout", type=float, default=1.0, help="their request timeout (s)")
    parser.add_argument("--model", type=Path, help="model folder (default: the tiny random Qwen2, built here)")
    args = parser.parse_args()

    print(machine_line("start"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = args.model
        if model is None:
            from tests.tiny_models import build_qwen2

            model = build_qwen2(folder / "qwen2_128", hidden=128)
        begin = time.perf_counter()
        server = start_server(model, folder)
        print(f"server healthy in {time.perf_counter() - begin:.0f} s at {server.url}")
        try:
            m = load_test(server.url, server.process.pid, folder / "out", args.clients, args.seconds, args.warmup,
                          args.short_timeout_clients, args.short_timeout)
        finally:
            server.stop()
    print(json.dumps(m, indent=1))
    print(f"{m['clients']} clients for {m['load_s']:.0f} s ({m['short_timeout_clients']} with a "
          f"{args.short_timeout:g} s timeout): {m['items']} items, {m['requests_sent']} HTTP requests; first pass "
          f"{m['errors_first_pass']} error records; after the re-run ({m['rerun_clients']} clients, "
          f"{m['rerun_s']:.0f} s) {m['explanations']} explanations, {m['errors']} errors, {len(m['missing'])} lost")
    print(f"throughput {m['items_per_s']:.2f} items/s, latency p50 {m['latency_p50_s']:.1f} s, p95 "
          f"{m['latency_p95_s']:.1f} s; server RSS after {args.warmup:g} s warm-up {m['rss_first_mib']:.0f} -> max "
          f"{m['rss_max_mib']:.0f} MiB (last {m['rss_last_mib']:.0f}), growth {100 * m['rss_growth']:.1f}% "
          "(target < 10%)")
    print(machine_line("end"))


if __name__ == "__main__":
    main()
