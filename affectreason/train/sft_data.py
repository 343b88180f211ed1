"""Supervised fine-tuning examples: chats tokenized with the model's chat template, loss on the reply only.

Input: JSONL, one ``{"messages": [{"role": ..., "content": ...}, ...]}`` per line whose last message is
the assistant's reply to learn. Tokens of the prompt get label -100 so only the reply is learned.
Examples longer than ``max_length`` are dropped or truncated (counted either way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from affectreason.errors import DataError
from affectreason.jsonl import iter_jsonl

ROLES = {"system", "user", "assistant"}


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


@dataclass
class Dataset:
    examples: list[Example]
    dropped: int = 0
    truncated: int = 0
    kept: list[int] = field(default_factory=list)  # index of each example's chat
    longest: int = 0  # tokens of the longest chat, before any cut
    notes: list[str] = field(default_factory=list)


def record_messages(record: dict, where: str) -> list[dict[str, str]]:
    """A record's ``messages``: a non-empty list of {role, content} turns, else a DataError at ``where``."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: needs a non-empty 'messages' list")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(
                message.get("content"), str):
            raise DataError(f"{where}: each message needs a role ({'/'.join(sorted(ROLES))}) and text")
    return messages


def read_chats(path: str | Path) -> list[list[dict[str, str]]]:
    """The chats of a JSONL file, validated."""
    path = Path(path)
    chats = []
    for lineno, record in iter_jsonl(path, "raise", DataError):
        messages = record_messages(record, f"{path}:{lineno}")
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{path}:{lineno}: the last message must be the assistant's reply to learn")
        chats.append(messages)
    if not chats:
        raise DataError(f"{path}: no training examples")
    return chats


def tokenize_chats(chats: list[list[dict[str, str]]], tokenizer, max_length: int,
                   over_length: str = "drop") -> Dataset:
    """Token ids and reply-only labels for every chat."""
    data = Dataset([])
    for index, messages in enumerate(chats):
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True)
        full = tokenizer.apply_chat_template(messages, tokenize=True)
        prompt, full = list(_ids(prompt)), list(_ids(full))
        if full[: len(prompt)] != prompt:
            raise DataError("the chat template renders the prompt differently inside the full chat; "
                            "use a model whose template is prefix-stable")
        data.longest = max(data.longest, len(full))
        labels = [-100] * len(prompt) + full[len(prompt):]
        cut = len(full) > max_length
        if cut and over_length == "drop":
            data.dropped += 1
            continue
        full, labels = full[:max_length], labels[:max_length]
        if all(label == -100 for label in labels):  # truncation left no reply to learn
            data.dropped += 1
            continue
        data.truncated += cut
        data.examples.append(Example(full, labels))
        data.kept.append(index)
    if data.dropped:
        data.notes.append(f"{data.dropped} of {len(chats)} examples dropped: longer than data.max_length="
                          f"{max_length} tokens (the longest has {data.longest:,})")
    if not data.examples:
        raise DataError(f"every example was longer than data.max_length={max_length} tokens (the longest has "
                        f"{data.longest:,}, prompt + reply) or had no reply tokens; set data.max_length="
                        f"{data.longest} or more, or data.over_length=truncate (replies are cut), or build the data "
                        "with a shorter prompt (`affectreason data RECIPE ... prompt=reason/explain_tuned`)")
    return data


def target_counts(data: Dataset) -> list[int]:
    """Per example, the tokens its loss covers (a causal LM never predicts the first position)."""
    return [sum(label != -100 for label in e.labels[1:]) for e in data.examples]


def _ids(encoded):
    return encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
