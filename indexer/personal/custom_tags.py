"""Custom tags: a user's own tags, defined by descriptions and/or example photos, scored with CLIP.

A custom tag is one unit vector, its *prototype*, in the CLIP space the catalog's image embeddings
live in: the mean of the (normalised) CLIP text embeddings of its descriptions, each filled into
``DESCRIPTION_TEMPLATE``; or the mean of its example photos' stored embeddings; or, given both,
the normalised sum of the two means. A photo's score is ``cosine(embedding, prototype)``; the tag
is suggested at or above the tag's threshold.

Nothing is decoded again: the cache is the CLIP embedding each photo already has in the catalog
(``embeddings``, float32, 2 KB per photo for ViT-B/16). Applying a tag to the whole library is one
``[photos × dim] @ [dim]`` product per 20,000-photo chunk plus the writes for the photos it fires on.

Results are ordinary ``photo_tags`` rows (source ``model``, state ``suggested``, model version
``custom:NAME@EMBEDDER``), written the way the indexer writes the tagger's: a person's accepted or
rejected row keeps its state (only its score is refreshed), a suggestion that no longer fires goes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from indexer._paths import display_path, undecodable
from indexer.catalog import Catalog
from indexer.errors import IndexerError
from indexer.index import embedding_rows, now, write_suggestions
from indexer.pipeline import batched
from indexer.schema import (
    ACCEPTED,
    BUILTIN,
    CUSTOM,
    SOURCE_MODEL,
    SOURCE_USER,
    SUGGESTED,
    CustomTagDef,
    Embedding,
    PersonalHidden,
    Photo,
    PhotoTag,
    Tag,
)

DESCRIPTION_TEMPLATE = "a photo of {}."
# Default thresholds on CLIP cosine. Text↔image cosines of a matching pair sit around 0.25–0.35 for
# ViT-B/16, image↔image ones of the same subject around 0.8–0.9; a prototype mixing both lands between.
TEXT_THRESHOLD = 0.25
EXAMPLE_THRESHOLD = 0.8
MIXED_THRESHOLD = 0.5
CHUNK = 20_000
_IDS_PER_QUERY = 900  # below SQLite's limit on bound parameters


class CustomTagError(IndexerError):
    """A custom tag cannot be defined, found or applied (the message says what to do)."""


@dataclass
class CustomTag:
    """A custom tag's definition (``tag_id`` is None until it is saved)."""

    name: str
    descriptions: list[str]
    examples: list[int]
    prototype: np.ndarray
    embedder_version: str
    threshold: float
    tag_id: int | None = None

    @property
    def model_version(self) -> str:
        return f"custom:{self.name}@{self.embedder_version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "descriptions": self.descriptions, "examples": self.examples,
                "embedder_version": self.embedder_version, "threshold": self.threshold, "dim": len(self.prototype)}


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise CustomTagError("the descriptions and examples cancel out (a zero prototype): give other ones")
    return (vector / norm).astype(np.float32)


def catalog_embedder_version(session: Session) -> str | None:
    """The embedder version most of the catalog's embeddings come from (None when there are none)."""
    return session.execute(select(Embedding.model_version).group_by(Embedding.model_version)
                           .order_by(func.count().desc()).limit(1)).scalar()


def default_threshold(descriptions: Sequence[str], examples: Sequence[int]) -> float:
    if descriptions and examples:
        return MIXED_THRESHOLD
    return TEXT_THRESHOLD if descriptions else EXAMPLE_THRESHOLD


