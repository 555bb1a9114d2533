"""The full-size configs build exactly the official checkpoints' keys and shapes (on the meta device)."""

from __future__ import annotations

import pytest
import torch

from ram_model import create_tagger, list_archs
from ram_model.checkpoint import CAPTIONING_PREFIXES, RECOMPUTED_BUFFERS, build_meta
from ram_model.config import RamConfig
from ram_model.errors import ConfigError
from tests.conftest import SHARED


def read_spec(name: str) -> dict[str, tuple[int, ...]]:
    rows = (line.split("\t") for line in (SHARED / "spec" / name).read_text().splitlines() if line.strip())
    return {key: tuple(int(d) for d in shape.strip("[]").split(",") if d.strip()) for key, shape, _ in rows}


@pytest.mark.parametrize(
    ("arch", "spec", "captioning_keys"),
    [("ram_plus_swin_l_384", "ram_plus_swin_l_keys.tsv", 0), ("ram_swin_l_384", "ram_swin_l_keys.tsv", 641)],
)
def test_full_size_model_has_every_official_key(arch: str, spec: str, captioning_keys: int) -> None:
    official = read_spec(spec)
    model = build_meta(lambda: create_tagger(arch))
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}

    dropped_caption = {k for k in official if k.startswith(CAPTIONING_PREFIXES)}
    recomputed = {k for k in official if k.rsplit(".", 1)[-1] in RECOMPUTED_BUFFERS}
    assert len(dropped_caption) == captioning_keys
    assert len(recomputed) == 35
    # Every other key is one of our parameters, with the same shape, and we have no others.
    assert ours == {k: v for k, v in official.items() if k not in dropped_caption | recomputed}

    # The buffers we drop are the ones the model rebuilds itself, with the official shapes.
    buffers = {name: tuple(b.shape) for name, b in model.named_buffers() if b is not None}
    for key in recomputed:
        assert buffers[key] == official[key], key


def test_parameter_count_matches_the_spec() -> None:
    model = build_meta(lambda: create_tagger("ram_plus_swin_l_384"))
    count = sum(p.numel() for p in model.parameters())
    assert round(count / 1e6, 1) == 329.5
    assert model.label_embed.shape == (233835, 512)


def test_every_registered_arch_builds() -> None:
    for arch in list_archs():
        model = build_meta(lambda arch=arch: create_tagger(arch))
        assert model.label_embed.shape[1] == 512


def test_golden_config_dict_builds_the_tiny_registered_arch(golden) -> None:  # noqa: ANN001
    assert RamConfig.from_dict(golden["config"]) == RamConfig.from_dict(
        create_tagger("ram_plus_tiny").config.to_dict()
    )


def test_bad_configs_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown tagger architecture 'ram_huge'"):
        create_tagger("ram_huge")
    with pytest.raises(ConfigError, match="vision_width"):
        create_tagger({"swin": {"embed_dim": 32, "vision_width": 100}, "num_class": 2})
    with pytest.raises(ConfigError, match="exactly one label embedding"):
        create_tagger({"variant": "ram", "descriptions_per_class": 3})


def test_stage_four_has_no_shift_and_no_mask() -> None:
    model = build_meta(lambda: create_tagger("ram_plus_swin_l_384"))
    last = model.visual_encoder.layers[3].blocks
    assert all(block.shift_size == (0, 0) and block.attn_mask is None for block in last)
    assert model.visual_encoder.layers[0].blocks[1].shift_size == (6, 6)


def test_shifted_window_mask_uses_minus_100() -> None:
    block = create_tagger("ram_plus_tiny").visual_encoder.layers[0].blocks[1]
    assert block.attn_mask.shape == (64, 144, 144)
    assert set(torch.unique(block.attn_mask).tolist()) == {0.0, -100.0}
