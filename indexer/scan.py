"""Find photo files under library roots, fast: one ``os.scandir`` per folder, one stat per photo.

Patterns are shell globs (``fnmatch``), case-insensitive. A pattern without ``/`` is matched
against a file's or folder's name at any depth (``@eaDir``, ``*.xmp``); a pattern with ``/`` is
matched against the path relative to the root, written with ``/`` (``2019/raw``, ``/scans/*``,
where a leading ``/`` just anchors at the root and ``*`` also crosses ``/``).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from pathlib import Path

from indexer.errors import ScanError
from indexer.schema import recorded_ns

logger = logging.getLogger(__name__)

RAW_EXTENSIONS: frozenset[str] = frozenset(
    {".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw"}
)  # camera RAW  # fmt: skip
PHOTO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".heic", ".heif", ".hif", ".avif", ".mpo",
        ".tif", ".tiff", ".gif", ".bmp",
        *RAW_EXTENSIONS,
    }
)  # fmt: skip

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".*",  # hidden files and folders (.thumbnails, .DS_Store, ._resource forks, .Trash-1000, ...)
    "@eaDir",  # Synology thumbnails
    ".thumbnails",
    "#recycle",  # Synology recycle bin
    "#snapshot",  # Synology snapshots
    "$RECYCLE.BIN",  # Windows recycle bin
    "System Volume Information",
    "lost+found",
    "*.xmp",  # sidecars (ours and other tools')
    "phototag-catalog",  # a catalog kept inside the library
)

ErrorHandler = Callable[[str, OSError], None]


@dataclass(frozen=True)
class ScanRules:
    """Which files under a root are photos to index.

    ``include``: when non-empty, a file must match one of these (folders are always descended).
    ``exclude``: a file or folder that matches any is skipped; an excluded folder is not descended.
    ``extensions``: lower-case suffixes with the dot. ``follow_symlinks``: when False, symbolic
    links below a root are skipped, so nothing outside the library folders is read through a link
    (a root itself may be a link: the indexer records it under its real path, see
    ``_paths.catalog_path``); when True they are followed, and a folder reached twice (a loop, or
    two roots that overlap) is scanned once.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    extensions: frozenset[str] = PHOTO_EXTENSIONS
    follow_symlinks: bool = False

    def with_patterns(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> ScanRules:
        """A copy with the user's patterns added to these (the defaults stay in force)."""
        return replace(self, include=self.include + tuple(include), exclude=self.exclude + tuple(exclude))

    def accepts(self, path: str | Path, root: str | Path) -> bool:
        """Whether ``scan(root)`` would report the file at ``path``, judged from names alone.

        No disk access, so it also answers for a file that was just deleted; ``scan`` in addition
        only reports regular files (and skips symbolic links unless ``follow_symlinks``).
        A path outside ``root`` is not accepted.
        """
        parts = _parts_below(path, root)
        if parts is None or not _folders_accepted(self, parts[:-1]):
            return False
        return _Rules.of(self).accepts_file(parts[-1], "/".join(parts))


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A photo file found by ``scan``: ``path`` is absolute and normalised (links not resolved; give
    ``_paths.catalog_path`` roots for the catalog's spelling); ``mtime_ns`` as the catalog records it."""

    path: str
    size: int
    mtime_ns: int


_DEFAULT_RULES = ScanRules()


def scan(
    roots: Sequence[str | Path],
    rules: ScanRules = _DEFAULT_RULES,
    on_error: ErrorHandler | None = None,
) -> Iterator[FoundFile]:
    """Yield the photo files under ``roots``, folder by folder in name order.

    Each folder's files come first (sorted by name), then its subfolders in name order, so two
    scans of an unchanged tree give the same sequence. A root that is a file is yielded if the
    rules accept its name. A folder or file that cannot be read is passed to
    ``on_error(path, exc)`` (by default logged as a warning) and the scan goes on. A root that
    does not exist raises ``ScanError`` here, at the call, before any iteration.
    """
    on_error = on_error or _log_error
    tops: list[tuple[str, os.stat_result | None]] = []
    for root in roots:
        top = os.path.abspath(root)
        try:
            tops.append((top, os.stat(top)))
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ScanError(f"library folder {top} does not exist: check the path (or mount the drive)") from exc
        except OSError:
            tops.append((top, None))  # unreadable: _walk stats it again and passes the error to on_error
    return _scan_tops(tops, rules, on_error)


def _scan_tops(
    tops: list[tuple[str, os.stat_result | None]], rules: ScanRules, on_error: ErrorHandler
) -> Iterator[FoundFile]:
    visited: set[tuple[int, int]] = set()
    for top, st in tops:
        if st is None or stat.S_ISDIR(st.st_mode):
            yield from _walk(top, top, rules, on_error, visited, st)
        elif stat.S_ISREG(st.st_mode):
            name = os.path.basename(top)
            if _Rules.of(rules).accepts_file(name, name):
                yield FoundFile(top, st.st_size, recorded_ns(st.st_mtime_ns))


def _walk(
    top: str,
    root: str,
    rules: ScanRules,
    on_error: ErrorHandler,
    visited: set[tuple[int, int]] | None = None,
    top_stat: os.stat_result | None = None,
) -> Iterator[FoundFile]:
    """Scan the folder ``top`` (inside ``root``, which the path patterns are relative to)."""
    compiled = _Rules.of(rules)
    exclude_name, exclude_path = compiled.exclude_name, compiled.exclude_path
    include_name, include_path = compiled.include_name, compiled.include_path
    include_any = include_name is not None or include_path is not None
    need_rel = exclude_path is not None or include_path is not None
    extensions, follow = rules.extensions, rules.follow_symlinks
    splitext = os.path.splitext
    visited = set() if visited is None else visited
    try:
        top_stat = top_stat or os.stat(top)
    except OSError as exc:
        on_error(top, exc)
        return
    top_key = (top_stat.st_dev, top_stat.st_ino)
    if top_key in visited:
        return
    visited.add(top_key)
    rel_top = "" if top == root else os.path.relpath(top, root).replace(os.sep, "/") + "/"
    stack: list[tuple[str, str]] = [(top, rel_top)]  # (folder, its path relative to root + "/")
    while stack:
        folder, rel_prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)  # read it all now, so no folder stays open while the caller works
        except (FileNotFoundError, NotADirectoryError) as exc:
            if folder != top:
                continue  # removed, or replaced by a file, since its parent was listed: nothing to report
            on_error(folder, exc)
            continue
        except OSError as exc:
            on_error(folder, exc)
            continue
        entries.sort(key=attrgetter("name"))
        subfolders: list[tuple[str, str]] = []
        for entry in entries:
            name = entry.name
            if exclude_name is not None and exclude_name(name):
                continue
            rel = rel_prefix + name if need_rel else name
            if exclude_path is not None and exclude_path(rel):
                continue
            try:
                if entry.is_dir(follow_symlinks=follow):
                    st = entry.stat(follow_symlinks=follow)
                    key = (st.st_dev, st.st_ino)
                    if key not in visited:  # a symlink loop, or a folder of an overlapping root
                        visited.add(key)
                        subfolders.append((entry.path, rel + "/"))
                    continue
                if splitext(name)[1].lower() not in extensions or not entry.is_file(follow_symlinks=follow):
                    continue
                if include_any and not (
                    (include_name is not None and include_name(name))
                    or (include_path is not None and include_path(rel))
                ):
                    continue
                st = entry.stat(follow_symlinks=follow)
            except FileNotFoundError:
                continue  # removed while we were listing: nothing to report
            except OSError as exc:
                on_error(entry.path, exc)
                continue
            yield FoundFile(entry.path, st.st_size, recorded_ns(st.st_mtime_ns))
        stack.extend(reversed(subfolders))


def _log_error(path: str, exc: OSError) -> None:
    logger.warning("cannot read %s (%s): skipped; check its permissions", path, exc.strerror or exc)


Matcher = Callable[[str], object]


@functools.lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> Matcher | None:
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns), re.IGNORECASE).match