def build(catalog: Catalog, name: str, descriptions: Sequence[str] = (), examples: Sequence[int] = (), *,
          text_embedder: Any = None, threshold: float | None = None,
          embedder_version: str | None = None) -> CustomTag:
    """A custom tag's definition with its prototype (not saved). ``text_embedder`` (a CLIP embedder,
    needed for descriptions) has ``embed_texts`` and ``bundle.version``; examples are photo ids."""
    name = name.strip()
    descriptions = [d.strip() for d in descriptions if d.strip()]
    examples = list(dict.fromkeys(examples))
    if not name:
        raise CustomTagError("a custom tag needs a name")
    if undecodable(name) or any(undecodable(d) for d in descriptions):
        raise CustomTagError(f"custom tag '{display_path(name)}': its name and descriptions must be UTF-8 text (were "
                             "they typed in another encoding?)")
    if not descriptions and not examples:
        raise CustomTagError(f"custom tag {name!r}: give at least one --description TEXT or --example PHOTO")
    if descriptions and text_embedder is None:
        raise CustomTagError(f"custom tag {name!r}: descriptions need the CLIP text encoder, and none is loaded")
    version = text_embedder.bundle.version if text_embedder is not None else embedder_version
    with catalog.session() as session:
        version = version or catalog_embedder_version(session)
        if version is None:
            raise CustomTagError("the catalog has no image embeddings yet: run 'phototag index PATH' first")
        parts = []
        if descriptions:
            texts = [DESCRIPTION_TEMPLATE.format(d) for d in descriptions]
            vectors = np.asarray(text_embedder.embed_texts(texts), dtype=np.float32)
            parts.append(_unit((vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).mean(axis=0)))
        if examples:
            rows: dict[int, np.ndarray] = dict(session.execute(select(Embedding.photo_id, Embedding.vector).where(
                Embedding.photo_id.in_(examples), Embedding.model_version == version)).all())
            lacking = [photo_id for photo_id in examples if photo_id not in rows]
            if lacking:
                paths = session.scalars(select(Photo.path).where(Photo.id.in_(lacking))).all()
                raise CustomTagError(f"custom tag {name!r}: no {version} embedding for {', '.join(paths)}: "
                                     "index these photos first (phototag index PATH)")
            vectors = np.stack([rows[i] for i in examples])
            parts.append(_unit(vectors.mean(axis=0)))
    prototype = _unit(np.sum(parts, axis=0))
    return CustomTag(name, descriptions, examples, prototype, version,
                     float(default_threshold(descriptions, examples) if threshold is None else threshold))


def save(catalog: Catalog, tag: CustomTag) -> CustomTag:
    """Store (or replace) the definition; the example photos get the tag as accepted."""
    stamp = now()
    with catalog.session() as session, session.begin():
        row = session.scalars(select(Tag).where(func.lower(Tag.name) == tag.name.lower())).first()
        if row is not None and row.kind == BUILTIN:
            raise CustomTagError(f"{row.name!r} is a built-in tag: give the custom tag another name")
        if row is None:
            row = Tag(name=tag.name, kind=CUSTOM)
            session.add(row)
            session.flush()
        row.kind, row.threshold = CUSTOM, tag.threshold  # a keyword or user tag becomes a custom tag
        tag.tag_id, tag.name = row.id, row.name
        definition = session.get(CustomTagDef, row.id)
        if definition is None:
            definition = CustomTagDef(tag_id=row.id, created_at=stamp)
            session.add(definition)
        definition.descriptions = json.dumps(tag.descriptions, ensure_ascii=False)
        definition.examples = json.dumps(tag.examples)
        definition.prototype = tag.prototype.astype(np.float32).tobytes()
        definition.dim = int(tag.prototype.shape[0])
        definition.embedder_version = tag.embedder_version
        definition.threshold = tag.threshold
        definition.updated_at = stamp
        for photo_id in tag.examples:  # an example is a person's statement that the tag applies
            existing = session.get(PhotoTag, (photo_id, row.id))
            if existing is None:
                session.add(PhotoTag(photo_id=photo_id, tag_id=row.id, source=SOURCE_USER, state=ACCEPTED,
                                     updated_at=stamp))
            elif existing.state != ACCEPTED:
                existing.state, existing.updated_at = ACCEPTED, stamp
    return tag


def _definition(row: CustomTagDef, name: str) -> CustomTag:
    return CustomTag(name, json.loads(row.descriptions), json.loads(row.examples),
                     np.frombuffer(row.prototype, dtype=np.float32).copy(), row.embedder_version, row.threshold,
                     row.tag_id)


