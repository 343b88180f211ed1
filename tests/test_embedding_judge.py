"""The offline embedding judge and grouping with the real packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest

from affectreason.eval.alignment import align
from affectreason.eval.embeddings import EMBED_MODEL_ENV, EmbeddingModelMissing, TextEncoder
from affectreason.eval.grouping import EmbeddingGrouping
from affectreason.eval.judges.base import score_emer
from affectreason.eval.judges.embedding import EmbeddingJudge, clue_match, split_clues
from affectreason.eval.ov import score_ov
from affectreason.eval.records import read_records
from affectreason.schema import LabelRecord

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def test_encoder_is_unit_norm_and_caches(encoder):
    vectors = encoder.encode(["happy", "joyful", "happy"])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    before = encoder.misses
    encoder.encode(["joyful", "happy"])
    assert encoder.misses == before  # both already cached


def test_similar_words_closer_than_unrelated(encoder):
    happy, glad, furious = encoder.encode(["happy", "glad", "furious"])
    assert happy @ glad > happy @ furious


def test_missing_model_dir_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(EMBED_MODEL_ENV, str(tmp_path))
    with pytest.raises(EmbeddingModelMissing, match="not a sentence-transformers model folder"):
        TextEncoder()


def test_split_clues_and_match():
    assert split_clues("") == []
    assert split_clues("他皱眉。声音很大。") == ["他皱眉。", "声音很大。"]
    # rows = predicted clues, columns = reference clues; 2 of 3 predicted clues reach 0.5, 1 of 2 references
    sim = np.array([[0.9, 0.1], [0.6, 0.2], [0.1, 0.3]])
    assert clue_match(sim, 0.5) == (2 / 3, 0.5)


def test_clue_overlap_orders_paraphrase_above_unrelated(encoder):
    judge = EmbeddingJudge(encoder)
    ref = "He smiles broadly and his eyes crinkle. His voice is bright and lively. He says it was a wonderful day."
    para = ("He is smiling widely with crinkled eyes. He speaks in a bright, lively voice. "
            "He says the day was wonderful.")
    other = "She stares at the floor without moving. Her words are slow and quiet. She mentions a funeral."
    assert judge.clue_overlap(ref, ref).score == 10.0
    close, far = judge.clue_overlap(ref, para), judge.clue_overlap(ref, other)
    assert close.score > far.score
    assert far.score == 0.0 and close.details["reference_clues"] == 3


def test_same_answer_every_run(encoder):
    judge = EmbeddingJudge(encoder)
    a = judge.clue_overlap("He frowns and shouts at her.", "He is shouting with a frown.")
    b = EmbeddingJudge(encoder).clue_overlap("He frowns and shouts at her.", "He is shouting with a frown.")
    assert a.score == b.score and a.details == b.details


def test_embedding_grouping_links_synonyms(encoder):
    grouping = EmbeddingGrouping(encoder, threshold=0.5)
    mapping = grouping.canonical("x", ["happy", "glad", "furious"])
    assert mapping["happy"] == mapping["glad"] and mapping["furious"] == "furious"
    with pytest.raises(ValueError, match="threshold"):
        EmbeddingGrouping(encoder, threshold=0)


def test_emer_on_anchor_references(encoder, anchors):
    gold = read_records(anchors / "emer" / "emer_v1_gt_eng.csv")[:20]
    perfect = score_emer(align(gold, gold), EmbeddingJudge(encoder))
    assert perfect.summary["clue_overlap"] == 10.0 and perfect.summary["label_overlap"] == 10.0
    shifted = [LabelRecord(name=g.name, labels=o.labels, reasoning=o.reasoning)
               for g, o in zip(gold, gold[1:] + gold[:1], strict=True)]
    worse = score_emer(align(gold, shifted), EmbeddingJudge(encoder))
    assert worse.summary["clue_overlap"] < 5.0
    assert worse.info["judge"]["kind"] == "embedding"


def test_ov_embedding_grouping_on_anchors(encoder, anchors):
    ov = anchors / "mer2024_ov"
    aligned = align(read_records(ov / "ground_truth.csv"), read_records(ov / "example_predictions.csv"))
    result = score_ov(aligned, EmbeddingGrouping(encoder, threshold=0.5))
    # measured: accuracy 0.5109, recall 0.4007 (GPT-3.5 cached groups give 0.5818 / 0.4978)
    assert result.summary["accuracy"] == pytest.approx(0.5109, abs=2e-3)
    assert result.summary["recall"] == pytest.approx(0.4007, abs=2e-3)
    assert result.info["grouping"]["cache_hit_rate"] > 0.5


def test_batched_label_encoding_gives_the_clip_by_clip_scores(anchors):
    """``score_ov`` encodes every label in one batch first (EmbeddingGrouping.prepare); the groups and figures
    equal those of encoding clip by clip, as the grouping did before."""
    ov = anchors / "mer2024_ov"
    aligned = align(read_records(ov / "ground_truth.csv"), read_records(ov / "example_predictions.csv"))

    class ClipByClip(EmbeddingGrouping):
        def prepare(self, labels):  # the old path: each clip encodes its own new labels
            pass

    batched = score_ov(aligned, EmbeddingGrouping(TextEncoder(), threshold=0.5))
    lazy = score_ov(aligned, ClipByClip(TextEncoder(), threshold=0.5))
    assert batched.summary == lazy.summary and batched.n == lazy.n > 100
    rows = {r["name"]: (r["gold"], r["pred"]) for r in batched.rows()}
    assert rows == {r["name"]: (r["gold"], r["pred"]) for r in lazy.rows()}
