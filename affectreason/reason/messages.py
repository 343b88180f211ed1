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
import re
from functools import cache

from affectreason.cues.textualize import textualize
from affectreason.reason.prompts import PromptError, load_prompt, prompts_dir
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
    """``name@version`` of a prompt, as outputs record it (e.g. ``reason/explain@3``)."""
    return f"{prompt}@{load_prompt(prompt).version}"


@cache
def example_observations(prompt: str | None) -> tuple[str, ...]:
    """The observation texts of the worked example that prompt ``prompt`` (``name`` or ``name@version``) shows, for
    the copy check of grounding; empty for no prompt, an unknown one or one without an example.

    >>> example_observations("reason/explain_example@1")[0]
    'AU04 brow lowerer at 3.1/5 from 0.2 to 1.6 s'
    """
    if not prompt:
        return ()
    try:
        example = load_prompt(prompt.split("@")[0]).example
    except PromptError:
        return ()
    if not example.strip():
        return ()
    return tuple(o["text"] for o in json.loads(example).get("observations", []) if o.get("text"))


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
            node.setdefault("minimum", -NUMBER_LIMIT)
            node.setdefault("maximum", NUMBER_LIMIT)
            if node["minimum"] >= 0:
                node.setdefault("multipleOf", 0.01)
            elif node["maximum"] > 0:
                # llguidance 1.7.6, the grammar engine of every constrained path, admits no negative number under
                # multipleOf (checked: "-0.5" refused for minimum -1, multipleOf 0.01; integers are fine): the
                # range is split at 0 and only its non-negative half bounds the digits
                low, high = node.pop("minimum"), node.pop("maximum")
                node.pop("type", None)
                node["anyOf"] = [{"type": "number", "minimum": 0, "maximum": high, "multipleOf": 0.01},
                                 {"type": "number", "minimum": low, "maximum": 0},
                                 *({"type": k} for k in kinds if k != "number")]
        for child in node.values():
            bound(child)

    bound(bounded)
    return bounded


def shorten(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its longest run of whole sentences that fits (if that
    keeps at least half), else cut at a word, ended with an ellipsis.

    >>> shorten("He smiles. His voice is bright and loud.", 20), shorten("He smiles broadly today.", 12)
    ('He smiles.', 'He smiles…')
    """
    if len(text) <= limit:
        return text
    head = text[:limit]
    sentence = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if sentence + 1 >= limit // 2:
        return head[: sentence + 1]
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "…"


def fit_to_schema(value, schema: dict):
    """``value`` (parsed JSON) cut to the bounds of ``schema``: strings to ``maxLength`` (``shorten``), lists to
    ``maxItems``. Training targets pass through it, so a model learns only answers its decoding grammar admits.

    >>> fit_to_schema({"labels": ["a", "b", "c"], "text": "One. Two."},
    ...               {"properties": {"labels": {"maxItems": 2}, "text": {"type": "string", "maxLength": 6}}})
    {'labels': ['a', 'b'], 'text': 'One.'}
    """
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {k: fit_to_schema(v, properties[k]) if k in properties else v for k, v in value.items()}
    if isinstance(value, list):
        kept = value[: schema.get("maxItems", len(value))]
        return [fit_to_schema(item, schema.get("items", {})) for item in kept]
    if isinstance(value, str) and "maxLength" in schema:
        return shorten(value, schema["maxLength"])
    return value


def schema_violations(value, schema: dict, where: str = "$") -> list[str]:
    """What in ``value`` (parsed JSON) breaks ``schema``, for the keywords the Explanation schema and
    ``bounded_schema`` use: type, required, properties / additionalProperties, enum, min/maxLength, pattern,
    min/maxItems, minimum / maximum and multipleOf 0.01. An answer checker independent of any grammar engine.

    >>> schema_violations({"labels": ["{"]}, {"type": "object", "required": ["labels", "x"], "properties":
    ...     {"labels": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}}}})
    ['$: missing x', "$.labels[0]: '{' does not match ^[a-z]+$"]
    """
    if "anyOf" in schema:
        branches = [schema_violations(value, branch, where) for branch in schema["anyOf"]]
        return [] if any(not b for b in branches) else min(branches, key=len)
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    python = {"object": dict, "array": list, "string": str, "null": type(None), "number": (int, float),
              "integer": int, "boolean": bool, None: object}
    if not any(isinstance(value, python[k]) and (k == "boolean" or not isinstance(value, bool)) for k in kinds):
        return [f"{where}: {value!r} is not {'/'.join(map(str, kinds))}"]
    problems = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            problems += [f"{where}: extra {k}" for k in value if k not in properties]
        for key, item in value.items():
            if key in properties:
                problems += schema_violations(item, properties[key], f"{where}.{key}")
    elif isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            problems.append(f"{where}: {len(value)} items")
        for i, item in enumerate(value):
            problems += schema_violations(item, schema.get("items", {}), f"{where}[{i}]")
    elif isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            problems.append(f"{where}: {len(value)} characters")
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not schema.get("minimum", value) <= value <= schema.get("maximum", value):
            problems.append(f"{where}: {value} is out of range")
        if "multipleOf" in schema and abs(round(value / schema["multipleOf"]) * schema["multipleOf"] - value) > 1e-9:
            problems.append(f"{where}: {value} is not a multiple of {schema['multipleOf']}")
    return problems


def answer_schema() -> dict:
    """The bounded Explanation schema with the default bounds: what ``affectreason query`` sends and what local
    models decode under (the hf backend, training-time generation)."""
    return bounded_schema(explanation_schema(), MAX_CHARS, MAX_ITEMS)


def response_format(max_chars: int = MAX_CHARS, max_items: int = MAX_ITEMS, schema: dict | None = None) -> dict:
    """The OpenAI ``response_format`` asking for the bounded Explanation schema."""
    bounded = bounded_schema(schema or explanation_schema(), max_chars, max_items)
    return {"type": "json_schema", "json_schema": {"name": "explanation", "schema": bounded}}
