"""read_records on the anchor files and on hand-written good and bad files."""

from __future__ import annotations

import json

import pytest

from affectreason.eval.records import RecordError, parse_label_list, read_records


def test_anchor_ground_truth(anchors):
    records = read_records(anchors / "mer2024_ov" / "ground_truth.csv")
    assert len(records) == 332
    first = records[0]
    assert first.name == "sample_00000000"
    assert first.labels == ["pleasurable", "self-deprecating", "relaxed", "complaining", "relieved", "humorous",
                            "joyful", "happy"]
    assert len(first.labels) == 8
    assert first.reasoning is None and first.sentiment is None
    assert records[1].name == "sample_00000007" and records[1].labels == ["excited", "joyful", "happy"]


def test_anchor_predictions_keep_quoted_apostrophe(anchors):
    records = {r.name: r for r in read_records(anchors / "mer2024_ov" / "example_predictions.csv")}
    # the cell is "[""don't believe"", 'doubt']": our parser keeps the apostrophe (MERTools split it)
    assert records["sample_00001774"].labels == ["don't believe", "doubt"]


def test_anchor_emer_v1(anchors):
    records = read_records(anchors / "emer" / "emer_v1_gt_eng.csv")
    assert len(records) == 100
    first = records[0]
    assert first.name == "sample_00000648"
    assert first.labels == ["angry"]
    assert first.reasoning == (
        "In the video, he roared, spoke passionately, spoke quickly, spoke loudly, and stared with wide eyes. "
        "Therefore, it is inferred that his emotional state is anger."
    )
    assert all(r.reasoning for r in records)


def test_anchor_emer_v2_reasoning_only(anchors):
    records = read_records(anchors / "emer" / "emer_v2_reasons.csv")
    # name,chinese,english: no label column, reasoning from "english"
    assert len(records) == 332
    assert records[0].name == "sample_00000000"
    assert records[0].labels == []
    assert records[0].reasoning.startswith("In the video, the opening scene shows a male character")


def test_anchor_meld(anchors):
    records = read_records(anchors / "merbench" / "meld_test.jsonl")
    assert len(records) == 2610
    assert records[0].name == "test_dia0_utt0" and records[0].labels == ["surprise"]
    assert records[1].labels == ["anger"]
    assert {r.labels[0] for r in records} == {"anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"}


def test_anchor_mosi(anchors):
    records = read_records(anchors / "merbench" / "mosi_test.jsonl")
    assert len(records) == 686
    assert (records[0].name, records[0].sentiment, records[0].labels) == ("k5Y_838nuGo_1", -1.6, [])
    assert records[1].sentiment == 1.2


def test_explanation_jsonl(tmp_file):
    exp = {
        "clip_id": "c1",
        "observations": [{"modality": "face", "text": "Smiles.", "cue_ref": "AU12"},
                         {"modality": "voice", "text": "Bright voice."}],
        "interpretation": "Pleased.",
        "conclusion": "Happy.",
        "labels": ["Happy", "pleased"],
        "valence": 0.5,
    }
    plain = {"name": "c2", "labels": ["sad"], "reasoning": "Tears."}
    path = tmp_file("pred.jsonl", json.dumps(exp) + "\n\n" + json.dumps(plain) + "\n")
    records = read_records(path)
    assert [r.name for r in records] == ["c1", "c2"]
    assert records[0].labels == ["happy", "pleased"]
    assert records[0].reasoning == "Smiles. Bright voice. Pleased. Happy."
    assert records[0].sentiment == 0.5
    assert (records[1].labels, records[1].reasoning) == (["sad"], "Tears.")


def test_explanation_without_clip_id(tmp_file):
    path = tmp_file("p.jsonl", json.dumps({"conclusion": "Happy.", "labels": ["happy"]}) + "\n")
    with pytest.raises(RecordError, match=r"p\.jsonl:1: Explanation record has no clip_id"):
        read_records(path)


def test_explanation_bad_field(tmp_file):
    line = {"clip_id": "c", "observations": [{"modality": "smell", "text": "x"}]}
    path = tmp_file("p.jsonl", json.dumps(line) + "\n")
    with pytest.raises(RecordError, match=r"p\.jsonl:1: Explanation field observations\.0\.modality"):
        read_records(path)


def test_comma_separated_label_cells(tmp_file):
    path = tmp_file("g.csv", 'name,labels\na,"Happy, relaxed"\nb,sad; worried\nc,\nd,"[\'Joy\', \'joy\']"\n')
    records = read_records(path)
    assert [r.labels for r in records] == [["happy", "relaxed"], ["sad", "worried"], [], ["joy"]]


def test_sentiment_column_and_name_alternatives(tmp_file):
    path = tmp_file("s.csv", "names,emotions,sentiment\nx,positive,0.5\ny,negative,\n")
    records = read_records(path)
    assert [(r.name, r.labels, r.sentiment) for r in records] == [("x", ["positive"], 0.5),
                                                                  ("y", ["negative"], None)]


def test_jsonl_labels_as_json_list(tmp_file):
    path = tmp_file("g.jsonl", '{"id": "a", "openset": ["Calm", "calm", "tired"]}\n')
    assert read_records(path)[0].labels == ["calm", "tired"]


