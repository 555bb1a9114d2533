"""Batched, chunked, trimmed and reduced-precision inference agree with plain fp32 inference."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from ram_model import create_tagger
from ram_model.device import resolve_device, resolve_dtype
from ram_model.errors import ConfigError
from ram_model.preprocess import open_image
from ram_model.tagger import Tagger
from ram_model.vocab import builtin_vocabulary


@pytest.fixture(scope="module")
def images(golden):  # noqa: ANN001, ANN201
    """Five different inputs: the golden noise and photo rows, and three perturbations of them."""
    base = golden["input"]
    generator = torch.Generator().manual_seed(0)
    extra = [base[1] + 0.3 * torch.randn(base[1].shape, generator=generator) for _ in range(2)]
    return torch.stack([base[0], base[1], *extra, base[1].flip(-1)])


@pytest.mark.parametrize("chunk", [1, 7, 16, 40])
def test_chunked_head_equals_unchunked(golden_model, images, chunk: int) -> None:  # noqa: ANN001
    with torch.inference_mode():
        whole = golden_model(images)
        chunked = golden_model(images, chunk_size=chunk)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_batch_of_n_equals_n_singles(golden_model, images) -> None:  # noqa: ANN001
    with torch.inference_mode():
        batched = golden_model(images)
        singles = torch.cat([golden_model(image[None]) for image in images])
    torch.testing.assert_close(batched, singles, atol=1e-4, rtol=0)


def test_trimming_to_a_subset_scores_those_tags_alone(golden_model, images) -> None:  # noqa: ANN001
    indices = torch.tensor([3, 17, 38])
    with torch.inference_mode():
        full = golden_model(images)
        trimmed = golden_model(images, tag_indices=indices)
    torch.testing.assert_close(trimmed, full[:, indices], atol=1e-5, rtol=0)


def test_tagger_subset_by_english_and_chinese_names(golden_model, images) -> None:  # noqa: ANN001
    vocabulary = builtin_vocabulary().head(40)
    full = Tagger(golden_model, vocabulary, device="cpu", dtype="fp32")
    wanted = [vocabulary.names[5], vocabulary.names_zh[9]]
    subset = Tagger(golden_model, vocabulary, device="cpu", dtype="fp32", tags=wanted)
    assert subset.tag_names == [vocabulary.names[5], vocabulary.names[9]]
    np.testing.assert_allclose(subset.predict(images), full.predict(images)[:, [5, 9]], atol=1e-6)
    with pytest.raises(ConfigError, match="unknown tag"):
        Tagger(golden_model, vocabulary, device="cpu", tags=["no such tag"])


def f1(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def test_bf16_agrees_with_fp32_on_tags(golden_model, images) -> None:  # noqa: ANN001
    vocabulary = builtin_vocabulary().head(40)
    fp32 = Tagger(golden_model, vocabulary, device="cpu", dtype="fp32")
    bf16 = Tagger(golden_model, vocabulary, device="cpu", dtype="bf16")
    assert bf16.dtype == torch.bfloat16
    p32, p16 = fp32.predict(images), bf16.predict(images)
    assert not np.array_equal(p32, p16)  # it really ran in reduced precision
    assert np.abs(p32 - p16).max() < 0.05
    assert f1(p32 > fp32.thresholds, p16 > bf16.thresholds) >= 0.95


def test_tags_fire_strictly_above_threshold(golden_model) -> None:  # noqa: ANN001
    vocabulary = builtin_vocabulary().head(40)
    tagger = Tagger(golden_model, vocabulary, device="cpu", dtype="fp32")
    probs = np.asarray([tagger.thresholds, tagger.thresholds + 1e-4], dtype=np.float32)
    at, above = tagger.results_from_probs(probs)
    assert at.tags == []
    assert [hit.index for hit in above.tags] == list(range(40))


def test_tagger_on_real_photos_matches_model_forward(golden_model, library_photos) -> None:  # noqa: ANN001
    from ram_model.preprocess import preprocess_batch

    photos = [open_image(p, draft_size=384) for p in library_photos[:3]]
    tagger = Tagger(golden_model, builtin_vocabulary().head(40), device="cpu", dtype="fp32")
    results = tagger.tag(photos, batch_size=2, return_probs=True)
    with torch.inference_mode():
        expected = torch.sigmoid(golden_model(preprocess_batch(photos))).numpy()
    np.testing.assert_allclose(np.stack([r.probs for r in results]), expected, atol=1e-5)
    for result, row in zip(results, expected, strict=True):
        assert [hit.index for hit in result.tags] == list(np.flatnonzero(row > tagger.thresholds))


def test_auto_device_and_precision_on_this_machine() -> None:
    device = resolve_device("auto")
    assert device.type in ("cuda", "mps", "cpu")
    assert resolve_dtype("fp32", device) == torch.float32
    if device.type == "cpu":
        from ram_model.device import cpu_has_native_bf16

        assert resolve_dtype("auto", device) == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    # GPUs compute in fp16 (8x finer rounding than bf16 at the same speed), whatever their bf16 support.
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("auto", torch.device("mps")) == torch.float16
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_dtype("fp8", device)
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")


def test_vocabulary_must_match_the_model() -> None:
    with pytest.raises(ValueError, match="vocabulary has 4585 tags but the model scores 40"):
        Tagger(create_tagger("ram_plus_tiny"), builtin_vocabulary(), device="cpu")


def test_tags_are_scored_in_chunks_by_default(golden_model, images, monkeypatch) -> None:  # noqa: ANN001
    with torch.inference_mode():
        whole = golden_model(images, chunk_size=40)
    monkeypatch.setattr("ram_model.ram.DEFAULT_TAG_CHUNK", 16)
    sizes = []
    score = golden_model.score

    def counted(embeds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sizes.append(len(labels))
        return score(embeds, labels)

    monkeypatch.setattr(golden_model, "score", counted)
    with torch.inference_mode():
        chunked = golden_model(images)
    assert sizes == [16, 16, 8]
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_rows_that_overflow_fp16_are_scored_again_in_bf16(golden_model, images, caplog) -> None:  # noqa: ANN001
    """fp16's range ends at 65,504: a photo whose activations exceed it comes out NaN. Only its row
    is scored again, in bf16 (fp32's range); the other rows keep their fp16 probabilities."""
    model = copy.deepcopy(golden_model)
    with torch.no_grad():
        model.visual_encoder.patch_embed.proj.weight.mul_(3e4)  # still within fp16's range
    vocabulary = builtin_vocabulary().head(40)
    fp16 = Tagger(model, vocabulary, device="cpu", dtype="fp16")
    bf16 = Tagger(model, vocabulary, device="cpu", dtype="bf16")
    # A zero input gives the patch embedding's bias alone; a large one overflows it.
    batch = torch.stack([torch.zeros_like(images[0]), 100 * images[1]])
    raw = fp16.probs_on_device(batch).numpy()
    assert np.isfinite(raw[0]).all() and np.isnan(raw[1]).all()
    with caplog.at_level(logging.WARNING, logger="ram_model.accel"):
        probs = fp16.predict(batch)
    assert "fp16 overflowed on 1 of 2 photos" in caplog.text
    np.testing.assert_array_equal(probs[0], raw[0])
    np.testing.assert_allclose(probs[1], bf16.predict(batch[1:])[0], atol=1e-6)
    assert np.isfinite(probs).all()
