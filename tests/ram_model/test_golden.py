"""Parity with the reference implementation: ../shared/golden/ram_plus_tiny.pt, stage by stage."""

from __future__ import annotations

import pytest
import torch

from ram_model.tagger import Tagger
from ram_model.vocab import Vocabulary, builtin_vocabulary

STAGES = ["visual_encoder_out", "image_embeds", "wordvec_proj_out", "tagging_head_out"]


@pytest.fixture(scope="module")
def ours(golden, golden_model):  # noqa: ANN001, ANN201
    with torch.no_grad():
        return golden_model.forward_intermediates(golden["input"])


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_matches_the_reference(golden, ours, stage):  # noqa: ANN001
    expected = golden["intermediates"][stage]
    assert ours[stage].shape == expected.shape
    torch.testing.assert_close(ours[stage], expected, atol=1e-4, rtol=0)


def test_logits_match_within_1e_4(golden, ours):  # noqa: ANN001
    assert (ours["logits"] - golden["logits"]).abs().max().item() < 1e-4
    torch.testing.assert_close(torch.sigmoid(ours["logits"]), golden["probs"], atol=1e-5, rtol=0)


def test_plain_forward_equals_intermediates_path(golden, golden_model, ours):  # noqa: ANN001
    with torch.no_grad():
        logits = golden_model(golden["input"])
    torch.testing.assert_close(logits, ours["logits"], atol=1e-6, rtol=0)


def test_tags_identical_to_the_reference(golden, golden_model):  # noqa: ANN001
    vocabulary = Vocabulary.from_lists(golden["tag_list"], golden["tag_list_chinese"],
                                       golden["class_threshold"].tolist())
    tagger = Tagger(golden_model, vocabulary, device="cpu", dtype="fp32")
    results = tagger.results_from_probs(tagger.predict(golden["input"]))
    assert [" | ".join(hit.tag for hit in r.tags) for r in results] == list(golden["tags"])
    # The reference joins the raw Chinese names, trailing spaces included; we strip them for display.
    expected_zh = [[name.strip() for name in joined.split(" | ")] for joined in golden["tags_chinese"]]
    assert [[hit.tag_zh for hit in r.tags] for r in results] == expected_zh


def test_golden_vocabulary_is_the_head_of_the_shipped_one(golden):  # noqa: ANN001
    shipped = builtin_vocabulary().head(len(golden["tag_list"]))
    assert list(shipped.names) == list(golden["tag_list"])
    assert list(shipped.names_zh) == [name.strip() for name in golden["tag_list_chinese"]]
    torch.testing.assert_close(torch.tensor(shipped.thresholds, dtype=torch.float32), golden["class_threshold"])
