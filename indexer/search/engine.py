"""Running a parsed query against a catalog: tags, filters and booleans in SQL, meaning through FAISS.

Every term becomes one SQL condition on ``photos``. Semantic terms (free words, quoted phrases)
and ``similar:`` are answered first by the vector index — CLIP text or image embedding against
every photo's image embedding — and their matches (score ≥ the relevance cutoff) are put in a
temporary table the SQL joins, so a phrase mixes freely with tags, filters, ``OR`` and ``NOT``.

Relevance: with semantic terms, the best cosine similarity of the photo to any of them; with tags
only, the best score of the queried tags on the photo (1 for tags a person or the file set);
filters alone rank by date. Missing photos are never returned.
"""

from __future__ import annotations

import difflib
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    Table,
    and_,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from indexer.catalog import Catalog
from indexer.errors import IndexerError
from indexer.index import GENERATION_KEY, embedding_rows, under
from indexer.schema import MISSING, REJECTED, Embedding, Photo, PhotoTag, SavedSearch, Tag
from indexer.search import query as q

DEFAULT_MIN_SCORE = 0.2
"""Cutoff for semantic terms (CLIP ViT-B/16 cosine similarity): unrelated photos score 0.1–0.2,
matching ones 0.25–0.35, so an unrelated query returns little, not the whole library."""
SEMANTIC_CANDIDATES = 20_000  # the most photos one semantic term can contribute
FIRST_CANDIDATES = 2_000  # a first, cheaper pass asks for this many, or CANDIDATES_PER_RESULT per result
CANDIDATES_PER_RESULT = 40
SORTS = ("relevance", "date")


class SearchError(IndexerError):
    """A query that parses but cannot run (unknown tag, unreadable ``similar:`` file, …)."""


@dataclass(frozen=True)
class SearchResult:
    photo_id: int
    path: str
    score: float
    tags: list[str]  # the queried tags the photo carries
    taken_at: datetime | None


@dataclass
class SearchResults:
    query: str
    total: int  # matches before --limit
    total_is_lower_bound: bool = False  # True when a semantic term's candidates were cut off: "at least total"
    results: list[SearchResult] = field(default_factory=list)


