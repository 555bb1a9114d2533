"""A new library is searchable soon: off a GPU a pass stores every photo's CLIP embedding before RAM++ tags any
(free-text search finds them while tagging goes on), new photos come before backfill, ``status`` and the app show
both progresses, and a crash at any point loses nothing and changes no result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from indexer.catalog import Catalog
from indexer.index import GENERATION_KEY, Indexer, IndexSummary
from indexer.schema import SOURCE_MODEL, Embedding, Photo, PhotoTag, Tag
from indexer.settings import Settings
from indexer.vectors import VectorIndex
from main import main
from ram_model.cli import lazy_models
from tests.conftest import PHOTOS, REPO
from tests.indexer.conftest import TAGGER_2

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the app's panel test: before anything imports Qt
MODEL_STAGES = ("embed", "model")


def make_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` distinct small JPEGs (noise: no two share a content hash), quick to decode."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"noise_{seed}_{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path, quality=85)
        paths.append(path)
    return paths


def progress_of(catalog_dir: Path) -> dict[str, dict[str, str | None]]:
    """path -> the versions of its tags and embedding, read as another process would (the pass's transactions)."""
    with sqlite3.connect(f"file:{catalog_dir / 'catalog.db'}?mode=ro", uri=True, timeout=30) as connection:
        rows = connection.execute("SELECT CAST(path AS TEXT), tagger_version, embedder_version FROM photos")
        return {path: {"tagger": tagger, "embedder": embedder} for path, tagger, embedder in rows}


def run_pass(roots: list[Path], *, settings: Settings | None = None, on_progress=None,  # noqa: ANN001
             stop: threading.Event | None = None, **options: object) -> IndexSummary:
    """One pass through the library API (as ``phototag index`` and the app run it)."""
    settings = settings or Settings()
    with Catalog.open(settings.catalog_dir) as catalog:
        indexer = Indexer.from_settings(catalog, *lazy_models(settings), settings, on_progress=on_progress,
                                        stop=stop, **options)
        return indexer.run(roots)


def stop_when(condition, catalog_dir: Path) -> tuple[threading.Event, object]:  # noqa: ANN001
    """A stop event and a progress callback that sets it once ``condition(progress_of(catalog))`` holds after a
    batch of model work is stored: the pass ends there, as Pause or Ctrl-C end it."""
    stop = threading.Event()

    def on_progress(stage: str, done: int, total: int | None) -> None:
        if stage in MODEL_STAGES and condition(progress_of(catalog_dir)):
            stop.set()

    return stop, on_progress


def status(capsys) -> dict:  # noqa: ANN001
    assert main(["status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def results(catalog_dir: Path) -> dict[str, tuple]:
    """path -> (status, versions, model tags {name: score}, embedding) of every photo."""
    with Catalog.open(catalog_dir) as catalog, catalog.session() as session:
        tags: dict[int, dict[str, float]] = {}
        for photo_id, name, score in session.execute(
                select(PhotoTag.photo_id, Tag.name, PhotoTag.score).join(Tag, Tag.id == PhotoTag.tag_id)
                .where(PhotoTag.source == SOURCE_MODEL)):
            tags.setdefault(photo_id, {})[name] = score
        vectors = {e.photo_id: e.vector for e in session.scalars(select(Embedding))}
        return {p.path: (p.status, p.tagger_version, p.embedder_version, tags.get(p.id, {}), vectors.get(p.id))
                for p in session.scalars(select(Photo))}


def vectors_of(catalog_dir: Path) -> tuple[set[int], set[int] | None]:
    """The photos with an embedding in the catalog, and those in the FAISS file saved for its current state
    (None: no such file, so a search would rebuild it)."""
    with Catalog.open(catalog_dir) as catalog, catalog.session() as session:
        ids = set(session.scalars(select(Embedding.photo_id)))
        version, dim = session.execute(select(Embedding.model_version, Embedding.dim).limit(1)).one()
        saved = VectorIndex.load(catalog.vectors_path, dim, f"{version}:{catalog.get_meta(GENERATION_KEY)}")
    return ids, None if saved is None else set(saved.ids().tolist())


def assert_same_results(got: dict[str, tuple], expected: dict[str, tuple]) -> None:
    assert got.keys() == expected.keys()
    for path, (status, tagger, embedder, tags, vector) in expected.items():
        other = got[path]
        assert other[:3] == (status, tagger, embedder), path
        assert other[3].keys() == tags.keys(), path
        np.testing.assert_allclose([other[3][k] for k in tags], list(tags.values()), rtol=0, atol=1e-5)
        assert (other[4] is None) == (vector is None), path
        if vector is not None:
            np.testing.assert_allclose(other[4], vector, rtol=0, atol=1e-5)


@pytest.fixture()
def fp32(monkeypatch) -> None:  # noqa: ANN001
    """Models in fp32 for the tests that compare results across passes: in bf16 (the CPU default where the CPU
    has it) a photo's scores move by a rounding step (~0.002) with the batch around it — a resumed pass and an
    uninterrupted one batch photos differently, with or without embeddings first."""
    monkeypatch.setenv("PHOTOTAG_PRECISION", "fp32")


def test_free_text_search_finds_photos_before_they_are_tagged(home, photos, capsys) -> None:  # noqa: ANN001
    roots = [photos / "library" / "orientation", photos / "library" / "flowers"]
    paths = {str(p) for root in roots for p in root.rglob("*") if p.is_file()}
    assert len(paths) == 11
    catalog_dir = Settings().catalog_dir
    stop, on_progress = stop_when(lambda rows: all(r["embedder"] for r in rows.values()), catalog_dir)

    summary = run_pass(roots, stop=stop, on_progress=on_progress)

    # Stopped as soon as every photo had its embedding: none is tagged yet.
    assert summary.interrupted and summary.embedded == len(paths) and summary.tagged == 0
    rows = progress_of(catalog_dir)
    assert rows.keys() == paths and all(r["embedder"] and r["tagger"] is None for r in rows.values())
    # A photo is indexed once both results are current: these wait for their tags.
    assert status(capsys)["photos"]["pending"] == len(paths)
    # Free-text search finds every one of them already, through the FAISS index the pass saved.
    assert main(["search", "people", "at", "a", "party", "--json", "--min-score", "-1", "--limit", "100"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {hit["path"] for hit in found} == paths
    embedded, saved = vectors_of(catalog_dir)
    assert len(embedded) == len(paths) and saved == embedded

    # The next pass goes on with the tags only: nothing is decoded for CLIP again.
    assert main(["index", *map(str, roots), "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert (resumed["new"], resumed["embedded"], resumed["tagged"]) == (0, 0, len(paths))
    assert status(capsys)["photos"]["indexed"] == len(paths)


def test_new_photos_come_before_backfill_and_status_counts_both(home, tmp_path, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "library"
    old = make_photos(folder / "2019", 8, seed=1)
    assert main(["index", str(folder), "--json"]) == 0  # tagged with the default tiny tagger
    capsys.readouterr()
    first = status(capsys)["progress"]
    assert (first["total"], first["embedded"], first["tagged"], first["backfill"]) == (8, 8, 8, 0)
    new = make_photos(folder / "2024", 5, seed=2)  # new files, after the old ones by id and by path

    # A pass with another tagger: the old photos are backfill (tags of an older model), the new ones come first.
    settings = Settings().with_overrides(tagger=TAGGER_2)
    snapshots: list[dict[str, dict[str, str | None]]] = []

    def new_ones_tagged(rows: dict[str, dict[str, str | None]]) -> bool:
        snapshots.append(rows)
        return all(rows[str(p)]["tagger"] not in (None, first["tagger"]) for p in new)

    stop, on_progress = stop_when(new_ones_tagged, settings.catalog_dir)
    run_pass([folder], settings=settings, stop=stop, on_progress=on_progress)

    retagged = snapshots[-1][str(new[0])]["tagger"]
    assert retagged is not None and retagged != first["tagger"]
    for rows in snapshots:
        new_tagged = [rows[str(p)]["tagger"] == retagged for p in new]
        # CLIP first: no new photo is tagged before every new photo is embedded ...
        assert not any(new_tagged) or all(rows[str(p)]["embedder"] for p in new)
        # ... and no old photo is re-tagged before every new one is tagged.
        assert not any(rows[str(p)]["tagger"] == retagged for p in old) or all(new_tagged)
    # Stopped once the new photos were done: status says so, and how many old photos wait for the new tagger.
    progress = status(capsys)["progress"]
    assert (progress["tagger"], progress["total"]) == (retagged, 13)
    assert (progress["embedded"], progress["tagged"], progress["backfill"]) == (13, 5, 8)
    assert main(["status"]) == 0
    assert ("searchable by free text (embedded): 13 of 13 photos; tagged: 5 of 13; backfill (older models' "
            "results, redone after new photos): 8") in capsys.readouterr().out
    # The next pass with that tagger does the backfill.
    assert main(["index", str(folder), "--tagger", TAGGER_2, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tagged"] == 8
    progress = status(capsys)["progress"]
    assert (progress["embedded"], progress["tagged"], progress["backfill"]) == (13, 13, 0)


def test_embeddings_first_gives_the_results_of_one_round(home, fp32, tmp_path, capsys) -> None:  # noqa: ANN001
    """The same tags, embeddings and states as a pass running both models on each batch (the GPU's way and the
    pass before embeddings came first), identical files included: copies and failures follow their twin."""
    folder = tmp_path / "library"
    originals = make_photos(folder, 9)
    for twin in ("twin_a.jpg", "twin_b.jpg"):
        (folder / twin).write_bytes(originals[3].read_bytes())
    for name in ("broken.jpg", "broken_twin.jpg"):  # fails to decode (in the first round), after identify
        shutil.copy(PHOTOS / "edge" / "truncated_jpeg.jpg", folder / name)
    split = run_pass([folder], embeddings_first=True)
    together_dir = tmp_path / "together"
    together = run_pass([folder], settings=Settings().with_overrides(catalog=together_dir), embeddings_first=False)
    assert (split.tagged, split.embedded, split.duplicates, split.failed) == (9, 9, 2, 2)
    assert (together.tagged, together.embedded, together.duplicates, together.failed) == (9, 9, 2, 2)
    assert_same_results(results(Settings().catalog_dir), results(together_dir))


def test_an_identical_file_arriving_between_the_rounds_gets_both_results(home, tmp_path) -> None:  # noqa: ANN001
    folder = tmp_path / "library"
    photos = make_photos(folder, 6)
    catalog_dir = Settings().catalog_dir
    stop, on_progress = stop_when(lambda rows: all(r["embedder"] for r in rows.values()), catalog_dir)
    assert run_pass([folder], stop=stop, on_progress=on_progress).tagged == 0
    (folder / "copy.jpg").write_bytes(photos[2].read_bytes())  # its twin has an embedding and no tags yet
    summary = run_pass([folder])
    assert (summary.new, summary.tagged, summary.embedded, summary.duplicates) == (1, 6, 0, 1)
    got = results(catalog_dir)
    twin, copy = got[str(photos[2])], got[str(folder / "copy.jpg")]
    assert copy[0] == twin[0] == "indexed" and copy[3] == twin[3] and np.array_equal(copy[4], twin[4])


CRASHING_PASS = textwrap.dedent("""
    import os, signal, sys
    from indexer.catalog import Catalog
    from indexer.index import Indexer
    from indexer.personal.hooks import after_store
    from indexer.settings import Settings
    from ram_model.cli import lazy_models

    batches = 0

    def kill_in_batch(session, ids):  # called inside each batch's transaction, before it commits
        global batches
        batches += 1
        if batches == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

    settings = Settings()
    with Catalog.open(settings.catalog_dir) as catalog:
        Indexer.from_settings(catalog, *lazy_models(settings), settings,
                              after_store=[after_store, kill_in_batch]).run([sys.argv[1]])
""")


@pytest.mark.parametrize(("kill_in_batch", "embedded", "tagged"), [(3, 8, 0), (8, 20, 8)],
                         ids=["in the embedding round", "in the tagging round"])
def test_a_crash_mid_pass_loses_nothing(home, fp32, tmp_path, capsys, kill_in_batch, embedded,  # noqa: ANN001
                                       tagged) -> None:
    """kill -9 inside a batch's transaction (batches of 4, 20 photos: five of embeddings, then five of tags):
    what earlier batches stored stays, the batch in flight is lost whole, and the next pass ends where an
    uninterrupted one does."""
    folder = tmp_path / "library"
    make_photos(folder, 20)
    crashed = subprocess.run([sys.executable, "-c", CRASHING_PASS, str(folder), str(kill_in_batch)], cwd=REPO,
                             capture_output=True, text=True, timeout=600, env=os.environ | {"PYTHONPATH": str(REPO)})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    catalog_dir = Settings().catalog_dir
    rows = progress_of(catalog_dir).values()
    assert len(rows) == 20
    assert sum(bool(r["embedder"]) for r in rows) == embedded and sum(bool(r["tagger"]) for r in rows) == tagged

    assert main(["index", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["new"], summary["embedded"], summary["tagged"]) == (0, 20 - embedded, 20 - tagged)
    reference = tmp_path / "reference"
    assert main(["index", str(folder), "--catalog", str(reference), "--json"]) == 0
    capsys.readouterr()
    assert_same_results(results(catalog_dir), results(reference))
    embedded, saved = vectors_of(catalog_dir)
    assert len(embedded) == 20 and saved == embedded


@pytest.mark.gui
def test_the_app_shows_both_progresses(qtbot) -> None:  # noqa: ANN001
    from gui.indexing import IndexingPanel

    panel = IndexingPanel()
    qtbot.addWidget(panel)
    panel.set_state("running")
    panel.show_progress("model", 0, 26)
    panel.show_progress("embed", 12, 26)
    assert panel.stage.text() == "Embedding for free-text search: 12 of 26"
    assert panel.model_counts.text() == "searchable by text: 12 of 26 · tagged: 0 of 26"
    panel.show_progress("embed", 26, 26)
    panel.show_progress("model", 4, 26)
    assert panel.stage.text() == "Tagging: 4 of 26"
    assert panel.model_counts.text() == "searchable by text: 26 of 26 · tagged: 4 of 26"
    panel.set_state("running")  # a new pass starts from its own counts
    panel.show_progress("model", 3, 9)  # both models on each batch (a GPU): one count
    assert panel.stage.text() == "Tagging and embedding: 3 of 9" and panel.model_counts.text() == "tagged: 3 of 9"
