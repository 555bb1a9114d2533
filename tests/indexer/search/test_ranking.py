"""Searcher.rank, settle and members: every match as ids and scores, any window of it settled into exactly the
order (and the scores) that Searcher.search gives with no limit, whichever way the query takes; a window costs
the dates of its own ties only."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event

from indexer.search.engine import Ranking, Searcher
from tests.indexer.search.test_plans import SEMANTIC_QUERIES, TAG_QUERIES, catalog, embedder  # noqa: F401 - fixtures

GENERAL_QUERIES = ["has:gps", "type:heic date:2018..2020", "camera:sony OR tag:dog", "-tag:dog"]
WINDOWS = [(0, 1), (0, 7), (3, 50), (40, 41), (17, 120), (100, 10_000), (10_000, 10_001)]


def expected(searcher: Searcher, query: str, sort: str = "relevance") -> list[tuple[int, float]]:
    found = searcher.search(query, limit=None, sort=sort, min_score=0.3)
    return [(r.photo_id, round(r.score, 5)) for r in found.results]


def pairs(ids: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
    return [(int(i), round(float(s), 5)) for i, s in zip(ids, scores, strict=True)]


@pytest.mark.parametrize("query", TAG_QUERIES + SEMANTIC_QUERIES + GENERAL_QUERIES)
def test_any_window_of_a_ranking_settles_into_the_search_order(catalog, embedder, query) -> None:  # noqa: ANN001, F811
    searcher = Searcher(catalog, embedder)
    ranking = searcher.rank(query, min_score=0.3)
    whole = expected(searcher, query)
    assert len(ranking) == len(whole) and pairs(*searcher.settle(ranking)) == whole
    for start, stop in WINDOWS:
        assert pairs(*searcher.settle(ranking, start, stop)) == whole[start:stop], (start, stop)
        assert sorted(searcher.members(ranking, start, stop).tolist()) == sorted(i for i, _ in whole[start:stop])
    for at, (photo_id, _) in list(enumerate(whole))[::7]:
        assert searcher.position(ranking, photo_id) == at
    assert searcher.position(ranking, -1) is None


def test_sorted_by_date_the_ranking_comes_settled(catalog) -> None:  # noqa: ANN001, F811
    searcher = Searcher(catalog)
    ranking = searcher.rank("tag:dog", sort="date")
    assert ranking.settled and pairs(ranking.ids, ranking.scores) == expected(searcher, "tag:dog", sort="date")


def test_without_leaves_photos_out(catalog) -> None:  # noqa: ANN001, F811
    searcher = Searcher(catalog)
    ranking = searcher.rank("tag:dog")
    dropped = ranking.ids[::3]
    rest = ranking.without(dropped)
    assert len(rest) == len(ranking) - len(dropped) and not np.isin(rest.ids, dropped).any()
    assert [i for i, _ in pairs(*searcher.settle(rest))] == [i for i, _ in expected(searcher, "tag:dog")
                                                             if i not in set(dropped.tolist())]


def test_a_window_reads_the_dates_of_its_ties_only(catalog) -> None:  # noqa: ANN001, F811
    """tag:dog has many equal scores (a 0.1 grid, user tags scoring 1): a window reads the dates of its tie
    groups, in one query, and not of the whole ranking; a window without ties reads nothing."""
    searcher = Searcher(catalog)
    statements: list[tuple[str, tuple]] = []

    def record(_connection, _cursor, statement: str, parameters, *_args) -> None:  # noqa: ANN001
        if statement.startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(catalog.engine, "before_cursor_execute", record)
    try:
        ranking = searcher.rank("tag:dog")
        statements.clear()
        searcher.settle(ranking, 0, 3)
        assert len(statements) == 1 and "json_each" in statements[0][0]
        read = len(statements[0][1][0].split(","))
        groups = len(np.unique(ranking.scores))
        assert 3 <= read < len(ranking) and groups > 2  # the top group(s) only
        statements.clear()
        single = Ranking(ranking.query, ranking.ids[:1], ranking.scores[:1])
        assert searcher.settle(single)[0].tolist() == ranking.ids[:1].tolist() and statements == []
    finally:
        event.remove(catalog.engine, "before_cursor_execute", record)
