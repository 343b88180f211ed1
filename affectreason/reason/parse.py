"""Model text -> ``Explanation``, whatever shape the model answered in.

Tried in order: a JSON object (the schema the prompts ask for), or what can be salvaged from one that
was cut off; ``<think>...</think><answer>...</answer>``;
the three-section text format (``Key observations:`` / ``Interpretation:`` / ``Conclusion:`` /
``Labels:``); free text, from which emotion labels are extracted with the lexicon (or a given
vocabulary, e.g. the emotion wheel's word forms). Labels are emotion words (``labels.LABEL_PATTERN``, the
pattern the schema constrains them to): anything else (``"{"``, ``"AU12"``) is dropped into ``parse_errors``, and a
word outside the emotion lexicon (or the given vocabulary) is kept but listed in ``unknown_labels``. Parsing never
raises: ``parse_status`` says ok / partial / failed and ``parse_errors`` what could not be read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pydantic import ValidationError

from affectreason.labels import labels_from_value, split_label_words
from affectreason.reason.lexicon import extract_labels, unknown_labels
from affectreason.schema import Clue, Explanation

SECTION = re.compile(r"^\s*(?:#+\s*|\*\*)?(key observations|observations|interpretation|conclusion|labels|emotions)"
                     r"\s*(?:\*\*)?\s*:\s*(?:\*\*)?", re.IGNORECASE | re.MULTILINE)
THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
MODALITY_HINTS = (("face", r"\bAU\s?\d|face|smil|brow|eye|lip|mouth|cheek|frown"),
                  ("voice", r"voice|pitch|loud|tone|speech rate|syllable|prosod|quiet|whisper"),
                  ("text", r"says|said|words|\"|transcript|sentence"))


def guess_modality(text: str) -> str:
    """The modality an observation is about, from its wording."""
    for modality, pattern in MODALITY_HINTS:
        if re.search(pattern, text, re.IGNORECASE):
            return modality
    return "multimodal"


def _clues(items) -> list[Clue]:
    clues = []
    for item in items or []:
        if isinstance(item, dict):
            item = {**item, "modality": item.get("modality") or guess_modality(item.get("text", ""))}
            clues.append(Clue.model_validate(item))
        elif str(item).strip():
            text = str(item).strip(" -*\t")
            clues.append(Clue(modality=guess_modality(text), text=text))
    return clues


def _from_json(text: str) -> dict | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


SALVAGE_CLUE = re.compile(r'"modality"\s*:\s*"(\w+)"\s*,\s*"text"\s*:\s*"((?:[^"\\]|\\.)*)"')
SALVAGE_FIELD = re.compile(r'"(interpretation|conclusion)"\s*:\s*"((?:[^"\\]|\\.)*)"')
SALVAGE_LABELS = re.compile(r'"(?:labels|emotions)"\s*:\s*\[([^\]]*)\]')


def _salvage_json(text: str) -> dict | None:
    """Fields of a JSON answer that was cut off or malformed (small models often loop until max tokens)."""
    clues = [{"modality": m if m in ("face", "voice", "text", "scene", "multimodal") else guess_modality(t),
              "text": t.replace('\\"', '"')} for m, t in SALVAGE_CLUE.findall(text)]
    fields = dict(SALVAGE_FIELD.findall(text))
    labels = SALVAGE_LABELS.search(text)
    if not clues and not fields and not labels:
        return None
    return {"observations": _clues(clues), "interpretation": fields.get("interpretation", ""),
            "conclusion": fields.get("conclusion", ""),
            "labels": labels_from_value(re.findall(r'"([^"]+)"', labels.group(1))) if labels else []}


def _sections(text: str) -> dict[str, str]:
    marks = list(SECTION.finditer(text))
    out = {}
    for i, mark in enumerate(marks):
        key = mark.group(1).lower().replace("key ", "").replace("emotions", "labels")
        body = text[mark.end(): marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        out[key] = body.strip()
    return out


def _bullets(body: str) -> list[str]:
    lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip() for line in body.splitlines()]
    lines = [line for line in lines if line]
    return lines if len(lines) > 1 else [s for s in re.split(r"(?<=[.!?])\s+", body.strip()) if s]


LabelExtractor = Callable[[str], list[str]]


def _dropped(rejected: list[str]) -> str:
    return f"not emotion words, dropped from labels: {', '.join(repr(r[:40]) for r in rejected[:6])}"


def parse_explanation(text: str, vocabulary: set[str] | None = None, extractor: LabelExtractor | None = None,
                      **meta) -> Explanation:
    """Parse model output; ``meta`` (clip_id, backend, model) is copied onto the result.

    Labels the answer does not state come from ``extractor`` (e.g. an LLM behind an endpoint) when
    given, else from the lexicon or ``vocabulary``.
    """
    errors: list[str] = []
    fields: dict = {}
    data = _from_json(text)
    if data is not None:
        try:
            fields = {"observations": _clues(data.get("observations") or data.get("key_observations")),
                      "interpretation": str(data.get("interpretation") or ""),
                      "conclusion": str(data.get("conclusion") or ""),
                      "labels": labels_from_value(data.get("labels") or data.get("emotions") or []),
                      "valence": data.get("valence"), "arousal": data.get("arousal")}
        except (ValidationError, TypeError, AttributeError) as exc:
            errors.append(f"JSON object found but not in the Explanation schema: {str(exc)[:160]}")
            fields = {}
    if not fields and text.lstrip().startswith(("{", "```")):
        salvaged = _salvage_json(text)
        if salvaged is not None:
            fields = salvaged
            errors.append("JSON answer cut off or malformed: fields salvaged")
    if not fields:
        think, answer = THINK.search(text), ANSWER.search(text)
        body = text
        if think or answer:
            body = (think.group(1) if think else "") + "\n" + (answer.group(1) if answer else "")
        sections = _sections(body)
        if sections:
            fields = {"observations": _clues(_bullets(sections.get("observations", ""))),
                      "interpretation": sections.get("interpretation", ""),
                      "conclusion": sections.get("conclusion", ""),
                      "labels": labels_from_value(sections["labels"]) if "labels" in sections else []}
        elif think or answer:
            fields = {"observations": _clues(_bullets(think.group(1))) if think else [],
                      "conclusion": answer.group(1).strip() if answer else "",
                      "labels": labels_from_value(answer.group(1)) if answer and len(answer.group(1)) < 120 else []}
        else:
            fields = {"conclusion": text.strip()[:2000]}
            errors.append("no JSON, tags or sections: read as free text")
    fields["labels"], rejected = split_label_words(fields.get("labels") or [])
    if rejected:  # '{', 'AU12', '0.8': never labels (SmolLM2 answered "labels": ["{"] through a server)
        errors.append(_dropped(rejected))
    if not fields["labels"] and not rejected:  # labels it gave, all debris, are a failed answer, not a cue to guess
        source = " ".join([fields.get("conclusion", ""), fields.get("interpretation", "")]).strip() or text
        if extractor is not None:
            try:
                fields["labels"], dropped = split_label_words(labels_from_value(extractor(source)))
                errors += [_dropped(dropped)] if dropped else []
                errors.append("labels extracted from the prose by the label extractor")
            except Exception as exc:  # the extractor is a remote model: its failure is reported, not raised
                errors.append(f"label extractor failed ({type(exc).__name__}: {str(exc)[:120]})")
        if not fields.get("labels"):
            fields["labels"] = extract_labels(source, vocabulary) or extract_labels(text, vocabulary)
            if fields["labels"]:
                errors.append("labels extracted from the prose")
    for key in ("valence", "arousal"):
        value = fields.get(key)
        try:
            fields[key] = max(-1.0, min(1.0, float(value))) if value is not None else None
        except (TypeError, ValueError):
            errors.append(f"{key} {value!r} is not a number")
            fields[key] = None
    fields["unknown_labels"] = unknown_labels(fields["labels"], vocabulary)
    missing = [k for k in ("observations", "conclusion") if not fields.get(k)]
    if not fields["labels"]:
        status = "failed"
        errors.append("no emotion label found")
    elif missing or errors:
        status = "partial"
        errors += [f"no {k}" for k in missing]
    else:
        status = "ok"
    return Explanation(raw_text=text, parse_status=status, parse_errors=errors,
                       **{k: v for k, v in fields.items() if v is not None}, **meta)