class Searcher:
    """Runs queries on one catalog. ``embedder`` is a CLIP embedder, or a zero-argument function
    returning one (loaded only when a query needs it); ``embedder_version`` names the embeddings
    to search (default: the embedder's bundle version). ``vector_index`` chooses exact or approximate
    vector search ("auto": approximate from ``indexer.vectors.APPROXIMATE_FROM`` photos on)."""

    def __init__(self, catalog: Catalog, embedder: Any = None, *, embedder_version: str | None = None,
                 vector_index: str = "auto") -> None:
        self.catalog = catalog
        self.vector_index = vector_index  # "auto", "flat" (exact) or "ivf" (approximate): see indexer.vectors
        self._embedder = embedder
        self._embedder_version = embedder_version
        self._vectors: Any = None
        self._vectors_state: str | None = None

    # --- public --------------------------------------------------------------------------------
    def search(self, text_query: str, *, limit: int | None = 50, min_score: float | None = None,
               sort: str = "relevance") -> SearchResults:
        if sort not in SORTS:
            raise SearchError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
        cutoff = DEFAULT_MIN_SCORE if min_score is None else min_score
        tree = self._expand(text_query, q.parse(text_query), seen=())
        # Semantic terms first take the best few thousand photos only (the SQL over them is what costs);
        # when that may have cut matches off and too few results came back, ask for all candidates.
        first = SEMANTIC_CANDIDATES if limit is None else \
            min(SEMANTIC_CANDIDATES, max(FIRST_CANDIDATES, CANDIDATES_PER_RESULT * limit))
        for candidates in dict.fromkeys((first, SEMANTIC_CANDIDATES)):
            with self.catalog.session() as session:
                compiler = _Compiler(self, session, text_query, cutoff, candidates)
                try:
                    rows, tags = self._run(session, compiler, tree, limit, sort)
                finally:
                    compiler.drop_tables()
            if not compiler.truncated or (limit is not None and len(rows) >= limit):
                break
        results = SearchResults(text_query, rows[0].total if rows else 0, total_is_lower_bound=compiler.truncated)
        for row in rows:
            results.results.append(SearchResult(row.id, row.path, float(row.score), tags.get(row.id, []),
                                                row.taken_at))
        return results

    @staticmethod
    def _run(session: Session, compiler: _Compiler, tree: q.Node, limit: int | None, sort: str) -> tuple[list, dict]:
        compiler.drive_by_tags(tree)
        condition = compiler.compile(tree)
        # Labelled once, ordered by the label: the correlated score subquery then runs once per match.
        score = compiler.score_expression().label("score")
        order = (score.desc(), Photo.taken_at.desc()) if sort == "relevance" else \
            (Photo.taken_at.is_(None), Photo.taken_at.desc(), score.desc())
        statement = (select(Photo.id, Photo.path, Photo.taken_at, score,
                            func.count().over().label("total"))
                     .where(condition, Photo.status != MISSING).order_by(*order, Photo.id))
        if limit is not None:
            statement = statement.limit(limit)
        rows = session.execute(statement).all()
        return rows, compiler.matched_tags([row.id for row in rows])

    def save(self, name: str, text_query: str) -> None:
        """Store a query under ``name`` (replacing one of that name); it must parse."""
        q.parse(text_query)
        if not name or any(c.isspace() for c in name):
            raise SearchError(f"a saved search needs a name without spaces, not {name!r}")
        with self.catalog.session() as session, session.begin():
            session.merge(SavedSearch(name=name, query=text_query, created_at=datetime.now()))

    def saved(self) -> dict[str, str]:
        with self.catalog.session() as session:
            return dict(session.execute(select(SavedSearch.name, SavedSearch.query).order_by(SavedSearch.name)).all())

    def delete_saved(self, name: str) -> None:
        with self.catalog.session() as session, session.begin():
            row = session.get(SavedSearch, name)
            if row is None:
                raise SearchError(f"no saved search named {name!r} (phototag search --list shows them)")
            session.delete(row)

    # --- helpers for the compiler --------------------------------------------------------------
    def _expand(self, text_query: str, node: q.Node, seen: tuple[str, ...]) -> q.Node:
        """Replace ``@name`` by the saved query (recursively; a cycle is an error)."""
        if isinstance(node, q.SavedSearch):
            saved = self.saved()
            if node.name not in saved:
                hint = _did_you_mean(node.name, list(saved))
                raise SearchError(q.format_error(text_query, node.span, f"no saved search '@{node.name}'{hint}"))
            if node.name in seen:
                raise SearchError(f"saved search '@{node.name}' refers to itself")
            return self._expand(saved[node.name], q.parse(saved[node.name]), (*seen, node.name))
        if isinstance(node, q.And | q.Or):
            return type(node)(tuple(self._expand(text_query, item, seen) for item in node.items), span=node.span)
        if isinstance(node, q.Not):
            return q.Not(self._expand(text_query, node.item, seen), span=node.span)
        return node

    def embedder(self) -> Any:
        if callable(self._embedder) and not hasattr(self._embedder, "embed_texts"):
            self._embedder = self._embedder()
        if self._embedder is None:
            raise SearchError("this query needs the CLIP embedder, and none is available")
        return self._embedder

    def embedder_version(self) -> str:
        if self._embedder_version is None:
            self._embedder_version = self.embedder().bundle.version
        return self._embedder_version

    def vectors(self) -> Any:
        """The FAISS index of the catalog's embeddings (loaded, or rebuilt from the catalog)."""
        from indexer.vectors import VectorIndex

        version = self.embedder_version()
        generation = self.catalog.get_meta(GENERATION_KEY, "0")
        state = f"{version}:{generation}"
        if self._vectors is None or self._vectors_state != state:
            with self.catalog.session() as session:
                dim = session.scalar(select(Embedding.dim).where(Embedding.model_version == version).limit(1))
            if dim is None:
                raise SearchError(f"the catalog has no embeddings from {version}: run 'phototag index' first")

            def rows() -> Any:
                return embedding_rows(self.catalog, version, int(dim))

            self._vectors, _ = VectorIndex.open(self.catalog.vectors_path, int(dim), state, rows,
                                                kind=self.vector_index)
            self._vectors_state = state
        return self._vectors

    def query_vector_for_text(self, phrase: str) -> np.ndarray:
        return self.embedder().embed_texts([phrase]).numpy()[0]

    def query_vector_for_photo(self, session: Session, path: str, text_query: str, span: tuple[int, int]) -> np.ndarray:
        """The stored embedding of an indexed photo, or a fresh one for any other image file."""
        path = os.path.abspath(os.path.expanduser(path))
        blob = session.scalar(select(Embedding.vector).join(Photo, Photo.id == Embedding.photo_id).where(
            Photo.path == path, Embedding.model_version == self.embedder_version()))
        if blob is not None:
            return np.frombuffer(blob, dtype=np.float32)
        from ram_model.errors import ImageError
        from ram_model.preprocess import open_image

        try:
            image = open_image(path)
        except ImageError as exc:
            raise SearchError(q.format_error(text_query, span, f"similar: cannot use this file: {exc}")) from None
        return self.embedder().embed_images([image]).numpy()[0]