def load_all(session: Session, names: Sequence[str] | None = None) -> list[CustomTag]:
    rows = session.execute(select(CustomTagDef, Tag.name).join(Tag, Tag.id == CustomTagDef.tag_id)
                           .order_by(Tag.name)).all()
    tags = [_definition(row, name) for row, name in rows]
    if names is not None:
        wanted = {n.lower() for n in names}
        unknown = wanted - {t.name.lower() for t in tags}
        if unknown:
            raise CustomTagError(f"no custom tag {', '.join(sorted(unknown))}: see 'phototag custom-tag list'")
        tags = [t for t in tags if t.name.lower() in wanted]
    return tags


def list_custom(catalog: Catalog) -> list[dict[str, Any]]:
    """Every custom tag's definition, with how many photos carry it (suggested or accepted)."""
    with catalog.session() as session:
        tags = load_all(session)
        counts = dict(session.execute(select(PhotoTag.tag_id, func.count()).where(
            PhotoTag.tag_id.in_([t.tag_id for t in tags]), PhotoTag.state != "rejected")
            .group_by(PhotoTag.tag_id)).all())
        paths = dict(session.execute(select(Photo.id, Photo.path).where(
            Photo.id.in_([i for t in tags for i in t.examples]))).all())
    return [t.to_dict() | {"example_paths": [paths.get(i) for i in t.examples],
                           "photos": counts.get(t.tag_id, 0) if t.tag_id is not None else 0}
            for t in tags]


def remove(catalog: Catalog, name: str) -> dict[str, int]:
    """Forget a custom tag's definition and its suggestions; photos where a person accepted it keep
    it as a user tag (and rejections stay, so it is not suggested there again if it is defined anew)."""
    with catalog.session() as session, session.begin():
        (tag,) = load_all(session, [name])
        removed = cast(CursorResult[Any], session.execute(delete(PhotoTag).where(
            PhotoTag.tag_id == tag.tag_id, PhotoTag.state == SUGGESTED, PhotoTag.source == SOURCE_MODEL))).rowcount
        session.execute(delete(PersonalHidden).where(PersonalHidden.tag_id == tag.tag_id))
        kept = cast(CursorResult[Any], session.execute(update(PhotoTag).where(
            PhotoTag.tag_id == tag.tag_id, PhotoTag.state == ACCEPTED).values(source=SOURCE_USER,
                                                                               model_version=None))).rowcount
        session.execute(delete(CustomTagDef).where(CustomTagDef.tag_id == tag.tag_id))
        left = session.scalar(select(func.count()).select_from(PhotoTag).where(PhotoTag.tag_id == tag.tag_id))
        if not left:
            session.execute(delete(Tag).where(Tag.id == tag.tag_id))
        else:
            session.execute(update(Tag).where(Tag.id == tag.tag_id).values(threshold=None))
    return {"suggestions_removed": removed, "accepted_kept": kept}


