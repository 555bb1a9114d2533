"""Migration 0006 (the compact catalog): a catalog written at revision 0005 — float32 embeddings, photo tags'
source, state and time as text — is upgraded on open, reads back the same and searches the same."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import select

from indexer.catalog import Catalog, _alembic_config, catalog_engine, head_revision, schema_transaction
from indexer.index import GENERATION_KEY
from indexer.schema import Embedding, PhotoTag
from indexer.search.engine import Searcher

DIM = 32
VERSION = "clip_test@v1"
STAMP = "2024-05-01 03:00:00.123456"  # SQLAlchemy's text form of a DATETIME on SQLite
PHOTOS = 40
TAGS = ("dog", "beach", "cat")


def migrate(folder: Path, revision: str, *, down: bool = False) -> None:
    """Move the catalog in ``folder`` to ``revision`` through Alembic, as Catalog.open does (no backup)."""
    engine = catalog_engine(f"sqlite:///{folder / 'catalog.db'}")
    config = _alembic_config()
    try:
        with engine.connect() as connection, schema_transaction(connection):
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def tag_rows() -> list[tuple]:
    """(photo_id, tag_id, score, source, state, model_version, updated_at) as revision 0005 stored them."""
    rows = []
    for photo in range(1, PHOTOS + 1):
        for tag in range(1, len(TAGS) + 1):
            if (photo + tag) % 3 == 0:
                continue
            source = ("model", "user", "file")[(photo * tag) % 7 % 3]
            state = "suggested" if source == "model" and photo % 5 else ("accepted", "rejected")[photo % 2]
            model = source == "model"
            stamp = "2024-01-01" if photo == 7 else STAMP  # a date alone, as another program may have written
            rows.append((photo, tag, round(0.5 + photo / 100 + tag / 1000, 4) if model else None, source, state,
                         "tagger@1" if model else None, stamp))
    return rows


@pytest.fixture()
def legacy(tmp_path: Path) -> tuple[Path, np.ndarray, list[tuple]]:
    """A catalog at revision 0005 with photos, tags, photo tags and float32 embeddings, written as 0005 did."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    migrate(folder, "0005")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((PHOTOS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = tag_rows()
    with closing(sqlite3.connect(folder / "catalog.db")) as db, db:
        db.executemany("INSERT INTO tags (id, name, kind) VALUES (?, ?, 'builtin')", enumerate(TAGS, 1))
        db.executemany("INSERT INTO photos (id, path, size, mtime_ns, status, attempts, first_seen, last_seen, "
                       "embedder_version) VALUES (?, ?, 1, 1, 'indexed', 0, ?, ?, ?)",
                       [(i, f"/lib/p{i:02d}.jpg", STAMP, STAMP, VERSION) for i in range(1, PHOTOS + 1)])
        db.executemany("INSERT INTO photo_tags (photo_id, tag_id, score, source, state, model_version, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO embeddings (photo_id, model_version, dim, vector) VALUES (?, ?, ?, ?)",
                       [(i + 1, VERSION, DIM, v.tobytes()) for i, v in enumerate(vectors)])
        db.execute("INSERT INTO catalog_meta (key, value) VALUES (?, '1')", (GENERATION_KEY,))
    return folder, vectors, rows


def expected_tag_rows(rows: list[tuple]) -> set[tuple]:
    def when(text: str) -> datetime:
        return datetime.fromisoformat(text)

    return {(p, t, s, src, st, m, when(u)) for p, t, s, src, st, m, u in rows}