class _Compiler:
    """Turns an AST into one SQL condition, collecting what the score and the tag list need."""

    def __init__(self, searcher: Searcher, session: Session, text_query: str, cutoff: float,
                 candidates: int = SEMANTIC_CANDIDATES) -> None:
        self.candidates = candidates
        self.truncated = False  # a semantic term filled all its candidates: more photos may pass the cutoff
        self.searcher = searcher
        self.session = session
        self.query = text_query
        self.cutoff = cutoff
        self.semantic_tables: list[Table] = []  # positive semantic terms: their scores rank results
        self.tag_ids: list[int] = []  # positive tag terms: their scores rank tag-only queries
        self._metadata = MetaData()
        self._names: dict[str, tuple[list[int], tuple[int, int]]] | None = None
        self._tags_drive = True

    def drive_by_tags(self, tree: q.Node) -> None:
        """Let positive tag terms drive the query (``id IN`` the tag's rows) unless something more selective
        should: a semantic or ``similar:`` term, or a date or folder filter. Measured at 1M photos."""
        self._tags_drive = not any(isinstance(n, q.Semantic | q.Similar | q.DateRange | q.Folder) for n in q.walk(tree))

    def compile(self, node: q.Node, positive: bool = True) -> Any:
        if isinstance(node, q.And):
            return and_(*self._and_items(node.items, positive))
        if isinstance(node, q.Or):
            return or_(*(self.compile(item, positive) for item in node.items))
        if isinstance(node, q.Not):
            return not_(self.compile(node.item, not positive))
        if isinstance(node, q.Semantic):
            return self._semantic(self.searcher.query_vector_for_text(node.text), positive)
        if isinstance(node, q.Similar):
            vector = self.searcher.query_vector_for_photo(self.session, node.path, self.query, node.span)
            return self._semantic(vector, positive)
        if isinstance(node, q.Tag):
            return self._tag(node, positive)
        if isinstance(node, q.DateRange):
            conditions = [Photo.taken_at.is_not(None)]
            if node.start is not None:
                conditions.append(Photo.taken_at >= datetime.combine(node.start, datetime.min.time()))
            if node.end is not None:
                conditions.append(Photo.taken_at < datetime.combine(node.end, datetime.min.time()))
            return and_(*conditions)
        if isinstance(node, q.Camera):
            pattern = f"%{node.text.lower()}%"
            return or_(func.lower(Photo.camera_make).like(pattern), func.lower(Photo.camera_model).like(pattern))
        if isinstance(node, q.Folder):
            return under(Photo.path, [os.path.abspath(os.path.expanduser(node.path))])
        if isinstance(node, q.Type):
            return Photo.format == node.format
        if isinstance(node, q.Has):
            return self._has(node.what)
        if isinstance(node, q.State | q.Source):
            return self._tag_rows(None, [node])
        raise SearchError(q.format_error(self.query, node.span, f"cannot search for {type(node).__name__} here"))

    def _and_items(self, items: tuple[q.Node, ...], positive: bool) -> list[Any]:
        """``tag:dog state:suggested`` means the dog tag is suggested: State/Source filters beside tags
        apply to those tags' rows; alone, to any tag row of the photo."""
        qualifiers = [i for i in items if isinstance(i, q.State | q.Source)]
        tags = [i for i in items if isinstance(i, q.Tag)]
        if not qualifiers or not tags:
            return [self.compile(item, positive) for item in items]
        rest = [i for i in items if not isinstance(i, q.State | q.Source | q.Tag)]
        return [self._tag(tag, positive, qualifiers) for tag in tags] + [self.compile(i, positive) for i in rest]

    def _tag(self, node: q.Tag, positive: bool, qualifiers: list[q.Node] | None = None) -> Any:
        ids = self._resolve_tag(node)
        if positive:
            self.tag_ids.extend(ids)
        return self._tag_rows(ids, qualifiers or [], drive=positive and self._tags_drive)

    @staticmethod
    def _tag_rows(tag_ids: list[int] | None, qualifiers: list[q.Node], drive: bool = False) -> Any:
        conditions = []
        if tag_ids is not None:
            conditions.append(PhotoTag.tag_id.in_(tag_ids))
        states = [x.value for x in qualifiers if isinstance(x, q.State)]
        sources = [x.value for x in qualifiers if isinstance(x, q.Source)]
        conditions.append(PhotoTag.state.in_(states) if states else PhotoTag.state != REJECTED)
        if sources:
            conditions.append(PhotoTag.source.in_(sources))
        if drive:
            # ``id IN (photo ids from the tag index)``: SQLite starts from the tag's rows and seeks the photos
            # by rowid, instead of probing photo_tags once for every photo of the library.
            return Photo.id.in_(select(PhotoTag.photo_id).where(*conditions))
        return exists().where(PhotoTag.photo_id == Photo.id, *conditions)

    def _resolve_tag(self, node: q.Tag) -> list[int]:
        """Tag ids for an English name (any case), a Chinese name or a custom tag."""
        wanted = node.name.strip()
        rows = self.session.execute(select(Tag.id).where(or_(
            func.lower(Tag.name) == wanted.lower(), Tag.name_zh == wanted))).scalars().all()
        if rows:
            return list(rows)
        names = [n for pair in self.session.execute(select(Tag.name, Tag.name_zh)).all() for n in pair if n]
        hint = _did_you_mean(wanted, names)
        raise SearchError(q.format_error(self.query, node.span, f"unknown tag '{wanted}'{hint}"))

    def _has(self, what: str) -> Any:
        if what == "gps":
            return and_(Photo.gps_lat.is_not(None), Photo.gps_lon.is_not(None))
        if what == "date":
            return Photo.taken_at.is_not(None)
        if what == "camera":
            return or_(Photo.camera_make.is_not(None), Photo.camera_model.is_not(None))
        if what == "tags":
            return self._tag_rows(None, [])
        return exists().where(Embedding.photo_id == Photo.id)

    def _semantic(self, vector: np.ndarray, positive: bool) -> Any:
        """Matches of one query vector, as ``photos.id IN (temporary table)``."""
        vectors = self.searcher.vectors()
        scores, ids = vectors.search(np.asarray(vector, dtype=np.float32)[None, :],
                                     min(self.candidates, max(len(vectors), 1)))
        keep = (ids[0] >= 0) & (scores[0] >= self.cutoff)
        name = f"phototag_semantic_{uuid.uuid4().hex[:12]}"
        table = Table(name, self._metadata, Column("id", Integer, primary_key=True), Column("score", Float),
                      prefixes=["TEMPORARY"])
        table.create(self.session.connection())
        found_ids, found_scores = ids[0][keep], scores[0][keep]
        if len(found_ids) >= self.candidates and len(vectors) > self.candidates:
            self.truncated = True
        order = np.argsort(found_ids)  # ascending ids: B-tree appends, no page splits
        if len(order):
            # The driver's executemany: SQLAlchemy's per-row dicts cost 3x and trigger GC pauses at 20k rows.
            self.session.connection().exec_driver_sql(
                f"INSERT INTO {name} (id, score) VALUES (?, ?)",
                list(zip(found_ids[order].tolist(), found_scores[order].tolist(), strict=True)))
        if positive:
            self.semantic_tables.append(table)
        return Photo.id.in_(select(table.c.id))

    def drop_tables(self) -> None:
        for table in self._metadata.tables.values():
            table.drop(self.session.connection(), checkfirst=True)
        self.session.commit()  # temporary tables only: nothing of the catalog is written

    def score_expression(self) -> Any:
        if self.semantic_tables:
            parts = [func.coalesce(select(t.c.score).where(t.c.id == Photo.id).scalar_subquery(), -1.0)
                     for t in self.semantic_tables]
            return parts[0] if len(parts) == 1 else func.max(*parts)
        if self.tag_ids:
            best = (select(func.max(func.coalesce(PhotoTag.score, 1.0)))
                    .where(PhotoTag.photo_id == Photo.id, PhotoTag.tag_id.in_(self.tag_ids),
                           PhotoTag.state != REJECTED).scalar_subquery())
            return func.coalesce(best, 0.0)
        return literal(1.0)

    def matched_tags(self, photo_ids: list[int]) -> dict[int, list[str]]:
        if not self.tag_ids or not photo_ids:
            return {}
        rows = self.session.execute(
            select(PhotoTag.photo_id, Tag.name).join(Tag, Tag.id == PhotoTag.tag_id)
            .where(PhotoTag.photo_id.in_(photo_ids), PhotoTag.tag_id.in_(self.tag_ids), PhotoTag.state != REJECTED)
            .order_by(Tag.name)).all()
        found: dict[int, list[str]] = {}
        for photo_id, name in rows:
            found.setdefault(photo_id, []).append(name)
        return found


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=3, cutoff=0.6)]
    return f" — did you mean {', '.join(repr(c) for c in close)}?" if close else ""