# --- scoring -------------------------------------------------------------------------------------
def _embeddings(session: Session, version: str, dim: int, photo_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    rows: list[Any] = []
    for chunk in batched(photo_ids, _IDS_PER_QUERY):
        rows += session.execute(select(Embedding.photo_id, Embedding.vector).where(
            Embedding.model_version == version, Embedding.dim == dim, Embedding.photo_id.in_(chunk))).all()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    vectors = np.stack([r[1] for r in rows]) if rows else np.empty((0, dim), np.float32)
    return ids, vectors


def _write(session: Session, tag: CustomTag, ids: np.ndarray, scores: np.ndarray, stamp: datetime) -> int:
    """Store one tag's scores for ``ids`` as the indexer stores its tags (``write_suggestions``): suggest
    what fires, drop suggestions that no longer do, keep every person's decision. Returns how many
    photos it fires on."""
    if tag.tag_id is None:
        raise CustomTagError(f"custom tag {tag.name!r} is not stored yet")
    tag_id: int = tag.tag_id
    fired = scores >= tag.threshold
    id_list = ids.tolist()
    existing: dict[int, str] = {}
    for chunk in batched(id_list, _IDS_PER_QUERY):
        existing.update(session.execute(select(PhotoTag.photo_id, PhotoTag.state).where(
            PhotoTag.tag_id == tag.tag_id, PhotoTag.photo_id.in_(chunk))).all())
        # Withheld by a personal model: back to the base state; the personal model decides again after.
        session.execute(delete(PersonalHidden).where(PersonalHidden.tag_id == tag.tag_id,
                                                     PersonalHidden.photo_id.in_(chunk)))
    stale = [(i, tag_id) for i, f in zip(id_list, fired.tolist(), strict=True)
             if not f and existing.get(i) == SUGGESTED]
    hits = {(i, tag_id): s for i, s in zip(ids[fired].tolist(), scores[fired].tolist(), strict=True)}
    write_suggestions(session, hits, stale, tag.model_version, stamp)
    return int(fired.sum())


def score_photos(session: Session, photo_ids: Sequence[int]) -> None:
    """Score every custom tag on these photos (the indexer calls this for each batch it stores)."""
    if not photo_ids:
        return
    stamp = now()
    embeddings: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}  # read once, not once per tag
    for tag in load_all(session):
        key = (tag.embedder_version, len(tag.prototype))
        if key not in embeddings:
            embeddings[key] = _embeddings(session, key[0], key[1], list(photo_ids))
        ids, vectors = embeddings[key]
        if len(ids):
            _write(session, tag, ids, vectors @ tag.prototype, stamp)


def matches(catalog: Catalog, tag: CustomTag, limit: int | None = None) -> list[tuple[str, float]]:
    """(path, score) of the photos the tag fires on, best first, without writing anything."""
    found: list[tuple[int, float]] = []
    for ids, vectors in embedding_rows(catalog, tag.embedder_version, len(tag.prototype), CHUNK):
        scores = vectors @ tag.prototype
        keep = scores >= tag.threshold
        found += zip(ids[keep].tolist(), scores[keep].tolist(), strict=True)
    found.sort(key=lambda item: -item[1])
    found = found[:limit] if limit is not None else found
    with catalog.session() as session:
        paths = dict(session.execute(select(Photo.id, Photo.path).where(Photo.id.in_([i for i, _ in found]))).all())
    return [(paths[i], s) for i, s in found]


def refresh_prototype(catalog: Catalog, tag: CustomTag, version: str, text_embedder: Any = None) -> CustomTag:
    """The same definition rebuilt in another embedder's space (examples from their stored embeddings)."""
    if tag.descriptions and text_embedder is None:
        raise CustomTagError(f"custom tag {tag.name!r} was built with {tag.embedder_version}; the catalog's "
                             f"embeddings are {version}: its descriptions need that text encoder to rebuild it")
    rebuilt = build(catalog, tag.name, tag.descriptions, tag.examples, text_embedder=text_embedder,
                    threshold=tag.threshold, embedder_version=version)
    return save(catalog, rebuilt)


def apply(catalog: Catalog, names: Sequence[str] | None = None, *, text_embedder: Any = None,
          on_progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Score custom tags (all, or ``names``) on every photo with an embedding; name → photos it fires on.
    A tag built in another embedder's space than the catalog's is rebuilt first."""
    with catalog.session() as session:
        tags = load_all(session, names)
        version = catalog_embedder_version(session)
    counts: dict[str, int] = {}
    for tag in tags:
        if version is not None and tag.embedder_version != version:
            tag = refresh_prototype(catalog, tag, version, text_embedder)
        counts[tag.name] = 0
        stamp = now()
        for ids, vectors in embedding_rows(catalog, tag.embedder_version, len(tag.prototype), CHUNK):
            with catalog.session() as session, session.begin():
                counts[tag.name] += _write(session, tag, ids, vectors @ tag.prototype, stamp)
            if on_progress is not None:
                on_progress(tag.name, counts[tag.name])
    return counts
