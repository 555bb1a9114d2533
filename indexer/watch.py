"""Follow changes under library roots and report them in settled batches.

A file that appears or changes is reported once its size and modification time have stayed the
same for ``settle_seconds`` (and no event came for it meanwhile), so a photo still being copied
is not read half-written. Deletions are reported after the same delay.

Native notifications (inotify, FSEvents, ReadDirectoryChangesW) are used where they work; network
file systems, whose changes made by other machines never reach them, are polled.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from indexer._paths import catalog_path, within
from indexer.errors import WatchError
from indexer.scan import ScanRules, _folder_accepted, _walk

logger = logging.getLogger(__name__)

ChangeHandler = Callable[[set[str], set[str]], None]

DEFAULT_POLL_INTERVAL = 30.0  # seconds between snapshots of a network root: each one stats every file there
MAX_TICK_SECONDS = 0.25  # how often pending files are checked, at most (smaller for a short settle time)
MIN_TICK_SECONDS = 0.02
PROC_MOUNTS = "/proc/mounts"

# File systems whose changes made elsewhere are not seen by inotify: network shares and VM host folders.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smbfs", "smb3", "afpfs", "ncpfs", "afs", "coda", "9p", "virtiofs",
        "vboxsf", "davfs", "ceph", "glusterfs", "lustre", "gpfs", "sshfs",
        "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.glusterfs", "fuse.ceph",
        "fuse.davfs2", "fuse.vmhgfs-fuse", "fuse.smbnetfs", "fuse.curlftpfs",
    }
)  # fmt: skip

# What we subscribe to: not opened/closed-without-writing, which our own reading of photos causes.
_EVENT_FILTER = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileAttribEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]

_Signature = tuple[int, int]  # (size, mtime_ns), or (-1, errno) when the file cannot be stat'ed


def needs_polling(path: str | Path) -> bool:
    """Whether ``path`` lies on a network file system (judged from /proc/mounts; False off Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open(PROC_MOUNTS, encoding="utf-8", errors="surrogateescape") as mounts:
            lines = mounts.read().splitlines()
    except OSError:
        return False
    target = os.path.realpath(path)
    best, fstype = "", ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = _unescape_mount(fields[1])
        # ">=": a later mount on the same point hides the earlier one
        if within(target, [mount_point]) and len(mount_point) >= len(best):
            best, fstype = mount_point, fields[2]
    return fstype in NETWORK_FILESYSTEMS


class Watcher:
    """Watch ``roots`` (folders) and call ``on_changes(changed, deleted)`` with settled batches.

    ``changed`` holds files created or modified (by content, time or permissions: the caller
    compares with what it knows), ``deleted`` files removed. A folder that is removed or moved
    away is reported as the folder's path in ``deleted``: treat it as a prefix (everything the
    catalog has under it is gone), and apply ``deleted`` before ``changed``, since a batch may
    hold a removed folder and a new file inside a folder of the same name. A folder moved or
    copied in is reported as the files in it. Paths are absolute, under the roots' real paths
    (``_paths.catalog_path``), like the catalog's; a name that is not valid UTF-8 comes as
    ``os.fsdecode`` gives it.

    ``on_changes`` runs on one background thread, never concurrently with itself; an exception
    it raises is logged and the watcher goes on. Roots on network file systems (see
    ``needs_polling``), and every root when ``poll_interval`` is given, are polled every
    ``poll_interval`` seconds (default ``DEFAULT_POLL_INTERVAL``); starting a polled root takes a
    first snapshot of it, one stat per file. Changes still settling when ``stop()`` is called are
    not reported: the next scan finds them.
    """

    def __init__(
        self,
        roots: Sequence[str | Path],
        on_changes: ChangeHandler,
        *,
        rules: ScanRules = ScanRules(),  # noqa: B008  (frozen: one shared default is safe)
        poll_interval: float | None = None,
        settle_seconds: float = 2.0,
    ) -> None:
        self.roots = [catalog_path(root) for root in roots]  # the catalog's spelling: a linked folder resolved
        for root in self.roots:
            if not os.path.isdir(root):
                raise WatchError(f"cannot watch {root}: it is not a folder or does not exist; check the path")
        self.rules = rules
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self._on_changes = on_changes
        self._tick_seconds = max(MIN_TICK_SECONDS, min(MAX_TICK_SECONDS, settle_seconds / 4))
        self._lock = threading.Lock()
        self._changed: dict[str, _Pending] = {}
        self._deleted: dict[str, float] = {}  # path -> time of its last event
        self._observers: list[BaseObserver] = []
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        """Start watching. Events that happen after this returns are seen."""
        if self._worker is not None:
            raise RuntimeError("Watcher.start() was already called")
        try:
            for root in self.roots:
                self._observers.append(self._start_observer(root))
        except BaseException:
            self._stop_observers()
            raise
        self._worker = threading.Thread(target=self._run, name="phototag-watch", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop watching and wait for the background threads (and a running ``on_changes``) to end."""
        self._stop_observers()
        self._stopping.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- observers (their threads call the _note_* methods) ------------------------------------

    def _start_observer(self, root: str) -> BaseObserver:
        polling = self.poll_interval is not None or needs_polling(root)
        observer = self._schedule(root, polling=polling)
        try:
            observer.start()
        except OSError as exc:
            if polling:
                raise WatchError(f"cannot watch {root}: {exc.strerror or exc}; check that it is readable") from exc
            # typically the inotify watch limit on a tree with very many folders
            logger.warning(
                "cannot use change notifications for %s (%s): polling it every %g s instead; on Linux, "
                "raising fs.inotify.max_user_watches lets notifications work",
                root,
                exc.strerror or exc,
                self.poll_interval or DEFAULT_POLL_INTERVAL,
            )
            observer = self._schedule(root, polling=True)
            observer.start()
        return observer

    def _schedule(self, root: str, *, polling: bool) -> BaseObserver:
        observer = PollingObserver(timeout=self.poll_interval or DEFAULT_POLL_INTERVAL) if polling else Observer()
        observer.schedule(_Handler(self, root), root, recursive=True, event_filter=_EVENT_FILTER)
        return observer

    def _stop_observers(self) -> None:
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            if observer.is_alive():
                observer.join()
        self._observers.clear()

    def _note_changed(self, paths: Sequence[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for path in paths:
                self._deleted.pop(path, None)
                pending = self._changed.get(path)
                if pending is None:
                    self._changed[path] = _Pending(last_event=now)
                else:
                    pending.last_event = now

    def _note_deleted(self, path: str, *, is_folder: bool) -> None:
        now = time.monotonic()
        with self._lock:
            self._changed.pop(path, None)
            if is_folder:
                prefix = path + os.sep
                for inside in [p for p in self._changed if p.startswith(prefix)]:
                    del self._changed[inside]
            self._deleted[path] = now

    # -- the worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self._tick_seconds):
            self._tick()
        self._tick()  # what had settled by the time stop() was called

    def _tick(self) -> None:
        with self._lock:
            pending = list(self._changed.items())
        now = time.monotonic()
        signatures = [self._signature(path) for path, _ in pending]  # outside the lock: may be slow on a NAS
        # A link below a root is not followed (see ScanRules): not reported at all, since a reported path becomes
        # a root of the indexer's pass, which would read what the link points to.
        links = {path for (path, _), signature in zip(pending, signatures, strict=True)
                 if signature is None and not self.rules.follow_symlinks and os.path.islink(path)}
        changed: set[str] = set()
        deleted: set[str] = set()
        with self._lock:
            for (path, entry), signature in zip(pending, signatures, strict=True):
                if self._changed.get(path) is not entry:
                    continue  # deleted (or replaced) while we were looking
                if signature is None:  # gone without an event yet, or no longer a plain file
                    del self._changed[path]
                    if path not in links:
                        self._deleted[path] = now
                elif signature != entry.signature:
                    entry.signature, entry.since = signature, now
                elif now - max(entry.since, entry.last_event) >= self.settle_seconds:
                    del self._changed[path]
                    changed.add(path)
            for path, when in list(self._deleted.items()):
                if now - when >= self.settle_seconds:
                    del self._deleted[path]
                    deleted.add(path)
        if changed or deleted:
            try:
                self._on_changes(changed, deleted)
            except Exception:
                logger.exception(
                    "the change handler failed on %d changed, %d deleted paths", len(changed), len(deleted)
                )

    def _signature(self, path: str) -> _Signature | None:
        try:
            st = os.stat(path, follow_symlinks=self.rules.follow_symlinks)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            return (-1, exc.errno or 0)  # reported as changed once settled: the reader records the error
        if not stat.S_ISREG(st.st_mode):
            return None
        return (st.st_size, st.st_mtime_ns)


@dataclass(slots=True)
class _Pending:
    last_event: float
    signature: _Signature | None = None
    since: float = 0.0


class _Handler(FileSystemEventHandler):
    """Turns one root's watchdog events into pending paths of the watcher."""

    def __init__(self, watcher: Watcher, root: str) -> None:
        self.watcher = watcher
        self.root = root

    def dispatch(self, event: FileSystemEvent) -> None:
        src, dest = os.fsdecode(event.src_path), os.fsdecode(event.dest_path)
        kind, rules = event.event_type, self.watcher.rules
        if not event.is_directory:
            if kind == "moved":
                if rules.accepts(src, self.root):
                    self.watcher._note_deleted(src, is_folder=False)
                if dest and rules.accepts(dest, self.root):
                    self.watcher._note_changed([dest])
            elif kind == "deleted":
                if rules.accepts(src, self.root):
                    self.watcher._note_deleted(src, is_folder=False)
            elif rules.accepts(src, self.root):  # created, modified, closed (after writing), attrib
                self.watcher._note_changed([src])
            return
        if kind in ("deleted", "moved") and src and src != self.root and _folder_accepted(rules, src, self.root):
            self.watcher._note_deleted(src, is_folder=True)
        added = dest if kind == "moved" else src if kind == "created" else ""
        if added and (rules.follow_symlinks or not os.path.islink(added)) and _folder_accepted(rules, added, self.root):
            # Files already inside a folder moved or copied in raise no events of their own.
            found = _walk(added, self.root, rules, on_error=_log_error)
            self.watcher._note_changed([file.path for file in found])


def _log_error(path: str, exc: OSError) -> None:
    logger.warning("cannot read %s (%s): its changes are not followed; check its permissions", path, exc.strerror)


def _unescape_mount(field: str) -> str:
    """/proc/mounts writes a space as \\040, a tab as \\011 and so on."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)
