"""The short ways (tag rows, a lone semantic term, a prefilter) give exactly what the general SELECT gives.

A random catalog with many exact score ties (scores on a 0.1 grid, user and file tags scoring 1),
rejected rows, missing and undated photos; every query runs both ways at several limits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import event

import indexer.search.engine as engine
from indexer.catalog import Catalog
from indexer.index import GENERATION_KEY
from indexer.schema import ACCEPTED, REJECTED, SUGGESTED, Embedding, Photo, PhotoTag, Tag
from indexer.search.engine import Searcher
from tests.indexer.search.test_engine import KnownTextEmbedder

DIM = 8
VERSION = "clip_test@v1"
TAGS = ["dog", "cat", "beach", "tree", "car", "sky", "food", "rare"]
CAMERAS = ["SONY", "Canon", "Apple", None]
FOLDERS = ["/lib/a", "/lib/b", "/lib/b/c", "/other"]
PHRASES = {"dogs": 0, "cats": 1, "cars": 2}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:  # noqa: ANN001
    catalog = build(tmp_path_factory.mktemp("plans") / "catalog", missing=lambda i: i % 37 == 0)
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> Catalog:  # noqa: ANN001
    """The same library with most of it missing, as when the volume holding it is not mounted."""
    catalog = build(tmp_path_factory.mktemp("offline") / "catalog", missing=lambda i: i % 5 != 0)
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def bursts(tmp_path_factory) -> Catalog:  # noqa: ANN001
    """The same library shot in 30 days at midnight: photos share a date by the dozen, as in a burst."""
    catalog = build(tmp_path_factory.mktemp("bursts") / "catalog", missing=lambda i: i % 37 == 0, days=30)
    yield catalog
    catalog.close()


def build(folder, missing, days: int = 2000) -> Catalog:  # noqa: ANN001
    rng = np.random.default_rng(7)
    catalog = Catalog.open(folder)
    stamp = datetime(2024, 1, 1)
    with catalog.session() as session, session.begin():
        tag_ids = []
        for name in TAGS:
            tag = Tag(name=name, kind="builtin", threshold=0.5)
            session.add(tag)
            session.flush()
            tag_ids.append(tag.id)
        popularity = np.array([0.5, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.02])
        for i in range(400):
            taken = None if rng.random() < 0.1 else datetime(2018, 1, 1) + timedelta(days=int(rng.integers(0, days)))
            photo = Photo(path=f"{FOLDERS[i % 4]}/p{i:03d}.jpg", size=1, mtime_ns=1, format=["jpeg", "heif"][i % 2],
                          taken_at=taken, camera_make=CAMERAS[i % 4], gps_lat=1.0 if i % 3 else None,
                          gps_lon=2.0 if i % 3 else None, status="missing" if missing(i) else "indexed",
                          attempts=0, first_seen=stamp, last_seen=stamp)
            session.add(photo)
            session.flush()
            for tag_id in np.flatnonzero(rng.random(len(TAGS)) < popularity):
                roll = rng.random()
                source, state, score = (("user", ACCEPTED, None) if roll < 0.1 else ("file", ACCEPTED, None)
                                        if roll < 0.15 else ("model", REJECTED if roll < 0.25 else SUGGESTED,
                                                             round(float(rng.uniform(0.5, 1.0)), 1)))
                session.add(PhotoTag(photo_id=photo.id, tag_id=tag_ids[tag_id], score=score, state=state,
                                     source=source, updated_at=stamp))
            vector = np.zeros(DIM, np.float32)
            vector[i % 3] = 1.0  # three clusters, every vector of a cluster alike: ties in similarity too
            vector[3 + (i % 5)] = 0.5
            session.add(Embedding(photo_id=photo.id, model_version=VERSION, dim=DIM,
                                  vector=vector / np.linalg.norm(vector)))
        Catalog.set_meta(session, GENERATION_KEY, "1")
    return catalog


@pytest.fixture()
def embedder() -> KnownTextEmbedder:
    def phrase(axis: int) -> np.ndarray:
        vector = np.full(DIM, 0.1, np.float32)
        vector[axis] = 1.0
        return vector / np.linalg.norm(vector)

    return KnownTextEmbedder({text: phrase(axis) for text, axis in PHRASES.items()})


TAG_QUERIES = [
    "tag:dog", "tag:rare", "tag:dog tag:cat", "tag:dog OR tag:cat", "tag:dog OR tag:cat -tag:beach",
    "tag:dog -tag:beach", "tag:dog date:2019", "tag:dog camera:sony", "tag:cat folder:/lib/b", "tag:cat type:heic",
    "tag:dog has:gps", "tag:dog -has:date", "tag:dog state:accepted", "tag:dog source:user",
    "(tag:dog OR tag:car) (tag:sky OR tag:food)", "tag:dog (tag:cat OR date:2019)", "tag:tree OR tag:sky tag:food",
    "tag:dog -(tag:cat tag:beach)", "tag:dog has:embedding", "tag:food has:tags",
]
SEMANTIC_QUERIES = ["dogs", "cats", "similar:/lib/b/p001.jpg", "dogs tag:dog", "cats tag:cat date:2019..2021",
                    "cars camera:canon", "dogs tag:dog OR tag:cat", "dogs -tag:dog tag:beach"]


def general(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine._Compiler, "run", lambda self, tree, limit, sort: self._run_general(tree, limit, sort))
    monkeypatch.setattr(engine._Compiler, "prefilter", lambda self, tree: None)


def answers(searcher: Searcher, query: str, limit: int | None, min_score: float | None = None) -> tuple:
    found = searcher.search(query, limit=limit, min_score=min_score)
    return found.total, [(r.path, round(r.score, 5), r.tags) for r in found.results]


@pytest.mark.parametrize(("limit", "way"), [(1, "chosen"), (3, "chosen"), (10, "sets"), (10, "checks"), (50, "chosen"),
                                           (None, "chosen"), (1, "first page"), (3, "first page"), (10, "first page"),
                                           (50, "first page")])
def test_tag_rows_give_what_the_general_query_gives(catalog, monkeypatch, limit, way) -> None:  # noqa: ANN001
    if way in ("sets", "checks"):  # every term as a set probed, or as a check on each candidate, instead of by sizes
        monkeypatch.setattr(engine._Compiler, "_set", lambda self, ids, check: self.subject.in_(ids)
                            if way == "sets" else check)
    if way == "first page":  # every tag common: the first page from the tag index's score order, all matches counted
        monkeypatch.setattr(engine, "DRIVER_COUNT_CAP", 1)
    reads, pages = [], []
    monkeypatch.setattr(engine._Compiler, "_fetch_pairs", lambda self, *a, _run=engine._Compiler._fetch_pairs:
                        reads.append(1) or _run(self, *a))
    monkeypatch.setattr(engine._Compiler, "_first_page", lambda self, *a, _run=engine._Compiler._first_page:
                        pages.append(1) or _run(self, *a))
    monkeypatch.setattr(engine._Compiler, "_run_general", lambda *a: pytest.fail("took the general way"))
    short = {query: answers(Searcher(catalog), query, limit) for query in TAG_QUERIES}
    qualified = [query for query in TAG_QUERIES if "state:" in query or "source:" in query]
    if way == "first page":  # every match read only where state: or source: choose the rows
        assert (len(pages), len(reads)) == (len(TAG_QUERIES) - len(qualified), len(qualified))
    else:
        assert (len(pages), len(reads)) == (0, len(TAG_QUERIES))
    monkeypatch.undo()
    general(monkeypatch)
    for query in TAG_QUERIES:
        assert short[query] == answers(Searcher(catalog), query, limit), query
    assert short["tag:dog"][0] > 2 * (limit or 0)  # more matches than the limit: the tie branch ran


@pytest.mark.parametrize("walk", ["whole", "bounded"])
@pytest.mark.parametrize("limit", [1, 3, 10, 25])
def test_a_first_page_walks_the_date_index_to_the_newest_tags_of_a_person(bursts, monkeypatch, walk,
                                                                          limit) -> None:  # noqa: ANN001
    """The newest photos a person or a file tagged, found by walking the date index — ties on the date at the
    cut, undated photos, missing ones, a date term on the walk — are those the general query gives first; a
    walk bounded short of the page leaves them to the whole read, with the same answer."""
    monkeypatch.setattr(engine, "DRIVER_COUNT_CAP", 1)
    monkeypatch.setattr(engine, "WALK_COST", 10**9)  # the walk whenever the group has a page of photos
    if walk == "bounded":
        monkeypatch.setattr(engine, "WALK_SPARE", 0.02)  # stops after a few entries: short of the page, mostly
    walked = []
    monkeypatch.setattr(engine._Compiler, "_newest_walked", lambda self, *a, _run=engine._Compiler._newest_walked:
                        walked.append(_run(self, *a)) or walked[-1])
    queries = [query for query in TAG_QUERIES if "state:" not in query and "source:" not in query]
    short = {query: answers(Searcher(bursts), query, limit) for query in queries}
    pages = [ids for ids in walked if ids is not None and len(ids) == limit]
    assert len(walked) == len(queries)
    if walk == "whole":  # a page of the person's photos found by the walk, for most queries
        assert len(pages) >= len(queries) // 3
    elif limit > 1:  # each walk stopped short: read whole
        assert len(pages) < len(queries) // 4
    general(monkeypatch)
    for query in queries:
        assert short[query] == answers(Searcher(bursts), query, limit), query
    with bursts.session() as session:  # photos share dates: cuts fall among ties
        dated = [t for (t,) in session.query(Photo.taken_at).filter(Photo.taken_at.is_not(None))]
    assert len(set(dated)) <= 30 < len(dated) // 10


@pytest.mark.parametrize("counted", [10**6, 0])
def test_a_ranking_of_many_candidates_builds_a_large_set_when_it_costs_less(catalog, monkeypatch,
                                                                            counted) -> None:  # noqa: ANN001
    """Every match read (a view's ranking), candidates past the count's cap against a set past its cap: counted
    further, the set is built where it is under 4x the candidates (a date term at 10M: 0.6 s against 4.8 s of a
    seek each); not counted, each candidate is checked. The same answers either way."""
    monkeypatch.setattr(engine, "DRIVER_COUNT_CAP", 2)
    monkeypatch.setattr(engine, "SET_COUNT_CAP", 4)
    monkeypatch.setattr(engine, "LARGE_COUNT_CAP", counted)
    statements: list[str] = []

    def record(connection, cursor, statement, *rest) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(catalog.engine, "before_cursor_execute", record)
    try:
        short = {query: answers(Searcher(catalog), query, None) for query in TAG_QUERIES}
    finally:
        event.remove(catalog.engine, "before_cursor_execute", record)
    date_sets = sum("IN (SELECT photos.id \nFROM photos \nWHERE photos.taken_at IS NOT NULL" in statement
                    for statement in statements)
    assert (date_sets > 0) == bool(counted)
    general(monkeypatch)
    for query in TAG_QUERIES:
        assert short[query] == answers(Searcher(catalog), query, None), query


def test_a_first_page_counts_matches_among_the_first_rows_of_its_rarest_term(catalog, monkeypatch) -> None:  # noqa: ANN001
    queries = ("tag:dog", "tag:dog OR tag:cat", "tag:dog OR tag:cat -tag:beach", "tag:rare tag:dog",
               "tag:dog date:2019", "tag:rare")
    exact = {query: Searcher(catalog).search(query, limit=3) for query in queries}
    monkeypatch.setattr(engine, "DRIVER_COUNT_CAP", 1)
    monkeypatch.setattr(engine, "COUNT_CAP", 12)
    monkeypatch.setattr(engine, "CHECKED_COUNT_CAP", 10)  # where the other terms check each row
    for query, expected in exact.items():
        found = Searcher(catalog).search(query, limit=3)
        assert found.results == expected.results and len(found.results) == 3, query
        cap = 12 if query in ("tag:dog", "tag:dog OR tag:cat") else 10  # tags alone: counted from the index
        if query.startswith("tag:rare"):  # the rarest term has no more rows than the cap: counted whole
            assert (found.total, found.total_is_lower_bound) == (expected.total, False), query
        else:  # the first rows of dog (or dog and cat) checked: at least what they give, and at least the page
            assert found.total_is_lower_bound, query
            assert 3 <= found.total <= min(cap, expected.total) < expected.total, query
    with catalog.session() as session:
        rare = session.query(PhotoTag).join(Tag).filter(Tag.name == "rare", PhotoTag.state != REJECTED).count()
    assert 3 < rare <= 10


@pytest.mark.parametrize("limit", [1, 3, 10, 50, None])
def test_semantic_short_ways_give_what_the_general_query_gives(catalog, embedder, monkeypatch, limit) -> None:  # noqa: ANN001
    monkeypatch.setattr(engine, "SEMANTIC_CANDIDATES", 1000)  # the whole library: the general query is exact
    short = {query: answers(Searcher(catalog, embedder), query, limit, min_score=0.3) for query in SEMANTIC_QUERIES}
    general(monkeypatch)
    for query in SEMANTIC_QUERIES:
        assert short[query] == answers(Searcher(catalog, embedder), query, limit, min_score=0.3), query
    assert short["dogs"][0] > (limit or 0) and short["dogs tag:dog"][0] > 0


@pytest.mark.parametrize("limit", [3, None])
def test_with_most_of_the_library_missing_the_short_ways_look_up_their_matches(offline, embedder, monkeypatch,
                                                                              limit) -> None:  # noqa: ANN001
    """A volume offline: the short ways check their matches' photos instead of reading every missing one, and
    give what the general query gives."""
    statements: list[str] = []

    def record(connection, cursor, statement, *rest) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(offline.engine, "before_cursor_execute", record)
    try:
        short = {query: answers(Searcher(offline, embedder), query, limit, min_score=0.3)
                 for query in [*TAG_QUERIES, *SEMANTIC_QUERIES]}
    finally:
        event.remove(offline.engine, "before_cursor_execute", record)
    looked_up = sum("CROSS JOIN photos" in statement for statement in statements)
    monkeypatch.setattr(engine, "SEMANTIC_CANDIDATES", 1000)
    general(monkeypatch)
    for query, found in short.items():
        assert found == answers(Searcher(offline, embedder), query, limit, min_score=0.3), query
    assert looked_up >= 10  # the matches' photos looked up, not the missing ones read
    assert short["tag:dog"][0] > 0


def test_short_ways_leave_out_missing_and_rejected(catalog, embedder) -> None:  # noqa: ANN001
    with catalog.session() as session:
        missing = {p for (p,) in session.query(Photo.path).filter(Photo.status == "missing")}
        rejected_dogs = {p for (p,) in session.query(Photo.path).join(PhotoTag).join(Tag).filter(
            Tag.name == "dog", PhotoTag.state == REJECTED)}
        dogs = {p for (p,) in session.query(Photo.path).join(PhotoTag).join(Tag).filter(
            Tag.name == "dog", PhotoTag.state != REJECTED, Photo.status != "missing")}
    found = Searcher(catalog).search("tag:dog", limit=None)
    assert {r.path for r in found.results} == dogs and found.total == len(dogs)
    assert not dogs & (missing | rejected_dogs)
    paths = {r.path for r in Searcher(catalog, embedder).search("dogs", limit=500, min_score=-1).results}
    assert paths and not paths & missing
    top = Searcher(catalog).search("tag:dog", limit=5).results
    assert [r.score for r in top] == [1.0] * 5  # user and file tags first …
    dates = [r.taken_at or datetime.min for r in top]
    assert dates == sorted(dates, reverse=True)  # … newest first among the ties


def test_an_approximate_index_looks_harder_for_filtered_terms(catalog, embedder, monkeypatch) -> None:  # noqa: ANN001
    from indexer.vectors import VectorIndex

    efforts = []
    search = VectorIndex.search
    monkeypatch.setattr(VectorIndex, "search", lambda self, queries, k, effort=1, **more:
                        efforts.append(effort) or search(self, queries, k, effort=effort, **more))
    monkeypatch.setattr(engine, "PREFILTER_MAX", 0)  # the filter's photos are not scored one by one
    Searcher(catalog, embedder).search("dogs", min_score=0.3)
    Searcher(catalog, embedder).search("dogs tag:dog", min_score=0.3)
    assert efforts == [1, engine.FILTERED_EFFORT]
