"""Writers: JSONL per split (what ``affectreason train`` reads), a ``datasets`` DatasetDict on disk, and
LLaMA-Factory's sharegpt format with its ``dataset_info.json``.

LLaMA-Factory counts media placeholders: a user turn must hold one ``<image>`` / ``<video>`` /
``<audio>`` per entry of the record's ``images`` / ``videos`` / ``audios`` list, so the placeholders are
written from the lists themselves. Only media kinds some record has are declared as columns (a
declared column absent from the file is an error there); empty splits get no file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from affectreason.data.record import MEDIA_KINDS, DataError, Record

PLACEHOLDER = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
SHAREGPT_ROLE = {"system": "system", "user": "human", "assistant": "gpt"}


def write_jsonl(records: list[Record], path: Path) -> None:
    """One record per line."""
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.model_dump_json() + "\n")


def features():
    """The Arrow schema of a record (explicit, so that empty splits and all-null columns keep their types)."""
    from datasets import Features, List, Value

    text, texts = Value("string"), List(Value("string"))
    return Features({
        "id": text, "source": text, "split": text, "group": text, "labels": texts, "reasoning": text,
        "transcript": text, "sentiment": Value("float64"), "cue_text": text, "modalities": texts,
        "media": {kind: texts for kind in ("images", "videos", "audios")}, "cot": text,
        "messages": List({"role": text, "content": text}),
    })


def write_dataset_dict(by_split: dict[str, list[Record]], folder: Path) -> None:
    """``DatasetDict.save_to_disk`` of all splits (``datasets.load_from_disk(folder)`` reads it back)."""
    try:
        import datasets
    except ImportError:
        raise DataError("writing the DatasetDict needs the `datasets` package: pip install 'affectreason[train]'") \
            from None

    schema = features()
    columns = {name: {key: [row[key] for row in (r.model_dump(mode="json") for r in records)] for key in schema}
               for name, records in by_split.items()}  # by column: an empty split keeps its columns
    data = datasets.DatasetDict({name: datasets.Dataset.from_dict(values, features=schema)
                                 for name, values in columns.items()})
    if folder.exists():
        shutil.rmtree(folder)
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the build reports its own progress; a bar per split is noise
    try:
        data.save_to_disk(str(folder))
    finally:
        if shown:
            datasets.enable_progress_bars()


def sharegpt_row(record: Record) -> dict:
    """One record in sharegpt form, the user turn led by its media placeholders."""
    marks = "".join(PLACEHOLDER[kind] * len(getattr(record.media, kind)) for kind in MEDIA_KINDS)
    row: dict = {"conversations": []}
    for message in record.messages:
        if message.role == "system":
            row["system"] = message.content
            continue
        value = marks + message.content if message.role == "user" else message.content
        row["conversations"].append({"from": SHAREGPT_ROLE[message.role], "value": value})
    for kind in MEDIA_KINDS:
        row[kind] = list(getattr(record.media, kind))
    return row


def write_sharegpt(by_split: dict[str, list[Record]], folder: Path, name: str) -> dict:
    """``{split}.json`` files and ``dataset_info.json`` (one entry ``{name}_{split}`` per non-empty split)."""
    folder.mkdir(parents=True, exist_ok=True)
    used = [k for k in MEDIA_KINDS if any(getattr(r.media, k) for rs in by_split.values() for r in rs)]
    has_system = any(m.role == "system" for rs in by_split.values() for r in rs for m in r.messages)
    info = {}
    for split, records in by_split.items():
        if not records:
            continue
        rows = []
        for record in records:
            row = sharegpt_row(record)
            rows.append({k: v for k, v in row.items() if k not in MEDIA_KINDS or k in used})
        file = folder / f"{split}.json"
        file.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
        columns = {"messages": "conversations", **({"system": "system"} if has_system else {}),
                   **{kind: kind for kind in used}}
        info[f"{name}_{split}"] = {"file_name": file.name, "formatting": "sharegpt", "columns": columns,
                                   "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                                            "assistant_tag": "gpt"}}
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info
