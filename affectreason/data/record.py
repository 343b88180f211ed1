"""The instruction-data record: one clip's prompt, chain-of-thought target and labels, in one schema.

Every recipe writes these, one JSON object per line. ``messages`` (system, user, assistant) is what the
trainer reads (``affectreason.train.sft_data.read_chats``): the user turn is the ``reason/explain``
prompt over the clip's textualized cues, the assistant turn the ``Explanation`` JSON that prompt asks
for, so a fine-tuned model learns exactly the answer format the parser reads. The other fields
(``labels``, ``reasoning``, ``sentiment``) make the same file a gold file for ``affectreason score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from affectreason.errors import DataError  # noqa: F401  (re-exported: data modules raise it)
from affectreason.labels import normalize_labels
from affectreason.schema import Contract

CotKind = Literal["reference", "rules", "teacher"]
MEDIA_KINDS = ("images", "videos", "audios")


class Media(Contract):
    """Media files of a record, by kind (LLaMA-Factory's ``images`` / ``videos`` / ``audios`` columns)."""

    images: list[str] = Field(default_factory=list)
    videos: list[str] = Field(default_factory=list)
    audios: list[str] = Field(default_factory=list)


class Message(Contract):
    """One chat turn."""

    role: Literal["system", "user", "assistant"]
    content: str


class Record(Contract):
    """One training example and its gold annotation."""

    id: str = Field(min_length=1)
    source: str = Field(description="the recipe that produced it")
    split: str | None = None
    group: str = Field(description="the unit that never crosses splits (a MELD dialogue, a MOSI video)")
    labels: list[str] = Field(min_length=1)
    reasoning: str = Field(min_length=1, description="the chain of thought as plain text")
    transcript: str | None = None
    sentiment: float | None = None
    cue_text: str = Field(description="the textualized cues the user turn carries")
    modalities: list[str] = Field(default_factory=list, description="cue modalities in the prompt: face, voice, text")
    media: Media = Field(default_factory=Media)
    cot: CotKind
    messages: list[Message] = Field(min_length=2)

    _labels = field_validator("labels")(classmethod(lambda cls, v: normalize_labels(v)))


@dataclass(frozen=True)
class Issue:
    """A problem with one row or field that was skipped or repaired, not fatal (fatal with ``--strict``)."""

    where: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}"
