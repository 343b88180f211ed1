"""Data recipes over the public anchor data: record counts, split partitions, targets the parser reads back,
and gold files the evaluator scores 1.0 against the published ground truth."""

from __future__ import annotations

import csv
import doctest
import importlib
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from affectreason.cli import app
from affectreason.data.build import build_dataset
from affectreason.data.mapping import load_hook
from affectreason.data.recipe import load_data_recipe, recipe_names, recipes_dir
from affectreason.reason.lexicon import NUANCES
from affectreason.reason.messages import MAX_ITEMS
from affectreason.reason.parse import parse_explanation

runner = CliRunner()
EXPECTED = {"ov-merd": 332, "emer-v1": 100, "meld": 2610, "mosi": 686}


@pytest.fixture(scope="module")
def built(anchors, tmp_path_factory) -> dict[str, Path]:
    """The four anchor recipes, built once."""
    root = tmp_path_factory.mktemp("data")
    for name in EXPECTED:
        build_dataset(load_data_recipe(name), root / name, anchors=anchors)
    return {name: root / name for name in EXPECTED}


def read_split_files(folder: Path) -> list[dict]:
    return [json.loads(line) for file in sorted(folder.glob("*.jsonl"))
            if file.stem in ("train", "validation", "test") for line in file.read_text().splitlines()]


def combined(folder: Path, tmp_path: Path) -> Path:
    path = tmp_path / f"{folder.name}_all.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in read_split_files(folder)))
    return path


def test_every_shipped_recipe_loads_and_says_how_to_run_it():
    names = recipe_names()
    assert set(EXPECTED) | {"merr", "mer-caption-plus", "fea-20k", "own-clips", "meld-teacher"} <= set(names)
    for path in sorted(recipes_dir().rglob("*.yaml")):
        recipe = load_data_recipe(path)
        assert recipe.name == path.stem and recipe.licence.strip() and recipe.description.strip()
        assert f"affectreason data {recipe.name}" in path.read_text().split("\nname:")[0]
        if recipe.hook:
            assert callable(load_hook(recipe))


def test_doctests_of_the_data_room():
    modules = ["affectreason.data." + m for m in ("cot", "cue_text", "mapping", "splits", "stats", "teacher",
                                                  "clips")]
    for name in modules:
        assert doctest.testmod(importlib.import_module(name)).failed == 0, name
    for hook in ("sentiment", "openset"):
        assert doctest.testmod(importlib.import_module(f"affectreason.data_recipes.{hook}")).failed == 0


def test_anchor_recipes_give_the_expected_counts_and_splits_partition_them(built, anchors):
    for name, folder in built.items():
        records = read_split_files(folder)
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids)) == EXPECTED[name], name
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["counts"]["records"] == EXPECTED[name] and manifest["counts"]["issues"] == 0
        assert sum(manifest["counts"]["splits"].values()) == EXPECTED[name]
        for split in ("train", "validation", "test"):
            in_file = [json.loads(line)["split"] for line in (folder / f"{split}.jsonl").read_text().splitlines()]
            assert in_file and set(in_file) == {split}
    gold = {json.loads(line)["name"] for line in (anchors / "merbench" / "meld_test.jsonl").read_text().splitlines()}
    assert {r["id"] for r in read_split_files(built["meld"])} == gold


def test_dialogues_and_videos_never_cross_splits(built):
    for name, expected_groups in (("meld", 280), ("mosi", 31)):
        split_of: dict[str, set[str]] = {}
        for record in read_split_files(built[name]):
            split_of.setdefault(record["group"], set()).add(record["split"])
        assert len(split_of) == expected_groups
        assert all(len(splits) == 1 for splits in split_of.values())
    meld = {r["id"]: r["group"] for r in read_split_files(built["meld"])}
    assert meld["test_dia12_utt3"] == "test_dia12"


