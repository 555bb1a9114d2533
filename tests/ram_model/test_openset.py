"""Custom tags: built with the CLIP text encoder, scored with the 4585 built-in ones in one pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ram_model import create_tagger
from ram_model.clip import create_embedder
from ram_model.errors import ConfigError
from ram_model.openset import RAM_TEMPLATES, OpenSetTags, build_openset_tags
from ram_model.tagger import Tagger
from ram_model.vocab import builtin_vocabulary


@pytest.fixture(scope="module")
def embedder():  # noqa: ANN201
    torch.manual_seed(1)
    return create_embedder("clip_tiny").eval()


def test_ram_style_is_one_averaged_row_per_tag(embedder) -> None:  # noqa: ANN001
    tags = build_openset_tags(embedder, ["my cat", "grandma's house"], style="ram")
    assert tags.embeddings.shape == (2, 1, 512)
    torch.testing.assert_close(tags.embeddings.norm(dim=-1), torch.ones(2, 1))
    expected = embedder.embed_texts([t.format("my cat") for t in RAM_TEMPLATES]).mean(0)
    torch.testing.assert_close(tags.embeddings[0, 0], expected / expected.norm(), atol=1e-5, rtol=0)
    torch.testing.assert_close(tags.thresholds, torch.full((2,), 0.5))


def test_ram_plus_style_keeps_every_description(embedder) -> None:  # noqa: ANN001
    tags = build_openset_tags(embedder, {"my cat": ["a grey cat", "a cat on a sofa", "a sleeping cat"],
                                         "sailboat": ["a white sail", "a boat on a lake", "a mast"]},
                              threshold={"sailboat": 0.7})
    assert tags.embeddings.shape == (2, 3, 512) and tags.descriptions_per_tag == 3
    torch.testing.assert_close(tags.embeddings[1], embedder.embed_texts(["a white sail", "a boat on a lake",
                                                                         "a mast"]), atol=1e-5, rtol=0)
    assert tags.thresholds.tolist() == [0.5, pytest.approx(0.7)]
    names_only = build_openset_tags(embedder, ["kayak", "tent"])
    assert names_only.embeddings.shape == (2, len(RAM_TEMPLATES), 512)


def test_description_counts_must_agree(embedder) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="same number of descriptions per tag; got a: 2, b: 1"):
        build_openset_tags(embedder, {"a": ["x", "y"], "b": ["z"]})
    with pytest.raises(ConfigError, match="unique"):
        build_openset_tags(embedder, ["a", "a"])


@pytest.fixture(scope="module")
def ram_plus():  # noqa: ANN201
    torch.manual_seed(2)
    model = create_tagger("ram_plus_tiny").eval()
    with torch.no_grad():
        model.label_embed.copy_(torch.nn.functional.normalize(torch.randn_like(model.label_embed), dim=-1))
        model.fc.bias.fill_(2.0)  # make some tags fire on random weights
    return model


def test_custom_tags_mix_with_builtin_ones_in_one_pass(ram_plus, embedder, golden) -> None:  # noqa: ANN001
    images = golden["input"]
    custom = build_openset_tags(embedder, {"kayak": ["a kayak"] * 2, "tent": ["a tent", "a camping tent"]})
    vocabulary = builtin_vocabulary().head(40)
    mixed = Tagger(ram_plus, vocabulary, device="cpu", dtype="fp32", openset=custom)
    plain = Tagger(ram_plus, vocabulary, device="cpu", dtype="fp32")
    probs = mixed.predict(images)
    assert probs.shape == (2, 42) and mixed.tag_names[-2:] == ["kayak", "tent"]
    np.testing.assert_allclose(probs[:, :40], plain.predict(images), atol=1e-6)
    with torch.inference_mode():
        alone = torch.sigmoid(ram_plus.score(ram_plus.encode_image(images), custom.embeddings)).numpy()
    np.testing.assert_allclose(probs[:, 40:], alone, atol=1e-6)
    chunked = Tagger(ram_plus, vocabulary, device="cpu", dtype="fp32", openset=custom, chunk_size=3)
    np.testing.assert_allclose(chunked.predict(images), probs, atol=1e-6)
    results = mixed.results_from_probs(probs)
    for result, row in zip(results, probs, strict=True):
        fired = [hit.tag for hit in result.tags]
        assert fired == [mixed.tag_names[i] for i in np.flatnonzero(row > mixed.thresholds)]
        assert all(hit.custom == (hit.tag in ("kayak", "tent")) for hit in result.tags)


def test_custom_copy_of_a_builtin_tag_scores_like_it(ram_plus, golden) -> None:  # noqa: ANN001
    rows = ram_plus.class_label_embed()[7:8].detach().clone()  # all 51 descriptions of class 7
    copy = OpenSetTags(["copy of 7"], rows, torch.tensor([0.5]))
    tagger = Tagger(ram_plus, builtin_vocabulary().head(40), device="cpu", dtype="fp32", openset=copy)
    probs = tagger.predict(golden["input"])
    np.testing.assert_allclose(probs[:, 40], probs[:, 7], atol=1e-6)


def test_ram_model_takes_one_row_per_custom_tag(embedder, golden) -> None:  # noqa: ANN001
    torch.manual_seed(3)
    ram = create_tagger("ram_tiny").eval()
    vocabulary = builtin_vocabulary().head(40)
    ram_style = build_openset_tags(embedder, ["kayak", "tent"], style="ram")
    plus_style = build_openset_tags(embedder, ["kayak", "tent"], style="ram_plus")
    a = Tagger(ram, vocabulary, device="cpu", dtype="fp32", openset=ram_style).predict(golden["input"])
    b = Tagger(ram, vocabulary, device="cpu", dtype="fp32", openset=plus_style).predict(golden["input"])
    assert a.shape == b.shape == (2, 42)
    np.testing.assert_allclose(a, b, atol=1e-5)  # averaging the descriptions is the RAM style


def test_round_trip_and_select(embedder) -> None:  # noqa: ANN001
    tags = build_openset_tags(embedder, ["kayak", "tent", "campfire"], style="ram")
    again = OpenSetTags.from_dict(tags.to_dict())
    torch.testing.assert_close(again.embeddings, tags.embeddings)
    picked = tags.select(["campfire", "kayak"])
    assert picked.names == ["campfire", "kayak"]
    torch.testing.assert_close(picked.embeddings[1], tags.embeddings[0])
