"""Safe file plumbing for reading and writing photos' metadata: one rule for every file, and durable,
staged atomic replacement.

**The rule.** A file Phototag reads or writes next to a photo (its sidecar, the photo itself, a file
undo restores) is an entry of the photo's folder, named without any ``/``, and is:

- never reached through a symbolic link: it is opened ``O_NOFOLLOW``, relative to the folder
  (``dir_fd``), and the folder itself must be where the catalog recorded it — its real path is its
  path, and the open folder is the folder at that path (:meth:`Folder.open`);
- never anything but a regular file: opened ``O_NONBLOCK`` (a FIFO or a device never blocks the
  open) and checked by ``fstat``; a FIFO, device, socket or folder is refused before it is opened
  at all (opening some devices does something);
- refused with a typed :class:`~indexer.errors.FileSkipped` — reason ``link`` or
  ``not_a_file`` — that names the file, so the photo is skipped and reported, and the run goes on.

**Staged writes.** A change to a file is two steps so that several files can change together:
:meth:`Folder.stage` writes the new bytes to a hidden temporary file in the same folder (created
``O_EXCL | O_NOFOLLOW``; same mode, owner where possible, the old mtime if asked) and fsyncs it;
:meth:`Staged.commit` renames it over the target, both relative to the open folder, and fsyncs the
folder. Until the rename the original is untouched; after it the new file is complete. A crash in
between can leave only the hidden temporary (``.NAME.phototag-XXXXXXXX.tmp``), which the writer
removes the next time it writes in that folder (:meth:`Folder.clean_temporaries`).

Where the OS has no ``dir_fd`` (Windows), the same calls go by full path.
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from indexer._durable import fsync_folder
from indexer.errors import FileSkipped
from indexer.pipeline import bytes_hash

_READ_ONLY = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL = {errno.ENOSPC, errno.EDQUOT}
TEMP_MARK = ".phototag-"
TEMP_NAME = re.compile(r"\..+\.phototag-[0-9a-f]{8}\.tmp", re.DOTALL)  # what stage() names its temporaries

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# A FIFO or device opens at once (and is then refused by fstat); no device becomes our terminal.
_READ = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | _CLOEXEC \
    | getattr(os, "O_BINARY", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | getattr(os, "O_BINARY", 0)
_DIR_FD = {os.open, os.stat, os.rename, os.unlink} <= os.supports_dir_fd  # os.replace is os.rename's twin
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}
_READ_CHUNK = 1 << 20
NAME_MAX = 255  # bytes in one name, on every file system Phototag meets (ext4, btrfs, ZFS, APFS, SMB, NFS)


def skipped_for(exc: OSError, path: Path, doing: str) -> FileSkipped:
    """An OSError as the per-file report says it: read-only, disk full, or the error itself."""
    reason = ("read_only" if exc.errno in _READ_ONLY else "disk_full" if exc.errno in _FULL else "io_error")
    advice = {"read_only": "make it writable and run again",
              "disk_full": "free some space and run again", "io_error": "check the disk and run again"}[reason]
    return FileSkipped(reason, f"{path}: cannot {doing} ({exc.strerror or exc}); {advice}")


def refuse_special(path: Path, info: os.stat_result) -> None:
    """The rule's check of what a name is (``lstat``, or ``fstat`` of an open file).

    Raises:
        FileSkipped("link" / "not_a_file")
    """
    if stat.S_ISREG(info.st_mode):
        return
    if stat.S_ISLNK(info.st_mode):
        try:
            to = f" (to {os.readlink(path)})"
        except OSError:
            to = ""
        raise FileSkipped("link", f"{path}: a symbolic link{to}; Phototag never reads or writes through links — "
                                  "put the file itself there, or remove the link; left as it is")
    kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
    raise FileSkipped("not_a_file", f"{path}: {kind}, not a file; left as it is — move it away and run again")


def read_regular(path: Path, limit: int | None = None) -> bytes | None:
    """The bytes of the regular file at ``path`` (None: there is none), by the module's rule; for the
    reader (a sidecar next to a photo being indexed): read through its folder opened as the catalog records
    it (:meth:`Folder.open`), so a folder swapped for a link since the scan is refused, not read through.

    Raises:
        FileSkipped("link" / "changed" / "not_a_file" / "too_large"), OSError
    """
    path = Path(path)
    try:
        folder = Folder.open(path.parent)
    except FileNotFoundError:
        return None
    with folder:
        found = folder.read(path.name, limit=limit)
    return None if found is None else found[0]


def check_regular(path: str | Path) -> os.stat_result:
    """The ``stat`` of ``path`` (through links) if it is a regular file; else OSError (as any unreadable file
    raises), so that what is not a file is never even opened: a path replaced by a FIFO or device since it
    was listed would hang the pass, and opening some devices does something. For photos, which the index
    pass opens by path (:func:`open_regular`; a decoder that takes only a path checks with this first)."""
    info = os.stat(path)
    _refuse_unless_regular(path, info.st_mode)
    return info


def open_regular(path: str | Path) -> io.BufferedReader:
    """A photo opened for reading without blocking (``O_NONBLOCK``), by :func:`check_regular`'s rule before it
    is opened and by ``fstat`` after (not swapped since). Through a link, as the scan's root may be one.

    Raises:
        OSError: gone, unreadable, or not a regular file.
    """
    check_regular(path)
    descriptor = os.open(path, _READ & ~_NOFOLLOW)
    try:
        _refuse_unless_regular(path, os.fstat(descriptor).st_mode)
    except BaseException:
        os.close(descriptor)
        raise
    return open(descriptor, "rb")  # noqa: SIM115 - the caller's context manager closes it


def _refuse_unless_regular(path: str | Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise OSError(errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL, f"not a regular file any more ({kind})",
                      os.fspath(path))


def write_durably(path: Path, data: bytes, mode: int = 0o600, *, append: bool = False) -> None:
    """Write a new file (failing if it exists), or append to one, and fsync it: for the journal. Never
    through a link."""
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC | (os.O_APPEND if append else os.O_EXCL)
    descriptor = os.open(path, flags, mode)
    try:
        _write_all(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Replace (or create) ``path`` with ``data`` atomically and durably (the journal's own files)."""
    with Folder.open(Path(path).parent, exact=False) as folder:
        folder.stage(Path(path).name, data, mode=mode).commit()


