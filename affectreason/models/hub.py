"""A model is named as transformers users name it: a local folder, or a hub id (``org/name``, optionally
``@revision``) that huggingface_hub downloads once and caches (``HF_HOME``, ``HF_ENDPOINT`` and ``HF_TOKEN`` as
for transformers). ``HF_HUB_OFFLINE=1`` keeps to the cache. Everything downstream gets a local folder.

Only the files a model needs are fetched (configs, safetensors weights, tokenizer and processor files, chat
templates), not duplicate ``.bin`` / ``.gguf`` / ONNX exports that many repositories also carry.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from affectreason.errors import AffectReasonError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(@[\w./-]+)?$")


class ModelMissing(AffectReasonError, FileNotFoundError):
    """The model or adapter cannot be loaded; the message says how to provide it."""


MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py", "*.task",
               "tokenizer*", "*.yaml", "**/*.json", "**/*.safetensors", "**/*.model", "**/*.txt"]


def is_hub_id(name: str) -> bool:
    """True for ``org/name`` or ``org/name@revision`` that is not an existing path.

    >>> is_hub_id("Qwen/Qwen2.5-7B-Instruct"), is_hub_id("Qwen/Qwen2.5-7B-Instruct@main"), is_hub_id("./runs/x/y")
    (True, True, False)
    """
    return not Path(name).expanduser().exists() and not name.startswith((".", "/", "~")) and bool(HUB_ID.match(name))


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` keeps huggingface_hub to its cache."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def model_folder(name: str | Path, what: str = "model") -> Path:
    """A local folder holding the model ``name`` (a folder as is; a hub id downloaded or taken from the cache)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    text = str(name)
    if not is_hub_id(text):
        raise ModelMissing(f"{what} {text!r}: not a folder, and not a hub id (org/name[@revision]), so nothing is "
                           "downloaded; give a local model folder or a hub id")
    repo, _, revision = text.partition("@")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo, revision=revision or None, allow_patterns=MODEL_FILES,
                                      local_files_only=offline()))
    except LocalEntryNotFoundError:
        raise ModelMissing(f"{what} {text!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
                           "downloading it: unset HF_HUB_OFFLINE once, or give a local folder") from None
    except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError) as exc:
        raise ModelMissing(f"{what} {text!r}: {type(exc).__name__} ({str(exc).splitlines()[0][:160]}); check the "
                           "id and revision, and HF_TOKEN for a gated model") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelMissing(f"{what} {text!r} could not be downloaded ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:160]}); give a local folder or retry") from None


def adapter_folder(name: str | Path) -> Path:
    """A local peft adapter folder for ``name``: a folder as is, a hub id (``org/name[@revision]``) downloaded or taken
    from the cache as a model is."""
    folder = model_folder(name, "adapter")
    if not (folder / "adapter_config.json").is_file():
        raise ModelMissing(f"adapter {str(name)!r}: {folder} is not a peft adapter folder (no adapter_config.json)")
    return folder


def display_name(name: str | Path) -> str:
    """How outputs name a model: a hub id as given, a folder by its name."""
    return str(name) if is_hub_id(str(name)) else Path(name).name
