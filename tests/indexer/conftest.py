"""Fixtures for indexer tests: tiny random models in a shared store, a fresh home and photo copy per test."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PHOTOS

TAGGER, TAGGER_2, EMBEDDER = "tiny", "tiny_seed1", "clip"
LOW_THRESHOLD = 0.283


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:  # noqa: ANN001
    from ram_model.store import ModelStore
    from ram_model.vocab import builtin_vocabulary

    root = tmp_path_factory.mktemp("models")
    # The tiny random tagger scores every tag near 0.28: thresholds there make about half of them fire,
    # so that tests see model tags come, stay and go.
    vocabulary = builtin_vocabulary().head(40)
    tags = root / "tiny_tags.tsv"
    pairs = zip(vocabulary.names, vocabulary.names_zh, strict=True)
    tags.write_text("".join(f"{name}\t{LOW_THRESHOLD}\t{zh}\n" for name, zh in pairs), encoding="utf-8")
    store = ModelStore(root)
    store.create_random("ram_plus_tiny", TAGGER, seed=0, tags_file=tags)
    store.create_random("ram_plus_tiny", TAGGER_2, seed=1, tags_file=tags)
    store.create_random("clip_tiny", EMBEDDER, seed=0)
    return root


@pytest.fixture()
def home(tmp_path, monkeypatch, model_dir) -> Path:  # noqa: ANN001
    """A PHOTOTAG_HOME whose models are the tiny random ones; tiny models are the defaults."""
    home = tmp_path / "home"
    home.mkdir()
    os.symlink(model_dir, home / "models")
    for key, value in {"HOME": home, "DEVICE": "cpu", "TAGGER": TAGGER, "EMBEDDER": EMBEDDER, "WORKERS": "0",
                       "AUTO_DOWNLOAD": "false", "BATCH_SIZE": "4"}.items():
        monkeypatch.setenv(f"PHOTOTAG_{key}", str(value))
    return home


@pytest.fixture()
def photos(tmp_path) -> Path:
    """A writable copy of ../shared/photos (library and edge files)."""
    target = tmp_path / "photos"
    shutil.copytree(PHOTOS / "library", target / "library")
    shutil.copytree(PHOTOS / "edge", target / "edge")
    return target


def manifest_entries() -> dict:
    return json.loads((PHOTOS / "manifest.json").read_text(encoding="utf-8"))
