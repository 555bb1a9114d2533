"""Hostile conditions around the catalog itself (issue 15, items 5, 6 and 9).

A disk that fills up (SQLite's own ``max_page_count`` limit answers exactly as a full disk does:
``SQLITE_FULL``, "database or disk is full"), a schema upgrade that fails half-way, a correction that
lands between an index pass's read and its write, a catalog damaged on disk, another program that holds
the database lock. Each asserts the outcome a person relies on: the command ends with exit 2 and one line
naming the catalog and what to do (never a traceback), nothing stored before is lost, and the next run
picks up where this one stopped.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import time_ns

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

import indexer.catalog as catalog_module
from indexer import index as index_module
from indexer.catalog import Catalog, head_revision
from indexer.errors import CatalogError
from indexer.index import now, write_suggestions
from indexer.personal import corrections
from indexer.schema import (
    ACCEPTED,
    BUILTIN,
    REJECTED,
    SOURCE_FILE,
    SOURCE_MODEL,
    SOURCE_USER,
    SUGGESTED,
    Embedding,
    Photo,
    PhotoTag,
    Tag,
)
from main import main
from tests.indexer.conftest import TAGGER_2

PREVIOUS_HEAD = head_revision()
HOLD_THE_LOCK = ("import sqlite3, sys\n"
                 "connection = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                 "connection.execute('BEGIN IMMEDIATE')\n"
                 "print('holding', flush=True)\n"
                 "sys.stdin.read()\n"
                 "connection.rollback()\n")
MIGRATIONS = catalog_module.MIGRATIONS
EXTRA_TABLE = '    op.create_table("extra", sa.Column("id", sa.Integer(), primary_key=True))\n'  # revision bodies
ADD_RATING = '    op.add_column("photos", sa.Column("rating", sa.Integer()))\n'


# --- building cases ----------------------------------------------------------------------------


def pictures(folder: Path, count: int, first_seed: int = 0) -> list[Path]:
    """``count`` small distinct JPEGs (noise: no two share a content hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(first_seed, first_seed + count):
        pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        path = folder / f"noise_{seed:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=80)
        paths.append(path)
    return paths


def indexed_library(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                    count: int) -> tuple[Path, list[Path], Path]:
    """``count`` pictures in ``tmp_path/lib``, indexed by ``phototag index``: the folder, the pictures and the
    catalog database."""
    folder = tmp_path / "lib"
    photos = pictures(folder, count)
    assert main(["index", str(folder)]) == 0
    capsys.readouterr()
    return folder, photos, home / "catalog" / "catalog.db"


@contextmanager
def disk_full_beyond(pages: int) -> Iterator[None]:
    """Every catalog connection opened meanwhile gets SQLITE_FULL ("database or disk is full") once the
    database would grow past ``pages`` pages: what SQLite answers on a full disk, from the same code path."""

    def limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(Engine, "connect", limit)
    try:
        yield
    finally:
        event.remove(Engine, "connect", limit)


def page_count(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("PRAGMA page_count").fetchone()[0]


def checkpointed(database: Path) -> bytes:
    """The database as one file (its WAL folded in), to damage it on purpose."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    for leftover in (database.with_name(f"{database.name}-wal"), database.with_name(f"{database.name}-shm")):
        leftover.unlink(missing_ok=True)
    return database.read_bytes()


def migrations_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, revision: str | None) -> Path:
    """A copy of migrations/ with one more revision after the head (``revision``: the body of its upgrade()),
    used by the catalog from now on."""
    folder = tmp_path / "migrations"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    if revision is not None:
        (folder / "versions" / "9001_extra.py").write_text(
            f'"""A test revision."""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f'revision = "9001"\ndown_revision = "{PREVIOUS_HEAD}"\nbranch_labels = None\ndepends_on = None\n\n\n'
            f"def upgrade() -> None:\n{revision}\n\n\ndef downgrade() -> None:\n    pass\n", encoding="utf-8")
    monkeypatch.setattr(catalog_module, "MIGRATIONS", folder)
    return folder


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def revision_of(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def photo_tag_rows(database: Path) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT photo_id, tag_id, source, state, score FROM photo_tags "
                                  "ORDER BY photo_id, tag_id").fetchall()


def indexed(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {path for (path,) in connection.execute("SELECT path FROM photos WHERE status = 'indexed'")}


def fatal(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI, expect exit 2 and return its one-line message (no traceback)."""
    code = main([*map(str, args)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()  # progress lines may come first
    assert "Traceback" not in err and lines[-1].startswith("phototag: error: "), err
    assert sum(line.startswith("phototag: error: ") for line in lines) == 1, err
    return lines[-1]


def lock_is_free(catalog_dir: Path) -> bool:
    with Catalog.open(catalog_dir, create=False) as catalog, catalog.writer(0, task="test"):
        return True


# --- item 5: migrations are one transaction ------------------------------------------------------


def test_an_upgrade_step_that_fails_half_way_leaves_the_previous_schema(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    directory = tmp_path / "catalog"
    with Catalog.open(directory) as catalog, catalog.session() as session, session.begin():
        session.add(Photo(path="/p/a.jpg", size=1, mtime_ns=2, status="indexed", attempts=0, first_seen=now(),
                          last_seen=now()))
    database = directory / "catalog.db"
    before = tables(database)
    # A step that creates a table, adds a column, then fails (a bad statement, as a buggy migration would).
    failing = '    op.execute("UPDATE no_such_table SET x = 1")\n'
    migrations_with(tmp_path, monkeypatch, EXTRA_TABLE + ADD_RATING + failing)
    with pytest.raises(CatalogError, match=str(database)):
        Catalog.open(directory)
    assert tables(database) == before and revision_of(database) == PREVIOUS_HEAD  # nothing of the step stayed
    with sqlite3.connect(database) as connection:
        assert "rating" not in {row[1] for row in connection.execute("PRAGMA table_info(photos)")}
    assert len(list(directory.glob("catalog.db.backup-*"))) == 1  # taken before the step, as always

    # This Phototag (the previous head) opens it again, and a fixed step upgrades it.
    migrations_with(tmp_path, monkeypatch, None)
    with Catalog.open(directory) as catalog:
        assert catalog.revision() == PREVIOUS_HEAD
    migrations_with(tmp_path, monkeypatch, EXTRA_TABLE + ADD_RATING)
    with Catalog.open(directory) as catalog, catalog.session() as session:
        assert catalog.revision() == "9001"
        assert session.scalar(select(Photo.path)) == "/p/a.jpg"
    assert "extra" in tables(database)


def test_a_failing_upgrade_retried_nightly_keeps_one_backup(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    directory = tmp_path / "catalog"
    Catalog.open(directory).close()
    database = directory / "catalog.db"
    migrations_with(tmp_path, monkeypatch, '    op.execute("UPDATE no_such_table SET x = 1")\n')
    for _night in range(3):
        with pytest.raises(CatalogError):
            Catalog.open(directory)
    assert len(list(directory.glob("catalog.db.backup-*"))) == 1  # the catalog did not change: one copy
    migrations_with(tmp_path, monkeypatch, None)  # the previous Phototag writes something meanwhile
    with Catalog.open(directory) as catalog, catalog.session() as session, session.begin():
        session.add(Photo(path="/p/new.jpg", size=1, mtime_ns=2, status="indexed", attempts=0, first_seen=now(),
                          last_seen=now()))
    os.utime(database, ns=(time_ns() + 10**9, time_ns() + 10**9))  # (a later second than the backup's, surely)
    migrations_with(tmp_path, monkeypatch, '    op.execute("UPDATE no_such_table SET x = 1")\n')
    with pytest.raises(CatalogError):
        Catalog.open(directory)
    backups = sorted(directory.glob("catalog.db.backup-*"), key=lambda p: p.stat().st_mtime_ns)
    assert len(backups) == 2  # the new rows need a new copy
    with sqlite3.connect(backups[-1]) as connection:
        assert connection.execute("SELECT count(*) FROM photos WHERE path = '/p/new.jpg'").fetchone() == (1,)


def test_disk_full_while_a_new_catalog_is_created(home, tmp_path, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "lib"
    pictures(folder, 3)
    catalog_dir = home / "catalog"
    # The whole schema needs about 30 pages: the disk fills up in one of the later revisions' tables.
    with disk_full_beyond(20):
        message = fatal(capsys, "index", folder)
    assert str(catalog_dir / "catalog.db") in message and "free some space" in message
    assert tables(catalog_dir / "catalog.db") == set()  # all or nothing: no table of a half-made schema

    assert main(["index", str(folder)]) == 0  # with space again: created and indexed
    capsys.readouterr()
    assert revision_of(catalog_dir / "catalog.db") == PREVIOUS_HEAD
    assert len(indexed(catalog_dir / "catalog.db")) == 3


def test_a_table_rebuilding_migration_keeps_the_rows_that_refer_to_it(home, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """Alembic's batch mode rebuilds a table (copy, DROP, rename). With foreign keys enforced, the DROP
    would delete every row that refers to it (ON DELETE CASCADE): photos' tags and embeddings."""
    _, _, database = indexed_library(home, tmp_path, capsys, 3)
    tags_before = photo_tag_rows(database)
    assert tags_before
    migrations_with(tmp_path, monkeypatch, '    with op.batch_alter_table("photos", recreate="always") as batch:\n'
                                           '        batch.add_column(sa.Column("rating", sa.Integer()))')
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        assert catalog.revision() == "9001"
        assert session.scalar(select(func.count()).select_from(Embedding)) == 3
    assert photo_tag_rows(database) == tags_before
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_backup_that_fills_the_disk_is_removed_and_the_catalog_left_as_it_was(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    directory = tmp_path / "catalog"
    Catalog.open(directory).close()
    migrations_with(tmp_path, monkeypatch, EXTRA_TABLE)
    real_connect = sqlite3.connect

    def connect(database, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        connection = real_connect(database, *args, **kwargs)
        if ".backup-" in os.fspath(database):  # the copy's disk holds 3 pages
            connection.execute("PRAGMA max_page_count=3")
        return connection

    monkeypatch.setattr(catalog_module.sqlite3, "connect", connect)
    with pytest.raises(CatalogError, match="free some space"):
        Catalog.open(directory)
    monkeypatch.setattr(catalog_module.sqlite3, "connect", real_connect)
    assert list(directory.glob("catalog.db.backup-*")) == []  # no partial copy left to fill the disk further
    assert revision_of(directory / "catalog.db") == PREVIOUS_HEAD


def test_a_link_planted_at_the_backup_name_is_not_written_through(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    directory = tmp_path / "catalog"
    Catalog.open(directory).close()
    migrations_with(tmp_path, monkeypatch, EXTRA_TABLE)

    class Frozen(catalog_module.datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ANN001, ANN206
            return catalog_module.datetime(2030, 1, 2, 3, 4, 5)

    monkeypatch.setattr(catalog_module, "datetime", Frozen)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"")  # empty: SQLite would take it for a new database and copy the catalog into it
    planted = directory / f"catalog.db.backup-{PREVIOUS_HEAD}-20300102-030405"
    os.symlink(outside, planted)
    with Catalog.open(directory) as catalog:  # the backup goes to another name
        assert catalog.backup_path == planted.with_name(planted.name + "-2")
    assert outside.read_bytes() == b"" and planted.is_symlink()
    assert revision_of(planted.with_name(planted.name + "-2")) == PREVIOUS_HEAD
    assert revision_of(directory / "catalog.db") != PREVIOUS_HEAD


# --- item 6: a correction during an index pass ----------------------------------------------------


def test_a_correction_made_during_an_index_pass_wins_and_the_pass_finishes(home, tmp_path, monkeypatch,  # noqa: ANN001
                                                                           capsys) -> None:  # noqa: ANN001
    """The app (another connection, no writer lock) rejects a tag on a photo right between the moment the
    pass reads the photo's tags and the moment it writes the model's suggestions."""
    folder = tmp_path / "lib"
    pictures(folder, 4)
    database = home / "catalog" / "catalog.db"
    attempt: dict[str, object] = {}

    def correct_in_between(session, fired, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if not attempt:
            photo_id, tag_id = next(iter(fired))
            attempt["pair"] = (photo_id, tag_id)
            other = sqlite3.connect(database, timeout=0)
            try:
                with other:
                    other.execute("INSERT INTO photo_tags (photo_id, tag_id, source, state, updated_at) "
                                  "VALUES (?, ?, 'user', 'rejected', '2024-01-01')", (photo_id, tag_id))
                attempt["outcome"] = "written"
            except sqlite3.OperationalError as exc:  # the pass holds the write lock from its read on
                attempt["outcome"] = str(exc)
            finally:
                other.close()
        return original(session, fired, *args, **kwargs)

    original = index_module.write_suggestions
    monkeypatch.setattr(index_module, "write_suggestions", correct_in_between)
    assert main(["index", str(folder)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    monkeypatch.setattr(index_module, "write_suggestions", original)
    photo_id, tag_id = attempt["pair"]
    if attempt["outcome"] != "written":  # it waited for the pass's transaction: the person does it now
        assert attempt["outcome"] == "database is locked"
        with Catalog.open(home / "catalog") as catalog:
            tag = catalog.session().get(Tag, tag_id).name
            corrections.set_state(catalog, [photo_id], tag, REJECTED)
    # The next pass, with another model that re-tags everything, keeps the person's decision too.
    assert main(["index", str(folder), "--tagger", TAGGER_2]) == 0
    capsys.readouterr()
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        row = session.get(PhotoTag, (photo_id, tag_id))
        assert row.state == REJECTED and row.score is not None  # the person's "no" stays, with the new score
        assert session.scalar(select(func.count()).select_from(Photo).where(Photo.status == "indexed")) == 4
    assert lock_is_free(home / "catalog")


def test_an_index_pass_storing_during_a_correction_does_not_break_it(home, tmp_path, monkeypatch,  # noqa: ANN001
                                                                      capsys) -> None:  # noqa: ANN001
    """The other way round: the pass (another connection) stores a model suggestion between the moment a
    correction reads the photo's tag row and the moment it writes it."""
    _, _, database = indexed_library(home, tmp_path, capsys, 1)
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        photo_id = session.scalar(select(Photo.id))
        tag = Tag(name="zebra", kind=BUILTIN)  # a tag the photo has no row for yet
        session.add(tag)
    outcome = []

    def store_before_the_correction_is_written(_session, _context, _instances) -> None:  # noqa: ANN001
        other = sqlite3.connect(database, timeout=0)
        try:
            with other:
                other.execute("INSERT INTO photo_tags (photo_id, tag_id, score, source, state, updated_at) "
                              "VALUES (?, ?, 0.9, 'model', 'suggested', '2024-01-01')", (photo_id, tag.id))
            outcome.append("written")
        except sqlite3.OperationalError as exc:  # the correction holds the write lock from its read on
            outcome.append(str(exc))
        finally:
            other.close()

    event.listen(Session, "before_flush", store_before_the_correction_is_written)
    try:
        with Catalog.open(home / "catalog") as catalog:
            corrections.apply_edits(catalog, [photo_id], [f"+{tag.name}"])
    finally:
        event.remove(Session, "before_flush", store_before_the_correction_is_written)
    assert outcome in (["written"], ["database is locked"])
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        row = session.get(PhotoTag, (photo_id, tag.id))
        assert row.state == ACCEPTED


def test_model_suggestions_never_overwrite_a_decision_they_did_not_read(tmp_path) -> None:  # noqa: ANN001
    """``write_suggestions`` is an upsert: a row it did not know of (written meanwhile) keeps its state and
    source — a person's accept or reject, a file's keyword — and takes the model's score."""
    with Catalog.open(tmp_path / "catalog") as catalog, catalog.session() as session, session.begin():
        photo = Photo(path="/p/a.jpg", size=1, mtime_ns=2, status="indexed", attempts=0, first_seen=now(),
                      last_seen=now())
        tags = [Tag(name=name, kind=BUILTIN) for name in ("dog", "cat", "sea", "sky")]
        session.add_all([photo, *tags])
        session.flush()
        dog, cat, sea, sky = (t.id for t in tags)
        session.add_all([PhotoTag(photo_id=photo.id, tag_id=dog, source=SOURCE_USER, state=REJECTED, updated_at=now()),
                         PhotoTag(photo_id=photo.id, tag_id=cat, source=SOURCE_FILE, state=ACCEPTED, updated_at=now()),
                         PhotoTag(photo_id=photo.id, tag_id=sea, source=SOURCE_MODEL, state=ACCEPTED, score=0.3,
                                  updated_at=now())])
        session.flush()
        fired = {(photo.id, dog): 0.9, (photo.id, cat): 0.8, (photo.id, sea): 0.7, (photo.id, sky): 0.6}
        write_suggestions(session, fired, [], "m2", now())
        rows = {r.tag_id: (r.source, r.state, r.score) for r in session.scalars(select(PhotoTag))}
    assert rows == {dog: (SOURCE_USER, REJECTED, 0.9), cat: (SOURCE_FILE, ACCEPTED, 0.8),
                    sea: (SOURCE_MODEL, ACCEPTED, 0.7), sky: (SOURCE_MODEL, SUGGESTED, 0.6)}


# --- item 9: every catalog error is one line and exit 2 -------------------------------------------


def _not_a_database(data: bytes, database: Path) -> bytes:
    return b"this is not sqlite" * 200


def _truncated(data: bytes, database: Path) -> bytes:
    return data[: len(data) // 3]


def _undecodable_schema_name(data: bytes, database: Path) -> bytes:
    """A damaged schema page whose object name is no longer UTF-8: SQLite quotes it in its error text."""
    start = data.index(b"CREATE TABLE runs")
    name = data.rindex(b"runsruns", 0, start)
    damaged = bytearray(data)
    damaged[start] = damaged[name + 1] = 0xFF
    return bytes(damaged)


def _garbage_in_the_photos_page(data: bytes, database: Path) -> bytes:
    with sqlite3.connect(database) as connection:
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'photos'").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
    damaged = bytearray(data)
    damaged[(root - 1) * size : root * size] = np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes()
    return bytes(damaged)


@pytest.mark.parametrize("damage", [_not_a_database, _truncated, _undecodable_schema_name, _garbage_in_the_photos_page],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_catalog_is_one_line_and_exit_2_for_every_command(home, tmp_path, capsys, damage) -> None:  # noqa: ANN001
    folder, (photo, *_), database = indexed_library(home, tmp_path, capsys, 3)
    data = checkpointed(database)
    database.write_bytes(damage(data, database))
    damaged = database.read_bytes()
    for command in (["status"], ["search", "camera:sony"], ["tags", photo], ["tag", photo, "+dog"],
                    ["index", folder]):
        message = fatal(capsys, *command)
        assert str(database) in message, message
        assert "catalog.db.backup-" in message and ".recover" in message, message
        if command[0] != "index":  # (index records its run, as 'crashed', where it can)
            assert database.read_bytes() == damaged  # left as it was, for the person or sqlite3 .recover


def test_disk_full_during_index_is_exit_2_and_the_next_run_loses_nothing(home, tmp_path, capsys) -> None:  # noqa: ANN001
    folder, _, database = indexed_library(home, tmp_path, capsys, 4)
    first = photo_tag_rows(database)
    first_photos = indexed(database)
    pictures(folder, 40, first_seed=100)
    with disk_full_beyond(page_count(database)):
        message = fatal(capsys, "index", folder)
    assert str(database) in message and "free some space" in message, message
    assert lock_is_free(home / "catalog")
    assert set(first) <= set(photo_tag_rows(database)) and first_photos <= indexed(database)  # nothing lost
    assert main(["index", str(folder)]) == 0  # space again: the next run does the rest
    capsys.readouterr()
    assert len(indexed(database)) == 44
    assert {row[:2] for row in first} <= {row[:2] for row in photo_tag_rows(database)}


def test_a_catalog_locked_by_another_program_is_a_clear_message(home, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    folder, (photo, *_), database = indexed_library(home, tmp_path, capsys, 2)
    before = photo_tag_rows(database)
    monkeypatch.setattr(catalog_module, "BUSY_TIMEOUT_SECONDS", 0.2)  # not 30 s: the test holds it throughout
    # A sqlite3 shell, a backup or sync tool: another process holds the write lock until its stdin closes.
    other = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(database)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "holding\n"
        for command in (["tag", photo, "+dog"], ["index", folder, "--tagger", TAGGER_2]):
            message = fatal(capsys, *command)
            assert str(database) in message and "locked by another program" in message, message
    finally:
        other.communicate("")
    assert photo_tag_rows(database) == before
    assert lock_is_free(home / "catalog")
    assert main(["tag", str(photo), "+dog"]) == 0
    capsys.readouterr()


def test_the_app_shows_a_damaged_catalog_as_one_line(home, tmp_path, capsys) -> None:  # noqa: ANN001
    """The app's boundary (``gui.errors.message_for``, what its message box shows) gets the same typed error."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gui.errors import message_for
    from gui.library import Library
    from indexer.settings import Settings

    _, _, database = indexed_library(home, tmp_path, capsys, 2)
    data = checkpointed(database)
    database.write_bytes(_undecodable_schema_name(data, database))
    with pytest.raises(CatalogError) as caught:
        Library.open(Settings(home=home, catalog=home / "catalog"))
    shown = message_for(caught.value)
    assert "\n" not in shown and str(database) in shown and ".recover" in shown, shown


def test_a_schema_pragma_that_fails_is_a_catalog_error(tmp_path) -> None:  # noqa: ANN001
    """The foreign-key pragmas around an upgrade run on the driver, outside the engine's error mapping."""
    from types import SimpleNamespace

    from indexer.catalog import schema_transaction

    class Damaged:
        def execute(self, statement: str) -> None:
            raise sqlite3.DatabaseError("database disk image is malformed")

    database = tmp_path / "catalog.db"
    connection = SimpleNamespace(connection=SimpleNamespace(driver_connection=Damaged()),
                                 engine=SimpleNamespace(url=SimpleNamespace(database=str(database))))
    with pytest.raises(CatalogError) as raised, schema_transaction(connection):
        pass
    assert str(database) in str(raised.value)
