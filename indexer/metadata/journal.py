"""The journal of metadata runs, and undoing a run byte for byte.

Each ``write-metadata`` run that changes anything gets a folder in the catalog folder::

    metadata-runs/20260301-221507/
        run.json          when, with which options, and (at the end) the counts
        journal.jsonl     one JSON record per change, appended and fsynced BEFORE the change
        backups/          a copy of every file as it was before the run first changed it
        undone.json       once the run has been undone

A ``change`` record names the file, its backup (or none: the run created the file), its state
before the run (hash, size, mtime, mode) and the state the change leaves it in (``after``: a hash,
or null for "should not exist"). Because the record is durable before the file is touched, a
crash at any point leaves a journal that describes every file the run may have changed. It also
lists the keywords Phototag's record in that file claims after the change (``claims``): what
:class:`ClaimLedger` trusts when a later run decides which keywords are Phototag's to remove.

Why files and not catalog tables: the backups are files anyway; the journal must be readable
even when the catalog database is lost or restored from a backup; and a run folder can be read,
copied or deleted by hand (``journal.jsonl`` is plain text).

:func:`undo_run` restores every file of a run to its state before the run — the backup's bytes,
mode and mtime — or deletes a file the run created, newest change first. A file whose current
bytes are not a state the run produced (someone changed it since) is reported and skipped,
unless ``force``. Callers hold the catalog's writer lock (photo rows follow restored files).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from indexer._durable import fsync_folder
from indexer._paths import json_text
from indexer.catalog import Catalog
from indexer.errors import FileSkipped, MetadataError
from indexer.metadata._files import (
    Folder,
    bytes_hash,
    fitted,
    refuse_special,
    replace_file,
    skipped_for,
    write_durably,
)
from indexer.schema import Photo

RUNS_FOLDER = "metadata-runs"
_RUN_FILE, _JOURNAL_FILE, _BACKUPS, _UNDONE_FILE = "run.json", "journal.jsonl", "backups", "undone.json"
_RUN_ID = re.compile(r"\d{8}-\d{6}(-\d+)?")


@dataclass(frozen=True)
class FileState:
    hash: str
    size: int
    mtime_ns: int
    mode: int
    uid: int | None = None
    gid: int | None = None


@dataclass
class JournalEntry:
    """Everything one run did to one path, folded from its records."""

    path: str
    before: FileState | None  # None: the run created the file
    backup: str | None  # file name in backups/
    afters: list[str | None] = field(default_factory=list)  # every state the run left it in, in order
    photo_id: int | None = None  # a catalog row whose size/mtime/hash follow this file


@dataclass(frozen=True)
class RunInfo:
    id: str
    folder: Path
    started_at: str
    options: dict[str, Any]
    counts: dict[str, int] | None  # None: the run never finished (crashed or still running)
    undone: bool


class Journal:
    """The journal of one run (see the module docs). Created lazily: a run that changes nothing
    leaves no folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._entries: dict[str, JournalEntry] | None = None

    @property
    def id(self) -> str:
        return self.folder.name

    # --- making and finding runs ---------------------------------------------------------------
    @classmethod
    def create(cls, catalog_dir: Path, options: dict[str, Any]) -> Journal:
        """A new run folder (``YYYYMMDD-HHMMSS``, suffixed when taken), with ``run.json`` written.

        Raises:
            MetadataError: the folder cannot be made (then nothing is written at all).
        """
        root = Path(catalog_dir) / RUNS_FOLDER
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            root.mkdir(parents=True, exist_ok=True)
            for attempt in range(1, 1000):
                folder = root / (stamp if attempt == 1 else f"{stamp}-{attempt}")
                try:
                    folder.mkdir()
                    break
                except FileExistsError:
                    continue
            (folder / _BACKUPS).mkdir()
            record = {"id": folder.name, "started_at": datetime.now().isoformat(timespec="seconds"),
                      "options": options}
            text = json_text(json.dumps(record, indent=2, ensure_ascii=False))
            write_durably(folder / _RUN_FILE, text.encode(), 0o644)
            fsync_folder(folder)
            fsync_folder(root)
        except OSError as exc:
            raise MetadataError(f"cannot create the metadata journal in {root} ({exc.strerror or exc}): nothing "
                                "was written; make the catalog folder writable, or free some space") from exc
        journal = cls(folder)
        journal._entries = {}
        return journal

    @classmethod
    def open(cls, catalog_dir: Path, run_id: str | None = None) -> Journal:
        """Run ``run_id``, or the newest run not yet completely undone.

        Raises:
            MetadataError: no such run (the message lists how to see them).
        """
        runs = list_runs(catalog_dir)
        if run_id is None:
            pending = [run for run in runs if not run.undone]
            if not pending:
                raise MetadataError(f"no metadata run to undo in {Path(catalog_dir) / RUNS_FOLDER}"
                                    + (" (every run is already undone)" if runs else ""))
            return cls(pending[-1].folder)
        for run in runs:
            if run.id == run_id:
                return cls(run.folder)
        known = ", ".join(run.id for run in runs[-5:]) or "none"
        raise MetadataError(f"no metadata run {run_id!r} in {Path(catalog_dir) / RUNS_FOLDER} (latest: {known}); "
                            "list them with: phototag undo-metadata --list")

    # --- recording -----------------------------------------------------------------------------
    def entries(self) -> dict[str, JournalEntry]:
        """The run's changes by path, folded from ``journal.jsonl`` (a torn last line is ignored)."""
        if self._entries is None:
            self._entries = {}
            for record in self._records():
                self._fold(record)
        return self._entries

    def record_change(self, target: Path, after: str | None, current: bytes | None, *,
                      photo_id: int | None = None, claims: Iterable[str] | None = None,
                      info: os.stat_result | None = None) -> None:
        """Make a change to ``target`` undoable, before it happens: the first time the run touches a
        path its current bytes (``current``, None when it does not exist; ``info``, their ``fstat``) are
        backed up; every time, the state the change will leave (``after``) is recorded, with the keys
        (casefolded names) of the keywords Phototag's record in the file claims then (``claims``). All of
        it durable on return.

        Raises:
            FileSkipped("disk_full" / "io_error"): the journal cannot be written; do not change the file.
        """
        key = str(target)
        record: dict[str, Any] = {"op": "change", "path": key, "after": after}
        if photo_id is not None:
            record["photo_id"] = photo_id
        if claims is not None:
            record["claims"] = list(claims)
        try:
            if key not in self.entries():
                if current is not None:
                    info = info if info is not None else os.lstat(target)
                    number = f"{len(self.entries()) + 1:06d}-"
                    name = number + fitted(target.name, len(number))
                    write_durably(self.folder / _BACKUPS / name, current, 0o600)
                    fsync_folder(self.folder / _BACKUPS)
                    record["backup"] = name
                    record["before"] = asdict(FileState(bytes_hash(current), len(current), info.st_mtime_ns,
                                                        info.st_mode & 0o7777, info.st_uid, info.st_gid))
            self._append(record)
        except OSError as exc:
            raise skipped_for(exc, self.folder, "write the journal (the backup comes first)") from None
        self._fold(record)

    def finish(self, counts: dict[str, int]) -> None:
        path = self.folder / _RUN_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            record |= {"finished_at": datetime.now().isoformat(timespec="seconds"), "counts": counts}
            replace_file(path, json_text(json.dumps(record, indent=2, ensure_ascii=False)).encode(), 0o644)
        except (OSError, ValueError):
            pass  # the counts are for --list only; the journal itself is complete

    def _append(self, record: dict[str, Any]) -> None:
        line = (json_text(json.dumps(record, ensure_ascii=False)) + "\n").encode("utf-8")  # names in any bytes
        write_durably(self.folder / _JOURNAL_FILE, line, 0o600, append=True)

    def _records(self) -> Iterator[dict[str, Any]]:
        try:
            lines = (self.folder / _JOURNAL_FILE).read_bytes().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line torn by a crash: its change never happened (records come first)

    def _fold(self, record: dict[str, Any]) -> None:
        assert self._entries is not None
        if record.get("op") != "change" or "path" not in record:
            return
        entry = self._entries.get(record["path"])
        if entry is None:
            before = FileState(**record["before"]) if record.get("before") else None
            entry = self._entries[record["path"]] = JournalEntry(record["path"], before, record.get("backup"))
        entry.afters.append(record.get("after"))
        if record.get("photo_id") is not None:
            entry.photo_id = record["photo_id"]


