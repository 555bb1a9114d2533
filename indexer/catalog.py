"""The catalog: one SQLite database (WAL, foreign keys on) plus the files derived from it.

A catalog folder holds ``catalog.db`` (the source of truth), ``vectors.faiss`` (a cache rebuilt
from it) and, after a schema upgrade, ``catalog.db.backup-REV-TIME`` copies. Opening a catalog
brings its schema up to date through the Alembic revisions in ``migrations/`` after a backup; a
catalog written by a newer Phototag is refused. One writer at a time holds ``writer.lock``;
readers never take it and, thanks to WAL, are not blocked by a running index.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import filelock
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from indexer.errors import CatalogError, CatalogLockedError, CatalogVersionError
from indexer.schema import Meta

DATABASE_FILE = "catalog.db"
VECTORS_FILE = "vectors.faiss"
LOCK_FILE = "writer.lock"
LOCK_INFO_FILE = "writer.json"
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
BUSY_TIMEOUT_SECONDS = 30.0  # how long a statement waits for another connection's write lock


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor it them
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: a crash never corrupts; committed stays committed
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
    cursor.close()


class Catalog:
    """An open catalog folder. Use :meth:`open`; close with :meth:`close` or ``with``."""

    def __init__(self, directory: Path, engine: Engine) -> None:
        self.directory = directory
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.upgraded_from: str | None = None  # the revision an automatic upgrade started from
        self.backup_path: Path | None = None

    # --- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, create: bool = True) -> Catalog:
        """Open (and create, or upgrade after a backup) the catalog in ``directory``."""
        directory = Path(directory).expanduser().absolute()
        database = directory / DATABASE_FILE
        if not database.exists():
            if not create:
                raise CatalogError(f"no catalog in {directory}: run 'phototag index PATH' first, "
                                   f"or pass --catalog to point at an existing one")
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(f"cannot create the catalog folder {directory}: {exc.strerror}") from exc
        engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _on_connect)
        catalog = cls(directory, engine)
        try:
            # Two processes opening an old catalog at once: one upgrades, the other waits.
            with filelock.FileLock(directory / "migrate.lock", timeout=600):
                catalog._migrate()
        except filelock.Timeout as exc:
            raise CatalogLockedError(f"{directory}: another process has been upgrading this catalog for "
                                     "10 minutes; if none is running, delete migrate.lock") from exc
        except sqlite3.DatabaseError as exc:
            engine.dispose()
            raise CatalogError(f"{database} is not a readable catalog ({exc}); restore a backup "
                               f"({DATABASE_FILE}.backup-*) or move it away to start afresh") from exc
        except Exception as exc:
            engine.dispose()
            if isinstance(exc, CatalogError):
                raise
            from sqlalchemy.exc import DatabaseError

            if isinstance(exc, DatabaseError):
                raise CatalogError(f"{database} is not a readable catalog ({exc.orig}); restore a backup "
                                   f"({DATABASE_FILE}.backup-*) or move it away to start afresh") from exc
            raise
        return catalog

    def _migrate(self) -> None:
        script = ScriptDirectory.from_config(_alembic_config())
        head = script.get_current_head()
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        if current is not None:
            try:
                script.get_revision(current)
            except Exception:
                raise CatalogVersionError(
                    f"{self.database} was written by a newer Phototag (schema revision {current}; this one knows "
                    f"up to {head}). Upgrade Phototag, or open an older backup ({DATABASE_FILE}.backup-*)"
                ) from None
            self.backup_path = self._backup(current)
            self.upgraded_from = current
        config = _alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def _backup(self, revision: str) -> Path:
        """A consistent copy through SQLite's backup API (safe while others read)."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = self.directory / f"{DATABASE_FILE}.backup-{revision}-{stamp}"
        source = sqlite3.connect(self.database)
        try:
            destination = sqlite3.connect(target)
            with destination:
                source.backup(destination)
            destination.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            destination.close()
        finally:
            source.close()
        return target

    # --- using ---------------------------------------------------------------------------------
    @property
    def database(self) -> Path:
        return self.directory / DATABASE_FILE

    @property
    def vectors_path(self) -> Path:
        return self.directory / VECTORS_FILE

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def session(self) -> Session:
        return self._sessions()

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.session() as session:
            value = session.scalar(select(Meta.value).where(Meta.key == key))
        return default if value is None else value

    @staticmethod
    def set_meta(session: Session, key: str, value: str) -> None:
        session.merge(Meta(key=key, value=value))

    @contextmanager
    def writer(self, wait: float = 0.0, task: str = "index") -> Iterator[None]:
        """Hold the one-writer lock; waits up to ``wait`` seconds, then raises CatalogLockedError."""
        lock = filelock.FileLock(self.directory / LOCK_FILE)
        info_path = self.directory / LOCK_INFO_FILE
        try:
            lock.acquire(timeout=wait)
        except filelock.Timeout:
            holder = ""
            try:
                info = json.loads(info_path.read_text(encoding="utf-8"))
                holder = f" (pid {info['pid']} on {info['host']}, '{info['task']}' since {info['since']})"
            except (OSError, ValueError, KeyError):
                pass
            raise CatalogLockedError(
                f"another Phototag process{holder} is writing to the catalog in {self.directory}; "
                f"wait for it to finish, or pass --wait SECONDS to queue behind it"
            ) from None
        try:
            info_path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "task": task,
                                             "since": time.strftime("%Y-%m-%d %H:%M:%S")}), encoding="utf-8")
            yield
        finally:
            info_path.unlink(missing_ok=True)
            lock.release()

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir()
                   if p.is_file() and not p.name.startswith(f"{DATABASE_FILE}.backup"))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
