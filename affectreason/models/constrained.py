"""Constrained decoding for local transformers models: a logits processor that keeps a reply inside a JSON schema.

The schema is an argument (the backends pass the bounded Explanation schema the served paths send; this room does
not know what an explanation is). Library: **llguidance** (in ``affectreason[train]``), picked over xgrammar 0.2.8
and outlines_core 0.2.14 by ``eval/bench/constrained_smollm2.py --libraries`` (SmolLM2-135M-Instruct, the example
clip's prompt; figures in the README). Speed does not decide it: all three return valid JSON in 16-24 s per answer,
the model's ~70 ms per token dwarfing the library's own 0.2 ms (xgrammar, llguidance) to 2.5 ms (outlines_core,
which also needs 15-30 s to index the schema once). Fit does: llguidance alone enforces every bound the schema uses.
xgrammar ignores ``multipleOf`` (a number may take any number of digits), drops ``maxLength`` where a string has a
``pattern`` (the labels) and refuses an escaped quote in a string with ``maxLength`` (every string of the bounded
schema: no quoted words of the transcript); outlines_core ignores ``multipleOf`` and, given ``maxLength``, the
label ``pattern`` (it accepts the label ``"{"``). llguidance is also the engine of the vLLM paths (backend
"guidance"), so local and served answers obey the same grammar.

Every bound of the schema makes the JSON end eventually, but not necessarily within ``max_new_tokens``. So the last
``reserve`` tokens of the budget (at most half of it) close the answer: among the tokens the grammar allows, a
closing quote inside a string, else ``}``, ``]``, ``,`` or an opening quote (in that order) is taken as soon as it is
allowed, which ends the open strings, lists and objects and fills the remaining required keys with the shortest
values the grammar admits. (The tiny random Qwen2 of the tests within 384 tokens: valid JSON 0 of 4 prompts under
each library alone, 4 of 4 with the close-out.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from affectreason.models.causal_lm import ModelMissing

CLOSE_RESERVE = 40  # tokens kept to close the JSON: worst case ~30 (inside the first observation's text)
CLOSERS_IN_STRING = ('"',)
CLOSERS_OUTSIDE = ("}", "]", ",", '"')
INSTALL_HINT = "constrained decoding needs llguidance: `pip install 'affectreason[train]'` (or llguidance alone)"


def _llguidance():
    try:
        import llguidance
        import llguidance.hf  # noqa: F401
        import llguidance.numpy  # noqa: F401
    except ImportError:
        raise ModelMissing(INSTALL_HINT) from None
    return llguidance


def in_string(text: str) -> bool:
    """Whether JSON text ``text`` ends inside a string (an odd number of unescaped quotes).

    >>> in_string('{"a": "b'), in_string('{"a": "b\\\\"'), in_string('{"a": "b"')
    (True, True, False)
    """
    inside = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and inside:
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


@dataclass
class SchemaConstraint:
    """A JSON schema compiled for one tokenizer; ``processor()`` gives a fresh logits processor per generate call.

    The llguidance tokenizer (~0.3 s for a 49k vocabulary) is built once, at the first call, for the width of the
    model's logits (which may be padded beyond the tokenizer's vocabulary); a matcher per row then costs ~1 ms.
    """

    schema: dict
    tokenizer: object
    reserve: int = CLOSE_RESERVE
    _compiled: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        llg = _llguidance()
        self.grammar = llg.LLMatcher.grammar_from_json_schema(json.dumps(self.schema),
                                                               defaults={"whitespace_flexible": False})
        error = llg.LLMatcher.validate_grammar(self.grammar)
        if error:
            raise ValueError(f"the JSON schema cannot be compiled for constrained decoding: {error[:300]}")
        self.closers = {kind: [i for i in (self._single_token(c) for c in chars) if i is not None]
                        for kind, chars in (("string", CLOSERS_IN_STRING), ("outside", CLOSERS_OUTSIDE))}

    def _single_token(self, char: str) -> int | None:
        ids = self.tokenizer.encode(char, add_special_tokens=False)
        return ids[0] if len(ids) == 1 and self.tokenizer.decode(ids) == char else None

    def llg_tokenizer(self, width: int):
        """The llguidance tokenizer for logits ``width`` wide (built once per width)."""
        if width not in self._compiled:
            llg = _llguidance()
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            if backend is None:
                raise ModelMissing(f"constrained decoding needs a fast tokenizer (got {type(self.tokenizer).__name__})")
            self._compiled[width] = llg.hf.from_tokenizer(self.tokenizer, n_vocab=max(width, len(self.tokenizer)),
                                                          eos_token=self.tokenizer.eos_token_id)
        return self._compiled[width]

    def processor(self, max_new_tokens: int) -> SchemaLogitsProcessor:
        """A logits processor for one ``generate`` call of at most ``max_new_tokens`` new tokens."""
        return SchemaLogitsProcessor(self, max_new_tokens)


class SchemaLogitsProcessor:
    """Masks every token the schema's grammar does not allow next (one matcher per batch row), and closes the JSON
    in the last ``constraint.reserve`` tokens of the budget. Used once: make a new one for each ``generate`` call.

    Works as a ``transformers`` logits processor (``logits_processor=[...]``); rows that stopped (the grammar
    accepted end of text) are left alone while the rest of the batch goes on.
    """

    def __init__(self, constraint: SchemaConstraint, max_new_tokens: int):
        self.constraint, self.max_new_tokens = constraint, max_new_tokens
        self.matchers: list = []
        self.start = 0
        self.errors: list[str] = []

    def _begin(self, input_ids, width: int) -> None:
        llg = _llguidance()
        tokenizer = self.constraint.llg_tokenizer(width)
        self.matchers = [llg.LLMatcher(tokenizer, self.constraint.grammar) for _ in range(input_ids.shape[0])]
        self.bitmask = llg.numpy.allocate_token_bitmask(input_ids.shape[0], tokenizer.vocab_size)
        self.start = input_ids.shape[1]  # with inputs_embeds only, generate passes the new tokens only

    def __call__(self, input_ids, scores):
        import torch

        llg = _llguidance()
        if not self.matchers:
            self._begin(input_ids, scores.shape[-1])
        else:
            for row, matcher in enumerate(self.matchers):
                if not matcher.is_stopped() and not matcher.is_error():
                    if not matcher.consume_token(int(input_ids[row, -1])):
                        self.errors.append(matcher.get_error()[:200])
        generated = input_ids.shape[1] - self.start
        closing = generated >= self.max_new_tokens - min(self.constraint.reserve, self.max_new_tokens // 2)
        width = scores.shape[-1]
        for row, matcher in enumerate(self.matchers):
            if matcher.is_error():
                continue  # a token outside the grammar was forced in: leave the row to the model
            llg.numpy.fill_next_token_bitmask(matcher, self.bitmask, row)
            allowed = np.unpackbits(self.bitmask[row].view(np.uint8), bitorder="little")[:width].astype(bool)
            if closing and not matcher.is_stopped():
                chosen = self._closer(input_ids[row, self.start:], allowed)
                if chosen is not None:
                    allowed = np.zeros_like(allowed)
                    allowed[chosen] = True
            scores[row].masked_fill_(torch.from_numpy(~allowed).to(scores.device), float("-inf"))
        return scores

    def _closer(self, new_ids, allowed: np.ndarray) -> int | None:
        text = self.constraint.tokenizer.decode(new_ids.tolist(), skip_special_tokens=True)
        for token in self.constraint.closers["string" if in_string(text) else "outside"]:
            if token < len(allowed) and allowed[token]:
                return token
        return None
