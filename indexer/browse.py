"""Read-only queries for browsing a catalog: the photo list of a grid, one photo's facts, the tag names.

The desktop app is built on these (it never talks SQL itself); they only read, so they never take the
writer lock and run beside an index pass. Each call is one short read transaction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from indexer._paths import spellings
from indexer.catalog import Catalog
from indexer.errors import IndexerError
from indexer.index import under
from indexer.schema import MISSING, Photo, PhotoTag, Run, Tag

SORTS = ("date", "path")
_IDS_PER_QUERY = 500  # well below SQLite's limit on bound parameters


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
                include_missing: bool = False) -> list[PhotoRow]:
    """Every photo under ``roots`` (all of them when None), newest first (``sort="date"``, undated last)
    or by path. Missing files are left out unless ``include_missing``; failed ones are kept (they show
    what went wrong)."""
    if sort not in SORTS:
        raise IndexerError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    statement = select(*_ROW_COLUMNS)
    if roots is not None:
        if not roots:
            return []
        statement = statement.where(under(Photo.path, [name for root in roots for name in spellings(root)]))
    if not include_missing:
        statement = statement.where(Photo.status != MISSING)
    if sort == "date":
        statement = statement.order_by(Photo.taken_at.is_(None), Photo.taken_at.desc(), Photo.path)
    else:
        statement = statement.order_by(Photo.path)
    with catalog.session() as session:
        return [PhotoRow(*row) for row in session.execute(statement)]


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
