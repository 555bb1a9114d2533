"""Phototag's RAM++/RAM tagger and CLIP embedder.

Public API (other tools call it by these names)::

    model = ram_model.create_tagger("ram_plus_swin_l_384")   # or a config dict
    ram_model.load_weights(model, "ram_plus_swin_large_14m.pth")
    logits = model(images)                                     # [B, 3, 384, 384] -> [B, 4585]
    tagger = ram_model.Tagger(model, ram_model.builtin_vocabulary())
    results = tagger.tag([PIL images])                         # tags that fire, with scores
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ram_model._registry import DEFAULT_TAGGER_ARCH, list_archs, resolve_config
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

if TYPE_CHECKING:
    from ram_model.ram import RamTagger

# The names that pull in torch, Pillow, open_clip or the store are imported on first use, so ``import ram_model``
# (and ``ram_model.errors``, which the CLI's error handling imports) stays cheap: torch loads when a model is built.
_LAZY = {
    "load_weights": "ram_model.checkpoint", "RamTagger": "ram_model.ram",
    "Vocabulary": "ram_model.vocab", "builtin_vocabulary": "ram_model.vocab",
    "Tagger": "ram_model.tagger", "TagResult": "ram_model.tagger", "TagHit": "ram_model.tagger",
    "ModelStore": "ram_model.store", "create_embedder": "ram_model.clip", "ClipEmbedder": "ram_model.clip",
    "OpenSetTags": "ram_model.openset", "build_openset_tags": "ram_model.openset",
    "open_image": "ram_model.preprocess", "preprocess": "ram_model.preprocess",
}


def create_tagger(arch: str | dict[str, Any] | RamConfig = DEFAULT_TAGGER_ARCH) -> RamTagger:
    """A RAM++/RAM module (random init) for a registered architecture name or a config dict."""
    from ram_model.ram import RamTagger

    return RamTagger(resolve_config(arch))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ram_model' has no attribute {name!r}")


__all__ = [
    "CheckpointError", "ChecksumError", "ClipEmbedder", "ConfigError", "DownloadError", "HeadConfig", "ImageError",
    "ModelNotFoundError", "ModelStore", "OpenSetTags", "PhototagError", "RamConfig", "RamTagger", "SwinConfig",
    "TagHit", "TagResult", "Tagger", "Vocabulary", "build_openset_tags", "builtin_vocabulary", "create_embedder",
    "create_tagger", "list_archs", "load_weights", "open_image", "preprocess",
]
