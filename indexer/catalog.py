"""The catalog: one SQLite database (WAL, foreign keys on) plus the files derived from it.

A catalog folder holds ``catalog.db`` (the source of truth), ``vectors.faiss`` (a cache rebuilt
from it) and, after a schema upgrade, ``catalog.db.backup-REV-TIME`` copies. Opening a catalog
brings its schema up to date through the Alembic revisions in ``migrations/`` after a backup; a
catalog written by a newer Phototag is refused. One writer at a time holds ``writer.lock``;
readers never take it and, thanks to WAL, are not blocked by a running index.

Transactions are SQLAlchemy's, not the sqlite3 module's (SQLAlchemy's documented pysqlite recipe): the
driver never begins or commits by itself, so a schema upgrade is one transaction, DDL included, and a
failed step (a full disk, a bug) leaves the previous schema exactly as it was. A session's explicit
``begin()`` is a write transaction, ``BEGIN IMMEDIATE``: it holds SQLite's write lock from its first read,
so nothing another connection writes (a correction in the app during an index pass) comes between what
it read and what it writes. A session used without ``begin()`` reads one snapshot and takes no lock.

Every SQLite error (full disk, damaged file, a lock held by another program, ...) leaves this module as a
:class:`CatalogError` whose one line names the database and says what to do (:func:`catalog_error`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import stat
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
from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from indexer.errors import CatalogError, CatalogLockedError, CatalogVersionError
from indexer.schema import Meta

log = logging.getLogger(__name__)

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


_BEGIN = "phototag_begin"  # the connection execution option that says how _on_begin starts a transaction
WRITE = {_BEGIN: "BEGIN IMMEDIATE"}  # execution options of a write transaction


def catalog_engine(url: str) -> Engine:
    """An engine on a catalog database (``sqlite:///PATH``) with the catalog's pragmas, transactions and errors."""
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    event.listen(engine, "handle_error", _on_error)
    return engine


def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # The driver's own transaction handling off: it would run DDL outside any transaction (autocommit) and
    # begin only before an INSERT/UPDATE/DELETE, after the block's reads. _on_begin begins instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:  # outside any transaction: there journal_mode cannot change and foreign_keys is ignored
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor it them
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: a crash never corrupts; committed stays committed
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
    except UnicodeDecodeError as exc:  # a damaged schema page: SQLite's message quotes its bytes
        raise _undecodable(exc) from exc
    finally:
        cursor.close()


def _on_begin(connection: Connection) -> None:
    connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN, "BEGIN"))


