"""Data recipes over the published formats of MERR, MER-Caption+ and FEA-20K (small files written here),
the LLaMA-Factory export with media, and bad input: each failure names the recipe key, file, row or field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from affectreason.data.build import build_dataset
from affectreason.data.recipe import RecipeError, load_data_recipe
from affectreason.data.record import DataError
from affectreason.reason.parse import parse_explanation

MERR_FINE = {
    "sample_00000001": {
        "AU_list": ["AU01_r", "AU02_r", "AU05_r", "AU26_r"], "visual_prior_list": ["Inner brow raiser", "Jaw drop"],
        "audio_prior_list": "The voice rises sharply in pitch", "peak_index": "12", "peak_AU_list": ["AU01", "AU26"],
        "pseu_emotion": "surprise", "text": "What? You sold the house?",
        "smp_reason_caption": "In the video, her inner brows rise and her jaw drops. In the audio, her pitch jumps. "
                              "In the text, she asks whether the house was sold. Therefore, she is surprised."},
    "sample_00000002": {
        "AU_list": ["AU06_r", "AU12_r"], "visual_prior_list": ["Cheek raiser", "Lip corner puller"],
        "audio_prior_list": "", "peak_index": 3, "peak_AU_list": ["AU06_r", "AU12_r"], "pseu_emotion": "happy",
        "text": "That is wonderful news.",
        "smp_reason_caption": "He smiles broadly. His cheeks rise. Based on these cues, he is happy."},
}


def run(recipe: str, tmp_path: Path, *overrides: str, strict: bool = False, data_dir: Path | None = None):
    out = tmp_path / f"out_{recipe}"
    result = build_dataset(load_data_recipe(recipe, list(overrides)), out, data_dir=data_dir or tmp_path,
                           strict=strict)
    return result, out


def records_of(out: Path) -> dict[str, dict]:
    return {r["id"]: r for f in out.glob("*.jsonl") if f.stem in ("train", "validation", "test")
            for r in map(json.loads, f.read_text().splitlines())}


def test_merr_fine_and_coarse_grained_json(tmp_path):
    (tmp_path / "MERR_fine_grained.json").write_text(json.dumps(MERR_FINE))
    result, out = run("merr", tmp_path)
    records = records_of(out)
    assert set(records) == set(MERR_FINE) and not result.issues
    first = records["sample_00000001"]
    assert first["labels"] == ["surprise"] and first["transcript"] == "What? You sold the house?"
    assert first["cue_text"] == ("[Face] Active AUs: AU01 inner brow raiser; AU26 jaw drop; expression: Inner brow "
                                 "raiser, Jaw drop.\n[Voice] The voice rises sharply in pitch.\n"
                                 '[Speech] (given) "What? You sold the house?"')
    assert first["modalities"] == ["face", "voice", "text"]
    target = parse_explanation(first["messages"][-1]["content"])
    assert [c.modality for c in target.observations] == ["face", "voice", "text"]
    assert target.interpretation == "Therefore, she is surprised." and target.labels == ["surprise"]
    second = records["sample_00000002"]
    assert "AU06 cheek raiser; AU12 lip corner puller" in second["cue_text"] and "[Voice]" not in second["cue_text"]
    coarse = {name: {"caption": entry["smp_reason_caption"], "pseu_emotion": entry["pseu_emotion"],
                     "peak_AU_list": entry["peak_AU_list"]} for name, entry in MERR_FINE.items()}
    (tmp_path / "coarse.json").write_text(json.dumps(coarse))
    result, out = run("merr", tmp_path, f"inputs.merr.path={tmp_path / 'coarse.json'}")
    records = records_of(out)
    assert records["sample_00000002"]["reasoning"] == MERR_FINE["sample_00000002"]["smp_reason_caption"]
    assert records["sample_00000002"]["transcript"] is None and not result.issues


def test_mer_caption_plus_joins_three_csvs_and_reads_empty_openset_as_neutral(tmp_path):
    (tmp_path / "track2_train_mercaptionplus.csv").write_text(
        "name,openset\nsample_a,\"['happy', 'relieved']\"\nsample_b,[]\nsample_c,\"['angry']\"\n")
    (tmp_path / "track3_train_mercaptionplus.csv").write_text(
        "name,reason\nsample_a,\"In the video, she smiles. In the audio, she sighs with relief. So, she is happy.\"\n"
        "sample_b,\"In the video, his face is still. He speaks evenly.\"\n")
    (tmp_path / "subtitle_chieng.csv").write_text("name,chinese,english\nsample_a,好,Finally it is over.\n")
    result, out = run("mer-caption-plus", tmp_path)
    records = records_of(out)
    assert set(records) == {"sample_a", "sample_b"}
    assert records["sample_a"]["labels"] == ["happy", "relieved"]
    assert records["sample_a"]["transcript"] == "Finally it is over."
    assert records["sample_b"]["labels"] == ["neutral"] and records["sample_b"]["transcript"] is None
    assert [str(i) for i in result.issues] == [f"{tmp_path / 'track2_train_mercaptionplus.csv'}:4: reasoning: "
                                               "empty or missing; record skipped"]
    assert result.manifest["counts"]["incomplete"] == 1


def test_fea20k_jsonl_images_and_sharegpt_placeholders(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("0001", "0002"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / f"{name}.png")
    rows = [{"id": "fea_0001", "image": "images/0001.png", "question": "What expression does this face show?",
             "AUs": ["AU6", "AU12"], "labels": "happiness",
             "description": "The cheeks are raised (AU6) and the lip corners pulled up (AU12). Together they show "
                            "a Duchenne smile. Therefore, the expression is happiness."},
            {"id": "fea_0002", "image": "images/0002.png", "question": "Which emotion is shown?",
             "AUs": {"AU4": 2.0, "AU7": 1.5}, "labels": ["anger"],
             "description": "The brows are lowered (AU4) and the lids tightened (AU7). This indicates anger."},
            {"id": "fea_0003", "image": "images/0003.png", "question": "?", "AUs": "AU1, AU2, raised",
             "labels": "surprise", "description": "The brows are raised. The person looks surprised."}]
    (tmp_path / "fea20k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result, out = run("fea-20k", tmp_path)
    records = records_of(out)
    assert set(records) == {"fea_0001", "fea_0002", "fea_0003"}
    assert records["fea_0001"]["media"]["images"] == [str(tmp_path / "images" / "0001.png")]
    assert "[Face] Active AUs: AU06 cheek raiser; AU12 lip corner puller." in records["fea_0001"]["cue_text"]
    assert "AU04 brow lowerer 2.0/5; AU07 lid tightener 1.5/5" in records["fea_0002"]["cue_text"]
    assert "[Question] What expression does this face show?" in records["fea_0001"]["cue_text"]
    assert records["fea_0003"]["media"]["images"] == []
    problems = {(i.field, i.message.split(";")[0]) for i in result.issues}
    assert ("aus", "not Action Units, ignored: ['raised']") in problems
    assert ("media", f"{tmp_path / 'images' / '0003.png'} does not exist") in problems
    info = json.loads((out / "sharegpt" / "dataset_info.json").read_text())
    for entry in info.values():
        assert entry["columns"] == {"messages": "conversations", "system": "system", "images": "images"}
        for row in json.loads((out / "sharegpt" / entry["file_name"]).read_text()):
            human = row["conversations"][0]["value"]
            assert human.count("<image>") == len(row["images"]) and "videos" not in row
            assert not human.replace("<image>", "").startswith("<")


def write_meld(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_json_row_missing_label_and_duplicate_id_are_recorded(tmp_path):
    data = write_meld(tmp_path / "meld.jsonl", [
        '{"name": "d1_dia1_utt0", "transcript": "I love it!", "emotion": "joy"}',
        '{"name": "d1_dia1_utt1", "transcript": "oops", "emotion": ',
        '{"name": "d1_dia1_utt2", "transcript": "Fine.", "emotion": ""}',
        '{"name": "d1_dia1_utt0", "transcript": "Second copy", "emotion": "anger"}',
        '{"name": "d1_dia2_utt0", "transcript": "Get out of here!", "emotion": "anger"}'])
    result, out = run("meld", tmp_path, f"inputs.meld.path={data}")
    assert set(records_of(out)) == {"d1_dia1_utt0", "d1_dia2_utt0"}
    assert records_of(out)["d1_dia1_utt0"]["transcript"] == "I love it!"  # the first of the duplicates is kept
    issues = [str(i) for i in result.issues]
    assert issues == [f"{data}:2: row: not valid JSON (Expecting value at column 59); skipped",
                      f"{data}:3: labels: empty or missing; record skipped",
                      f"{data}:4: id: duplicate id 'd1_dia1_utt0' (first at {data}:1); kept the first"]
    counts = result.manifest["counts"]
    assert (counts["rows"], counts["duplicates"], counts["incomplete"], counts["issues"]) == (4, 1, 1, 3)
    assert result.manifest["inputs"]["meld"]["skipped_rows"] == 1
    logged = [json.loads(line) for line in (out / "issues.jsonl").read_text().splitlines()]
    assert [i["field"] for i in logged] == ["row", "labels", "id"]
    with pytest.raises(DataError, match=r"meld: 3 issue\(s\) with --strict:\n.*meld.jsonl:2: row: not valid JSON"):
        run("meld", tmp_path, f"inputs.meld.path={data}", strict=True)


def test_missing_column_non_utf8_and_missing_file_are_errors(tmp_path):
    bad = tmp_path / "gt.csv"
    bad.write_text("names,emotions,subtitles,reason\ns1,happy,hi,He smiles.\n")
    with pytest.raises(DataError, match=r"emer-v1: fields.reasoning: column 'reasons' is not in .*gt.csv "
                                        r"\(columns: \['emotions', 'names', 'reason', 'subtitles'\]\)"):
        run("emer-v1", tmp_path, f"inputs.gt.path={bad}")
    bad.write_bytes(b"names,emotions,subtitles,reasons\ns1,happy,hi,He smiles.\ns2,sad,caf\xe9,He cries.\n")
    with pytest.raises(DataError, match=r"gt.csv:3: not valid UTF-8 \(byte 0xe9 at offset 66\)"):
        run("emer-v1", tmp_path, f"inputs.gt.path={bad}")
    with pytest.raises(RecipeError, match=r"meld: inputs.meld.path: .*nowhere.jsonl does not exist \(set "
                                          r"inputs.meld.path=FILE or --data-dir DIR\)"):
        run("meld", tmp_path, "inputs.meld.path=nowhere.jsonl")
    with pytest.raises(RecipeError, match=r"merr: inputs.merr.path: .*MERR_fine_grained.json does not exist"):
        run("merr", tmp_path)
    no_id = write_meld(tmp_path / "noid.jsonl", ['{"utt": "a", "transcript": "x", "emotion": "joy"}'])
    with pytest.raises(DataError, match=r"no row has the id field 'name' .*set inputs.meld.id=FIELD"):
        run("meld", tmp_path, f"inputs.meld.path={no_id}")


def test_recipe_errors_name_the_key(tmp_path, anchors):
    with pytest.raises(RecipeError, match=r"limt: Extra inputs are not permitted"):
        load_data_recipe("meld", ["limt=3"])
    with pytest.raises(RecipeError, match=r"fields.labels: 'nope.emotion' is not 'input.column'"):
        load_data_recipe("meld", ["fields.labels=nope.emotion"])
    with pytest.raises(RecipeError, match=r"splits: Value error, fractions must be positive and sum to 1"):
        load_data_recipe("meld", ["splits={train: 0.5, test: 0.2}"])
    with pytest.raises(RecipeError, match=r"group: Value error, needs a capturing group"):
        load_data_recipe("meld", ["group=dia"])
    with pytest.raises(RecipeError, match=r"meld-teacher: cot=teacher needs teacher.endpoint=URL and "
                                          r"teacher.model=NAME"):
        build_dataset(load_data_recipe("meld-teacher", ["limit=2"]), tmp_path / "t", anchors=anchors)
