"""Typed settings with defaults, overridable by environment (``PHOTOTAG_…``) and command-line flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, PositiveInt, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("phototag", appauthor=False))


def _default_workers() -> int:
    # Leave one core to the model. On two cores or fewer, decoding in-process is faster: the models are
    # ~95 % of the work and worker start-up costs seconds a pass (bench/results/indexer_cpu.md).
    cores = os.cpu_count() or 2
    return 0 if cores <= 2 else min(8, cores - 1)


# Images per model call off a GPU when no batch size is set (on a GPU it comes from free memory).
CPU_BATCH_SIZE = 8
# Unless told, a GPU pass compiles its models when it has at least this many photos to compute:
# compiling takes about a minute and saves ~0.5-0.6 ms a photo end to end (331 → 414 photos/s,
# bench/results/gpu.md), so it pays from ~100,000 photos (a NAS archive, not an import).
COMPILE_FROM_PHOTOS = 100_000

class Settings(BaseSettings):
    """Every knob Phototag has. ``PHOTOTAG_HOME`` holds the model store and the default catalog."""

    model_config = SettingsConfigDict(env_prefix="PHOTOTAG_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="model store and default catalog")
    tagger: str = Field("ram_plus_swin_l_384", description="model bundle used for tagging")
    embedder: str = Field("clip_vit_b16", description="model bundle used for image and text embeddings")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    precision: str = Field("auto", description="auto, fp32, bf16 or fp16")
    batch_size: PositiveInt | None = Field(
        None, description=f"images per model call (default: {CPU_BATCH_SIZE} on a CPU, the largest that fits on a GPU)")
    gpu_decode: bool = Field(True, description="on a GPU, decode plain JPEGs there (nvJPEG) instead of on the CPU")
    compile: bool | None = Field(
        None, description=f"torch.compile the models on a GPU (a minute, then faster); unset: for passes of "
                          f"{COMPILE_FROM_PHOTOS:,}+ photos")
    chunk_size: PositiveInt | None = Field(None, description="tags scored at a time (bounds memory)")
    draft_decode: bool = Field(True, description="decode large JPEGs at reduced size when still >= model input")
    auto_download: bool = Field(True, description="download a missing default model on first use")
    catalog: Path | None = Field(None, description="catalog folder (default: $PHOTOTAG_HOME/catalog)")
    workers: int = Field(default_factory=_default_workers, ge=0,
                         description="decode worker processes (0: decode in the main process)")
    max_attempts: PositiveInt = Field(3, description="passes that retry a failed file before it waits for a change")
    lock_wait: float = Field(0.0, ge=0, description="seconds a second writer waits for the catalog lock")
    engine: Literal["local", "ray"] = Field(
        "local", description="where identify, decode and the models run: this machine, or a Ray cluster (the ray "
                             "extra: pip install 'phototag[ray]')")
    ray_address: str | None = Field(
        None, description="the Ray cluster to join (ray start's address); unset: RAY_ADDRESS, a cluster started on "
                          "this machine, else a new local one")
    ray_nodes: dict[str, str] = Field(
        default_factory=dict, description="path prefix -> Ray node (id or IP address): photos under it are read on "
                                          "that node when it can take the work (storage local to it)")
    ray_actors: PositiveInt | None = Field(
        None, description="model actors on the Ray cluster (default: one per GPU; without GPUs, one per 2 CPUs)")
    vector_index: Literal["auto", "flat", "ivf", "ivfpq"] = Field(
        "auto", description="exact (flat) or approximate (ivf; ivfpq: compressed, re-scored exactly) vector search; "
                            "auto: ivf from 250,000 photos, ivfpq from 2,000,000")
    search_min_score: float = Field(0.2, description="relevance cutoff of free-text and similar: search terms")
    # write-metadata (indexer.metadata.write.WriteOptions checks the names; profiles: indexer.metadata.profiles)
    metadata_profile: str = Field("all", description="the photo app(s) write-metadata writes for (--for)")
    metadata_mode: Literal["sidecar", "embed", "both"] | None = Field(
        None, description="where keywords go: sidecar, embed (JPEG) or both; unset: the profile's choice")
    metadata_lang: Literal["en", "zh", "both"] = Field("en", description="keyword language: en, zh or both")
    sidecar_naming: Literal["ext", "replace"] | None = Field(
        None, description="ext: IMG.jpg.xmp for every photo; replace: IMG.xmp for every photo; unset: the profile's")
    # the desktop app (its settings dialog keeps the values chosen there in $PHOTOTAG_HOME/gui.json: gui.preferences)
    tag_language: Literal["en", "zh"] = Field("en", description="tag names the app shows: en or zh")
    threshold_offset: float = Field(
        0.0, ge=0, le=1, description="the app hides model suggestions scoring below their tag's threshold plus this")

    @field_validator("metadata_profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        from indexer.metadata.profiles import PROFILES  # data only: no heavy import

        if value not in PROFILES:
            raise ValueError(f"unknown profile; use one of {', '.join(PROFILES)}")
        return value

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def catalog_dir(self) -> Path:
        return self.catalog if self.catalog is not None else self.home / "catalog"

    def chosen(self, name: str) -> bool:
        """Whether setting ``name`` was given (a flag, ``PHOTOTAG_…`` in the environment), not left at its default."""
        return name in self.model_fields_set

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given values (flags left unset, ``None``, keep the current value). What was chosen
        stays chosen, and only that (:meth:`chosen`)."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return Settings(**{**self.model_dump(include=self.model_fields_set), **given})


def load_settings(**overrides: Any) -> Settings:
    """The settings from ``PHOTOTAG_…`` variables and defaults, with ``overrides`` (flags; None: not given).

    Raises:
        SettingsError: a value the setting cannot take, named with its variable and what it accepts.
    """
    from indexer.errors import SettingsError

    try:
        return Settings().with_overrides(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"PHOTOTAG_{name.upper()}={error.get('input')!r} (or its flag): {error['msg']}")
        raise SettingsError("a setting has a value it cannot take: " + "; ".join(problems)
                            + ". Correct or unset it; `phototag --help` and the README's Settings table list "
                            "what each accepts") from None
