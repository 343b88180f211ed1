"""Every shipped prompt loads, renders strictly, and matches its frozen snapshot.

A wording change must be deliberate: re-create the snapshots with
``AFFECTREASON_UPDATE_SNAPSHOTS=1 pytest tests/test_prompts.py`` and bump the prompt's ``version``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from affectreason.reason.prompts import PromptError, load_prompt, prompts_dir

SNAPSHOTS = Path(__file__).parent / "snapshots"
CUE_LINE = "[Face] AU12 lip corner puller 3.2/5 (0.4-1.8 s, apex 1.0 s)."
EXAMPLE_VARIABLES = {
    "judges/emer_clue_overlap": {"reference": "He smiles and laughs.", "prediction": "He grins widely."},
    "judges/emer_label_extract": {"text": "She looks worried and a little angry."},
    "judges/emer_label_overlap": {"reference": ["happy", "relaxed"], "prediction": ["joyful"]},
    "judges/ov_synonym_groups": {"labels": ["glad", "happy", "worried"]},
    "reason/explain": {"clip_id": "clip1", "cues": CUE_LINE},
    "reason/explain_example": {"clip_id": "clip1", "cues": CUE_LINE},
    "reason/explain_tuned": {"clip_id": "clip1", "cues": CUE_LINE},
}
SHIPPED = sorted(str(p.relative_to(prompts_dir()).with_suffix("")) for p in prompts_dir().rglob("*.yaml"))


def test_every_shipped_prompt_has_a_snapshot_case():
    assert SHIPPED == sorted(EXAMPLE_VARIABLES)


@pytest.mark.parametrize("name", SHIPPED)
def test_prompt_snapshot(name):
    prompt = load_prompt(name)
    assert prompt.version >= 1 and prompt.name == name.split("/")[-1]
    rendered = json.dumps({"version": prompt.version, "messages": prompt.render(**EXAMPLE_VARIABLES[name])},
                          indent=2, ensure_ascii=False) + "\n"
    snapshot = SNAPSHOTS / f"{name.replace('/', '__')}.json"
    if os.environ.get("AFFECTREASON_UPDATE_SNAPSHOTS"):
        snapshot.write_text(rendered, encoding="utf-8")
    assert snapshot.is_file(), f"no snapshot for {name}; create it with AFFECTREASON_UPDATE_SNAPSHOTS=1"
    assert rendered == snapshot.read_text(encoding="utf-8")


def test_missing_variable_is_an_error():
    with pytest.raises(PromptError, match="'reference' is undefined"):
        load_prompt("judges/emer_clue_overlap").render(prediction="x")


def test_prompts_dir_override_and_bad_files(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTREASON_PROMPTS_DIR", str(tmp_path))
    load_prompt.cache_clear()
    try:
        (tmp_path / "bad.yaml").write_text("name: bad\nversion: 1\nuser: '{{ oops'\n")
        with pytest.raises(PromptError, match="template error"):
            load_prompt("bad")
        (tmp_path / "extra.yaml").write_text("name: extra\nversion: 1\nuser: hi\ntemperature: 0\n")
        with pytest.raises(PromptError, match="unknown keys \\['temperature'\\]"):
            load_prompt("extra")
        with pytest.raises(PromptError, match="not found"):
            load_prompt("nothing")
    finally:
        load_prompt.cache_clear()
