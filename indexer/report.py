"""Read-only views of a catalog: status counts, failures, one photo's tags (CLI and GUI use these)."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from indexer._paths import spellings
from indexer.catalog import Catalog
from indexer.catalog_models import CatalogModels
from indexer.schema import FAILED, MISSING, PHOTO_STATUSES, Embedding, Photo, PhotoTag, Run, Tag


def photo_counts(catalog: Catalog) -> dict[str, int]:
    """Photos by status, counted from the status index alone: 0.5 s at 10M photos, where :func:`catalog_status`
    reads every photo row and every embedding (~15 s with the catalog in memory, a minute from disk). What the
    app shows after each pass."""
    with catalog.session() as session:
        found = dict(session.execute(select(Photo.status, func.count()).group_by(Photo.status)).tuples().all())
    return {status: found.get(status, 0) for status in PHOTO_STATUSES}


def catalog_status(catalog: Catalog) -> dict[str, Any]:
    """Counts by status, by model version, and how far indexing is with the catalog's models (``progress``):
    of the photos to index (not missing, not failed), how many have an embedding from the current embedder
    (free-text search finds them), how many tags from the current tagger, and how many hold an older
    model version's results (``backfill``: redone after every new photo). It reads the whole catalog (at 10M
    photos ~15 s with the catalog in memory): the app shows :func:`photo_counts`."""
    models = CatalogModels.of(catalog)
    with catalog.session() as session:
        # One scan of the photos, grouped: a handful of rows (statuses x versions) even at a million photos.
        groups = session.execute(select(Photo.status, Photo.tagger_version, Photo.embedder_version, func.count())
                                 .group_by(Photo.status, Photo.tagger_version, Photo.embedder_version)).all()
        photo_tags = session.scalar(select(func.count()).select_from(PhotoTag)) or 0
        embeddings = session.scalar(select(func.count()).select_from(Embedding)) or 0
        last = session.scalars(select(Run).order_by(Run.id.desc()).limit(1)).first()
    counts: Counter[str] = Counter()
    taggers: Counter[str] = Counter()
    embedders: Counter[str] = Counter()
    done = {"total": 0, "embedded": 0, "tagged": 0, "backfill": 0}
    for status, tagger, embedder, count in groups:
        counts[status] += count
        if tagger is not None:
            taggers[tagger] += count
        if embedder is not None:
            embedders[embedder] += count
        if status in (MISSING, FAILED):
            continue
        done["total"] += count
        done["embedded"] += count if embedder == models.embedder else 0
        done["tagged"] += count if tagger == models.tagger else 0
        older = tagger not in (None, models.tagger) or embedder not in (None, models.embedder)
        done["backfill"] += count if older else 0
    return {
        "catalog": str(catalog.directory),
        "schema": catalog.revision(),
        "size_bytes": catalog.size_bytes(),
        "photos": {status: counts.get(status, 0) for status in PHOTO_STATUSES},
        "photo_tags": photo_tags,
        "embeddings": embeddings,
        "models": [{"kind": "tagger", "version": v, "photos": n} for v, n in sorted(taggers.items())]
        + [{"kind": "embedder", "version": v, "photos": n} for v, n in sorted(embedders.items())],
        "progress": {"tagger": models.tagger, "embedder": models.embedder, **done},
        "last_run": None if last is None else {
            "started_at": last.started_at.isoformat(timespec="seconds"),
            "finished_at": last.finished_at.isoformat(timespec="seconds") if last.finished_at else None,
            "outcome": last.outcome, "roots": json.loads(last.roots),
            "summary": json.loads(last.summary) if last.summary else None,
        },
    }


def failures(catalog: Catalog) -> list[dict[str, Any]]:
    with catalog.session() as session:
        rows = session.execute(
            select(Photo.path, Photo.error_reason, Photo.error_message, Photo.attempts)
            .where(Photo.status == FAILED).order_by(Photo.path)).all()
    return [{"path": p, "reason": r, "message": m, "attempts": a} for p, r, m, a in rows]


def photo_tags(catalog: Catalog, path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A photo's catalog entry and tags (highest score first; user and file tags first), or None."""
    with catalog.session() as session:
        photo = next(filter(None, (session.scalars(select(Photo).where(Photo.path == name)).first()
                                   for name in spellings(path))), None)
        if photo is None:
            return None
        rows = session.execute(
            select(Tag.name, Tag.name_zh, PhotoTag.score, PhotoTag.source, PhotoTag.state, PhotoTag.model_version)
            .join(Tag, Tag.id == PhotoTag.tag_id).where(PhotoTag.photo_id == photo.id)
            .order_by((PhotoTag.source == "model").asc(), PhotoTag.score.desc(), Tag.name)).all()
    return {
        "path": photo.path, "status": photo.status, "error": photo.error_message,
        "taken_at": photo.taken_at.isoformat() if photo.taken_at else None,
        "camera": " ".join(x for x in (photo.camera_make, photo.camera_model) if x) or None,
        "tagger_version": photo.tagger_version, "embedder_version": photo.embedder_version,
        "tags": [{"name": n, "name_zh": z, "score": None if s is None else round(s, 4), "source": src,
                  "state": st, "model_version": mv} for n, z, s, src, st, mv in rows],
    }
