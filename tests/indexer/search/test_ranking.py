"""Searcher.rank and Searcher.settle: every match as ids and scores, settled into exactly the order (and the
scores) that Searcher.search gives with no limit, whichever way the query takes; a first page costs the
dates of its own ties only."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from indexer.search.engine import Ranking, Searcher
from tests.indexer.search.test_plans import SEMANTIC_QUERIES, TAG_QUERIES, catalog, embedder  # noqa: F401 - fixtures

GENERAL_QUERIES = ["has:gps", "type:heic date:2018..2020", "camera:sony OR tag:dog", "-tag:dog"]


def expected(searcher: Searcher, query: str, sort: str = "relevance") -> list[tuple[int, float]]:
    found = searcher.search(query, limit=None, sort=sort, min_score=0.3)
    return [(r.photo_id, round(r.score, 5)) for r in found.results]


def pairs(ranking) -> list[tuple[int, float]]:  # noqa: ANN001
    return [(int(i), round(float(s), 5)) for i, s in zip(ranking.ids, ranking.scores, strict=True)]


@pytest.mark.parametrize("query", TAG_QUERIES + SEMANTIC_QUERIES + GENERAL_QUERIES)
def test_a_settled_ranking_is_the_search_order(catalog, embedder, query) -> None:  # noqa: ANN001, F811
    searcher = Searcher(catalog, embedder)
    ranking = searcher.rank(query, min_score=0.3)
    settled = searcher.settle(ranking)
    assert settled.settled and pairs(settled) == expected(searcher, query)
    for count in (1, 7, 50):  # a first page: its matches in their final places, whatever follows
        assert pairs(searcher.settle(ranking, count))[:count] == expected(searcher, query)[:count]


def test_sorted_by_date_the_ranking_comes_settled(catalog) -> None:  # noqa: ANN001, F811
    searcher = Searcher(catalog)
    ranking = searcher.rank("tag:dog", sort="date")
    assert ranking.settled and pairs(ranking) == expected(searcher, "tag:dog", sort="date")


def test_ties_are_what_settling_reads(catalog) -> None:  # noqa: ANN001, F811
    """tag:dog has many equal scores (a 0.1 grid, user tags scoring 1): settling reads their dates in one query;
    a ranking without ties reads nothing."""
    searcher = Searcher(catalog)
    statements: list[str] = []

    def record(_connection, _cursor, statement: str, *_args) -> None:  # noqa: ANN001
        if statement.startswith("SELECT"):
            statements.append(statement)

    event.listen(catalog.engine, "before_cursor_execute", record)
    try:
        ranking = searcher.rank("tag:dog")
        statements.clear()
        assert len(searcher.settle(ranking).ids) == len(ranking.ids) > 50
        assert len(statements) == 1 and "json_each" in statements[0]
        statements.clear()
        single = Ranking(ranking.query, ranking.ids[:1], ranking.scores[:1])
        assert searcher.settle(single).settled and statements == []
    finally:
        event.remove(catalog.engine, "before_cursor_execute", record)
