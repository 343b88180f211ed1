"""One client for any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, hosted APIs), used by the server
backend, the LLM judges and the teacher.

Retries transient failures (connection errors, 429, 5xx) with exponential backoff and jitter (so many clients
that failed together do not retry together), waiting as long as a 429 / 503's ``Retry-After`` asks (up to a
minute); never retries a request the server rejected (other 4xx), and answers repeated requests from an on-disk
cache keyed by the full request (model, messages, sampling settings) so judge re-runs cost nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from affectreason.errors import AffectReasonError

T = TypeVar("T")
API_KEY_ENVS = ("AFFECTREASON_API_KEY", "OPENAI_API_KEY")
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(AffectReasonError, RuntimeError):
    """The endpoint could not answer; the message says what was tried."""


class UnparseableAnswer(ValueError):
    """The model's answers held nothing usable after all attempts."""


class ResponseCache:
    """A SQLite map from request hash to response text, safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> str | None:
        """The cached text for a key, counting hits and misses."""
        with self._lock:
            row = self._db.execute("SELECT text FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return row[0]

    def put(self, key: str, text: str) -> None:
        """Store a response."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)", (key, text))
            self._db.commit()

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def request_key(payload: dict) -> str:
    """A stable hash of a chat request (what the cache is keyed by)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def normalize_base_url(url: str) -> str:
    """Accept ``http://host:port`` or ``http://host:port/v1`` (with or without a trailing slash)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


MAX_RETRY_AFTER_S = 60.0  # a server asking for longer is treated as down: the request fails with its error


def retry_delay(attempt: int, backoff_s: float, retry_after: str | None = None, draw: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): the server's ``Retry-After`` (seconds) when it sent
    one, else ``backoff_s x 2^(attempt-1)`` scaled by a jitter ``draw`` in [0.5, 1) (random when not given).

    >>> retry_delay(1, 0.5, draw=0.5), retry_delay(3, 0.5, draw=0.5), retry_delay(2, 0.5, "7")
    (0.25, 1.0, 7.0)
    >>> retry_delay(2, 0.5, "900"), retry_delay(2, 0.5, "Wed, 21 Oct 2026 07:28:00 GMT", draw=0.5)
    (60.0, 0.5)
    """
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass  # an HTTP date: fall back to the backoff
    return backoff_s * 2 ** (attempt - 1) * (draw if draw is not None else random.uniform(0.5, 1.0))


@dataclass
class ChatClient:
    """Chat completions against an OpenAI-compatible server."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 0.5
    cache: ResponseCache | None = None
    requests_sent: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.base_url = normalize_base_url(self.base_url)
        if self.api_key is None:
            self.api_key = next((os.environ[e] for e in API_KEY_ENVS if os.environ.get(e)), None)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout_s, headers=headers)

    def complete(
        self,
        messages: list[dict],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        response_format: dict | None = None,
        use_cache: bool = True,
    ) -> str:
        """The assistant text for ``messages``; cached by the full request when a cache is set."""
        payload: dict = {"model": self.model, "messages": messages, "temperature": temperature,
                         "max_tokens": max_tokens}
        if response_format is not None:
            payload["response_format"] = response_format
        key = request_key(payload)
        if use_cache and self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        text = self._post(payload)
        if self.cache is not None:
            self.cache.put(key, text)
        return text

    def ask(self, messages: list[dict], parse: Callable[[str], T | None], attempts: int = 3,
            **settings) -> tuple[T, str]:
        """(parsed value, answer text): re-asks while ``parse`` returns None, at most ``attempts`` times.

        Only the first try may come from the cache: a cached unparseable answer would come back forever.
        """
        text = ""
        for attempt in range(attempts):
            text = self.complete(messages, use_cache=attempt == 0, **settings)
            value = parse(text)
            if value is not None:
                return value, text
        raise UnparseableAnswer(f"no usable answer in {attempts} attempts; last: {text[:160]!r}")

    def _post(self, payload: dict) -> str:
        last_error, retry_after = "no attempt made", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(retry_delay(attempt, self.backoff_s, retry_after))
            retry_after = None
            self.requests_sent += 1
            try:
                response = self._http.post("/chat/completions", json=payload)
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRYABLE_STATUS:
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                retry_after = response.headers.get("retry-after")
                continue
            if response.status_code != 200:
                raise EndpointError(
                    f"{self.base_url}/chat/completions refused the request (HTTP {response.status_code}): "
                    f"{response.text[:300]}"
                )
            try:
                return response.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                last_error = f"malformed response body: {response.text[:200]}"
        raise EndpointError(
            f"{self.base_url}/chat/completions failed after {self.max_retries + 1} attempts; last error: {last_error}"
        )

    def models(self) -> list[str]:
        """The model names the server lists (``GET /models``): a vLLM server's base model first, then its adapters."""
        try:
            response = self._http.get("/models")
        except httpx.TransportError as exc:
            raise EndpointError(f"{self.base_url}/models: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise EndpointError(f"{self.base_url}/models refused the request (HTTP {response.status_code}): "
                                f"{response.text[:300]}")
        return [entry["id"] for entry in response.json().get("data", [])]

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()
