"""The API-key check that runs inside the vLLM server (``--middleware affectreason.serve.auth.require_key``).

vLLM's own ``--api-key`` guards only paths under /v1, /v2, /inference and /cohere; /invocations (the same
inference API, for SageMaker) and /metrics stay open (vLLM 0.32 ``--api-key`` help text). This guard
asks for the key on every path but /health, which readiness checks need. The key comes from the
environment (``VLLM_API_KEY``), as ``affectreason serve`` passes it, not from the command line.
"""

from __future__ import annotations

import hmac
import os

KEY_ENV = "VLLM_API_KEY"
OPEN_PATHS = frozenset({"/health"})


def authorized(header: str | None, key: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <key>`` (constant-time comparison)."""
    return hmac.compare_digest((header or "").encode(), f"Bearer {key}".encode())


async def require_key(request, call_next):
    """Starlette HTTP middleware: 401 without the key, except for /health and CORS preflight."""
    key = os.environ.get(KEY_ENV)
    if key and request.method != "OPTIONS" and request.url.path not in OPEN_PATHS:
        if not authorized(request.headers.get("authorization"), key):
            from starlette.responses import JSONResponse

            return JSONResponse({"error": "Unauthorized"}, status_code=401)
    return await call_next(request)