def list_runs(catalog_dir: Path) -> list[RunInfo]:
    """Every run in the catalog folder, oldest first."""
    root = Path(catalog_dir) / RUNS_FOLDER
    runs = []
    try:
        folders = sorted((p for p in root.iterdir() if p.is_dir() and _RUN_ID.fullmatch(p.name)), key=_run_order)
    except FileNotFoundError:
        return []
    for folder in folders:
        try:
            record = json.loads((folder / _RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
        runs.append(RunInfo(folder.name, folder, record.get("started_at", "?"), record.get("options", {}),
                            record.get("counts"), (folder / _UNDONE_FILE).is_file()))
    return runs


class ClaimLedger:
    """Which ``phototag:Keywords`` claims in a file Phototag stands by, from the journals of its runs.

    Anyone can write a claim into a file (another tool copying a record, a hand edit, a hostile
    archive), and a claim is what lets Phototag remove a keyword. So a claim counts only when the
    journal agrees: the last change record for that path, over the runs not undone, lists the claims
    Phototag left in the file, and only those are trusted. Records of older versions list none; there
    every claim is trusted while the file is still exactly as that run left it (its ``after`` hash).

    Why the journal and not a signature in the file: the journal already describes, durably and before
    the fact, every file Phototag changed; it is where a forger cannot write; and it keeps working when
    other tools rewrite the file around Phototag's record. When the catalog (and with it the journal) is
    lost, no claim is trusted: Phototag then leaves every keyword where it is, never removes one.
    """

    def __init__(self, catalog_dir: Path) -> None:
        self._known: dict[str, frozenset[str] | str] = {}  # path -> trusted keys, or (older runs) its after hash
        for run in list_runs(catalog_dir):
            if run.undone:
                continue
            for record in Journal(run.folder)._records():
                path = record.get("path")
                if record.get("op") != "change" or not isinstance(path, str):
                    continue
                claims, after = record.get("claims"), record.get("after")
                if isinstance(claims, list):
                    self._known[path] = frozenset(claim for claim in claims if isinstance(claim, str))
                elif "claims" not in record and isinstance(after, str):
                    self._known[path] = after
                else:
                    self._known.pop(path, None)

    def trusted(self, target: Path, current: bytes | None) -> frozenset[str] | None:
        """The keys of the claims to trust in ``target``, whose bytes are ``current``; None: all of them
        (the file is exactly as an older version of Phototag left it)."""
        known = self._known.get(str(target), frozenset())
        if isinstance(known, str):
            return None if current is not None and bytes_hash(current) == known else frozenset()
        return known

    def note(self, target: Path, claims: Iterable[str]) -> None:
        """A change made in this run, whose record (with these claims) is in the journal already."""
        self._known[str(target)] = frozenset(claims)


def _run_order(folder: Path) -> tuple[str, int]:
    stamp, _, suffix = folder.name.rpartition("-") if folder.name.count("-") == 2 else (folder.name, "", "1")
    return stamp, int(suffix)


# --- undo --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UndoReport:
    """What undo did (or, in a dry run, would do) to one file."""

    path: str
    status: str  # restored, deleted, unchanged (already as before the run), skipped; would_restore, would_delete
    reason: str | None = None
    message: str | None = None


@dataclass
class UndoSummary:
    run_id: str
    files: list[UndoReport] = field(default_factory=list)
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for report in self.files:
            counts[report.status] = counts.get(report.status, 0) + 1
        return counts

    @property
    def complete(self) -> bool:
        return not any(report.status == "skipped" for report in self.files)


def undo_run(catalog: Catalog, run_id: str | None = None, *, force: bool = False, dry_run: bool = False,
             on_file: Callable[[UndoReport], None] | None = None) -> UndoSummary:
    """Put every file run ``run_id`` (default: the newest not yet undone) changed back as it was.

    Raises:
        MetadataError: no such run.
    """
    journal = Journal.open(catalog.directory, run_id)
    summary = UndoSummary(journal.id, dry_run=dry_run)
    for entry in reversed(list(journal.entries().values())):
        try:
            report = _undo_entry(catalog, journal, entry, force=force, dry_run=dry_run)
        except FileSkipped as exc:
            report = UndoReport(entry.path, "skipped", exc.reason, str(exc))
        summary.files.append(report)
        if on_file is not None:
            on_file(report)
    if not dry_run and summary.complete:
        try:
            record = {"undone_at": datetime.now().isoformat(timespec="seconds"), "counts": summary.counts()}
            write_durably(journal.folder / _UNDONE_FILE, json.dumps(record).encode(), 0o644)
        except FileExistsError:
            pass
        except OSError as exc:
            raise MetadataError(f"every file of run {journal.id} is restored, but it cannot be marked undone "
                                f"({exc.strerror or exc}); undoing it again changes nothing") from exc
    return summary


def _undo_entry(catalog: Catalog, journal: Journal, entry: JournalEntry, *, force: bool,
                dry_run: bool) -> UndoReport:
    """Put one file back, by the rule of :mod:`indexer.metadata._files`: in the folder the run wrote (not one
    a link now leads to), never through a link at the file's name — ``force`` or not."""
    path = Path(entry.path)
    try:
        folder = Folder.open(path.parent)
    except (FileNotFoundError, NotADirectoryError):
        folder = None
    except OSError as exc:
        raise skipped_for(exc, path.parent, "open the folder") from None
    with folder if folder is not None else nullcontext():
        try:
            found = folder.read(path.name) if folder is not None else None
        except OSError as exc:
            raise skipped_for(exc, path, "read it") from None
        current = bytes_hash(found[0]) if found is not None else None
        original = entry.before.hash if entry.before else None
        if current == original:
            return UndoReport(entry.path, "unchanged")
        if current not in entry.afters and not force:
            what = "deleted" if current is None else "changed"
            raise FileSkipped("changed", f"{path}: {what} since run {journal.id}; left as it is "
                                         "(--force restores it anyway)")
        if folder is None:
            raise FileSkipped("missing", f"{path}: its folder is gone; left as it is")
        if entry.before is None:  # the run created it
            if dry_run:
                return UndoReport(entry.path, "would_delete")
            folder.check_writable(path.name)
            try:
                folder.remove(path.name)
            except OSError as exc:
                raise skipped_for(exc, path, "delete it") from None
            return UndoReport(entry.path, "deleted")
        if dry_run:
            return UndoReport(entry.path, "would_restore")
        folder.check_writable(path.name)
        try:
            data = (journal.folder / _BACKUPS / str(entry.backup)).read_bytes()
        except OSError as exc:
            raise FileSkipped("io_error", f"{path}: its backup in {journal.folder} is unreadable "
                                          f"({exc.strerror or exc}); left as it is") from None
        if bytes_hash(data) != entry.before.hash:
            raise FileSkipped("io_error", f"{path}: its backup in {journal.folder} is damaged; left as it is")
        before = entry.before
        owner = (before.uid, before.gid) if before.uid is not None and before.gid is not None else None
        try:
            staged = folder.stage(path.name, data, mode=before.mode, owner=owner, mtime_ns=before.mtime_ns)
        except OSError as exc:
            raise skipped_for(exc, path, "restore it") from None
        try:
            if (now := folder.entry(path.name)) is not None:
                refuse_special(path, now)  # a link planted while the backup was staged
            staged.commit()
        except BaseException:
            staged.discard()
            raise
    if entry.photo_id is not None:
        with catalog.session() as session, session.begin():
            session.execute(update(Photo).where(Photo.id == entry.photo_id, Photo.content_hash.in_(
                [a for a in entry.afters if a])).values(
                size=entry.before.size, mtime_ns=entry.before.mtime_ns, content_hash=entry.before.hash))
    return UndoReport(entry.path, "restored")


