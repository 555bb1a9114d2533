"""Read-only queries for browsing a catalog: the photo list of a grid, one photo's facts, the tag names.

The desktop app is built on these (it never talks SQL itself); they only read, so they never take the
writer lock and run beside an index pass. Each call is one short read transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import and_, false, func, or_, select

from indexer._paths import folder_prefix, spellings
from indexer.catalog import Catalog
from indexer.errors import IndexerError
from indexer.schema import MISSING, Photo, PhotoTag, Run, Tag

SORTS = ("date", "path")
_IDS_PER_QUERY = 500  # well below SQLite's limit on bound parameters
# From this offset on, a date listing finds where to start reading through the date index alone (a covering scan:
# ~20 ms for 500,000 photos, where skipping them row by row reads each photo's row: ~0.5-1 s).
_ANCHOR_FROM = 2_000


@dataclass(frozen=True, slots=True)
class PhotoRow:
    """What a grid needs of one photo: identity, file, content hash (a thumbnail key) and date."""

    id: int
    path: str
    content_hash: str | None
    mtime_ns: int
    status: str
    taken_at: datetime | None


_ROW_COLUMNS = (Photo.id, Photo.path, Photo.content_hash, Photo.mtime_ns, Photo.status, Photo.taken_at)


def list_photos(catalog: Catalog, *, roots: Sequence[str | os.PathLike[str]] | None = None, sort: str = "date",
                include_missing: bool = False, limit: int | None = None, offset: int = 0,
                after: PhotoRow | None = None, reverse: bool = False) -> list[PhotoRow]:
    """Every photo under ``roots`` (all of them when None), newest first (``sort="date"``, undated last)
    or by path; ``offset`` of them skipped, then the first ``limit`` when given. Missing files are left out unless
    ``include_missing``; failed ones are kept (they show what went wrong). A large ``offset`` into the date order
    costs about what a small one does (see :func:`_date_anchor`).

    Keyset paging: with ``after`` (a photo of this listing), only the photos that come after it, read down the sort's
    index from it — a page costs its rows and the ``offset`` skipped, not where it stands (at 1M photos ~2 ms a
    page, where an OFFSET to the middle reads half a million rows). ``reverse``: the listing from its end backwards
    (from ``after`` backwards, with it), in that order."""
    chunks = _read(catalog, select(*_ROW_COLUMNS), lambda result: result.all(), roots=roots, sort=sort,
                   include_missing=include_missing, limit=limit, offset=offset, after=after, reverse=reverse)
    return [PhotoRow(*row) for chunk in chunks for row in chunk]


def list_photo_ids(catalog: Catalog, *, roots: Sequence[str | os.PathLike[str]] | None = None, sort: str = "date",
                   include_missing: bool = False, limit: int | None = None, offset: int = 0,
                   after: PhotoRow | None = None, reverse: bool = False) -> np.ndarray:
    """The ids of :func:`list_photos`' photos, in its order, as an int64 array (8 bytes a photo, no row objects)."""

    def ids(result: Any) -> np.ndarray:
        cursor = cast(sqlite3.Cursor, result.cursor)  # iterable; SQLAlchemy's DBAPICursor does not say so
        return np.fromiter((row[0] for row in cursor), dtype=np.int64)

    chunks = _read(catalog, select(Photo.id), ids, roots=roots, sort=sort, include_missing=include_missing,
                   limit=limit, offset=offset, after=after, reverse=reverse)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


def listing_position(catalog: Catalog, photo_id: int, *, roots: Sequence[str | os.PathLike[str]] | None = None,
                     sort: str = "date", include_missing: bool = False) -> int | None:
    """Where ``photo_id`` stands in :func:`list_photos`' order (None: not listed there): the photos before it,
    counted through the sort's index (by date: those of its own date, and the newer ones through the date index
    alone)."""
    with catalog.session() as session:
        found = session.execute(_listing(select(*_ROW_COLUMNS).where(Photo.id == photo_id), roots, sort,
                                         include_missing)).first()
        if found is None:
            return None
        row = PhotoRow(*found)
        same_date, *newer = _beyond(row, sort, reverse=True)  # by path: one range
        before = session.scalar(_counting(same_date, roots, sort, include_missing)) or 0
        return before + (_listed_newer(session, row.taken_at, _left_out(roots, include_missing)) if newer else 0)


