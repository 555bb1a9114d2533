"""The CLIP embedder: unit-norm 512-d embeddings, batch-independent, offline tokenizer, open_clip weights."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ram_model.clip import create_embedder, list_embedders, load_pretrained_file, pretrained_source
from ram_model.errors import CheckpointError, ConfigError
from ram_model.preprocess import open_image
from tests.conftest import PHOTOS


@pytest.fixture(scope="module")
def embedder():  # noqa: ANN201
    torch.manual_seed(0)
    return create_embedder("clip_tiny").eval()


def photos() -> list[Image.Image]:
    names = ["animals/chelsea.png", "food/coffee.png", "space/rocket.jpg"]
    return [open_image(PHOTOS / "library" / name, draft_size=256) for name in names]


def test_image_embeddings_are_unit_vectors_and_batch_independent(embedder) -> None:  # noqa: ANN001
    images = photos()
    batch = embedder.embed_images(images)
    assert batch.shape == (3, 512) and batch.dtype == torch.float32
    torch.testing.assert_close(batch.norm(dim=-1), torch.ones(3))
    singles = torch.cat([embedder.embed_images([image]) for image in images])
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=0)
    assert not torch.allclose(batch[0], batch[1])


def test_text_embeddings_offline(embedder) -> None:  # noqa: ANN001
    texts = ["a dog on the beach", "一只猫", "a cup of espresso"]
    batch = embedder.embed_texts(texts)
    assert batch.shape == (3, 512)
    torch.testing.assert_close(batch.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(batch[2], embedder.embed_texts(texts[2:])[0], atol=1e-5, rtol=0)
    assert embedder.embed_texts([]).shape == (0, 512)


def test_default_embedder_is_vit_b16_with_quick_gelu() -> None:
    with torch.device("meta"):
        model = create_embedder("clip_vit_b16")
    assert model.embed_dim == 512
    assert model.model.visual.image_size == (224, 224)
    assert type(model.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(149.6e6, rel=1e-3)


def test_open_clip_checkpoint_round_trip(embedder, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "open_clip_model.pt"
    torch.save(embedder.model.state_dict(), path)
    state_dict = load_pretrained_file("clip_tiny", path)
    assert all(key.startswith("model.") for key in state_dict)
    torch.testing.assert_close(state_dict["model.text_projection"], embedder.model.text_projection)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_pretrained_file("clip_tiny", path)


def test_registry_and_sources() -> None:
    assert {"clip_vit_b16", "clip_tiny"} <= set(list_embedders())
    source = pretrained_source("clip_vit_b16")
    assert source["repo_id"].endswith("openai") and source["filename"]
    with pytest.raises(ConfigError):
        pretrained_source("clip_tiny")
    with pytest.raises(ConfigError, match="unknown embedder"):
        create_embedder("clip_huge")
