"""``affectreason query``: cues extracted here, the reasoning done by a served model (vLLM or any
OpenAI-compatible server), answers constrained by the Explanation JSON schema and parsed into ``Explanation``.

Free-text fields of the schema get a ``maxLength``, lists a ``maxItems`` and numbers two decimals and a range
before it is sent: constrained decoding only guarantees JSON that *ends* if every value must end, and small
models loop inside a string or a number until ``max_tokens`` otherwise (a tiny random model: 400 of 400
tokens unbounded, ~100 bounded).
A native multimodal model can also be sent the clip's key frames (images) and its audio (16 kHz WAV,
the rate Whisper-style encoders take, so the server does not resample).

A batch runs ``concurrency`` requests at a time, writes one JSONL line per clip as it finishes
(``{"clip", "explanation"}`` or ``{"clip", "error"}``), and a re-run skips clips already explained and
retries the failed ones; transient HTTP failures are retried with backoff by ``ChatClient``.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectreason.reason.llm import DEFAULT_PROMPT, build_messages, explanation_schema
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Clip, Cues, Explanation
from affectreason.serve.batch import Item
from affectreason.serve.client import ChatClient


@dataclass
class QueryConfig:
    """How to ask the server."""

    concurrency: int = 8
    """requests in flight at once"""
    timeout_s: float = 300.0
    """per request"""
    retries: int = 3
    """retries of a request after a connection error, 429 or 5xx"""
    backoff_s: float = 1.0
    """first retry delay; doubles each time"""
    max_tokens: int = 768
    max_chars: int = 400
    """maxLength of every free-text field"""
    max_items: int = 6
    """maxItems of every list (observations, labels)"""
    frames: int = 0
    """key frames sent as images (native vision-language models)"""
    audio: bool = False
    """send the clip's audio (native audio models)"""
    prompt: str = DEFAULT_PROMPT
    """the prompt to render: an adapter's own (its affectreason_adapter.json says which) or reason/explain"""
    schema: dict = field(default_factory=explanation_schema)


NUMBER_LIMIT = 100_000  # |number| bound where the schema sets none (times in s, measurements)


def bounded_schema(schema: dict, max_chars: int, max_items: int) -> dict:
    """A copy of ``schema`` with ``maxLength`` on free strings, ``maxItems`` on arrays, and numbers of at most two
    decimals within their range (±NUMBER_LIMIT where the schema sets none)."""
    bounded = copy.deepcopy(schema)

    def bound(node) -> None:
        if isinstance(node, list):
            for child in node:
                bound(child)
            return
        if not isinstance(node, dict):
            return
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "string" in kinds and "enum" not in node:
            node["maxLength"] = min(node.get("maxLength", max_chars), max_chars)
        if "array" in kinds:
            node["maxItems"] = min(node.get("maxItems", max_items), max_items)
            items = node.get("items")
            if isinstance(items, dict) and items.get("type") == "string":
                items.setdefault("minLength", 1)  # SmolLM2 answered "labels": [""] (checked)
        if "number" in kinds:  # digits too: a small model writes "start": 50444444... until max_tokens
            node.setdefault("multipleOf", 0.01)
            node.setdefault("minimum", -NUMBER_LIMIT)
            node.setdefault("maximum", NUMBER_LIMIT)
        for child in node.values():
            bound(child)

    bound(bounded)
    return bounded


def response_format(config: QueryConfig) -> dict:
    """The OpenAI ``response_format`` asking for the bounded Explanation schema."""
    schema = bounded_schema(config.schema, config.max_chars, config.max_items)
    return {"type": "json_schema", "json_schema": {"name": "explanation", "schema": schema}}