def _read(catalog: Catalog, statement: Any, fetch: Callable[[Any], Any], *,
          roots: Sequence[str | os.PathLike[str]] | None, sort: str, include_missing: bool, limit: int | None,
          offset: int, after: PhotoRow | None, reverse: bool) -> list[Any]:
    """The listing's rows (``statement``'s columns) for :func:`list_photos`, as ``fetch``'s chunks (``fetch``
    turns a query's result into a sized chunk). From ``after`` on, the listing is a few ranges of the sort's index,
    read one after the other (one read transaction), ``offset`` skipped across them."""
    chunks, skip, left = [], offset, limit
    with catalog.session() as session:
        if sort == "date" and after is None and not reverse and skip >= _ANCHOR_FROM and (roots is None or roots):
            after, before = _date_anchor(session, skip, _left_out(roots, include_missing))
            skip -= before
        for condition in [None] if after is None else _beyond(after, sort, reverse):
            if left is not None and left <= 0:
                break
            query = statement if condition is None else statement.where(condition)
            query = _listing(query, roots, sort, include_missing, reverse=reverse).offset(skip).limit(left)
            result = session.connection().execute(query)
            try:
                chunk = fetch(result)
            finally:
                result.close()
            if not len(chunk) and skip:  # the offset passes this range: skip its photos, then read on
                skip -= session.scalar(_counting(condition, roots, sort, include_missing)) or 0
                continue
            skip = 0
            chunks.append(chunk)
            left = None if left is None else left - len(chunk)
    return chunks


def _beyond(row: PhotoRow, sort: str, reverse: bool) -> list[Any]:
    """Conditions for the photos after ``row`` in the listing (before it with ``reverse``), as index ranges in
    listing order: an OR of them would have SQLite scan the listing from its start."""
    further_path = Photo.path < row.path if reverse else Photo.path > row.path
    if sort != "date":
        return [further_path]
    if row.taken_at is None:  # undated photos come last
        return [and_(Photo.taken_at.is_(None), further_path)] + ([Photo.taken_at.is_not(None)] if reverse else [])
    further = Photo.taken_at > row.taken_at if reverse else Photo.taken_at < row.taken_at
    return [and_(Photo.taken_at == row.taken_at, further_path), further] + ([] if reverse else
                                                                             [Photo.taken_at.is_(None)])


def _date_anchor(session: Any, offset: int, left_out: Any) -> tuple[PhotoRow | None, int]:
    """Where to read the date listing's photo at ``offset`` from: a key just before a date's photos (``after`` for
    :func:`_beyond`) at or before that photo, and how many listed photos come before that date; (None, 0): from the
    start. Found through the date index alone — the date at a raw position (a covering scan), the photos newer than
    it counted there less the left-out ones — moving the raw position on by the photos still short, a few times."""
    anchor: tuple[PhotoRow | None, int] = (None, 0)
    raw = offset
    for _ in range(4):
        found = session.execute(select(Photo.taken_at).order_by(Photo.taken_at.desc()).offset(raw).limit(1)).first()
        if found is None:
            break
        before = _listed_newer(session, found[0], left_out)
        if before > offset:  # past it (a date's photos before the raw position): keep the last place found
            break
        anchor = (PhotoRow(0, "", None, 0, "", found[0]), before)  # path "": before every photo of that date
        if offset - before < _ANCHOR_FROM:
            break
        raw += offset - before
    return anchor


