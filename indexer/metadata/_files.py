"""Durable file plumbing for metadata writes: staged atomic replacement, fsyncs, read-only checks.

A change to a file is two steps so that several files can change together: :func:`stage` writes
the new bytes to a hidden temporary file in the same folder (same mode, owner where possible, the
old mtime if asked) and fsyncs it; :meth:`Staged.commit` renames it over the target and fsyncs the
folder. Until the rename the original is untouched; after it the new file is complete. A crash in
between can leave only the hidden temporary (``.NAME.phototag-XXXXXXXX.tmp``), safe to delete.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from indexer._durable import fsync_folder
from indexer.metadata.errors import FileSkipped
from indexer.pipeline import bytes_hash, content_hash

_READ_ONLY = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL = {errno.ENOSPC, errno.EDQUOT}
TEMP_MARK = ".phototag-"


def file_hash(path: Path) -> str:
    """The catalog's content hash of a file."""
    return content_hash(str(path))


def real(path: Path) -> Path:
    """The file a path names, through symlinks: renaming over a symlink would replace the link."""
    return Path(os.path.realpath(path))


def skipped_for(exc: OSError, path: Path, doing: str) -> FileSkipped:
    """An OSError as the per-file report says it: read-only, disk full, or the error itself."""
    reason = ("read_only" if exc.errno in _READ_ONLY else "disk_full" if exc.errno in _FULL else "io_error")
    advice = {"read_only": "make it writable and run again",
              "disk_full": "free some space and run again", "io_error": "check the disk and run again"}[reason]
    return FileSkipped(reason, f"{path}: cannot {doing} ({exc.strerror or exc}); {advice}")


def check_writable(target: Path) -> None:
    """Refuse a file, or the folder a new file goes in, that is read-only — by its permission bits
    too, so a file someone made read-only stays untouched even for root.

    Raises:
        FileSkipped("read_only")
    """
    folder = target.parent
    for path, what in ((target, "file"), (folder, "folder")):
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise skipped_for(exc, path, "read it") from None
        if not (mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(path, os.W_OK):
            raise FileSkipped("read_only", f"{path}: the {what} is read-only; make it writable to write "
                                           "metadata there")
    try:
        if hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY:
            raise FileSkipped("read_only", f"{folder}: on a read-only file system")
    except OSError:
        pass  # cannot tell: writing will say


def write_durably(path: Path, data: bytes, mode: int = 0o600, *, append: bool = False) -> None:
    """Write a new file (failing if it exists), or append to one, and fsync it: for the journal."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_EXCL)
    descriptor = os.open(path, flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass
class Staged:
    """New bytes for ``target``, complete and fsynced in ``temp``, waiting for :meth:`commit`."""

    target: Path
    temp: Path
    digest: str

    def commit(self) -> None:
        os.replace(self.temp, self.target)
        fsync_folder(self.target.parent)

    def discard(self) -> None:
        try:
            self.temp.unlink()
        except FileNotFoundError:
            pass


def stage(target: Path, data: bytes, *, like: os.stat_result | None = None, mode: int | None = None,
          owner: tuple[int, int] | None = None, mtime_ns: int | None = None) -> Staged:
    """Write ``data`` to a temporary file next to ``target``, fsynced, with the permission bits and
    owner of ``like`` (or the given ``mode`` and ``owner``; the owner only where allowed) and the
    given mtime. A new file (none of them) gets 0o666 less the umask.

    Raises:
        OSError: as the file system reports it (read-only, full, ...); nothing is left behind.
    """
    temp = target.with_name(f".{target.name}{TEMP_MARK}{secrets.token_hex(4)}.tmp")
    if like is not None:
        mode = stat.S_IMODE(like.st_mode) if mode is None else mode
        owner = (like.st_uid, like.st_gid) if owner is None else owner
    try:
        write_durably(temp, data, 0o666 if mode is None else 0o600)  # the umask applies to a fresh file
        if mode is not None:
            os.chmod(temp, mode)
        if owner is not None and hasattr(os, "chown") and owner != (os.getuid(), os.getgid()):
            try:
                os.chown(temp, *owner)
            except OSError:
                pass  # not allowed: the file becomes ours, as any editor would leave it
        if mtime_ns is not None:
            os.utime(temp, ns=(mtime_ns, mtime_ns))
    except BaseException:
        try:
            temp.unlink()
        except OSError:
            pass
        raise
    return Staged(target, temp, bytes_hash(data))