def fitted(name: str, extra: int = 0) -> str:
    """``name`` cut (at a character) so that ``extra`` more bytes still fit in the 255 bytes a file system
    allows one name."""
    raw, cut = os.fsencode(name), NAME_MAX - extra
    while 0 < cut < len(raw) and 0x80 <= raw[cut] < 0xC0:  # not inside a UTF-8 character
        cut -= 1
    return os.fsdecode(raw[:cut])


def _temporary_name(name: str) -> str:
    """``.NAME.phototag-XXXXXXXX.tmp``, NAME cut to fit (a 250-byte photo name has a 254-byte sidecar:
    its temporary must still be creatable)."""
    suffix = f"{TEMP_MARK}{secrets.token_hex(4)}.tmp"
    return f".{fitted(name, 1 + len(suffix))}{suffix}"


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


class Folder:
    """One folder, held open: every file in it is read, created, renamed and removed by name relative to
    it, by the module's rule. Use as a context manager (or :meth:`close` it)."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = Path(path)
        self.fd = fd  # None: calls go by full path

    @classmethod
    def open(cls, path: Path, *, exact: bool = True) -> Folder:
        """Open the folder at ``path``. With ``exact`` (a photo's folder, as the catalog records it: every
        link among its folders resolved), the folder must still be at exactly that path: not reached
        through a link planted since, and the folder opened is the one the path names now.

        Raises:
            FileSkipped("link"): ``path`` leads through a symbolic link now.
            OSError: it cannot be opened (gone, not a folder, permission denied).
        """
        path = Path(os.path.abspath(path))
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC) if _DIR_FD else None
        try:
            real = os.path.realpath(path)
            if exact and real != str(path):
                raise FileSkipped("link", f"{path}: this folder is reached through a symbolic link now ({real}); "
                                          "Phototag never writes through links — run 'phototag index' on the "
                                          "real folder; left as it is")
            if exact and fd is not None:
                opened, now = os.fstat(fd), os.stat(real)
                if (opened.st_dev, opened.st_ino) != (now.st_dev, now.st_ino):
                    raise FileSkipped("changed", f"{path}: this folder was replaced while it was being opened; "
                                                 "left as it is")
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        return cls(path, fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- naming --------------------------------------------------------------------------------
    def shown(self, name: str) -> Path:
        """The path of ``name`` in this folder, as messages and the journal show it."""
        return self.path / name

    def _at(self, name: str) -> str:
        if not name or name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name):
            raise ValueError(f"not a name in a folder: {name!r}")
        return name if self.fd is not None else str(self.path / name)

    # --- reading -------------------------------------------------------------------------------
    def entry(self, name: str) -> os.stat_result | None:
        """What ``name`` is (``lstat``: a link is a link); None when there is no such entry."""
        try:
            return os.stat(self._at(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def stat(self, name: str) -> os.stat_result:
        """``stat`` of ``name``, through a link (the photo's size and time, as the index recorded them)."""
        return os.stat(self._at(name), dir_fd=self.fd)

    def read(self, name: str, *, limit: int | None = None) -> tuple[bytes, os.stat_result] | None:
        """The bytes and ``fstat`` of the regular file ``name`` (None: there is no such entry), by the rule.

        Raises:
            FileSkipped("link" / "not_a_file"); FileSkipped("too_large") over ``limit`` bytes; OSError.
        """
        info = self.entry(name)
        if info is None:
            return None
        refuse_special(self.shown(name), info)
        try:
            descriptor = os.open(self._at(name), _READ, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
                raise FileSkipped("link", f"{self.shown(name)}: a symbolic link; Phototag never reads or writes "
                                          "through links; left as it is") from None
            raise
        try:
            info = os.fstat(descriptor)
            refuse_special(self.shown(name), info)
            if limit is not None and info.st_size > limit:
                raise FileSkipped("too_large", f"{self.shown(name)}: larger than {limit >> 20} MiB; left as it is")
            chunks, total = [], 0
            while chunk := os.read(descriptor, _READ_CHUNK):
                chunks.append(chunk)
                total += len(chunk)
                if limit is not None and total > limit:  # grew while being read
                    raise FileSkipped("too_large", f"{self.shown(name)}: larger than {limit >> 20} MiB; "
                                                   "left as it is")
            return b"".join(chunks), info
        finally:
            os.close(descriptor)

    # --- checking ------------------------------------------------------------------------------
    def check_writable(self, name: str) -> None:
        """Refuse a file, or this folder when the file is new, that is read-only — by its permission bits
        too, so a file someone made read-only stays untouched even for root.

        Raises:
            FileSkipped("read_only"), FileSkipped("link" / "not_a_file")
        """
        info = self.entry(name)
        if info is not None:
            refuse_special(self.shown(name), info)
        try:
            folder = os.fstat(self.fd) if self.fd is not None else os.stat(self.path)
        except OSError as exc:
            raise skipped_for(exc, self.path, "read it") from None
        for mode, path, what in ((info, self.shown(name), "file"), (folder, self.path, "folder")):
            if mode is None:
                continue
            if not (mode.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(path, os.W_OK):
                raise FileSkipped("read_only", f"{path}: the {what} is read-only; make it writable to write "
                                               "metadata there")
        try:
            if hasattr(os, "statvfs") and os.statvfs(self.fd if self.fd is not None else self.path).f_flag \
                    & os.ST_RDONLY:
                raise FileSkipped("read_only", f"{self.path}: on a read-only file system")
        except OSError:
            pass  # cannot tell: writing will say

    # --- writing -------------------------------------------------------------------------------
    def stage(self, name: str, data: bytes, *, like: os.stat_result | None = None, mode: int | None = None,
              owner: tuple[int, int] | None = None, mtime_ns: int | None = None) -> Staged:
        """Write ``data`` to a new temporary file next to ``name``, fsynced, with the permission bits and
        owner of ``like`` (or the given ``mode`` and ``owner``; the owner only where allowed) and the
        given mtime. A new file (none of them) gets 0o666 less the umask.

        Raises:
            OSError: as the file system reports it (read-only, full, ...); nothing is left behind.
        """
        temp = _temporary_name(name)
        if like is not None:
            mode = stat.S_IMODE(like.st_mode) if mode is None else mode
            owner = (like.st_uid, like.st_gid) if owner is None else owner
        descriptor = os.open(self._at(temp), _CREATE, 0o666 if mode is None else 0o600, dir_fd=self.fd)
        try:
            try:
                _write_all(descriptor, data)
                if mode is not None:
                    os.chmod(descriptor if os.chmod in os.supports_fd else self.shown(temp), mode)
                if owner is not None and hasattr(os, "fchown") and owner != (os.getuid(), os.getgid()):
                    try:
                        os.fchown(descriptor, *owner)
                    except OSError:
                        pass  # not allowed: the file becomes ours, as any editor would leave it
                if mtime_ns is not None:
                    os.utime(descriptor if os.utime in os.supports_fd else self.shown(temp), ns=(mtime_ns, mtime_ns))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except BaseException:
            self._unlink(temp)
            raise
        return Staged(self, name, temp, bytes_hash(data))

    def remove(self, name: str) -> None:
        """Delete the regular file ``name`` (never a link's target: a link is refused), durably.

        Raises:
            FileSkipped("link" / "not_a_file"), OSError
        """
        info = self.entry(name)
        if info is None:
            return
        refuse_special(self.shown(name), info)
        self._unlink(name, quiet=False)
        self.sync()

    def rename(self, source: str, target: str) -> None:
        """Rename ``source`` over ``target`` in this folder (a link at ``target`` is replaced, not followed)."""
        os.replace(self._at(source), self._at(target), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def sync(self) -> None:
        """Make the renames in this folder durable (a no-op where folders cannot be opened)."""
        if self.fd is None:
            fsync_folder(self.path)
            return
        try:
            os.fsync(self.fd)
        except OSError:
            pass

    def clean_temporaries(self, before_ns: int) -> list[str]:
        """Delete the temporaries :meth:`stage` left here in a run killed before it renamed them: entries
        named exactly as it names them, regular files (never a link or anything else), created
        (``ctime``, which nothing can set back) before ``before_ns`` — the start of the run holding the
        catalog's writer lock, so no writer of it can still be using them. Returns their names."""
        removed: list[str] = []
        try:
            entries = list(os.scandir(self.fd if self.fd is not None else self.path))
        except OSError:
            return removed
        for entry in entries:
            if not TEMP_NAME.fullmatch(entry.name):
                continue
            info = self.entry(entry.name)
            if info is not None and stat.S_ISREG(info.st_mode) and info.st_ctime_ns < before_ns:
                self._unlink(entry.name)
                removed.append(entry.name)
        return removed

    def _unlink(self, name: str, *, quiet: bool = True) -> None:
        try:
            os.unlink(self._at(name), dir_fd=self.fd)
        except OSError:
            if not quiet:
                raise


@dataclass
class Staged:
    """New bytes for ``name`` in ``folder``, complete and fsynced in ``temp``, waiting for :meth:`commit`."""

    folder: Folder
    name: str
    temp: str
    digest: str

    @property
    def target(self) -> Path:
        return self.folder.shown(self.name)

    def read_back(self) -> bytes:
        """The temporary's bytes, as the disk gives them back."""
        found = self.folder.read(self.temp)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "the temporary file is gone", str(self.folder.shown(self.temp)))
        return found[0]

    def commit(self) -> None:
        self.folder.rename(self.temp, self.name)
        self.folder.sync()

    def discard(self) -> None:
        self.folder._unlink(self.temp)
