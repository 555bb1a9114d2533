"""Running a parsed query against a catalog: tags, filters and booleans in SQL, meaning through FAISS.

Every term becomes one SQL condition on ``photos``. Semantic terms (free words, quoted phrases)
and ``similar:`` are answered first by the vector index — CLIP text or image embedding against
every photo's image embedding — and their matches (score ≥ the relevance cutoff) are put in a
temporary table the SQL joins, so a phrase mixes freely with tags, filters, ``OR`` and ``NOT``.

Relevance: with semantic terms, the best cosine similarity of the photo to any of them; with tags
only, the best score of the queried tags on the photo (1 for tags a person or the file set);
filters alone rank by date; ties newest first. Missing photos are never returned.

Three shapes of query, measured at 1M photos (bench/results/search.md), take shorter ways to the
same results:

* tags (with booleans and filters) where every match carries one of the queried tags: read from
  the covering tag index ``(tag_id, state, score, photo_id)`` alone — the tags' rows are the
  candidates, every other term a set they are checked against, photo rows read for the top
  results only; when every tag term is common, the first page alone, best score first (each tag's
  rows in score order; rows a person or a file set, newest first, from the date index), the
  matches counted up to a bound (``_Compiler._first_page``, measured at 10M photos);
* a single free-text or ``similar:`` term: FAISS's ranking is the answer, photo rows read for the
  top results only;
* free text AND-ed with terms that match at most ``PREFILTER_MAX`` photos: those photos are found
  first and scored exactly (every one of them, whatever the vector index), instead of taking the
  library's best candidates and keeping those that pass.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard, cast

import numpy as np
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement, Grouping

from indexer._paths import spellings, undecodable
from indexer.catalog import Catalog
from indexer.errors import IndexerError
from indexer.index import GENERATION_KEY, embedding_rows, embedding_vectors, under
from indexer.schema import ACCEPTED, MISSING, REJECTED, SUGGESTED, Embedding, Photo, PhotoTag, SavedSearch, Tag
from indexer.search import query as q

DEFAULT_MIN_SCORE = 0.2
"""Cutoff for semantic terms (CLIP ViT-B/16 cosine similarity): unrelated photos score 0.1–0.2,
matching ones 0.25–0.35, so an unrelated query returns little, not the whole library."""
SEMANTIC_CANDIDATES = 20_000  # the most photos one semantic term can contribute
FIRST_CANDIDATES = 2_000  # a first, cheaper pass asks for this many, or CANDIDATES_PER_RESULT per result
CANDIDATES_PER_RESULT = 40
FILTERED_EFFORT = 2  # an approximate index visits 2x the cells for a semantic term with other terms (4x widened)
CODE_MARGIN = 0.05  # candidates an IVF-PQ index's codes score this far below the cutoff may pass it exactly
PREFILTER_MAX = 2_000  # free text AND-ed with tag terms of at most this many rows scores just their photos
DRIVER_COUNT_CAP = 20_000  # tag rows counted up to this to choose the candidates
COUNT_CAP = 50_000  # a first page in score order (_Compiler._first_page) counts matches among this many tag rows,
CHECKED_COUNT_CAP = 2_000  # or this many where each row is checked against other terms (a seek of ~1-4 µs each)
GROUP_COUNT_CAP = 20_000  # a first page's person- or file-set rows counted up to this to choose how to read them
WALK_COST = 10  # reading a photo row (~2 µs at 10M) costs about this many date-index entries walked and tested
WALK_SPARE = 4  # the date index walked at most this many times what evenly spread matches need
WALK_SAMPLE = 256  # a group's first rows checked against the query to estimate how many of its photos match
WALK_SAMPLE_MATCHES = 4  # fewer matches among them: too sparse to walk for
SET_COUNT_CAP = 80_000  # sets counted up to this to choose how candidates are checked against them
LARGE_COUNT_CAP = 4_000_000  # many candidates against a large set: counted this far (~0.4 s at most) to choose
SORTS = ("relevance", "date")
SQL_CHAIN = 64  # conditions one AND or OR joins flat in SQL; longer lists are joined in parenthesised groups
SQL_FUNCTION_ARGS = 100  # arguments of one max(): SQLite takes 127 at most
SAVED_NAME_LENGTH = 100  # characters of a saved search's name


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


@dataclass(frozen=True)
class Ranking:
    """Every match of a query as two arrays, photo ids and scores, without reading a photo row: what a view
    pages through (the app's grid reads the rows of the page on screen only).

    When ``settled``, the order is :meth:`Searcher.search`'s. Otherwise the matches are by score, best first,
    and equal scores by id; :meth:`Searcher.settle` puts equal scores newest first, as the search does, reading
    the dates of tied photos only (a common tag's thousands of ties cost a few ms per 10,000)."""

    query: str
    ids: np.ndarray  # int64
    scores: np.ndarray  # float64, aligned with ids
    total_is_lower_bound: bool = False  # as SearchResults'
    settled: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    def without(self, photo_ids: np.ndarray) -> Ranking:
        """This ranking less ``photo_ids`` (photos outside the folders a view shows, say)."""
        if not len(photo_ids):
            return self
        keep = ~np.isin(self.ids, photo_ids)
        return Ranking(self.query, self.ids[keep], self.scores[keep], self.total_is_lower_bound, self.settled)


class Searcher:
    """Runs queries on one catalog. ``embedder`` is a CLIP embedder, or a zero-argument function
    returning one (loaded only when a query needs it); ``embedder_version`` names the embeddings
    to search, or is a zero-argument function returning the name (called only when a query needs
    embeddings; default, or None: the embedder's bundle version). ``vector_index`` chooses exact or approximate
    vector search ("auto": approximate from ``indexer.vectors.APPROXIMATE_FROM`` photos on)."""

    def __init__(self, catalog: Catalog, embedder: Any = None, *,
                 embedder_version: str | Callable[[], str | None] | None = None, vector_index: str = "auto") -> None:
        self.catalog = catalog
        self.vector_index = vector_index  # "auto", "flat" (exact), "ivf" or "ivfpq" (approximate): indexer.vectors
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
        usage = q.Usage()  # the query's terms and phrases, and those of the saved searches it uses
        saved = functools.cache(self.saved)  # read once a search, and only when it has an @name
        tree = self._expand(text_query, q.parse(text_query, usage=usage), (), usage, saved)
        # Semantic terms first take the best few thousand photos only (the SQL over them is what costs);
        # when that may have cut matches off and too few results came back, ask for all candidates.
        first = SEMANTIC_CANDIDATES if limit is None else \
            min(SEMANTIC_CANDIDATES, max(FIRST_CANDIDATES, CANDIDATES_PER_RESULT * limit))
        for candidates in dict.fromkeys((first, SEMANTIC_CANDIDATES)):
            with self.catalog.session() as session:
                compiler = _Compiler(self, session, text_query, cutoff, candidates)
                try:
                    total, rows = compiler.run(tree, limit, sort)
                    tags = compiler.matched_tags([row[0] for row in rows])
                finally:
                    compiler.drop_tables()
            if not compiler.truncated or (limit is not None and len(rows) >= limit):
                break
        results = SearchResults(text_query, total, total_is_lower_bound=compiler.truncated or compiler.capped)
        for photo_id, path, taken_at, score in rows:
            results.results.append(SearchResult(photo_id, path, float(score), tags.get(photo_id, []), taken_at))
        return results

    def rank(self, text_query: str, *, min_score: float | None = None, sort: str = "relevance") -> Ranking:
        """Every match of ``text_query`` (as :meth:`search` with no limit finds them) as a :class:`Ranking`: ids and
        scores only. Unsettled ties are left to :meth:`settle`, so that a view's first page costs no more than
        the ties it shows."""
        if sort not in SORTS:
            raise SearchError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
        cutoff = DEFAULT_MIN_SCORE if min_score is None else min_score
        usage = q.Usage()
        saved = functools.cache(self.saved)
        tree = self._expand(text_query, q.parse(text_query, usage=usage), (), usage, saved)
        with self.catalog.session() as session:
            compiler = _Compiler(self, session, text_query, cutoff)
            try:
                ids, scores, settled = compiler.ranking(tree, sort)
            finally:
                compiler.drop_tables()
        return Ranking(text_query, ids, scores, compiler.truncated, settled)

    def settle(self, ranking: Ranking, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ids and scores at positions ``start``..``stop`` (None: the end) of :meth:`search`'s order: equal
        scores newest first (undated last), then by id. Reads the dates of the range's tied photos only — with the
        rest of the tie groups its ends cut, which may run on past them."""
        stop = len(ranking) if stop is None else min(stop, len(ranking))
        start = max(0, min(start, stop))
        if ranking.settled or start == stop:
            return ranking.ids[start:stop], ranking.scores[start:stop]
        low, high = _tie_bounds(ranking.scores, start, stop)
        ids, scores = ranking.ids[low:high], ranking.scores[low:high]
        tied = np.zeros(len(ids), dtype=bool)
        tied[1:] = scores[1:] == scores[:-1]
        tied[:-1] |= tied[1:]
        by_date = np.zeros(len(ids), dtype=np.int64)  # a photo's place among the tied ones, newest first
        if tied.any():
            wanted = func.json_each(json.dumps(ids[tied].tolist())).table_valued("value")
            taken = type_coerce(func.coalesce(Photo.taken_at, ""), String)  # as stored (ISO text), as _rank sorts
            with self.catalog.session() as session:
                newest = np.fromiter(itertools.chain.from_iterable(_driver_rows(session, select(Photo.id).where(
                    Photo.id.in_(select(wanted.c.value))).order_by(taken.desc(), Photo.id))), dtype=np.int64)
            if len(newest):
                sorter = np.argsort(newest)
                at = np.searchsorted(newest, ids[tied], sorter=sorter).clip(0, len(newest) - 1)
                by_date[tied] = sorter[at]
        order = np.lexsort((by_date, -scores))
        return ids[order][start - low:stop - low], scores[order][start - low:stop - low]

    def position(self, ranking: Ranking, photo_id: int) -> int | None:
        """Where ``photo_id`` stands in :meth:`search`'s order (None: it is no match); settles its tie group only."""
        found = np.flatnonzero(ranking.ids == photo_id)
        if not len(found):
            return None
        at = int(found[0])
        if ranking.settled:
            return at
        low, high = _tie_bounds(ranking.scores, at, at + 1)
        return low + int(np.flatnonzero(self.settle(ranking, low, high)[0] == photo_id)[0])

    def members(self, ranking: Ranking, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The ids at positions ``start``..``stop`` of :meth:`search`'s order, in no particular order: only the tie
        groups the range's ends cut are settled (a selection of 100,000 matches costs what its two ends cost)."""
        stop = len(ranking) if stop is None else min(stop, len(ranking))
        start = max(0, min(start, stop))
        if ranking.settled or start == stop or (start == 0 and stop == len(ranking)):
            return ranking.ids[start:stop]
        first_end = _tie_bounds(ranking.scores, start, start + 1)[1]
        last_start = _tie_bounds(ranking.scores, stop - 1, stop)[0]
        if first_end >= last_start:
            return self.settle(ranking, start, stop)[0]
        return np.concatenate([self.settle(ranking, start, first_end)[0], ranking.ids[first_end:last_start],
                               self.settle(ranking, last_start, stop)[0]])

    def save(self, name: str, text_query: str) -> None:
        """Store a query under ``name`` (replacing one of that name); it must parse, and the name must be one
        that ``@name`` reads back: printable, no spaces, quotes or parentheses, at most ``SAVED_NAME_LENGTH``."""
        q.parse(text_query)
        if not name or len(name) > SAVED_NAME_LENGTH or any(
                not c.isprintable() or c.isspace() or c in '()"' for c in name):
            raise SearchError(f"a saved search needs a name without spaces, quotes, parentheses or control "
                              f"characters, of at most {SAVED_NAME_LENGTH} characters, not {name!r}")
        at = next((i for i, char in enumerate(text_query) if undecodable(char)), None)
        if at is not None:  # a folder: or similar: path with bytes that are not UTF-8 (a TEXT column)
            raise q.QuerySyntaxError("a saved search cannot hold bytes that are not UTF-8: search for this path "
                                     "without saving the query", at, text_query[at], text_query)
        with self.catalog.session() as session, session.begin():
            session.merge(SavedSearch(name=name, query=text_query, created_at=datetime.now()))

    def saved(self) -> dict[str, str]:
        with self.catalog.session() as session:
            return dict(session.execute(select(SavedSearch.name, SavedSearch.query).order_by(SavedSearch.name)).all())

    def delete_saved(self, name: str) -> None:
        with self.catalog.session() as session, session.begin():
            row = None if undecodable(name) else session.get(SavedSearch, name)  # no saved name holds a surrogate
            if row is None:
                raise SearchError(f"no saved search named {name!r} (phototag search --list shows them)")
            session.delete(row)

    # --- helpers for the compiler --------------------------------------------------------------
    def _expand(self, text_query: str, node: q.Node, seen: tuple[str, ...], usage: q.Usage,
                saved_searches: Callable[[], dict[str, str]]) -> q.Node:
        """Replace ``@name`` by the saved query (recursively; a cycle is an error). A saved query counts against
        the limits of the query using it: its terms with the query's (``usage``), its nesting one level below
        its ``@name``; an error inside it (past a limit, say) points at the ``@name`` the person typed."""
        if isinstance(node, q.SavedSearch):
            saved = saved_searches()
            if node.name not in saved:
                hint = _did_you_mean(node.name, list(saved))
                raise SearchError(q.format_error(text_query, node.span, f"no saved search '@{node.name}'{hint}"))
            if node.name in seen:
                raise SearchError(f"saved search '@{node.name}' refers to itself")
            try:
                tree = q.parse(saved[node.name], usage=usage, depth=node.depth + 1)
                return self._expand(saved[node.name], tree, (*seen, node.name), usage, saved_searches)
            except q.QuerySyntaxError as error:
                if seen:  # reported by the outermost @name
                    raise
                raise q.QuerySyntaxError(f"in @{node.name}: {error.message}", node.span[0],
                                         text_query[node.span[0]:node.span[1]], text_query) from None
        if isinstance(node, q.And | q.Or):
            items = tuple(self._expand(text_query, item, seen, usage, saved_searches) for item in node.items)
            return type(node)(items, span=node.span)
        if isinstance(node, q.Not):
            return q.Not(self._expand(text_query, node.item, seen, usage, saved_searches), span=node.span)
        return node

    def embedder(self) -> Any:
        if callable(self._embedder) and not hasattr(self._embedder, "embed_texts"):
            self._embedder = self._embedder()
        if self._embedder is None:
            raise SearchError("this query needs the CLIP embedder, and none is available")
        return self._embedder

    def embedder_version(self) -> str:
        version = self._embedder_version
        if callable(version):
            version = version()
        if version is None:
            version = self.embedder().bundle.version
        self._embedder_version = version
        return version

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

            def exact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return embedding_vectors(self.catalog, version, ids)

            self._vectors, _ = VectorIndex.open(self.catalog.vectors_path, int(dim), state, rows,
                                                kind=self.vector_index, exact_vectors=exact)
            self._vectors_state = state
        return self._vectors

    def query_vector_for_text(self, phrase: str) -> np.ndarray:
        return self.embedder().embed_texts([phrase]).numpy()[0]

    def query_vector_for_photo(self, session: Session, path: str, text_query: str, span: tuple[int, int]) -> np.ndarray:
        """The stored embedding of an indexed photo, or a fresh one for any other image file."""
        names = spellings(path)
        stored = session.scalar(select(Embedding.vector).join(Photo, Photo.id == Embedding.photo_id).where(
            Photo.path.in_(names), Embedding.model_version == self.embedder_version()).limit(1))
        path = names[0]
        if stored is not None:
            return stored
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
        self.capped = False  # the matches were counted among COUNT_CAP tag rows: there are at least that many
        self.searcher = searcher
        self.session = session
        self.query = text_query
        self.cutoff = cutoff
        self.semantic_tables: list[Table] = []  # positive semantic terms: their scores rank results
        self.tag_ids: list[int] = []  # positive tag terms: their scores rank tag-only queries
        self._metadata = MetaData()
        self._tags_drive = True
        self.subject: Any = Photo.id  # the photo id the conditions test: photos.id, or a tag row's photo_id
        self.restrict: np.ndarray | None = None  # semantic terms score only these photo ids (see prefilter)
        self.candidate_rows = 0  # tag rows the tag-row way starts from (counted up to DRIVER_COUNT_CAP)
        self._all_candidates: int | None = None  # and counted further, when a set to check them against is large
        self.driver: list[int] = []  # the tag ids whose rows the tag-row way starts from,
        self.driver_item: q.Node | None = None  # the term they are (None: every queried tag's rows),
        self.driver_items: tuple[q.Node, ...] = ()  # among these, AND-ed
        self.alone = False  # the query is one semantic term: its candidates are the answer, unfiltered
        self.coded = False  # the semantic term's candidates came scored by an IVF-PQ index's codes (see _matches)
        self._resolved: dict[str, list[int]] = {}  # tag name -> ids, shared with the prefilter's compiler

    # --- running a query -------------------------------------------------------------------------
    def run(self, tree: q.Node, limit: int | None, sort: str) -> tuple[int, list[tuple]]:
        """(matches, rows of (id, path, taken_at, score)) for ``tree``, the best ``limit`` in ``sort`` order."""
        if limit and sort == "relevance" and _score_ordered(tree):
            self._choose_driver(tree)
            if self.candidate_rows >= DRIVER_COUNT_CAP:  # every term's tags have many photos
                return self._first_page(tree, limit)
            return self._top(*self._present_pairs(self._tag_rows_statement()), limit)
        scored = self._scored(tree, sort)
        if scored is None:
            return self._run_general(tree, limit, sort)
        return self._top(*scored, limit)

    def _first_page(self, tree: q.Node, limit: int) -> tuple[int, list[tuple]]:
        """The best ``limit`` matches of a tag query whose candidate tags are all common, without reading every
        match (a common tag is on millions of photos at 10M): each queried tag's rows in score order from the
        tag index ``(tag_id, state, score, photo_id)``, checked against the query (less the plain terms naming
        that tag) row by row until ``limit`` match, merged by photo (its best queried tag's score, as
        :meth:`_by_tag_rows` scores it); equal scores at the cut read whole. The matches are then counted by
        :meth:`_count_first_rows` (a lower bound past its caps).

        A photo's score is the best of its queried tags' rows, so the best ``limit`` photos each have their best
        row among the first ``limit`` rows of that tag's order (the rows above it are other photos, scoring at
        least as much): reading that many rows of each tag, state by state, finds them. Rows without a score (a
        person's or a file's tag) score 1: they come first, newest first among them."""
        scan = PhotoTag.__table__.alias("scan")
        self.subject = scan.c.photo_id
        self.candidate_rows = CHECKED_COUNT_CAP // 4  # each row checks the other terms by a seek; sets when small
        tags = list(dict.fromkeys(i for tag in _positive_tags(tree) for i in self._resolve_tag(tag)))
        self.tag_ids.extend(tags)  # they score the matches, and name a result's matched tags
        ranges = [(tag, state) for tag in tags for state in (SUGGESTED, ACCEPTED)]  # every state but REJECTED
        # Missing photos: a seek per row read (a few hundred), not a set of every missing photo built per statement.
        missing = ~exists().where(Photo.id == scan.c.photo_id, Photo.status == MISSING)
        items = self.driver_items
        known = len(self.tag_ids)
        # A tag's rows are checked against the query less its plain terms naming that tag (its rows satisfy them).
        checks_of = {tag: [self.compile(item) for item in items
                           if not (_plain_tags(item) and tag in self._plain_tag_ids(item))] for tag in tags}
        condition = {tag: _joined(and_, [missing, *checks]) for tag, checks in checks_of.items()}
        del self.tag_ids[known:]  # compiled again: no new tags

        def rows(tag: int, state: str, *where: Any) -> Any:
            return select(scan.c.photo_id, scan.c.score).where(
                scan.c.tag_id == tag, scan.c.state == state, condition[tag], *where)

        # Score 1 (no score, or a certain one): ties, newest first — found by walking the date index where enough
        # photos carry them, else read whole (the cost of the page then grows with its tags' rows of a person or a
        # file). Either way their photo rows are read for the date: missing photos are left out there.
        certain = [(tag, (scan.c.tag_id == tag) & (scan.c.state == state) & part) for tag, state in ranges
                   for part in (scan.c.score.is_(None), scan.c.score >= 1.0)]
        first = self._newest_walked(tree, union_all(*(select(scan.c.photo_id).where(rows) for _, rows in certain)),
                                    limit)
        if first is None:  # read whole, checked row by row
            top = union_all(*(select(scan.c.photo_id).where(rows, *checks_of[tag]) for tag, rows in certain)).subquery()
            taken = type_coerce(func.coalesce(Photo.taken_at, ""), String)
            first = list(self.session.scalars(select(Photo.id).where(Photo.id.in_(select(top.c.photo_id)),
                                                                     Photo.status != MISSING)
                                              .order_by(taken.desc(), Photo.id).limit(limit)))
        best = dict.fromkeys(first, 1.0)
        if len(best) < limit:
            found: dict[int, float] = {}
            for tag, state in ranges:
                for photo_id, score in self._raw_rows(rows(tag, state, scan.c.score < 1.0)
                                                      .order_by(scan.c.score.desc()).limit(limit)):
                    if photo_id not in best and score > found.get(photo_id, -1.0):
                        found[photo_id] = score
            if len(found) > limit - len(best):  # the cut's score: every photo scoring it, read whole
                cut = sorted(found.values(), reverse=True)[limit - len(best) - 1]
                found = {i: s for i, s in found.items() if s > cut}
                for tag, state in ranges:
                    for photo_id in self.session.scalars(select(scan.c.photo_id).where(
                            scan.c.tag_id == tag, scan.c.state == state, scan.c.score == cut, condition[tag])):
                        found.setdefault(photo_id, cut)  # a photo above the cut keeps its best score
            best.update((i, s) for i, s in found.items() if i not in best)
        page = self._rank(best.items(), limit)
        if len(page) < limit:  # every match is on the page
            return len(page), page
        total = self._count_first_rows(tree)
        return max(total, len(page)), page

    def _newest_walked(self, tree: q.Node, group: Any, limit: int) -> list[int] | None:
        """The newest ``limit`` photos of ``group`` (a statement of photo ids: the queried tags' rows of a person
        or a file) matching ``tree``, found by walking the date index newest first — each photo tested against
        the group's ids, the query checked on the few that are in it — when the matching photos are many enough
        among the library's that the walk ends early; ``None`` when they are not, or when the walk stopped
        short of ``limit`` (the group is then read whole, every row checked and its photo read for the date).

        How many match is estimated from the group's rows (counted up to ``GROUP_COUNT_CAP``) and the share of
        its first ``WALK_SAMPLE`` that match the query, date terms aside (the walk keeps to their dates). The
        walk is taken when it should cost at most half of reading the group whole (an entry of the date index
        costs ~1/``WALK_COST`` of reading a photo row), and bounded at ``WALK_SPARE`` times the entries evenly
        spread matches need. At 10M photos a common tag's ~20k person-set rows took 43 ms read whole, 6 ms
        walked."""
        rows = self._count(group, GROUP_COUNT_CAP)
        if rows < limit:
            return None
        dates = [item for item in self.driver_items if isinstance(item, q.DateRange)]
        rest = [item for item in self.driver_items if not isinstance(item, q.DateRange)]
        known, drive, subject = len(self.tag_ids), self._tags_drive, self.subject
        self._tags_drive, self.subject = False, Photo.id  # each walked photo in the group checked by seeks
        try:
            range_of_dates = [self.compile(item) for item in dates]
            matching = self.compile(tree)
            undated_matching = matching if not dates else self.compile(
                rest[0] if len(rest) == 1 else q.And(tuple(rest), span=tree.span))
        finally:
            self._tags_drive, self.subject = drive, subject
            del self.tag_ids[known:]
        sample = matched = min(rows, WALK_SAMPLE)
        if not (len(rest) == 1 and _plain_tags(rest[0])):  # one term of tags: the group's photos match it
            sampled = group.limit(WALK_SAMPLE).subquery()
            matched = self.session.scalar(select(func.count()).select_from(sampled).join(
                Photo, Photo.id == sampled.c.photo_id).where(Photo.status != MISSING, undated_matching)) or 0
        if matched < WALK_SAMPLE_MATCHES and matched < sample:  # too few to estimate: sparse, read whole
            return None
        photos = self.session.scalar(select(func.max(Photo.id))) or 0
        walk = int(WALK_SPARE * limit * photos * sample / (rows * matched))  # entries of the date index, at most
        if walk > WALK_SPARE / 2 * WALK_COST * rows:  # the walk expected to cost more than half the whole read
            return None
        taken = type_coerce(Photo.taken_at, String)  # as stored (ISO text), to compare with the bound read
        bound = self.session.execute(select(taken).where(*range_of_dates).order_by(Photo.taken_at.desc())
                                     .offset(walk).limit(1)).first()
        conditions = [*range_of_dates]
        if bound is not None:  # the walk stops there (or at the undated photos, which come last)
            conditions.append(taken >= bound[0] if bound[0] is not None else Photo.taken_at.is_not(None))
        # ``id + 0``: not an index term, so SQLite walks the date index in order rather than seek the group's
        # photos and sort them; the id comes from the index entry, the photo row is read only for those in it.
        in_group = (Photo.id + 0).in_(group)
        found = self._raw_rows(select(Photo.id, taken).where(in_group, *conditions, Photo.status != MISSING,
                                                             matching)
                               .order_by(Photo.taken_at.desc()).limit(limit + 1))
        if len(found) <= limit:  # every match within the walk: the newest ones, unless the walk stopped short
            return None if bound is not None and len(found) < limit else [row[0] for row in _newest_first(found)]
        cut = found[limit - 1][1]
        if cut is None:  # undated at the cut: ties with every undated photo of the group
            return None
        if found[limit][1] != cut:  # the next is older: no photo of the cut's date is left out
            return [row[0] for row in _newest_first(found[:limit])]
        ties = self._raw_rows(select(Photo.id, taken).where(in_group, *range_of_dates, taken == cut,
                                                            Photo.status != MISSING, matching))
        return [row[0] for row in _newest_first([row for row in found if row[1] != cut] + ties)[:limit]]

    def _count_first_rows(self, tree: q.Node) -> int:
        """The matches among the first ``COUNT_CAP`` rows of the driver's tags (the rarest plain term's, as
        :meth:`_by_tag_rows` chose them) — ``CHECKED_COUNT_CAP`` when other terms check each row; ``capped`` when
        the tags have more rows (the count is then a lower bound). One term of tags alone: their rows less those of
        missing photos, counted from the index without looking at each row's photo (several tags past the cap: the
        rows of the one with most — a photo carrying two of them counts once)."""
        scan = PhotoTag.__table__.alias("scan")
        driver, rest = self.driver, [item for item in self.driver_items if item is not self.driver_item]
        rows_of_driver = select(scan.c.photo_id).where(scan.c.tag_id.in_(driver), scan.c.state != REJECTED)
        cap = CHECKED_COUNT_CAP if rest else COUNT_CAP
        rows = self._count(rows_of_driver, cap + 1)
        self.capped = rows > cap
        if not rest:  # from the index alone: each row a photo of its tag, unless missing
            missing = select(Photo.id).where(Photo.status == MISSING)
            if self.capped:  # at least the rows counted less every missing photo — of one tag, when several
                most = max(self._count(self._rows_of([tag]), cap) for tag in driver) if len(driver) > 1 else cap
                return max(0, most - self._count(missing, most))
            if self._count(missing, rows) < rows:  # a few missing photos: as a set
                kept = rows_of_driver.where(scan.c.photo_id.not_in(missing))
            else:
                kept = rows_of_driver.where(~exists().where(Photo.id == scan.c.photo_id, Photo.status == MISSING))
            return self._count(kept.distinct() if len(driver) > 1 else kept, cap)
        examined = rows_of_driver.limit(cap).subquery()
        self.subject = examined.c.photo_id
        matches = select(examined.c.photo_id).where(
            ~exists().where(Photo.id == examined.c.photo_id, Photo.status == MISSING),
            self.compile(rest[0] if len(rest) == 1 else q.And(tuple(rest), span=tree.span)))
        return self._count(matches.distinct() if len(driver) > 1 else matches, cap)

    def ranking(self, tree: q.Node, sort: str) -> tuple[np.ndarray, np.ndarray, bool]:
        """(ids, scores, settled) of every match: from a short way by score then id (ties left to
        :meth:`Searcher.settle`), from the general way in result order."""
        scored = self._scored(tree, sort)
        if scored is None:
            ids, scores = self._fetch_pairs(self._general_statement(tree, sort))
            return ids, scores, True
        ids, scores = scored
        scores = scores.astype(np.float64)
        order = np.lexsort((ids, -scores))
        return ids[order], scores[order], False

    def _scored(self, tree: q.Node, sort: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(ids, scores) of every match, unordered, by one of the short ways; None when ``tree`` takes the general
        way (it has none, or the sort is not by relevance)."""
        if sort != "relevance":
            return None
        if isinstance(tree, q.Semantic | q.Similar):
            self.alone = True
            return self._run_semantic(tree)
        if _every_match_has_a_tag(tree) and not _has_semantic(tree):
            return self._run_tags(tree)
        if _one_semantic_and_filters(tree):
            return self._run_mixed(tree)
        return None

    def _run_mixed(self, tree: q.And) -> tuple[np.ndarray, np.ndarray]:
        """One free-text or ``similar:`` term AND-ed with other terms: FAISS gives the candidates and their scores,
        SQL keeps those that pass the other terms (no temporary table, no score lookups), photo rows are read
        for the top ones only."""
        self.drive_by_tags(tree)
        self.prefilter(tree)
        semantic = next(item for item in tree.items if isinstance(item, q.Semantic | q.Similar))
        rest = [item for item in tree.items if item is not semantic]
        vector = self._query_vector(semantic)
        scores, ids = self._matches(vector, codes=True)
        condition = self.compile(rest[0] if len(rest) == 1 else q.And(tuple(rest), span=tree.span))
        # In ascending order: the seeks of each candidate's rows then walk the tables' pages forward.
        candidates = func.json_each(json.dumps(np.sort(ids).tolist())).table_valued("value")
        passed = np.fromiter(self.session.scalars(select(Photo.id).where(
            Photo.id.in_(select(candidates.c.value)), condition, Photo.status != MISSING)), dtype=np.int64)
        keep = np.isin(ids, passed)
        if self.coded:  # the candidates' codes scored them: those that passed, exactly now
            found, exact = self.searcher.vectors().rescore(vector, ids[keep])
            kept = exact >= self.cutoff
            return found[kept], exact[kept]
        return ids[keep], scores[keep]

    def _run_general(self, tree: q.Node, limit: int | None, sort: str) -> tuple[int, list[tuple]]:
        """One SELECT over ``photos`` with the whole query as its condition."""
        statement = self._general_statement(tree, sort).add_columns(Photo.path, Photo.taken_at,
                                                                     func.count().over().label("total"))
        if limit is not None:
            statement = statement.limit(limit)
        rows = self.session.execute(statement).all()
        return (rows[0].total if rows else 0), [(r.id, r.path, r.taken_at, r.score) for r in rows]

    def _general_statement(self, tree: q.Node, sort: str) -> Any:
        """``SELECT id, score`` of the photos matching ``tree``, in result order."""
        self.drive_by_tags(tree)
        self.prefilter(tree)
        condition = self.compile(tree)
        # Labelled once, ordered by the label: the correlated score subquery then runs once per match.
        score = self.score_expression().label("score")
        order = (score.desc(), Photo.taken_at.desc()) if sort == "relevance" else \
            (Photo.taken_at.is_(None), Photo.taken_at.desc(), score.desc())
        return select(Photo.id, score).where(condition, Photo.status != MISSING).order_by(*order, Photo.id)

    def _run_semantic(self, node: q.Semantic | q.Similar) -> tuple[np.ndarray, np.ndarray]:
        """A lone free-text or ``similar:`` term: FAISS ranks, SQL only drops missing photos (rows are read for the
        top results only, by the caller)."""
        scores, ids = self._matches(self._query_vector(node))
        keep = self._not_missing(ids)
        return ids[keep], scores[keep]

    def _run_tags(self, tree: q.Node) -> tuple[np.ndarray, np.ndarray]:
        """Tags with booleans and filters, every match carrying a queried tag: one read of the covering tag index
        (see :meth:`_by_tag_rows`) gives every match and its score (rows are read for the top ones only, by the
        caller)."""
        return self._present_pairs(self._by_tag_rows(tree))

    def _present_pairs(self, statement: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(id, score)`` rows of ``statement`` whose photo is not missing, as two arrays."""
        ids, scores = self._fetch_pairs(statement)
        keep = self._not_missing(ids)
        return ids[keep], scores[keep]

    def _top(self, ids: np.ndarray, scores: np.ndarray, limit: int | None) -> tuple[int, list[tuple]]:
        """(matches, rows) for every match and its score: photo rows are read only for those scoring at least
        the limit-th best (its ties included, as the order among them is newest first, see :meth:`_rank`)."""
        total = len(ids)
        if limit is not None and total > limit:
            take = scores >= -np.partition(-scores, limit - 1)[limit - 1]
            ids, scores = ids[take], scores[take]
        return total, self._rank(zip(ids.tolist(), scores.tolist(), strict=True), limit)

    def _not_missing(self, ids: np.ndarray) -> np.ndarray:
        """Mask of ``ids`` whose photo is not missing. Missing photos are usually a few per mille of a library: they
        are read, when fewer than ``ids``. Otherwise (a volume offline: most of the library missing) each id's
        photo is looked up instead, so that a query costs what its matches cost, not what the missing ones do."""
        if not len(ids):
            return np.ones(0, dtype=bool)
        missing = select(Photo.id).where(Photo.status == MISSING)
        if self._count(missing, len(ids)) < len(ids):
            gone = np.fromiter(self.session.scalars(missing), np.int64)
        else:  # CROSS JOIN: from the ids to their rows (SQLite would otherwise start from the status index)
            gone = np.fromiter(itertools.chain.from_iterable(self.session.connection().exec_driver_sql(
                "SELECT p.id FROM json_each(?) AS j CROSS JOIN photos AS p ON p.id = j.value WHERE p.status = ?",
                (json.dumps(ids.tolist()), MISSING)).fetchall()), np.int64)
        return ~np.isin(ids, gone, kind="table") if len(gone) else np.ones(len(ids), dtype=bool)

    def _fetch_pairs(self, statement: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(id, score)`` rows of ``statement`` as two arrays (ids int64, scores float64)."""
        rows = self._raw_rows(statement)
        pairs = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=2 * len(rows))
        return pairs[0::2].astype(np.int64), pairs[1::2]

    def _raw_rows(self, statement: Any) -> list[tuple]:
        """The rows of ``statement`` as plain tuples from the driver's cursor: SQLAlchemy's rows cost 3x as much
        to make, and the garbage collector's passes over 100k of them another ~100 ms."""
        return _driver_rows(self.session, statement)

    def _by_tag_rows(self, tree: q.Node, at_most: int | None = None) -> Any:
        """``SELECT id, score`` of the photos matching ``tree`` — every match carrying a queried tag — with
        their best queried tag's score, read from the covering index ``(tag_id, state, score, photo_id)``.

        The candidates are the rows of the top level's plain tag term (``tag:a``, ``tag:a OR tag:b``) with
        the fewest rows, or of every queried tag; each other term is a set of photo ids built once and
        probed, or, when it is much larger than the candidates, checked on each candidate (see :meth:`_set`).
        ``None`` when ``at_most`` is given and there are more candidate rows."""
        cap = DRIVER_COUNT_CAP if at_most is None else min(DRIVER_COUNT_CAP, at_most + 1)
        self._choose_driver(tree, cap)
        if at_most is not None and self.candidate_rows >= cap:
            return None  # counted up to the cap: that many or more
        return self._tag_rows_statement()

    def _choose_driver(self, tree: q.Node, cap: int = DRIVER_COUNT_CAP) -> None:
        """The tag rows a tag query starts from (``driver``, ``driver_item``, among ``driver_items``), and how
        many they are (``candidate_rows``, counted up to ``cap``): the top level's plain tag term with the fewest
        rows, or every queried tag's."""
        self.subject = PhotoTag.__table__.alias("scan").c.photo_id
        items = tree.items if isinstance(tree, q.And) and not _has_qualifiers(tree) else (tree,)
        plain = [(item, self._plain_tag_ids(item)) for item in items if _plain_tags(item)]
        if plain:
            sizes = [self._count(self._rows_of(ids), cap) for _, ids in plain]
            driver_item, driver = plain[sizes.index(min(sizes))]
            self.candidate_rows = min(sizes)
        else:
            driver_item = None
            driver = sorted({i for tag in _positive_tags(tree) for i in self._resolve_tag(tag)})
            self.candidate_rows = self._count(self._rows_of(driver), cap)
        self.driver, self.driver_item, self.driver_items = driver, driver_item, items

    def _tag_rows_statement(self) -> Any:
        """:meth:`_by_tag_rows`' statement from the chosen driver."""
        scan = self.subject.table
        driver, items = self.driver, self.driver_items
        self.tag_ids.extend(driver)
        conditions = [self.compile(item) for item in items if item is not self.driver_item]
        others = sorted(set(self.tag_ids) - set(driver))
        score: ColumnElement[Any] = func.coalesce(scan.c.score, 1.0)
        if len(driver) > 1:
            score = func.max(score)  # the best of the photo's candidate rows
        if others:  # and the other queried tags the photo carries
            best_other = (select(func.max(func.coalesce(PhotoTag.score, 1.0)))
                          .where(PhotoTag.photo_id == scan.c.photo_id, PhotoTag.tag_id.in_(others),
                                 PhotoTag.state != REJECTED).scalar_subquery())
            score = func.max(score, func.coalesce(best_other, 0.0))
        # Missing photos are left in: the caller drops them (see _not_missing).
        statement = (select(scan.c.photo_id.label("id"), score.label("score"))
                     .where(_joined(and_, [scan.c.tag_id.in_(driver), scan.c.state != REJECTED, *conditions])))
        return statement.group_by(scan.c.photo_id) if len(driver) > 1 else statement

    def _plain_tag_ids(self, node: q.Node) -> list[int]:
        tags = node.items if isinstance(node, q.Or) else (node,)  # only tags (_plain_tags)
        return sorted({i for tag in tags if isinstance(tag, q.Tag) for i in self._resolve_tag(tag)})

    @staticmethod
    def _rows_of(tag_ids: list[int]) -> Any:
        return select(PhotoTag.photo_id).where(PhotoTag.tag_id.in_(tag_ids), PhotoTag.state != REJECTED)

    def _count(self, statement: Any, cap: int) -> int:
        """Rows of ``statement``, counted up to ``cap`` (an index range counts ~10 M rows/s: cap bounds the cost)."""
        return int(self.session.scalar(select(func.count()).select_from(statement.limit(cap).subquery())) or 0)

    def _set(self, photo_ids: Any, check: Any) -> Any:
        """The condition "the candidate's photo is in ``photo_ids``" for tag-row candidates: as a set built once
        and probed (~0.25 µs a member), or, where the set is over 4x the candidates, ``check`` — a correlated
        condition costing a seek per candidate (~1 µs at 1M photos, ~4 µs at 10M; bench/results/search.md).

        Candidates counted to the cap (``DRIVER_COUNT_CAP``: every match is read, for a view's ranking) against a
        set of ``SET_COUNT_CAP`` or more: both are counted further (up to ``LARGE_COUNT_CAP`` candidates), so that
        a common tag with a year (1M rows against 700k photos at 10M) builds the set (~0.4 s) instead of seeking
        for each candidate (4.8 s)."""
        rows = self.candidate_rows
        cap = 4 * rows if rows < DRIVER_COUNT_CAP else SET_COUNT_CAP
        if self._count(photo_ids, cap) < cap:
            return self.subject.in_(photo_ids)
        if rows < DRIVER_COUNT_CAP:
            return check
        if self._all_candidates is None:
            self._all_candidates = self._count(self._rows_of(self.driver), LARGE_COUNT_CAP)
        cap = 4 * self._all_candidates
        return self.subject.in_(photo_ids) if self._count(photo_ids, cap) < cap else check

    def _rank(self, scored: Any, limit: int | None) -> list[tuple]:
        """Photo rows for ``(photo id, score)`` pairs: best score first, then newest, then by id; ``limit`` of them."""
        scores = dict(scored)
        # The ids as one JSON parameter (json_each): a statement with thousands of bound ids costs ~10 ms to
        # build. taken_at as stored (ISO text): it sorts as the dates do; only the shown rows are converted.
        wanted = func.json_each(json.dumps(list(scores))).table_valued("value")
        taken = type_coerce(func.coalesce(Photo.taken_at, ""), String)
        rows = _newest_first(list(self.session.execute(select(Photo.id, Photo.path, taken)
                                                       .where(Photo.id.in_(select(wanted.c.value))))), taken=2)
        rows.sort(key=lambda r: scores[r[0]], reverse=True)  # sorts are stable: equal scores stay newest first
        return [(i, path, _stored_datetime(taken), scores[i]) for i, path, taken in rows[:limit]]

    def prefilter(self, tree: q.Node) -> None:
        """Free text AND-ed with tags or filters that match at most ``PREFILTER_MAX`` photos: find those first
        and let the semantic terms score every one of them exactly (``restrict``), instead of taking the
        library's best candidates — which an approximate index finds only approximately — and filtering them."""
        if not isinstance(tree, q.And):
            return
        semantic = [item for item in tree.items if isinstance(item, q.Semantic | q.Similar)]
        rest = [item for item in tree.items if not isinstance(item, q.Semantic | q.Similar)]
        if not semantic or not rest or any(_has_semantic(item) for item in rest):
            return
        others = rest[0] if len(rest) == 1 else q.And(tuple(rest), span=tree.span)
        first = _Compiler(self.searcher, self.session, self.query, self.cutoff)
        first._resolved = self._resolved
        ids = first.photo_ids(others, PREFILTER_MAX)
        if ids is not None:
            self.restrict = np.asarray(ids, dtype=np.int64)

    def photo_ids(self, tree: q.Node, at_most: int) -> list[int] | None:
        """Ids of the photos matching ``tree`` (no semantic terms), or ``None`` when they may be more than
        ``at_most``: only for trees whose every match carries a tag, known cheaply to be few."""
        if not _every_match_has_a_tag(tree):
            return None
        matches = self._by_tag_rows(tree, at_most)
        if matches is None:
            return None
        ids = np.fromiter(self.session.scalars(select(matches.subquery().c.id)), dtype=np.int64)
        return ids[self._not_missing(ids)].tolist()

    def drive_by_tags(self, tree: q.Node) -> None:
        """Let positive tag terms drive the query (``id IN`` the tag's rows) unless something more selective
        should: a semantic or ``similar:`` term, or a date or folder filter. Measured at 1M photos."""
        self._tags_drive = not any(isinstance(n, q.Semantic | q.Similar | q.DateRange | q.Folder) for n in q.walk(tree))

    def compile(self, node: q.Node, positive: bool = True) -> Any:
        if isinstance(node, q.And):
            return _joined(and_, self._and_items(node.items, positive))
        if isinstance(node, q.Or):
            return _joined(or_, [self.compile(item, positive) for item in node.items])
        if isinstance(node, q.Not):
            return not_(self.compile(node.item, not positive))
        if isinstance(node, q.Semantic | q.Similar):
            return self._semantic(self._query_vector(node), positive)
        if isinstance(node, q.Tag):
            return self._tag(node, positive)
        if isinstance(node, q.DateRange):
            conditions: list[ColumnElement[bool]] = [Photo.taken_at.is_not(None)]
            if node.start is not None:
                conditions.append(Photo.taken_at >= datetime.combine(node.start, datetime.min.time()))
            if node.end is not None:
                conditions.append(Photo.taken_at < datetime.combine(node.end, datetime.min.time()))
            return self._photo(and_(*conditions), indexed=True)
        if isinstance(node, q.Camera):
            pattern = f"%{node.text.lower()}%"
            return self._photo(or_(func.lower(Photo.camera_make).like(pattern),
                                   func.lower(Photo.camera_model).like(pattern)))
        if isinstance(node, q.Folder):
            return self._photo(under(Photo.path, spellings(node.path)), indexed=True)
        if isinstance(node, q.Type):
            return self._photo(Photo.format == node.format)
        if isinstance(node, q.Has):
            return self._has(node.what)
        if isinstance(node, q.State | q.Source):
            return self._tag_rows(None, [node])
        raise SearchError(q.format_error(self.query, node.span, f"cannot search for {type(node).__name__} here"))

    def _photo(self, condition: Any, indexed: bool = False) -> Any:
        """A condition on the photo's own columns, for whichever photo id the query tests. From tag rows: an
        indexed range (date, folder) as the set of its photos, anything else checked on each candidate's row."""
        if self.subject is Photo.id:
            return condition
        check = exists().where(Photo.id == self.subject, condition)
        return self._set(select(Photo.id).where(condition), check) if indexed else check

    def _query_vector(self, node: q.Semantic | q.Similar) -> np.ndarray:
        if isinstance(node, q.Semantic):
            return self.searcher.query_vector_for_text(node.text)
        return self.searcher.query_vector_for_photo(self.session, node.path, self.query, node.span)

    def _and_items(self, items: tuple[q.Node, ...], positive: bool) -> list[Any]:
        """``tag:dog state:suggested`` means the dog tag is suggested: State/Source filters beside tags
        apply to those tags' rows; alone, to any tag row of the photo."""
        qualifiers = [i for i in items if isinstance(i, q.State | q.Source)]
        tags = [i for i in items if isinstance(i, q.Tag)]
        if not qualifiers or not tags:
            return [self.compile(item, positive) for item in items]
        rest = [i for i in items if not isinstance(i, q.State | q.Source | q.Tag)]
        return [self._tag(tag, positive, qualifiers) for tag in tags] + [self.compile(i, positive) for i in rest]

    def _tag(self, node: q.Tag, positive: bool, qualifiers: Sequence[q.Node] | None = None) -> Any:
        ids = self._resolve_tag(node)
        if positive:
            self.tag_ids.extend(ids)
        return self._tag_rows(ids, qualifiers or [], drive=positive and self._tags_drive)

    def _tag_rows(self, tag_ids: list[int] | None, qualifiers: Sequence[q.Node], drive: bool = False) -> Any:
        conditions: list[ColumnElement[bool]] = []
        if tag_ids is not None:
            conditions.append(PhotoTag.tag_id.in_(tag_ids))
        states = [x.value for x in qualifiers if isinstance(x, q.State)]
        sources = [x.value for x in qualifiers if isinstance(x, q.Source)]
        conditions.append(PhotoTag.state.in_(states) if states else PhotoTag.state != REJECTED)
        if sources:
            conditions.append(PhotoTag.source.in_(sources))
        if self.subject is not Photo.id:
            return self._set(select(PhotoTag.photo_id).where(*conditions),
                             exists().where(PhotoTag.photo_id == self.subject, *conditions))
        if drive:
            # ``id IN (photo ids from the tag index)``: SQLite starts from the tag's rows and seeks the photos
            # by rowid, instead of probing photo_tags once for every photo of the library.
            return Photo.id.in_(select(PhotoTag.photo_id).where(*conditions))
        return exists().where(PhotoTag.photo_id == Photo.id, *conditions)

    def _resolve_tag(self, node: q.Tag) -> list[int]:
        """Tag ids for an English name (any case), a Chinese name or a custom tag."""
        wanted = node.name.strip()
        if wanted in self._resolved:
            return self._resolved[wanted]
        rows = self.session.execute(select(Tag.id).where(or_(
            func.lower(Tag.name) == wanted.lower(), Tag.name_zh == wanted))).scalars().all()
        if rows:
            self._resolved[wanted] = list(rows)
            return self._resolved[wanted]
        names = [n for pair in self.session.execute(select(Tag.name, Tag.name_zh)).all() for n in pair if n]
        hint = _did_you_mean(wanted, names)
        raise SearchError(q.format_error(self.query, node.span, f"unknown tag '{wanted}'{hint}"))

    def _has(self, what: str) -> Any:
        if what == "gps":
            return self._photo(and_(Photo.gps_lat.is_not(None), Photo.gps_lon.is_not(None)))
        if what == "date":
            return self._photo(Photo.taken_at.is_not(None))
        if what == "camera":
            return self._photo(or_(Photo.camera_make.is_not(None), Photo.camera_model.is_not(None)))
        if what == "tags":
            return self._tag_rows(None, [])
        return exists().where(Embedding.photo_id == self.subject)

    def _semantic(self, vector: np.ndarray, positive: bool) -> Any:
        """Matches of one query vector, as ``photos.id IN (temporary table)``."""
        found_scores, found_ids = self._matches(vector)
        # Temporary tables belong to this connection; the same names in every search let SQLAlchemy reuse the
        # compiled statement (a fresh name per search cost ~5 ms of compiling each time).
        name = f"phototag_semantic_{len(self._metadata.tables)}"
        table = Table(name, self._metadata, Column("id", Integer, primary_key=True), Column("score", Float),
                      prefixes=["TEMPORARY"])
        table.drop(self.session.connection(), checkfirst=True)  # left over by a search that failed half-way
        table.create(self.session.connection())
        order = np.argsort(found_ids)  # ascending ids: B-tree appends, no page splits
        if len(order):
            # The driver's executemany: SQLAlchemy's per-row dicts cost 3x and trigger GC pauses at 20k rows.
            self.session.connection().exec_driver_sql(
                f"INSERT INTO {name} (id, score) VALUES (?, ?)",
                list(zip(found_ids[order].tolist(), found_scores[order].tolist(), strict=True)))
        if positive:
            self.semantic_tables.append(table)
        return Photo.id.in_(select(table.c.id))

    def _matches(self, vector: np.ndarray, codes: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the photos scoring at least the cutoff against ``vector``, best first: among the
        ``restrict`` ids when set (all of them scored), else among the best ``candidates`` of the library.

        ``codes`` (for a caller that filters the matches, then re-scores what passes): an IVF-PQ index gives all
        the candidates it would re-score, scored by their codes — those within ``CODE_MARGIN`` of the cutoff —
        reading no exact vector (``coded``); at 10M photos reading them was most of a filtered query's time."""
        vectors = self.searcher.vectors()
        query = np.asarray(vector, dtype=np.float32)[None, :]
        if self.restrict is not None:
            if not len(self.restrict):
                return np.empty(0, np.float32), np.empty(0, np.int64)
            scores, ids = vectors.search_ids(query, len(self.restrict), self.restrict, exact=True)
        else:
            # Candidates that other terms will filter: the answers lie deeper in the list, where an approximate
            # index misses more, so it looks harder (measured: recall@50 of mixed queries at 1M photos).
            effort = 1 if self.alone else FILTERED_EFFORT * (2 if self.candidates > FIRST_CANDIDATES else 1)
            self.coded = codes and vectors.kind == "ivfpq"
            scores, ids = vectors.search(query, min(self.candidates, max(len(vectors), 1)), effort=effort,
                                         codes=self.coded)
            if (ids[0] >= 0).sum() >= self.candidates and len(vectors) > self.candidates \
                    and scores[0][-1] >= self.cutoff:
                self.truncated = True
        keep = (ids[0] >= 0) & (scores[0] >= self.cutoff - (CODE_MARGIN if self.coded else 0.0))
        return scores[0][keep], ids[0][keep]

    def drop_tables(self) -> None:
        for table in self._metadata.tables.values():
            table.drop(self.session.connection(), checkfirst=True)
        self.session.commit()  # temporary tables only: nothing of the catalog is written

    def score_expression(self) -> Any:
        if self.semantic_tables:
            parts = [func.coalesce(select(t.c.score).where(t.c.id == Photo.id).scalar_subquery(), -1.0)
                     for t in self.semantic_tables]
            return _greatest(parts)
        if self.tag_ids:
            best = (select(func.max(func.coalesce(PhotoTag.score, 1.0)))
                    .where(PhotoTag.photo_id == Photo.id, PhotoTag.tag_id.in_(self.tag_ids),
                           PhotoTag.state != REJECTED).scalar_subquery())
            return func.coalesce(best, 0.0)
        return literal(1.0)

    def matched_tags(self, photo_ids: list[int]) -> dict[int, list[str]]:
        """The queried tags each of ``photo_ids`` carries (not rejected), by name."""
        if not self.tag_ids or not photo_ids:
            return {}
        wanted = func.json_each(json.dumps(photo_ids)).table_valued("value")
        # A page of results: ``tag_id + 0`` is no index term, so SQLite seeks each photo's rows by the primary key
        # instead of reading a common tag's every row. Thousands of results (the app asks for all): the queried
        # tags' rows from the tag index, each checked against the set of result ids, cost less.
        tag = PhotoTag.tag_id if len(photo_ids) > 2_000 else PhotoTag.tag_id + 0
        ids = list(dict.fromkeys(self.tag_ids))
        rows = self._raw_rows(
            select(PhotoTag.photo_id, Tag.name).join(Tag, Tag.id == PhotoTag.tag_id)
            .where(PhotoTag.photo_id.in_(select(wanted.c.value)), tag.in_(ids), PhotoTag.state != REJECTED)
            .order_by(Tag.name))
        found: dict[int, list[str]] = {}
        for photo_id, name in rows:
            found.setdefault(photo_id, []).append(name)
        return found


def _newest_first(rows: list[tuple], taken: int = 1) -> list[tuple]:
    """``rows`` (a photo id first, its taken_at as stored at ``taken``) newest first, undated last, then by id."""
    ordered = sorted(rows, key=lambda row: row[0])
    ordered.sort(key=lambda row: row[taken] or "", reverse=True)  # stable: equal dates keep id order
    return ordered


def _tie_bounds(scores: np.ndarray, start: int, stop: int) -> tuple[int, int]:
    """The positions ``start``..``stop`` of scores sorted best first, widened to whole groups of equal scores."""
    descending = -scores
    return (int(np.searchsorted(descending, descending[start], side="left")),
            int(np.searchsorted(descending, descending[stop - 1], side="right")))


def _driver_rows(session: Session, statement: Any) -> list[tuple]:
    """The rows of ``statement`` as plain tuples from the driver's cursor (see :meth:`_Compiler._raw_rows`)."""
    # Executed by SQLAlchemy, so that parameters go through their types (a folder: path is bound as its bytes,
    # schema.PathText); only the rows are read from the driver's cursor.
    result = session.connection().execute(statement)
    try:
        return cast(list[tuple], result.cursor.fetchall())  # sqlite3's cursor: a list
    finally:
        result.close()


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=3, cutoff=0.6)]
    return f" — did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class _Parenthesised(Grouping):
    """Parentheses that ``and_``/``or_`` keep: a plain ``Grouping`` passes on its content's operator, so they
    would flatten it back into one list (SQLAlchemy 2)."""

    inherit_cache = True
    operator = None


def _joined(combine: Any, conditions: list[Any]) -> Any:
    """``combine`` (``and_`` or ``or_``) of ``conditions``, in parenthesised groups of ``SQL_CHAIN`` when there are
    more: SQLite parses ``a OR b OR c …`` as a chain one level deeper per condition, and refuses 1,000 levels
    ("Expression tree is too large"); groups make it ``SQL_CHAIN`` plus the number of groups."""
    while len(conditions) > SQL_CHAIN:
        conditions = [_Parenthesised(combine(*conditions[at:at + SQL_CHAIN]))
                      for at in range(0, len(conditions), SQL_CHAIN)]
    return combine(*conditions)


def _greatest(values: list[Any]) -> Any:
    """The largest of ``values`` as SQL: ``max(a, b, …)``, nested past SQLite's 127 arguments to a function."""
    while len(values) > 1:
        values = [chunk[0] if len(chunk) == 1 else func.max(*chunk)  # max() of one value would be the aggregate
                  for chunk in (values[at:at + SQL_FUNCTION_ARGS] for at in range(0, len(values), SQL_FUNCTION_ARGS))]
    return values[0]


def _stored_datetime(text: str) -> datetime | None:
    """A DATETIME column as SQLite stores it through SQLAlchemy (``2023-07-01 10:00:00.000000``), or None."""
    return datetime.fromisoformat(text) if text else None


def _has_semantic(node: q.Node) -> bool:
    return any(isinstance(n, q.Semantic | q.Similar) for n in q.walk(node))


def _one_semantic_and_filters(node: q.Node) -> TypeGuard[q.And]:
    """``words tag:x date:…``: an AND of one free-text or ``similar:`` term with terms that have none."""
    if not isinstance(node, q.And):
        return False
    semantic = [item for item in node.items if isinstance(item, q.Semantic | q.Similar)]
    return len(semantic) == 1 and not any(_has_semantic(item) for item in node.items if item is not semantic[0])


def _score_ordered(node: q.Node) -> bool:
    """Whether the best matches of ``node`` can be read in the tag index's score order: a tag query (every match
    carries a queried tag, no free text) without ``state:``/``source:`` (which choose other rows than the
    scored ones)."""
    return _every_match_has_a_tag(node) and not any(isinstance(n, q.Semantic | q.Similar | q.State | q.Source)
                                                    for n in q.walk(node))


def _has_qualifiers(node: q.And) -> bool:
    return any(isinstance(item, q.State | q.Source) for item in node.items)


def _plain_tags(node: q.Node) -> bool:
    """``tag:a`` or ``tag:a OR tag:b …``: true exactly for photos with one of those tags not rejected."""
    return isinstance(node, q.Tag) or (isinstance(node, q.Or) and all(isinstance(i, q.Tag) for i in node.items))


def _positive_tags(node: q.Node, positive: bool = True) -> Iterator[q.Tag]:
    """The tag terms a match may carry (not under an odd number of NOTs)."""
    if isinstance(node, q.Tag) and positive:
        yield node
    elif isinstance(node, q.And | q.Or):
        for item in node.items:
            yield from _positive_tags(item, positive)
    elif isinstance(node, q.Not):
        yield from _positive_tags(node.item, not positive)


def _every_match_has_a_tag(node: q.Node) -> bool:
    """Whether every photo matching ``node`` carries one of its positive tag terms, not rejected — so those
    tags' rows can be the candidates. ``state:rejected`` beside a tag asks for its rejected rows: no."""
    if isinstance(node, q.Tag):
        return True
    if isinstance(node, q.Or):
        return all(_every_match_has_a_tag(item) for item in node.items)
    if isinstance(node, q.And):
        if any(isinstance(i, q.State) and i.value == REJECTED for i in node.items):
            return False
        return any(_every_match_has_a_tag(item) for item in node.items)
    return False
