"""ChatClient's retries against a real HTTP server on 127.0.0.1: a 429 with ``Retry-After`` is waited out as the
server asks, other retries back off with jitter, and the delays are the doctested ``retry_delay``."""

from __future__ import annotations

import doctest
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import affectreason.endpoint as endpoint
from affectreason.endpoint import ChatClient


class Busy(BaseHTTPRequestHandler):
    """Answers 429 with ``Retry-After: 1`` to the first request, then a completion; records when each came."""

    times: list[float] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        Busy.times.append(time.monotonic())
        if len(Busy.times) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.end_headers()
            return
        body = json.dumps({"choices": [{"message": {"content": "ok"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_429_is_retried_after_the_wait_the_server_asks_for():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ChatClient(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", backoff_s=0.01)
        assert client.complete([{"role": "user", "content": "hi"}], use_cache=False) == "ok"
    finally:
        server.shutdown()
    assert client.requests_sent == 2 and len(Busy.times) == 2
    assert 1.0 <= Busy.times[1] - Busy.times[0] < 1.5  # Retry-After's second, not the 0.01 s backoff


def test_retry_delays():
    assert doctest.testmod(endpoint).failed == 0
    delays = [endpoint.retry_delay(2, 1.0) for _ in range(200)]
    assert 1.0 <= min(delays) and max(delays) < 2.0 and len(set(delays)) > 100  # jittered within [0.5, 1) x 2 s