def _listed_newer(session: Any, taken_at: datetime | None, left_out: Any) -> int:
    """Listed photos newer than ``taken_at`` (None: the dated ones), counted on the date index alone less the
    left-out ones (few, read through their indexes)."""
    newer = Photo.taken_at.is_not(None) if taken_at is None else Photo.taken_at > taken_at
    count = session.scalar(select(func.count()).select_from(Photo).where(newer)) or 0
    if left_out is not None:
        dates = session.scalars(select(Photo.taken_at).where(left_out))
        count -= sum(1 for date in dates if date is not None and (taken_at is None or date > taken_at))
    return count


def _left_out(roots: Sequence[str | os.PathLike[str]] | None, include_missing: bool) -> Any:
    """SQL condition: a photo the listing leaves out (missing; under none of ``roots``); None: none is."""
    left_out = [Photo.status == MISSING] if not include_missing else []
    if roots is not None:
        left_out.append(_outside(Photo.path, [name for root in roots for name in spellings(root)]))
    return or_(*left_out) if left_out else None


def _counting(condition: Any, roots: Sequence[str | os.PathLike[str]] | None, sort: str,
              include_missing: bool) -> Any:
    """How many photos of the listing meet ``condition`` (a SELECT)."""
    statement = select(func.count()).select_from(Photo)
    statement = statement if condition is None else statement.where(condition)
    return _listing(statement, roots, sort, include_missing).order_by(None)


def count_photos(catalog: Catalog, *, roots: Sequence[str | os.PathLike[str]] | None = None,
                 include_missing: bool = False) -> int:
    """How many photos :func:`list_photos` lists, counted without visiting them: all the catalog's photos less the
    missing ones and those outside ``roots`` (both few, both read through an index)."""
    left_out = _left_out(roots, include_missing)
    with catalog.session() as session:
        total = session.scalar(select(func.count()).select_from(Photo)) or 0
        if left_out is not None:
            total -= session.scalar(select(func.count()).where(left_out)) or 0
    return total


def photo_ids_outside(catalog: Catalog, roots: Sequence[str | os.PathLike[str]]) -> np.ndarray:
    """Ids of the photos under none of ``roots`` (missing ones included): read through the path index, so the cost
    is that of the photos outside, not of the library."""
    condition = _outside(Photo.path, [name for root in roots for name in spellings(root)])
    with catalog.session() as session:
        return np.fromiter(session.scalars(select(Photo.id).where(condition)), dtype=np.int64)


def _listing(statement: Any, roots: Sequence[str | os.PathLike[str]] | None, sort: str, include_missing: bool, *,
             reverse: bool = False) -> Any:
    """``statement`` (a SELECT from photos) limited to ``roots`` and ordered by ``sort`` (backwards with
    ``reverse``), as :func:`list_photos`."""
    if sort not in SORTS:
        raise IndexerError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    if roots is not None and not roots:
        statement = statement.where(false())
    elif roots is not None:
        # As "not one of the photos outside the roots" (few, found through the path index) rather than "under the
        # roots": SQLite then reads the photos down the date index, and a first page stops after a page (at 1M
        # photos ~1 ms, where the path ranges had every photo's row read and sorted first, ~3 s).
        outside = select(Photo.id).where(_outside(Photo.path, [name for root in roots for name in spellings(root)]))
        statement = statement.where(Photo.id.not_in(outside))
    if not include_missing:
        statement = statement.where(Photo.status != MISSING)
    if sort == "date":
        # Newest first, undated last: SQLite sorts NULL below every date, so DESC puts them last (and the
        # date index can give the order).
        if reverse:
            return statement.order_by(Photo.taken_at.asc(), Photo.path.desc())
        return statement.order_by(Photo.taken_at.desc(), Photo.path)
    return statement.order_by(Photo.path.desc() if reverse else Photo.path)


