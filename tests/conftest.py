"""Shared fixtures: the ../shared reference data, the golden run, tiny models and a model store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PHOTOS = SHARED / "photos"
GOLDEN = SHARED / "golden" / "ram_plus_tiny.pt"


@pytest.fixture(scope="session")
def golden() -> dict:
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: the tests need ../shared next to the checkout")
    import torch  # here, not at the top: tests that need no model should not pay torch's import

    return torch.load(GOLDEN, map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def golden_model(golden):  # noqa: ANN001, ANN201
    from ram_model import create_tagger, load_weights

    model = create_tagger(golden["config"]).eval()
    load_weights(model, golden["state_dict"])
    return model


@pytest.fixture(scope="session")
def manifest() -> dict:
    return json.loads((PHOTOS / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def library_photos(manifest) -> list[Path]:  # noqa: ANN001
    return [PHOTOS / entry["path"] for entry in manifest["library"]]
