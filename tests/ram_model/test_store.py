"""The model store: bundles are written atomically, listed, loaded, and CLIP bundles work like taggers."""

from __future__ import annotations

import json

import pytest
import torch

from ram_model.errors import ConfigError, ModelNotFoundError
from ram_model.store import BUNDLE_FILE, ModelStore
from tests.conftest import GOLDEN


def test_clip_bundle_round_trip(tmp_path) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path)
    bundle = store.create_random("clip_tiny", "clip", seed=5)
    assert bundle.kind == "embedder" and bundle.random and bundle.version == "clip@seed5"
    embedder = store.load_embedder("clip")
    torch.manual_seed(5)
    from ram_model.clip import create_embedder

    expected = create_embedder("clip_tiny")
    torch.testing.assert_close(embedder.embed_texts(["a red boat"]), expected.eval().embed_texts(["a red boat"]))
    with pytest.raises(ConfigError, match="holds embedder weights, not tagger weights"):
        store.load_tagger("clip")

    # An open_clip checkpoint imports as a bundle of the same weights.
    path = tmp_path / "open_clip_model.bin"
    torch.save(expected.model.state_dict(), path)
    store.import_file(path, "clip2", arch="clip_tiny")
    torch.testing.assert_close(store.load_embedder("clip2").embed_texts(["x"]), expected.embed_texts(["x"]))


def test_tagger_bundle_is_memory_mapped_and_exact(tmp_path, golden) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path)
    bundle = store.import_file(GOLDEN, "golden")
    assert bundle.arch == "ram_plus_tiny" and not bundle.random
    data = json.loads((tmp_path / "golden" / BUNDLE_FILE).read_text())
    assert data["source"]["type"] == "import" and len(data["source"]["sha256"]) == 64
    model, vocabulary, _ = store.load_tagger_model("golden")
    assert len(vocabulary) == 40
    with torch.inference_mode():
        assert (model(golden["input"]) - golden["logits"]).abs().max() < 1e-4


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path)

    def broken(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        raise OSError("disk full")

    monkeypatch.setattr("ram_model.store.save_safetensors", broken)
    with pytest.raises(OSError, match="disk full"):
        store.create_random("ram_plus_tiny", "tiny")
    assert list(tmp_path.iterdir()) == []
    assert store.list() == []


def test_unknown_and_invalid_names(tmp_path) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path)
    with pytest.raises(ModelNotFoundError, match="phototag models download x"):
        store.get("x")
    with pytest.raises(ConfigError, match="invalid model name"):
        store.create_random("ram_plus_tiny", "../escape")
