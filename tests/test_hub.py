"""Models named by hub id: downloaded once through the real huggingface_hub path (from a hub stand-in on
127.0.0.1, HF_ENDPOINT), cached, then found offline; a missing one is a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_server import HubServer

ROOT = Path(__file__).resolve().parents[1]
RESOLVE = ("import sys; from affectreason.models.hub import model_folder; from affectreason.errors import "
           "AffectReasonError\ntry:\n    print(model_folder(sys.argv[1]))\nexcept AffectReasonError as exc:\n"
           "    print('error:', exc); sys.exit(2)")


def _resolve(name: str, hf_home: Path, endpoint: str | None, offline: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(hf_home), PYTHONPATH=str(ROOT), **({"HF_ENDPOINT": endpoint} if endpoint else {}),
               **({"HF_HUB_OFFLINE": "1"} if offline else {}))
    return subprocess.run([sys.executable, "-c", RESOLVE, name], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.integration
def test_a_hub_id_is_downloaded_once_then_found_offline(tiny_qwen2, tmp_path):
    hf_home = tmp_path / "hf"
    with HubServer({"affect/tiny-qwen2": tiny_qwen2}) as hub:
        first = _resolve("affect/tiny-qwen2", hf_home, hub.url, offline=False)
        assert first.returncode == 0, first.stdout + first.stderr
        folder = Path(first.stdout.strip().splitlines()[-1])
        assert json.loads((folder / "config.json").read_text())["model_type"] == "qwen2"
        assert (folder / "model.safetensors").is_file() and "affect/tiny-qwen2/config.json" in hub.downloads
        fetched = len(hub.downloads)
    # the stand-in is gone: offline, the cache answers
    again = _resolve("affect/tiny-qwen2", hf_home, None, offline=True)
    assert again.returncode == 0 and Path(again.stdout.strip().splitlines()[-1]) == folder
    assert fetched == len({d for d in hub.downloads})  # every file fetched once
    missing = _resolve("affect/never-downloaded", hf_home, None, offline=True)
    assert missing.returncode == 2
    assert "is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it" in missing.stdout


def test_names_that_are_neither_folder_nor_hub_id_are_refused(tmp_path):
    from affectreason.models.causal_lm import ModelMissing
    from affectreason.models.hub import model_folder

    with pytest.raises(ModelMissing, match="not a folder, and not a hub id"):
        model_folder(str(tmp_path / "absent" / "model"))
    assert model_folder(tmp_path) == tmp_path