def test_parse_label_list():
    assert parse_label_list("['Happy', 'relaxed']") == ["Happy", "relaxed"]
    assert parse_label_list('["a", "b"]') == ["a", "b"]
    # pieces are not stripped here; normalize_labels strips them when a LabelRecord is built
    assert parse_label_list("happy;relaxed") == ["happy", "relaxed"]
    assert parse_label_list(" , happy,,") == ["happy"]
    assert parse_label_list("   ") == []
    with pytest.raises(ValueError, match="must contain only strings"):
        parse_label_list("[1, 2]")


def test_parse_label_list_documented_example():
    assert parse_label_list("happy; relaxed") == ["happy", "relaxed"]


# --- errors -------------------------------------------------------------------------------------


def test_empty_file(tmp_file):
    path = tmp_file("g.csv", "  \n")
    with pytest.raises(RecordError, match="the file is empty; expected a header row"):
        read_records(path)


def test_header_only(tmp_file):
    path = tmp_file("g.csv", "name,openset\n")
    with pytest.raises(RecordError, match="the file has a header but no records"):
        read_records(path)


def test_wrong_columns(tmp_file):
    path = tmp_file("g.csv", "clip,emotion_list\na,happy\n")
    with pytest.raises(RecordError) as err:
        read_records(path)
    message = str(err.value)
    assert message.startswith(f"{path}:1: header ['clip', 'emotion_list'] lacks the needed columns")
    assert "name/names/clip_id/id" in message and "labels/openset/emotions/emotion" in message


def test_non_utf8_bytes(tmp_file):
    data = "name,labels\nc1,happy\nc2,caf\u00e9\n".encode("latin-1")
    path = tmp_file("g.csv", data)
    # offset of 0xe9: len("name,labels\n") 12 + len("c1,happy\n") 9 + len("c2,caf") 6 = 27; on line 3
    with pytest.raises(RecordError) as err:
        read_records(path)
    assert str(err.value) == (f"{path}:3: not valid UTF-8 (byte 0xe9 at offset 27); re-save the file as UTF-8")


def test_non_utf8_bytes_after_bom(tmp_file):
    data = b"\xef\xbb\xbf" + "name,labels\n\u00e9a,happy\n".encode("latin-1")
    path = tmp_file("g.csv", data)
    # 0xe9 is at offset 3 (BOM) + 12 = 15, the first byte of line 2
    with pytest.raises(RecordError) as err:
        read_records(path)
    assert str(err.value) == f"{path}:2: not valid UTF-8 (byte 0xe9 at offset 15); re-save the file as UTF-8"


def test_utf8_bom_is_accepted(tmp_file):
    path = tmp_file("g.csv", b"\xef\xbb\xbfname,labels\na,happy\n")
    assert [(r.name, r.labels) for r in read_records(path)] == [("a", ["happy"])]


def test_malformed_json_line(tmp_file):
    path = tmp_file("p.jsonl", '{"name": "a", "labels": ["x"]}\n\n{"name": "b", "labels": [\n')
    with pytest.raises(RecordError, match=r"p\.jsonl:3: not valid JSON \(Expecting value at column 26\)"):
        read_records(path)


def test_json_line_not_object(tmp_file):
    path = tmp_file("p.jsonl", '["a", "b"]\n')
    with pytest.raises(RecordError, match=r"p\.jsonl:1: expected a JSON object per line, got list"):
        read_records(path)


def test_json_line_without_name(tmp_file):
    path = tmp_file("p.jsonl", '{"name": "a"}\n{"labels": ["x"]}\n')
    with pytest.raises(RecordError, match=r"p\.jsonl:2: no name field; expected one of name, names, clip_id, id"):
        read_records(path)


def test_bad_list_literal(tmp_file):
    path = tmp_file("g.csv", "name,openset\na,\"['happy']\"\nb,\"['happy', 'sad'\"\n")
    with pytest.raises(RecordError) as err:
        read_records(path)
    assert str(err.value) == f"{path}:3: label list \"['happy', 'sad'\" is not a valid list literal"


def test_bad_sentiment_value(tmp_file):
    path = tmp_file("g.csv", "name,sentiment\na,high\n")
    with pytest.raises(RecordError, match=r"g\.csv:2: could not convert string to float: 'high'"):
        read_records(path)


def test_empty_name_cell(tmp_file):
    path = tmp_file("g.csv", "name,labels\n,happy\n")
    with pytest.raises(RecordError, match=r"g\.csv:2: String should have at least 1 character"):
        read_records(path)


def test_duplicate_names(tmp_file):
    path = tmp_file("g.csv", "name,labels\na,happy\nb,sad\n a ,angry\n")
    with pytest.raises(RecordError) as err:
        read_records(path)
    # names are stripped, so " a " repeats record 1 as record 3
    assert str(err.value) == f"{path}: name 'a' appears twice (records 1 and 3)"


def test_unknown_extension(tmp_file):
    path = tmp_file("g.tsv", "name\tlabels\na\thappy\n")
    with pytest.raises(RecordError) as err:
        read_records(path)
    assert str(err.value) == f"{path}: unknown extension '.tsv'; use .csv or .jsonl"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(RecordError) as err:
        read_records(path)
    assert str(err.value) == f"{path}: no such file"


def test_csv_row_with_too_many_cells(tmp_file):
    path = tmp_file("g.csv", "name,labels\na,happy\nb,happy,sad\n")
    with pytest.raises(RecordError) as err:
        read_records(path)
    assert str(err.value) == f"{path}:3: more cells than header columns (an unquoted comma?)"


def test_record_error_is_value_error():
    assert issubclass(RecordError, ValueError)
