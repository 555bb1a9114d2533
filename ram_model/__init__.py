"""Phototag's RAM++/RAM tagger and CLIP embedder.

Public API (other tools call it by these names)::

    model = ram_model.create_tagger("ram_plus_swin_l_384")   # or a config dict
    ram_model.load_weights(model, "ram_plus_swin_large_14m.pth")
    logits = model(images)                                     # [B, 3, 384, 384] -> [B, 4585]
    tagger = ram_model.Tagger(model, ram_model.builtin_vocabulary())
    results = tagger.tag([PIL images])                         # tags that fire, with scores
"""

from __future__ import annotations

from typing import Any

from ram_model._registry import DEFAULT_TAGGER_ARCH, list_archs, resolve_config
from ram_model.checkpoint import load_weights
from ram_model.config import HeadConfig, RamConfig, SwinConfig
from ram_model.errors import (
    CheckpointError,
    ChecksumError,
    ConfigError,
    DownloadError,
    ImageError,
    ModelNotFoundError,
    PhototagError,
)
from ram_model.ram import RamTagger
from ram_model.vocab import Vocabulary, builtin_vocabulary


def create_tagger(arch: str | dict[str, Any] | RamConfig = DEFAULT_TAGGER_ARCH) -> RamTagger:
    """A RAM++/RAM module (random init) for a registered architecture name or a config dict."""
    return RamTagger(resolve_config(arch))


def __getattr__(name: str) -> Any:
    # The high-level pieces pull in Pillow, open_clip and the store: import them on first use.
    lazy = {
        "Tagger": "ram_model.tagger", "TagResult": "ram_model.tagger", "TagHit": "ram_model.tagger",
        "ModelStore": "ram_model.store", "create_embedder": "ram_model.clip", "ClipEmbedder": "ram_model.clip",
        "OpenSetTags": "ram_model.openset", "build_openset_tags": "ram_model.openset",
        "open_image": "ram_model.preprocess", "preprocess": "ram_model.preprocess",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'ram_model' has no attribute {name!r}")


__all__ = [
    "CheckpointError", "ChecksumError", "ClipEmbedder", "ConfigError", "DownloadError", "HeadConfig", "ImageError",
    "ModelNotFoundError", "ModelStore", "OpenSetTags", "PhototagError", "RamConfig", "RamTagger", "SwinConfig",
    "TagHit", "TagResult", "Tagger", "Vocabulary", "build_openset_tags", "builtin_vocabulary", "create_embedder",
    "create_tagger", "list_archs", "load_weights", "open_image", "preprocess",
]