def _outside(column: Any, roots: Sequence[str]) -> Any:
    """SQL condition: ``column`` is under none of ``roots`` (``index.under``'s complement), written as the ranges
    between the roots so that SQLite reads them from the path index instead of testing every path."""
    if not roots:
        return column.is_not(None)
    # What under() matches, as (low, low included, high, high included): the root itself, and the paths below it.
    spans = sorted([(root, True, root, True) for root in roots]
                   + [(folder_prefix(root), True, folder_prefix(root)[:-1] + chr(ord(os.sep) + 1), False)
                      for root in roots], key=lambda span: (span[0], not span[1]))
    merged = [spans[0]]
    for low, low_in, high, high_in in spans[1:]:
        last_low, last_low_in, last_high, last_high_in = merged[-1]
        if low < last_high or (low == last_high and (low_in or last_high_in)):
            if high > last_high or (high == last_high and high_in):
                merged[-1] = (last_low, last_low_in, high, high_in)
        else:
            merged.append((low, low_in, high, high_in))
    gaps = [column < merged[0][0] if merged[0][1] else column <= merged[0][0]]
    for (_, _, high, high_in), (low, low_in, _, _) in zip(merged, merged[1:], strict=False):
        gaps.append(and_(column > high if high_in else column >= high, column < low if low_in else column <= low))
    high, high_in = merged[-1][2], merged[-1][3]
    gaps.append(column > high if high_in else column >= high)
    return or_(*gaps)


def photo_rows(catalog: Catalog, photo_ids: Iterable[int]) -> list[PhotoRow]:
    """The rows of ``photo_ids`` in the order given (ids the catalog does not know are left out)."""
    ids = list(photo_ids)
    found: dict[int, PhotoRow] = {}
    with catalog.session() as session:
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            for row in session.execute(select(*_ROW_COLUMNS).where(Photo.id.in_(chunk))):
                found[row[0]] = PhotoRow(*row)
    return [found[i] for i in ids if i in found]


def photo_details(catalog: Catalog, photo_id: int) -> dict[str, Any] | None:
    """One photo's file facts and EXIF summary (None when the id is unknown)."""
    with catalog.session() as session:
        photo = session.get(Photo, photo_id)
        if photo is None:
            return None
        return {
            "id": photo.id, "path": photo.path, "status": photo.status, "size": photo.size,
            "format": photo.format, "width": photo.width, "height": photo.height,
            "orientation": photo.orientation,
            "taken_at": photo.taken_at.isoformat(sep=" ") if photo.taken_at else None,
            "camera": " ".join(x for x in (photo.camera_make, photo.camera_model) if x) or None,
            "gps": (photo.gps_lat, photo.gps_lon) if photo.gps_lat is not None and photo.gps_lon is not None else None,
            "error_reason": photo.error_reason, "error": photo.error_message, "attempts": photo.attempts,
            "tagger_version": photo.tagger_version, "embedder_version": photo.embedder_version,
        }


def tag_names(catalog: Catalog, *, used_only: bool = False) -> list[tuple[str, str | None, float | None]]:
    """The vocabulary as ``(name, Chinese name, threshold)``, by name; with ``used_only``, only tags
    that some photo carries (for completion in a large vocabulary)."""
    statement = select(Tag.name, Tag.name_zh, Tag.threshold).order_by(Tag.name)
    if used_only:
        statement = statement.where(select(PhotoTag.tag_id).where(PhotoTag.tag_id == Tag.id).exists())
    with catalog.session() as session:
        return [(name, zh, threshold) for name, zh, threshold in session.execute(statement)]


def library_roots(catalog: Catalog) -> list[str]:
    """The folders past index passes ran over, most recent first; single files (a watcher's passes)
    and folders inside another listed one are left out."""
    with catalog.session() as session:
        rows = session.execute(select(Run.roots).order_by(Run.id.desc())).scalars().all()
    seen: list[str] = []
    for roots in rows:
        try:
            items = json.loads(roots)
        except ValueError:
            continue
        for root in items:
            if isinstance(root, str) and root not in seen and not os.path.isfile(root):
                seen.append(root)
    return [root for root in seen
            if not any(other != root and root.startswith(other.rstrip(os.sep) + os.sep) for other in seen)]
