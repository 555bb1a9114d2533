"""Crashes, Ctrl-C, two writers, the watcher, worker processes and schema upgrades — through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, select, text

from indexer.catalog import Catalog, head_revision
from indexer.errors import CatalogError, CatalogVersionError
from indexer.schema import Embedding, Photo
from indexer.vectors import VectorIndex
from main import main
from tests.conftest import PHOTOS, REPO


def make_photos(folder: Path, count: int, size: int = 160) -> list[Path]:
    """``count`` distinct small JPEGs (noise), so that no two share a content hash."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i // 50:02d}" / f"noise_{i:04d}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, quality=80)
        paths.append(path)
    return paths


def start_index(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "main.py"), *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def counts(home: Path) -> dict[str, int]:
    database = home / "catalog" / "catalog.db"
    if not database.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
            return dict(connection.execute("SELECT status, count(*) FROM photos GROUP BY status").fetchall())
    except sqlite3.OperationalError:  # the schema is still being created
        return {}


def wait_for(condition, timeout: float = 120.0, what: str = "") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def check_consistent(home: Path, files: int) -> None:
    """No duplicate, no half-written row: every indexed photo has its tags' model, an embedding, a vector."""
    with Catalog.open(home / "catalog") as catalog:
        with catalog.engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        with catalog.session() as session:
            photos = session.scalars(select(Photo)).all()
            embedded = set(session.scalars(select(Embedding.photo_id)))
        assert len(photos) == len({p.path for p in photos}) == files
        assert all(p.status == "indexed" and p.tagger_version and p.id in embedded for p in photos)
        # The FAISS file was saved by the last run and matches the catalog.
        vectors = VectorIndex.load(catalog.vectors_path, _embed_dim(catalog), _state(catalog))
        assert vectors is not None and sorted(vectors.ids().tolist()) == sorted(embedded)