def wav_base64(samples: np.ndarray, rate: int) -> str:
    """Mono float samples in [-1, 1] as a base64 16-bit PCM WAV."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return base64.b64encode(buffer.getvalue()).decode()


def jpeg_data_url(image: np.ndarray) -> str:
    """An RGB frame as a ``data:image/jpeg;base64,...`` URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def media_parts(clip: Clip, cues: Cues, frames: int, audio: bool) -> list[dict]:
    """OpenAI content parts for the clip's key frames and audio (empty when neither is asked for or present)."""
    parts: list[dict] = []
    if frames:
        from affectreason.reason.llm import key_frames

        parts += [{"type": "image_url", "image_url": {"url": jpeg_data_url(frame)}}
                  for frame in key_frames(clip, cues, frames)]
    if audio:
        from affectreason.media import read_audio

        track, _ = read_audio(clip.path, start=clip.start, end=clip.end)
        if track is not None:
            parts.append({"type": "input_audio",
                          "input_audio": {"data": wav_base64(track.samples, track.rate), "format": "wav"}})
    return parts


class ServerReasoner:
    """Explanations from a model behind an OpenAI-compatible server, schema-constrained, optionally with media."""

    name = "server"

    def __init__(self, client: ChatClient, config: QueryConfig | None = None):
        self.client = client
        self.config = config or QueryConfig()
        self.format = response_format(self.config)
        self.extractor = None

    def messages(self, cues: Cues, clip: Clip | None = None) -> list[dict]:
        """The chat messages: the explain prompt, with media parts before the text of the last message."""
        messages = build_messages(cues, prompt=self.config.prompt)
        parts = media_parts(clip, cues, self.config.frames, self.config.audio) if clip is not None else []
        if parts:
            last = messages[-1]
            messages[-1] = {**last, "content": [*parts, {"type": "text", "text": last["content"]}]}
        return messages

    def explain(self, cues: Cues, clip: Clip | None = None) -> Explanation:
        """Ask (no cache: a served model may change under the same name) and parse one explanation."""
        text = self.client.complete(self.messages(cues, clip), temperature=0.0, max_tokens=self.config.max_tokens,
                                    response_format=self.format, use_cache=False)
        return parse_explanation(text, extractor=self.extractor, clip_id=cues.clip_id, backend=self.name,
                                 model=self.client.model)


def connect(server: str, model: str | None, api_key: str | None, config: QueryConfig) -> ServerReasoner:
    """A reasoner for ``model`` at ``server`` (default: the first model the server lists)."""
    client = ChatClient(server, model or "", api_key=api_key, timeout_s=config.timeout_s,
                        max_retries=config.retries, backoff_s=config.backoff_s)
    if not model:
        names = client.models()
        if not names:
            raise ValueError(f"{server} lists no model; pass --model NAME")
        client.model = names[0]
    return ServerReasoner(client, config)


def _explain_record(reasoner: ServerReasoner, item: Item) -> dict:
    from affectreason.reason.explain import explain_cues

    clip = item.clip.model_dump(mode="json")
    if item.cues is None:
        return {"clip": clip, "error": item.error or "no cues"}
    try:
        explanation = explain_cues(item.cues, reasoner, item.clip if Path(item.clip.path).is_file() else None)
        return {"clip": clip, "explanation": explanation.model_dump(mode="json")}
    except Exception as exc:  # a failed clip is recorded and the batch goes on
        return {"clip": clip, "error": f"{type(exc).__name__}: {exc}"}


@dataclass
class BatchResult:
    """What a batch did: counts and the ids of the clips that failed (with their errors)."""

    ok: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def query_batch(items: list[Item], out: str | Path, reasoner: ServerReasoner,
                on_done: Callable[[dict], None] | None = None) -> BatchResult:
    """Explain every item not yet in ``out`` with ``concurrency`` requests in flight, appending as they finish."""
    from affectreason.cues.pipeline import done_ids

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    finished = done_ids(out)
    todo = [item for item in items if item.clip.id not in finished]
    result = BatchResult(skipped=len(items) - len(todo))
    with out.open("a", encoding="utf-8") as handle, \
            ThreadPoolExecutor(max_workers=max(1, reasoner.config.concurrency)) as pool:
        futures = [pool.submit(_explain_record, reasoner, item) for item in todo]
        for future in as_completed(futures):
            record = future.result()
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            if "error" in record:
                result.failed[record["clip"]["id"]] = record["error"]
            else:
                result.ok += 1
            if on_done:
                on_done(record)
    return result
