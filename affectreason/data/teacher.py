"""Teacher distillation: a teacher LLM behind an OpenAI-compatible endpoint writes each chain of thought,
and a record is kept only when the teacher's labels agree with gold.

The teacher gets the student's own prompt (``reason/explain`` over the textualized cues, with the
Explanation JSON schema as ``response_format`` so a vLLM server constrains decoding) and never sees
the gold labels; agreement is rejection sampling. Agreement is the emotion-wheel F-score of the
record (``affectreason.eval.ew.score_ew``, level 1, mean over the 5 wheels) >= ``min_ew_fs``; a gold
set that is on no wheel (``neutral``) is compared by exact label overlap instead (both in
``affectreason.eval.per_record.label_agreement``). Requests run in a thread pool; answers are cached
by the client (a re-run sends nothing); an answer without labels or observations is asked again
(3 attempts, ``ChatClient.ask``); one failed request drops one record with its error recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from affectreason.endpoint import ChatClient, EndpointError, UnparseableAnswer
from affectreason.eval.per_record import label_agreement  # the per-record scorer; importable from here as before
from affectreason.eval.wheel import EmotionWheel
from affectreason.reason.grounding import ground
from affectreason.reason.messages import explanation_schema
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Cues, Explanation


@dataclass
class Verdict:
    """What the teacher said about one record and whether the record is kept."""

    id: str
    kept: bool
    outcome: str  # agrees | disagrees | unparseable | failed
    fs: float | None = None
    labels: list[str] = field(default_factory=list)
    explanation: Explanation | None = None
    error: str | None = None

    def summary(self) -> dict:
        """The per-record line of ``teacher.jsonl``."""
        return {"id": self.id, "kept": self.kept, "outcome": self.outcome, "ew_fs": self.fs, "labels": self.labels,
                "error": self.error, "answer": self.explanation.raw_text if self.explanation else None}


def ask_teacher(client: ChatClient, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                clip_id: str, attempts: int = 3) -> Explanation:
    """The teacher's parsed explanation; an answer without labels or observations is asked again."""
    schema = {"type": "json_schema", "json_schema": {"name": "explanation", "schema": explanation_schema()}}

    def usable(text: str) -> Explanation | None:
        explanation = parse_explanation(text, clip_id=clip_id, backend="teacher", model=client.model)
        return explanation if explanation.parse_status != "failed" and explanation.observations else None

    explanation, _ = client.ask(messages, usable, attempts=attempts, temperature=temperature, max_tokens=max_tokens,
                                response_format=schema)
    return explanation


def judge(clip_id: str, gold: list[str], explanation: Explanation, wheel: EmotionWheel, min_fs: float) -> Verdict:
    """Keep or drop one answer by its labels' agreement with gold."""
    fs = label_agreement(gold, explanation.labels, wheel)
    kept = fs >= min_fs
    return Verdict(clip_id, kept, "agrees" if kept else "disagrees", fs, explanation.labels, explanation)


def distill(items: list[tuple[str, list[dict[str, str]], list[str]]], client: ChatClient, wheel: EmotionWheel,
            min_fs: float, workers: int = 4, max_tokens: int = 768, temperature: float = 0.0,
            on_done: Callable[[Verdict], None] | None = None) -> list[Verdict]:
    """A verdict per (clip id, prompt messages, gold labels), in input order."""

    def one(item: tuple[str, list[dict[str, str]], list[str]]) -> Verdict:
        clip_id, messages, gold = item
        try:
            explanation = ask_teacher(client, messages, max_tokens, temperature, clip_id)
        except EndpointError as exc:  # one failed request drops one record; the batch goes on
            verdict = Verdict(clip_id, False, "failed", error=str(exc))
        except UnparseableAnswer as exc:
            verdict = Verdict(clip_id, False, "unparseable", error=str(exc))
        else:
            verdict = judge(clip_id, gold, explanation, wheel, min_fs)
        if on_done:
            on_done(verdict)
        return verdict

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, items))


def drop_ungrounded(verdicts: list[Verdict], cues: dict[str, Cues | None], min_grounding: float) -> None:
    """Drop kept answers whose observations' grounding score against the record's cues is below the bar."""
    for verdict in verdicts:
        measured = cues.get(verdict.id)
        if not verdict.kept or measured is None:
            continue
        score = ground(verdict.explanation.observations, measured).score
        if score is not None and score < min_grounding:
            verdict.kept, verdict.outcome = False, "ungrounded"
            verdict.error = f"grounding {score} < {min_grounding}"


def teacher_summary(verdicts: list[Verdict]) -> dict:
    """Asked, kept, kept share and the count of each outcome."""
    outcomes: dict[str, int] = {}
    for verdict in verdicts:
        outcomes[verdict.outcome] = outcomes.get(verdict.outcome, 0) + 1
    kept = sum(v.kept for v in verdicts)
    return {"asked": len(verdicts), "kept": kept, "kept_share": round(kept / len(verdicts), 4) if verdicts else 0.0,
            "outcomes": outcomes}


def write_verdicts(verdicts: list[Verdict], path: Path) -> None:
    """One line per record: outcome, EW F-score, the teacher's labels and answer."""
    with path.open("w", encoding="utf-8") as handle:
        for verdict in verdicts:
            handle.write(json.dumps(verdict.summary(), ensure_ascii=False) + "\n")
