"""Commands use the models a catalog was built with (indexer.catalog_models), through the real CLI and the app."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import delete

from indexer.catalog import Catalog
from indexer.catalog_models import CatalogModels
from indexer.schema import Run
from indexer.settings import Settings
from main import main
from ram_model.store import ModelStore
from tests.indexer.conftest import EMBEDDER, TAGGER, TAGGER_2

OTHER = "myclip"  # an embedder that is not the default one


@pytest.fixture()
def store(home, model_dir) -> ModelStore:  # noqa: ANN001
    """A model store of this test's own (the shared one stays as it is): the tiny models, and OTHER."""
    (home / "models").unlink()
    root = home / "models"
    root.mkdir()
    for name in (TAGGER, TAGGER_2, EMBEDDER):
        os.symlink(model_dir / name, root / name)
    store = ModelStore(root)
    store.create_random("clip_tiny", OTHER, seed=1)
    return store


@pytest.fixture()
def loads(monkeypatch) -> list[str]:  # noqa: ANN001
    """The embedders loaded (by name); a download fails the test."""
    loaded: list[str] = []
    original = ModelStore.load_embedder

    def load_embedder(self, name, *args, **kwargs):  # noqa: ANN001, ANN202
        loaded.append(name)
        return original(self, name, *args, **kwargs)

    def download(self, name, *args, **kwargs):  # noqa: ANN001, ANN202
        raise AssertionError(f"tried to download {name}")

    monkeypatch.setattr(ModelStore, "load_embedder", load_embedder)
    monkeypatch.setattr(ModelStore, "download", download)
    return loaded


@pytest.fixture()
def indexed(store, photos, capsys, monkeypatch, loads) -> Path:  # noqa: ANN001
    """The library indexed with ``--embedder OTHER --tagger TAGGER_2``; then no model is chosen any more."""
    library = photos / "library"
    assert main(["index", str(library), "--embedder", OTHER, "--tagger", TAGGER_2]) == 0
    capsys.readouterr()
    loads.clear()
    monkeypatch.delenv("PHOTOTAG_EMBEDDER")
    monkeypatch.delenv("PHOTOTAG_TAGGER")
    monkeypatch.setenv("PHOTOTAG_AUTO_DOWNLOAD", "false")
    return library


def search(capsys, *args: str) -> tuple[int, list[dict], str]:  # noqa: ANN001
    code = main(["search", "--json", "--limit", "5", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_the_catalog_records_the_models_of_its_last_pass(indexed, store) -> None:  # noqa: ANN001
    with Catalog.open(Settings().catalog_dir, create=False) as catalog:
        recorded = CatalogModels.of(catalog)
    assert recorded == CatalogModels(store.get(TAGGER_2).version, store.get(OTHER).version)


def test_a_catalog_from_before_runs_were_recorded_uses_its_photos_models(indexed, store) -> None:  # noqa: ANN001
    with Catalog.open(Settings().catalog_dir, create=False) as catalog:
        with catalog.session() as session, session.begin():
            session.execute(delete(Run))
        recorded = CatalogModels.of(catalog)
    assert recorded == CatalogModels(store.get(TAGGER_2).version, store.get(OTHER).version)


def test_similar_to_an_indexed_photo_loads_no_model(indexed, capsys, monkeypatch) -> None:  # noqa: ANN001
    def no_model(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(ModelStore, "load_embedder", no_model)
    monkeypatch.setattr(ModelStore, "load_tagger", no_model)
    example = indexed / "animals" / os.listdir(indexed / "animals")[0]
    code, results, err = search(capsys, f'similar:"{example}"')
    assert code == 0, err
    assert results[0]["path"] == str(example)


def test_free_text_uses_the_catalogs_embedder(indexed, capsys, loads) -> None:  # noqa: ANN001
    code, found, err = search(capsys, "a dog", "--min-score", "-1")
    assert code == 0, err
    assert loads == [OTHER] and len(found) == 5
    code, chosen, err = search(capsys, "a dog", "--min-score", "-1", "--embedder", OTHER)  # the same, on purpose
    assert code == 0 and chosen == found, err


def test_an_image_outside_the_catalog_is_embedded_with_the_catalogs_embedder(indexed, capsys, loads,  # noqa: ANN001
                                                                             tmp_path) -> None:
    outside = tmp_path / "outside.jpg"
    source = indexed / "animals" / os.listdir(indexed / "animals")[0]
    outside.write_bytes(source.read_bytes())
    code, found, err = search(capsys, f'similar:"{outside}"')
    assert code == 0, err
    assert loads == [OTHER] and found[0]["path"] == str(source)


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_another_embedder_on_purpose_is_refused(indexed, capsys, monkeypatch, loads, how) -> None:  # noqa: ANN001
    args = ["--embedder", EMBEDDER] if how == "flag" else []
    if how == "environment":
        monkeypatch.setenv("PHOTOTAG_EMBEDDER", EMBEDDER)
    code, found, err = search(capsys, "a dog", *args)
    assert code == 2 and not found
    assert f"indexed with the embedder {OTHER}" in err and f"not {EMBEDDER}" in err, err
    assert f"--embedder {EMBEDDER}" in err and "phototag index" in err, err
    assert loads == []
    code, found, err = search(capsys, f'folder:"{indexed}"', *args)  # a query without embeddings does not care
    assert code == 0 and found, err


def test_other_weights_under_the_same_name_are_refused(indexed, store, capsys, loads) -> None:  # noqa: ANN001
    store.remove(OTHER)
    store.create_random("clip_tiny", OTHER, seed=2)
    code, _, err = search(capsys, "a dog")
    assert code == 2 and "other weights" in err and f"{OTHER}@seed1" in err and f"{OTHER}@seed2" in err, err
    assert loads == []


def test_index_goes_on_with_the_catalogs_models_and_another_tagger_retags(indexed, capsys) -> None:  # noqa: ANN001
    assert main(["index", str(indexed)]) == 0
    assert "tagged 0, embedded 0" in capsys.readouterr().err
    assert main(["index", str(indexed), "--tagger", TAGGER]) == 0  # a re-tag on purpose
    err = capsys.readouterr().err
    assert "tagged 0" not in err and "embedded 0" in err, err


def test_custom_tags_use_the_catalogs_embedder(indexed, capsys, loads) -> None:  # noqa: ANN001
    assert main(["custom-tag", "add", "pets", "--description", "a pet", "--dry-run"]) == 0, capsys.readouterr()
    assert loads == [OTHER]


def test_the_app_uses_the_catalogs_models(indexed, capsys, monkeypatch) -> None:  # noqa: ANN001
    from gui.library import Library

    library = Library.open(Settings())
    try:
        assert (library.settings.tagger, library.settings.embedder) == (TAGGER_2, OTHER)
        library.add_folder(indexed)
        monkeypatch.setattr(ModelStore, "load_embedder", lambda *_a, **_k: pytest.fail("a model was loaded"))
        example = indexed / "animals" / os.listdir(indexed / "animals")[0]
        assert library.search(f'similar:"{example}"').rows[0].path == str(example)
    finally:
        library.close()
