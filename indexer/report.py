"""Read-only views of a catalog: status counts, failures, one photo's tags (CLI and GUI use these)."""

from __future__ import annotations

import json
import os
from typing import Any

from sqlalchemy import func, select

from indexer._paths import spellings
from indexer.catalog import Catalog
from indexer.schema import FAILED, PHOTO_STATUSES, Embedding, Photo, PhotoTag, Run, Tag


def catalog_status(catalog: Catalog) -> dict[str, Any]:
    with catalog.session() as session:
        counts = dict(session.execute(select(Photo.status, func.count()).group_by(Photo.status)).all())
        photo_tags = session.scalar(select(func.count()).select_from(PhotoTag)) or 0
        embeddings = session.scalar(select(func.count()).select_from(Embedding)) or 0
        taggers = session.execute(select(Photo.tagger_version, func.count()).where(
            Photo.tagger_version.is_not(None)).group_by(Photo.tagger_version)).all()
        embedders = session.execute(select(Photo.embedder_version, func.count()).where(
            Photo.embedder_version.is_not(None)).group_by(Photo.embedder_version)).all()
        last = session.scalars(select(Run).order_by(Run.id.desc()).limit(1)).first()
    return {
        "catalog": str(catalog.directory),
        "schema": catalog.revision(),
        "size_bytes": catalog.size_bytes(),
        "photos": {status: counts.get(status, 0) for status in PHOTO_STATUSES},
        "photo_tags": photo_tags,
        "embeddings": embeddings,
        "models": [{"kind": "tagger", "version": v, "photos": n} for v, n in taggers]
        + [{"kind": "embedder", "version": v, "photos": n} for v, n in embedders],
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
