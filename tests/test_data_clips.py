"""The own-clips recipe on real clips (package images + espeak-ng speech): cues are extracted, and each chain
of thought cites those cues (AU intensities, pitch in Hz), passes the grounding check and concludes in gold."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from affectreason.data.build import build_dataset
from affectreason.data.recipe import load_data_recipe
from affectreason.reason.grounding import ground
from affectreason.reason.lexicon import NUANCES
from affectreason.reason.parse import parse_explanation
from affectreason.schema import Cues
from tests.media_factory import SENTENCE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def corpus(media, tmp_path_factory):
    """Three clips and their labels: a smiling face, a face that does not smile over happy words, a voice."""
    folder = tmp_path_factory.mktemp("own")
    (folder / "clips").mkdir()
    for name in ("astronaut", "grace"):
        shutil.copy(media[name], folder / "clips" / f"{name}.mp4")
    shutil.copy(media["pitch_85"], folder / "clips" / "high_voice.wav")
    (folder / "labels.csv").write_text(f"name,labels,transcript\nastronaut,\"['happy', 'warm']\",{SENTENCE}\n"
                                       f"grace,sad,{SENTENCE}\nhigh_voice,calm,\n")
    out = folder / "out"
    result = build_dataset(load_data_recipe("own-clips"), out, data_dir=folder)
    return folder, out, result


def cues_of(out) -> dict[str, Cues]:
    lines = [json.loads(line) for line in (out / "cues.jsonl").read_text().splitlines()]
    return {line["clip"]["id"]: Cues.model_validate(line["cues"]) for line in lines if "cues" in line}


def records_of(out) -> dict[str, dict]:
    return {r["id"]: r for f in ("train", "validation", "test") for r in map(
        json.loads, (out / f"{f}.jsonl").read_text().splitlines())}


def test_every_labelled_clip_becomes_a_record_with_its_media(corpus):
    folder, out, result = corpus
    records = records_of(out)
    assert set(records) == {"astronaut", "grace", "high_voice"} and not result.issues
    assert records["astronaut"]["labels"] == ["happy", "warm"] and records["grace"]["labels"] == ["sad"]
    assert records["astronaut"]["media"]["videos"] == [str(folder / "clips" / "astronaut.mp4")]
    assert records["high_voice"]["media"] == {"images": [], "videos": [], "audios": [str(folder / "clips" /
                                                                                          "high_voice.wav")]}
    assert records["astronaut"]["modalities"] == ["face", "voice", "text"]
    assert records["high_voice"]["modalities"] == ["voice", "text"]  # its words come from speech recognition
    assert result.stats["modalities"]["videos"] == pytest.approx(2 / 3, abs=1e-4)


def test_chains_of_thought_cite_the_measured_cues_and_are_grounded(corpus):
    _, out, _ = corpus
    cues, records = cues_of(out), records_of(out)
    for clip_id, record in records.items():
        answer = parse_explanation(record["messages"][-1]["content"])
        assert answer.parse_status == "ok" and answer.labels == record["labels"]
        assert ground(answer.observations, cues[clip_id]).score == 1.0, clip_id
        voice = next(c.text for c in answer.observations if c.modality == "voice")
        pitch = f"{cues[clip_id].prosody.f0_mean_hz:.0f} Hz"
        assert f"pitch averages {pitch}" in voice and f"pitch mean {pitch}" in record["cue_text"]
    astronaut = cues["astronaut"]
    apex = next(f for f in astronaut.frames if f.t == astronaut.apex_t)
    face = next(c.text for c in parse_explanation(records["astronaut"]["messages"][-1]["content"]).observations
                if c.modality == "face")
    assert f"AU12 (lip corner puller) at {apex.aus['AU12']:.1f}/5" in face
    assert "AU12 lip corner puller" in records["astronaut"]["cue_text"]


def test_the_conclusion_is_gold_even_when_the_cues_disagree(corpus):
    _, out, _ = corpus
    target = json.loads(records_of(out)["grace"]["messages"][-1]["content"])
    assert target["conclusion"] == "The person most likely feels sad."
    assert '"I am so happy to see you again today."' in " ".join(o["text"] for o in target["observations"])
    interpretation = re.sub(r'"[^"]*"', "", target["interpretation"]).lower()
    rivals = {w for basic, words in NUANCES.items() if basic != "sadness" for w in (basic, *words)}
    assert not set(re.findall(r"[a-z]+", interpretation)) & rivals, target["interpretation"]
    assert "sad" in interpretation
    happy = json.loads(records_of(out)["astronaut"]["messages"][-1]["content"])
    assert happy["interpretation"].startswith("Overall, the face shows it (AU12 lip corner puller")


def test_sharegpt_placeholders_match_the_media_and_a_rerun_resumes(corpus):
    folder, out, _ = corpus
    info = json.loads((out / "sharegpt" / "dataset_info.json").read_text())
    for entry in info.values():
        assert entry["columns"] == {"messages": "conversations", "system": "system", "videos": "videos",
                                    "audios": "audios"}
        for row in json.loads((out / "sharegpt" / entry["file_name"]).read_text()):
            human = row["conversations"][0]["value"]
            assert human.count("<video>") == len(row["videos"]) and human.count("<audio>") == len(row["audios"])
    extracted = (out / "cues.jsonl").read_text()
    before = records_of(out)
    build_dataset(load_data_recipe("own-clips"), out, data_dir=folder)
    assert (out / "cues.jsonl").read_text() == extracted  # nothing extracted twice
    assert records_of(out) == before