class _Rules:
    """The patterns of a ScanRules, compiled once into a name matcher and a path matcher each."""

    def __init__(self, rules: ScanRules) -> None:
        self.extensions = rules.extensions
        self.exclude_name, self.exclude_path = _split(rules.exclude)
        self.include_name, self.include_path = _split(rules.include)

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def of(rules: ScanRules) -> _Rules:
        return _Rules(rules)

    def excludes(self, name: str, rel: str) -> bool:
        return bool(
            (self.exclude_name is not None and self.exclude_name(name))
            or (self.exclude_path is not None and self.exclude_path(rel))
        )

    def accepts_file(self, name: str, rel: str) -> bool:
        if self.excludes(name, rel) or os.path.splitext(name)[1].lower() not in self.extensions:
            return False
        if self.include_name is None and self.include_path is None:
            return True
        return bool(
            (self.include_name is not None and self.include_name(name))
            or (self.include_path is not None and self.include_path(rel))
        )


def _split(patterns: tuple[str, ...]) -> tuple[Matcher | None, Matcher | None]:
    names: list[str] = []
    paths: list[str] = []
    for pattern in patterns:
        pattern = pattern.replace(os.sep, "/").rstrip("/")
        if "/" in pattern:
            paths.append(pattern.lstrip("/"))
        elif pattern:
            names.append(pattern)
    return _compile(tuple(names)), _compile(tuple(paths))


def _parts_below(path: str | Path, root: str | Path) -> list[str] | None:
    """The names from ``root`` down to ``path`` (just the name when they are the same), None if outside."""
    path, root = os.path.abspath(path), os.path.abspath(root)
    if path == root:
        return [os.path.basename(path)]
    rel = os.path.relpath(path, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return rel.split(os.sep)


def _folders_accepted(rules: ScanRules, parts: list[str]) -> bool:
    """Whether ``scan`` descends through the folders ``parts`` (names below a root)."""
    compiled = _Rules.of(rules)
    return not any(compiled.excludes(parts[depth], "/".join(parts[: depth + 1])) for depth in range(len(parts)))


def _folder_accepted(rules: ScanRules, path: str | Path, root: str | Path) -> bool:
    """Whether ``scan(root)`` descends into the folder ``path`` (True for the root itself)."""
    if os.path.abspath(path) == os.path.abspath(root):
        return True
    parts = _parts_below(path, root)
    return parts is not None and _folders_accepted(rules, parts)
