"""Typed settings with defaults, overridable by environment (``PHOTOTAG_…``) and command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("phototag", appauthor=False))


class Settings(BaseSettings):
    """Every knob Phototag has. ``PHOTOTAG_HOME`` holds the model store and the default catalog."""

    model_config = SettingsConfigDict(env_prefix="PHOTOTAG_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="model store and default catalog")
    tagger: str = Field("ram_plus_swin_l_384", description="model bundle used for tagging")
    embedder: str = Field("clip_vit_b16", description="model bundle used for image and text embeddings")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: str = Field("auto", description="auto, fp32, bf16 or fp16")
    batch_size: PositiveInt = Field(8, description="images per model call")
    chunk_size: PositiveInt | None = Field(None, description="tags scored at a time (bounds memory)")
    draft_decode: bool = Field(True, description="decode large JPEGs at reduced size when still >= model input")
    auto_download: bool = Field(True, description="download a missing default model on first use")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def catalog_dir(self) -> Path:
        return self.home / "catalog"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given values (flags left unset, ``None``, keep the current value)."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return Settings(**{**self.model_dump(), **given})