def _on_error(context: ExceptionContext) -> CatalogError | None:
    error = context.original_exception
    if isinstance(error, UnicodeDecodeError):  # raised by the driver while it built a sqlite3 error
        error = _undecodable(error)
    if not isinstance(error, sqlite3.Error) or isinstance(error, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return None  # a misuse of the driver is a bug: its traceback is what a report needs
    database = context.engine.url.database if context.engine else None
    return catalog_error(error, Path(database) if database else None)


def _undecodable(error: UnicodeDecodeError) -> sqlite3.DatabaseError:
    """The sqlite3 error that SQLite reported but the driver could not decode (its text quotes damaged bytes)."""
    text = error.object.decode("utf-8", "backslashreplace") if isinstance(error.object, bytes) else str(error)
    damaged = sqlite3.DatabaseError(text)
    damaged.sqlite_errorname = "SQLITE_CORRUPT"
    return damaged


def catalog_error(error: sqlite3.Error, database: Path | None) -> CatalogError:
    """The one mapping of SQLite errors to what a person reads: what happened to which file, and what to do."""
    name = getattr(error, "sqlite_errorname", "") or ""
    where = str(database) if database is not None else "the catalog database"
    detail = str(error)
    if name.startswith("SQLITE_FULL"):
        return CatalogError(f"no space left for the catalog {where} ({detail}): free some space on its disk and run "
                            "the command again (what was stored before is kept)")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        recover = f"sqlite3 {where} .recover | sqlite3 recovered.db" if database else "sqlite3 .recover"
        return CatalogError(f"{where} is not a readable catalog ({detail}): restore the newest backup beside it "
                            f"({DATABASE_FILE}.backup-*), rescue what is left with '{recover}', or move it away "
                            "to start afresh")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return CatalogLockedError(f"the catalog {where} is locked by another program (for more than "
                                  f"{BUSY_TIMEOUT_SECONDS:g} s): close it (a sqlite3 shell, a backup or sync tool) "
                                  "or wait for it, then run the command again")
    if name.startswith("SQLITE_READONLY"):
        return CatalogError(f"the catalog {where} cannot be written ({detail}): check the permissions of the file "
                            f"and of its folder (SQLite writes {DATABASE_FILE}-wal and -shm beside it)")
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return CatalogError(f"cannot read or write the catalog {where} ({detail}): check the disk or network share "
                            "it is on and its permissions, then run the command again")
    if name.startswith("SQLITE_CONSTRAINT"):
        return CatalogError(f"the catalog {where} refused a change ({detail}): this is a Phototag bug, please "
                            "report it; nothing of that change was stored")
    return CatalogError(f"the catalog {where} failed ({detail}); if it happens again, restore the newest backup "
                        f"beside it ({DATABASE_FILE}.backup-*) or report it")


@contextmanager
def schema_transaction(connection: Connection) -> Iterator[None]:
    """One write transaction for schema changes on a fresh ``connection``: every revision run inside, or none.

    Foreign keys are off meanwhile (the pragma is ignored inside a transaction, so it is set before): a
    revision that rebuilds a table (alembic's batch mode: copy, DROP, rename) would otherwise delete every
    row referring to it (ON DELETE CASCADE). They are checked before the commit instead."""
    driver = connection.connection.driver_connection
    assert driver is not None, "schema_transaction needs an open connection"
    database = connection.engine.url.database

    def pragma(statement: str) -> None:  # on the driver: SQLAlchemy would begin a transaction first
        try:
            driver.execute(statement)
        except sqlite3.Error as error:  # not seen by the engine's error mapping
            raise catalog_error(error, Path(database) if database else None) from error

    pragma("PRAGMA foreign_keys=OFF")
    try:
        with connection.execution_options(**WRITE).begin():
            yield
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise CatalogVersionError(
                    f"{database}: the schema upgrade would leave {len(broken)} row(s) referring "
                    f"to missing ones (first: {tuple(broken[0])}), so nothing was changed; please report it")
    finally:
        pragma("PRAGMA foreign_keys=ON")


class _Session(Session):
    """A catalog session: its explicit ``begin()`` starts a write transaction (``BEGIN IMMEDIATE``), which
    waits up to the busy timeout for another connection's write to end, then holds the lock until it ends."""

    def begin(self, nested: bool = False) -> SessionTransaction:
        transaction = super().begin(nested=nested)
        if not nested:
            self.connection(execution_options=WRITE)  # the connection begins now, with the lock
        return transaction


class Catalog:
    """An open catalog folder. Use :meth:`open`; close with :meth:`close` or ``with``."""

    def __init__(self, directory: Path, engine: Engine) -> None:
        self.directory = directory
        self.engine = engine
        self._sessions = sessionmaker(engine, class_=_Session, expire_on_commit=False)
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
        engine = catalog_engine(f"sqlite:///{database}")
        catalog = cls(directory, engine)
        try:
            # Two processes opening an old catalog at once: one upgrades, the other waits.
            with filelock.FileLock(directory / "migrate.lock", timeout=600):
                catalog._migrate()
        except filelock.Timeout as exc:
            engine.dispose()
            raise CatalogLockedError(f"{directory}: another process has been upgrading this catalog for "
                                     "10 minutes; if none is running, delete migrate.lock") from exc
        except BaseException:
            engine.dispose()
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
            self.backup_path = self._unchanged_backup(current) or self._backup(current)
            self.upgraded_from = current
        config = _alembic_config()
        with self.engine.connect() as connection, schema_transaction(connection):
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def _unchanged_backup(self, revision: str) -> Path | None:
        """The newest backup of ``revision`` taken after the catalog's last write (an earlier upgrade attempt
        that failed and changed nothing), or None. A nightly job retrying a failing upgrade so keeps one copy,
        not one more a night until the disk is full."""
        try:
            written = os.stat(self.database).st_mtime_ns
            wal = self.database.with_name(f"{DATABASE_FILE}-wal")
            wal_info = os.stat(wal) if wal.exists() else None
        except OSError:
            return None
        if wal_info is not None and wal_info.st_size:  # frames not yet in the database (any open makes an empty one)
            written = max(written, wal_info.st_mtime_ns)
        newest: tuple[int, Path] | None = None
        for candidate in self.directory.glob(f"{DATABASE_FILE}.backup-{revision}-*"):
            info = candidate.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_size > 0 and (newest is None or info.st_mtime_ns > newest[0]):
                newest = (info.st_mtime_ns, candidate)
        if newest is None or newest[0] < written:
            return None
        log.info("%s is unchanged since its backup %s: not copied again", self.database, newest[1])
        return newest[1]

    def _backup(self, revision: str) -> Path:
        """A consistent copy through SQLite's backup API (safe while others read); a copy that fails half-way
        (a full disk) is removed."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = self._new_file(f"{DATABASE_FILE}.backup-{revision}-{stamp}")
        try:
            source = sqlite3.connect(self.database)
            try:
                destination = sqlite3.connect(target)
                try:
                    with destination:
                        source.backup(destination)
                    destination.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                finally:
                    destination.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            for leftover in (target, target.with_name(f"{target.name}-journal")):
                leftover.unlink(missing_ok=True)
            raise catalog_error(exc, self.database) from exc
        return target

    def _new_file(self, name: str) -> Path:
        """A new, empty file of our own in the catalog folder named ``name`` (``name-2``, ``name-3`` ... when
        that is taken: an earlier attempt in the same second). Created ``O_EXCL|O_NOFOLLOW``, so that nothing
        planted at the name (a link) is ever written through, as ``sqlite3.connect`` would."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for attempt in range(1, 101):
            target = self.directory / (name if attempt == 1 else f"{name}-{attempt}")
            try:
                os.close(os.open(target, flags, 0o600))
                return target
            except FileExistsError:
                continue
            except OSError as exc:
                raise CatalogError(f"cannot write the backup {target} before upgrading the catalog "
                                   f"({exc.strerror or exc}): free some space, then run the command again") from exc
        raise CatalogError(f"cannot write a backup in {self.directory} before upgrading the catalog: "
                           f"{name} and 99 other names are taken; remove old backups, then run the command again")

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
