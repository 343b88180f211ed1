"""The EMER protocol with an LLM judge behind any OpenAI-compatible endpoint.

Clue overlap: one request per pair; the judge lists the clues of each description, then ends with
``Score: N`` (prompt ``judges/emer_clue_overlap``). Label overlap: the emotion words of each side
are extracted first when a record has no labels (``judges/emer_label_extract``), then the two lists
are rated (``judges/emer_label_overlap``). Temperature 0 throughout; every request is cached by the
client, so a re-run with the same model and prompts sends nothing.

Published EMER figures were produced with a GPT model that is no longer served, so numbers from
another judge model are comparable with each other, not with the papers' tables.
"""

from __future__ import annotations

import re

from affectreason.endpoint import ChatClient, UnparseableAnswer
from affectreason.eval.judges.base import PairScore
from affectreason.labels import parse_label_answer
from affectreason.reason.prompts import load_prompt
from affectreason.schema import LabelRecord

SCORE_LINE = re.compile(r"score\W{0,10}?(\d+(?:\.\d+)?)\s*(?:/\s*10|out of 10)?", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*/\s*10)?(?![\w.])")


def parse_score(text: str, low: float = 0.0, high: float = 10.0) -> float | None:
    """The judge's score: the last ``Score: N`` (or JSON ``"score": N``), else a lone number in range.

    >>> parse_score("Clues... overlap is partial.\\nScore: 7")
    7.0
    >>> parse_score('{"score": 8.5}')
    8.5
    >>> parse_score("**Score:** 6/10")
    6.0
    >>> parse_score("I would say 4")
    4.0
    >>> parse_score("between 3 and 5") is None
    True
    """
    candidates = [float(m) for m in SCORE_LINE.findall(text)]
    if not candidates:
        numbers = {float(m) for m in NUMBER.findall(text)}
        candidates = list(numbers) if len(numbers) == 1 else []
    in_range = [c for c in candidates if low <= c <= high]
    return in_range[-1] if in_range else None


parse_label_list_answer = parse_label_answer  # the old name, kept importable (affectreason.labels has the code)


class LLMJudge:
    """EMER clue and label overlap judged by an LLM at temperature 0."""

    def __init__(self, client: ChatClient, max_attempts: int = 3, workers: int = 8, max_tokens: int = 768):
        self.client = client
        self.max_attempts = max_attempts
        self.workers = workers
        self.max_tokens = max_tokens
        self.prompts = {name: load_prompt(f"judges/{name}")
                        for name in ("emer_clue_overlap", "emer_label_extract", "emer_label_overlap")}

    def _ask(self, prompt: str, parse, **variables):
        messages = self.prompts[prompt].render(**variables)
        try:
            return self.client.ask(messages, parse, self.max_attempts, temperature=0.0, max_tokens=self.max_tokens)
        except UnparseableAnswer as exc:
            raise UnparseableAnswer(f"{prompt}: {exc}") from None

    def clue_overlap(self, reference: str, prediction: str) -> PairScore:
        """Summarise both descriptions' clues, then score their overlap 0-10."""
        score, text = self._ask("emer_clue_overlap", parse_score, reference=reference, prediction=prediction)
        return PairScore(score, {"judge_answer": text})

    def extract_labels(self, text: str) -> list[str]:
        """Emotion words the description attributes to the person."""
        labels, _ = self._ask("emer_label_extract", parse_label_answer, text=text)
        return labels

    def _labels(self, record: LabelRecord) -> list[str]:
        if record.labels or not record.reasoning:
            return record.labels
        return self.extract_labels(record.reasoning)

    def label_overlap(self, reference: LabelRecord, prediction: LabelRecord) -> PairScore:
        """Score the overlap of the two label lists 0-10 (extracting labels from reasoning where needed)."""
        ref, pred = self._labels(reference), self._labels(prediction)
        if not pred:
            return PairScore(0.0, {"reference_labels": ref, "predicted_labels": pred})
        score, text = self._ask("emer_label_overlap", parse_score, reference=ref, prediction=pred)
        return PairScore(score, {"reference_labels": ref, "predicted_labels": pred, "judge_answer": text})

    def describe(self) -> dict:
        """Endpoint, model and prompt versions."""
        return {"kind": "llm", "endpoint": self.client.base_url, "model": self.client.model,
                "prompt_versions": {k: p.version for k, p in self.prompts.items()}}