def test_splits_are_deterministic_and_stable_under_subsetting(built, anchors, tmp_path):
    full = {r["id"]: r["split"] for r in read_split_files(built["emer-v1"])}
    build_dataset(load_data_recipe("emer-v1"), tmp_path / "again", anchors=anchors)
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (built["emer-v1"] / "train.jsonl").read_bytes()
    build_dataset(load_data_recipe("emer-v1", ["limit=40"]), tmp_path / "subset", anchors=anchors)
    subset = {r["id"]: r["split"] for r in read_split_files(tmp_path / "subset")}
    assert len(subset) == 40 and all(full[i] == s for i, s in subset.items())


def test_ov_merd_labels_score_one_with_the_evaluator(built, anchors, tmp_path):
    ov = anchors / "mer2024_ov"
    out = runner.invoke(app, ["score", "ov", "--gold", str(ov / "ground_truth.csv"),
                              "--pred", str(combined(built["ov-merd"], tmp_path)),
                              "--groups", str(ov / "cached_synonym_groups.json"), "--json", "--bootstrap", "0"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert (report["n"], report["accuracy"], report["recall"]) == (332, 1.0, 1.0)
    english = {row["name"]: row["english"] for row in csv.DictReader((anchors / "emer" / "emer_v2_reasons.csv").open())}
    records = read_split_files(built["ov-merd"])
    assert all(r["reasoning"] == " ".join(english[r["id"]].split()) for r in records)


def test_mosi_polarity_and_meld_classes_score_one(built, anchors, tmp_path):
    for corpus, metric in (("mosi", "sentiment"), ("meld", "closed")):
        out = runner.invoke(app, ["score", metric, "--gold", str(anchors / "merbench" / f"{corpus}_test.jsonl"),
                                  "--pred", str(combined(built[corpus], tmp_path)),
                                  "--wheel-dir", str(anchors / "emotion_wheel"), "--json", "--bootstrap", "0"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["accuracy"] == 1.0, corpus


def test_every_target_is_the_explain_json_and_parses_back_to_gold(built):
    for name, folder in built.items():
        for record in read_split_files(folder):
            roles = [m["role"] for m in record["messages"]]
            assert roles == ["system", "user", "assistant"]
            assert f'Measured cues of clip "{record["id"]}"' in record["messages"][1]["content"]
            assert record["cue_text"] in record["messages"][1]["content"]
            target = json.loads(record["messages"][2]["content"])
            assert set(target) >= {"observations", "interpretation", "conclusion", "labels"}
            assert 1 <= len(target["observations"]) <= MAX_ITEMS
            parsed = parse_explanation(record["messages"][2]["content"])
            assert parsed.parse_status == "ok", (name, record["id"], parsed.parse_errors)
            # the reply names gold in gold's order, as many labels as the decoding schema lets a model write
            assert parsed.labels == record["labels"][:MAX_ITEMS], (name, record["id"])


def test_rules_chain_of_thought_concludes_in_gold_without_naming_a_rival(built):
    records = {r["id"]: r for r in read_split_files(built["meld"])}
    question = records["test_dia0_utt0"]  # gold surprise; the engine finds no emotion in the words
    target = json.loads(question["messages"][2]["content"])
    assert target["conclusion"] == "The person most likely feels surprise."
    assert '"Why do all you\'re coffee mugs have numbers on the bottom?"' in target["observations"][0]["text"]
    for record in records.values():
        gold = record["labels"][0]
        rivals = {w for basic, words in NUANCES.items() if basic != gold for w in (basic, *words)}
        interpretation = re.sub(r'"[^"]*"', "", json.loads(record["messages"][2]["content"])["interpretation"])
        assert not set(re.findall(r"[a-z]+", interpretation.lower())) & rivals, (record["id"], interpretation)
    mosi = next(r for r in read_split_files(built["mosi"]) if r["id"] == "k5Y_838nuGo_1")
    target = json.loads(mosi["messages"][2]["content"])
    assert mosi["labels"] == ["negative"] and target["valence"] == round(-1.6 / 3, 2)  # the schema's 0.01 steps


def test_outputs_dataset_dict_sharegpt_stats_manifest(built):
    from datasets import load_from_disk

    folder = built["emer-v1"]
    data = load_from_disk(str(folder / "dataset"))
    assert set(data) == {"train", "validation", "test"}
    rows = {r["id"]: r for split in data.values() for r in split}
    for record in read_split_files(folder):
        assert rows[record["id"]]["messages"] == record["messages"]
        assert rows[record["id"]]["labels"] == record["labels"]
    info = json.loads((folder / "sharegpt" / "dataset_info.json").read_text())
    assert set(info) == {"emer-v1_train", "emer-v1_validation", "emer-v1_test"}
    entry = info["emer-v1_train"]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "conversations", "system": "system"}
    rows = json.loads((folder / "sharegpt" / entry["file_name"]).read_text())
    assert len(rows) == data["train"].num_rows
    assert [t["from"] for t in rows[0]["conversations"]] == ["human", "gpt"] and rows[0]["system"]
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["labels"]["frequencies"] == {"angry": 36, "happy": 32, "worried": 17, "sad": 11, "surprise": 4}
    assert stats["modalities"]["text"] == 0.93 and stats["modalities"]["no_cues"] == 0.07  # 7 clips lack subtitles
    assert stats["tokens"]["assistant"]["max"] > stats["tokens"]["assistant"]["median"] > 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["prompt"] == {"name": "explain", "version": 3} and "EULA" in manifest["licence"]
    assert manifest["inputs"]["gt"]["sha256"] and manifest["absent_optional_inputs"] == ["videos"]


def test_cli_builds_a_recipe_and_names_a_missing_anchor_file(anchors, tmp_path):
    out = runner.invoke(app, ["data", "emer-v1", "--anchors", str(anchors), "--out", str(tmp_path / "o"), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["counts"]["records"] == 100 and sum(report["counts"]["splits"].values()) == 100
    out = runner.invoke(app, ["data", "emer-v1", "--anchors", str(tmp_path), "--out", str(tmp_path / "p")])
    assert out.exit_code == 2
    assert "emer-v1: inputs.gt.path:" in out.output and "emer_v1_gt_eng.csv does not exist" in out.output
    out = runner.invoke(app, ["data", "no-such-recipe", "--out", str(tmp_path / "q")])
    assert out.exit_code == 2 and "not found" in out.output and "ov-merd" in out.output


def test_every_target_reply_is_one_the_decoding_grammar_admits(built, tiny_qwen2):
    """The replies SFT learns are the ones constrained decoding can write: each anchor recipe's assistant turns meet
    the bounded Explanation schema and are accepted token by token by the grammar the hf and vLLM paths decode under
    (no whitespace between JSON tokens; an observation's text within its 200 characters). Replies written with
    ``": "`` (as before) failed at the first key: a tuned model was then forced off its own tokens."""
    import llguidance
    from transformers import AutoTokenizer

    from affectreason.models.constrained import SchemaConstraint
    from affectreason.reason.messages import answer_schema, schema_violations

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)
    constraint = SchemaConstraint(answer_schema(), tokenizer)
    grammar = constraint.llg_tokenizer(len(tokenizer))
    checked = 0
    for name in EXPECTED:
        for record in read_split_files(built[name]):
            reply = record["messages"][-1]["content"]
            assert schema_violations(json.loads(reply), answer_schema()) == [], (name, record["id"])
            matcher = llguidance.LLMatcher(grammar, constraint.grammar)
            tokens = tokenizer.encode(reply, add_special_tokens=False)
            assert all(matcher.consume_token(t) for t in tokens), (name, record["id"], matcher.get_error()[:200])
            checked += 1
    assert checked == sum(EXPECTED.values())