def test_kill_9_mid_run_loses_at_most_the_batch_in_flight(home, tmp_path, capsys) -> None:  # noqa: ANN001
    photos = make_photos(tmp_path / "noise", 240)
    process = start_index("index", str(tmp_path / "noise"), "--batch-size", "2")
    try:
        wait_for(lambda: counts(home).get("indexed", 0) >= 10, what="the first batches")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        process.kill()
    left = counts(home)
    assert left.get("pending", 0) > 0, "the run was killed mid-way"
    assert main(["index", str(tmp_path / "noise"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # The next run resumes: nothing new, exactly the pending photos go through the models.
    assert summary["new"] == 0 and summary["tagged"] == left["pending"]
    check_consistent(home, len(photos))


def _embed_dim(catalog: Catalog) -> int:
    with catalog.session() as session:
        return int(session.scalar(select(Embedding.dim).limit(1)))


def _state(catalog: Catalog) -> str:
    with catalog.session() as session:
        version = session.scalar(select(Embedding.model_version).limit(1))
    return f"{version}:{catalog.get_meta('embeddings_generation')}"


def test_ctrl_c_finishes_the_batch_and_a_second_writer_waits(home, tmp_path, capsys) -> None:  # noqa: ANN001
    photos = make_photos(tmp_path / "noise", 200)
    first = start_index("index", str(tmp_path / "noise"), "--batch-size", "2")
    second = None
    try:
        wait_for(lambda: counts(home).get("indexed", 0) >= 4, what="the first batches")
        # A second writer without --wait exits at once with a clear message; readers are not blocked.
        assert main(["index", str(tmp_path / "noise")]) == 2
        assert "another Phototag process" in capsys.readouterr().err
        assert main(["status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["photos"]["indexed"] >= 4
        second = start_index("index", str(tmp_path / "noise"), "--wait", "300", "--json")
        time.sleep(1.0)
        first.send_signal(signal.SIGINT)
        assert first.wait(60) == 130
        assert "stopping after the current batch" in first.stderr.read()
        assert second.wait(300) == 0, second.stderr.read()
        summary = json.loads(second.stdout.read())
        assert summary["new"] == 0 and summary["tagged"] > 0
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
    check_consistent(home, len(photos))
    with Catalog.open(home / "catalog") as catalog, catalog.engine.connect() as connection:
        outcomes = [row[0] for row in connection.execute(text("SELECT outcome FROM runs ORDER BY id"))]
    assert outcomes == ["interrupted", "completed"]


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_watch_picks_up_new_changed_and_deleted_files(home, tmp_path, mode) -> None:  # noqa: ANN001
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "first.jpg").write_bytes((PHOTOS / "library/space/rocket.jpg").read_bytes())
    extra = ["--poll", "0.3"] if mode == "polling" else []
    process = start_index("watch", str(folder), "--settle", "0.5", *extra)
    try:
        wait_for(lambda: counts(home).get("indexed", 0) == 1, what="the first pass")
        time.sleep(1.0)  # the watcher starts after the first pass
        (folder / "sub").mkdir()
        (folder / "sub" / "second.png").write_bytes((PHOTOS / "library/food/coffee.png").read_bytes())
        wait_for(lambda: counts(home).get("indexed", 0) == 2, what="the new file")
        (folder / "first.jpg").unlink()
        wait_for(lambda: counts(home).get("missing", 0) == 1, what="the deletion")
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, process.stderr.read()
    finally:
        process.kill()


def test_worker_processes_give_the_same_results_as_in_process(home, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "few"
    folder.mkdir()
    for name in ("library/space/rocket.jpg", "library/animals/pug.heic", "edge/zero_bytes.jpg",
                 "library/travel/fujifilm.mpo"):
        (folder / Path(name).name).write_bytes((PHOTOS / name).read_bytes())
    import indexer.engine
    from indexer import pipeline

    started = []
    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", lambda *a, _real=pipeline.ProcessPoolExecutor, **k:
                        started.append(k["max_workers"]) or _real(*a, **k))
    assert main(["index", str(folder), "--workers", "2", "--catalog", str(tmp_path / "small")]) == 0
    assert started == []  # four photos: hashed and decoded in this process, no pool started
    capsys.readouterr()
    monkeypatch.setattr(indexer.engine, "IDENTIFY_IN_PROCESS", 0)  # from here on, workers even for four
    monkeypatch.setattr(indexer.engine, "DECODE_IN_PROCESS", 0)
    results = []
    for workers in ("0", "2"):
        monkeypatch.setenv("PHOTOTAG_CATALOG", str(tmp_path / f"catalog{workers}"))
        assert main(["index", str(folder), "--workers", workers, "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert (summary["new"], summary["failed"], summary["tagged"]) == (4, 1, 3)
        with Catalog.open(tmp_path / f"catalog{workers}") as catalog, catalog.session() as session:
            rows = session.execute(select(Photo.path, Embedding.vector).join(Embedding)).all()
        results.append(dict(rows))
    assert started == [2]  # identify and decode in worker processes: one pool for the pass (~13 s a start)
    assert results[0].keys() == results[1].keys()
    assert all(np.allclose(results[0][k], results[1][k], atol=1e-5) for k in results[0])


def test_old_catalog_is_upgraded_after_a_backup(tmp_path) -> None:  # noqa: ANN001
    from alembic import command

    from indexer.catalog import _alembic_config

    directory = tmp_path / "catalog"
    directory.mkdir()
    engine = create_engine(f"sqlite:///{directory / 'catalog.db'}")
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text(
            "INSERT INTO photos (path, size, mtime_ns, status, attempts, first_seen, last_seen) "
            "VALUES ('/p/a.jpg', 1, 2, 'indexed', 0, '2024-01-01', '2024-01-01')"))
    engine.dispose()
    with Catalog.open(directory) as catalog:
        assert catalog.revision() == head_revision() and catalog.upgraded_from == "0001"
        assert catalog.backup_path is not None and catalog.backup_path.is_file()
        with catalog.session() as session:
            assert session.scalar(select(Photo.path)) == "/p/a.jpg"
    with sqlite3.connect(catalog.backup_path) as backup:
        assert backup.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
        assert backup.execute("SELECT path FROM photos").fetchall() == [("/p/a.jpg",)]
    # Opening again changes nothing and makes no new backup.
    with Catalog.open(directory) as catalog:
        assert catalog.upgraded_from is None
    assert len(list(directory.glob("catalog.db.backup-*"))) == 1


def test_newer_or_broken_catalog_is_refused_with_a_clear_message(tmp_path) -> None:  # noqa: ANN001
    directory = tmp_path / "catalog"
    Catalog.open(directory).close()
    with sqlite3.connect(directory / "catalog.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(CatalogVersionError, match="newer Phototag"):
        Catalog.open(directory)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "catalog.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError, match="not a readable catalog"):
        Catalog.open(broken)
    assert os.path.getsize(broken / "catalog.db") == 1800  # left as it was, for the user to inspect