def test_a_0005_catalog_is_upgraded_on_open_and_reads_back_the_same(legacy) -> None:  # noqa: ANN001
    folder, vectors, rows = legacy
    with Catalog.open(folder) as catalog:
        assert catalog.upgraded_from == "0005" and catalog.revision() == head_revision() == "0007"
        assert catalog.backup_path is not None and catalog.backup_path.exists()
        with catalog.session() as session:
            stored = {(r.photo_id, r.tag_id, r.score, r.source, r.state, r.model_version, r.updated_at)
                      for r in session.scalars(select(PhotoTag))}
            embeddings = {e.photo_id: e.vector for e in session.scalars(select(Embedding))}
    assert stored == expected_tag_rows(rows)  # words and times as they were, to the microsecond
    assert sorted(embeddings) == list(range(1, PHOTOS + 1))
    for photo_id, vector in embeddings.items():
        assert vector.dtype == np.float32 and vector.shape == (DIM,)
        np.testing.assert_allclose(vector, vectors[photo_id - 1], atol=1e-3)  # float16 on disk
        assert abs(float(vector @ vector) - 1.0) < 1e-5  # read back as unit vectors
    with closing(sqlite3.connect(folder / "catalog.db")) as db:
        table = db.execute("SELECT sql FROM sqlite_master WHERE name = 'photo_tags'").fetchone()[0]
        assert "WITHOUT ROWID" in table
        index = db.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'photo_tags' AND type = 'index'"
                           ).fetchall()
        assert index == [("CREATE INDEX ix_photo_tags_tag_state_score ON photo_tags (tag_id, state, score, photo_id)",)]
        kinds = set(db.execute("SELECT typeof(source), typeof(state), typeof(updated_at) FROM photo_tags"))
        assert kinds == {("integer", "integer", "integer")}
        assert set(db.execute("SELECT length(vector) FROM embeddings")) == {(DIM * 2,)}
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_an_upgraded_catalog_searches_as_before(legacy) -> None:  # noqa: ANN001
    folder, vectors, rows = legacy
    with Catalog.open(folder) as catalog:
        searcher = Searcher(catalog, embedder_version=VERSION, vector_index="flat")
        for name, tag_id in zip(TAGS, range(1, 4), strict=True):
            # tag:X finds the photos whose row for X is not rejected, best score first (user and file tags: 1).
            want = sorted(((1.0 if s is None else s, p) for p, t, s, _src, st, _m, _u in rows
                           if t == tag_id and st != "rejected"), key=lambda item: (-item[0], item[1]))
            found = searcher.search(f"tag:{name}", limit=None)
            assert [r.path for r in found.results] == [f"/lib/p{p:02d}.jpg" for _s, p in want]
        assert {r.path for r in searcher.search("state:rejected", limit=None).results} == {
            f"/lib/p{p:02d}.jpg" for p, _t, _s, _src, st, _m, _u in rows if st == "rejected"}
        assert {r.path for r in searcher.search("source:file", limit=None).results} == {
            f"/lib/p{p:02d}.jpg" for p, _t, _s, src, st, _m, _u in rows if src == "file" and st != "rejected"}
        # similar: ranks the photos as their float32 embeddings did, the photo itself first with score 1.
        for photo in (1, 17, 33):
            found = searcher.search(f"similar:/lib/p{photo:02d}.jpg", limit=10, min_score=-1)
            want = np.argsort(-(vectors @ vectors[photo - 1]), kind="stable")[:10] + 1
            assert [r.path for r in found.results] == [f"/lib/p{p:02d}.jpg" for p in want]
            assert found.results[0].score == pytest.approx(1.0, abs=1e-5)
            np.testing.assert_allclose([r.score for r in found.results],
                                       (vectors @ vectors[photo - 1])[want - 1], atol=2e-3)


def test_the_downgrade_gives_back_the_0005_layout(legacy) -> None:  # noqa: ANN001
    folder, vectors, rows = legacy
    migrate(folder, "head")
    with closing(sqlite3.connect(folder / "catalog.db")) as db:
        assert "WITHOUT ROWID" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'photo_tags'").fetchone()[0]
    migrate(folder, "0005", down=True)
    with closing(sqlite3.connect(folder / "catalog.db")) as db:
        back = db.execute("SELECT photo_id, tag_id, score, source, state, model_version, updated_at "
                          "FROM photo_tags").fetchall()
        table = db.execute("SELECT sql FROM sqlite_master WHERE name = 'photo_tags'").fetchone()[0]
        blobs = dict(db.execute("SELECT photo_id, vector FROM embeddings"))
    assert "WITHOUT ROWID" not in table
    # The times come back in SQLAlchemy's full text form (a date alone gains its midnight).
    assert {(*r[:6], datetime.fromisoformat(r[6])) for r in back} == expected_tag_rows(rows)
    back_vectors = np.stack([np.frombuffer(blobs[i], dtype="<f4") for i in range(1, PHOTOS + 1)])
    np.testing.assert_allclose(back_vectors, vectors, atol=1e-3)
