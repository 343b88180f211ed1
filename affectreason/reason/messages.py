"""What every LLM backend is asked: the explain prompt rendered over the textualized cues, and the
Explanation JSON schema the answer must follow, bounded so that constrained decoding always ends.

Free-text fields of the bounded schema get a ``maxLength``, lists a ``maxItems`` and numbers two decimals and a
range: constrained decoding only guarantees JSON that *ends* if every value must end, and small models loop
inside a string or a number until ``max_tokens`` otherwise (a tiny random model: 400 of 400 tokens unbounded,
~100 bounded). Weight-free: nothing here loads a model or opens a connection.
"""

from __future__ import annotations

import copy
import json
from functools import cache

from affectreason.cues.textualize import textualize
from affectreason.reason.prompts import load_prompt, prompts_dir
from affectreason.schema import Cues

DEFAULT_PROMPT = "reason/explain"
NUMBER_LIMIT = 100_000  # |number| bound where the schema sets none (times in s, measurements)
MAX_CHARS, MAX_ITEMS = 400, 6  # defaults of the bounded schema (query --max-chars / --max-items)


@cache
def explanation_schema() -> dict:
    """The JSON schema the models are asked to answer in (``prompts/reason/explanation.schema.json``)."""
    return json.loads((prompts_dir() / "reason" / "explanation.schema.json").read_text(encoding="utf-8"))


def build_messages(cues: Cues, max_cue_tokens: int = 400, prompt: str = DEFAULT_PROMPT) -> list[dict[str, str]]:
    """The chat messages asking for an explanation of ``cues`` with prompt ``prompt``."""
    return load_prompt(prompt).render(clip_id=cues.clip_id, cues=textualize(cues, max_cue_tokens))


def prompt_id(prompt: str) -> str:
    """``name@version`` of a prompt, as outputs record it (e.g. ``reason/explain@1``)."""
    return f"{prompt}@{load_prompt(prompt).version}"


def bounded_schema(schema: dict, max_chars: int, max_items: int) -> dict:
    """A copy of ``schema`` with ``maxLength`` on free strings, ``maxItems`` on arrays, and numbers of at most two
    decimals within their range (±NUMBER_LIMIT where the schema sets none).

    >>> bounded_schema({"type": "object", "properties": {"labels": {"type": "array", "items": {"type": "string"}}}},
    ...                400, 6)["properties"]["labels"]
    {'type': 'array', 'items': {'type': 'string', 'minLength': 1, 'maxLength': 400}, 'maxItems': 6}
    """
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


def response_format(max_chars: int = MAX_CHARS, max_items: int = MAX_ITEMS, schema: dict | None = None) -> dict:
    """The OpenAI ``response_format`` asking for the bounded Explanation schema."""
    bounded = bounded_schema(schema or explanation_schema(), max_chars, max_items)
    return {"type": "json_schema", "json_schema": {"name": "explanation", "schema": bounded}}
