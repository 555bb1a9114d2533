"""Properties of the query language against any input (issue 15, item 8): the parser returns a query or raises
``QuerySyntaxError`` — never anything else — and its error display is one message line, the query and carets;
a parsed query runs on a real catalog or raises one of the documented errors; and the largest query of every
shape the limits allow runs within SQLite's own limits."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.catalog import Catalog
from indexer.index import GENERATION_KEY
from indexer.schema import ACCEPTED, SUGGESTED, Embedding, Photo, PhotoTag, SavedSearch, Tag
from indexer.search import (
    MAX_DEPTH,
    MAX_PHRASES,
    MAX_TERMS,
    And,
    Folder,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    Semantic,
    Similar,
    parse,
    walk,
)
from indexer.search.engine import Searcher, SearchError, SearchResults

DIM, VERSION = 8, "clip_test@v1"

# --------------------------------------------------------------------------------------------- strategies

CHARS = [*'()"\\-@: \t\n\x00\x1b\u202e\u3000狗\u0301', "\udce9", "\udcff", "\ud800", "\udc00"]  # \udcXX: a byte argv
PIECES = ["AND", "OR", "NOT", "tag:", "folder:", "date:", "type:", "similar:"]  # could not decode (os.fsdecode)
char = st.one_of(st.sampled_from(CHARS), st.characters(exclude_categories=()))  # any code point, surrogates too
anything = st.lists(st.one_of(char, st.sampled_from(PIECES)), max_size=60).map("".join)
value = st.one_of(st.lists(char.filter(lambda c: not c.isspace()), min_size=1, max_size=12).map("".join),
                  anything.map(lambda v: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'))
DATES = ["2023", "2023-06", "2023-06-31", "2022..2023", "..2020", "2021..", "0000", "9999-12-31", "1..2", ".."]
FIELD_VALUES = {"type": ["jpg", "png", "heic", "x"], "has": ["gps", "date", "camera", "tags", "embedding"],
                "state": ["accepted", "suggested", "rejected"], "source": ["user", "model", "file"], "date": DATES}


def term(tags: list[str], saved: list[str], paths: list[str], wild: bool = True) -> st.SearchStrategy[str]:
    """One term of the language; ``wild``: often not a valid one (an unknown field, a bad value, any text)."""
    valid = st.one_of(
        st.sampled_from(["dog", "a red car", '"on the beach"', "12:30", "t-shirt", "狗", "camera:sony"]),
        st.sampled_from(tags).map(lambda t: f'tag:"{t}"'),
        st.sampled_from(saved).map(lambda name: f"@{name}"),
        st.sampled_from(paths).map(lambda p: f'folder:"{p}"'),
        st.sampled_from(paths).map(lambda p: f'similar:"{p}"'),
        st.sampled_from(sorted(FIELD_VALUES)).flatmap(lambda f: st.sampled_from(FIELD_VALUES[f]).map(f"{f}:".__add__)),
    )
    if not wild:
        return valid
    return st.one_of(
        valid,
        st.sampled_from(["caf\udce9", "camera:caf\udce9", "nofield:x", "tag:", "@", '""', '"open']),
        st.sampled_from(["tag", "camera", "folder", "type", "@"]).flatmap(lambda f: value.map(f"{f}:".__add__)),
        value,
    )


def query(tags: list[str], saved: list[str], paths: list[str], wild: bool = True) -> st.SearchStrategy[str]:
    """Queries built from the grammar: terms nested in parentheses, NOT and '-', joined by AND, OR or nothing."""
    joined = st.sampled_from([" ", " AND ", " OR ", "  \t"])
    return st.recursive(
        term(tags, saved, paths, wild),
        lambda inner: st.one_of(
            inner.map(lambda q: f"({q})"), inner.map(lambda q: f"NOT {q}"), inner.map(lambda q: f"-({q})"),
            st.tuples(inner, joined, inner).map("".join),
        ),
        max_leaves=40,
    )


def deep(tags: list[str], saved: list[str], paths: list[str], wild: bool = True) -> st.SearchStrategy[str]:
    """Nesting up to the limit; ``wild``: also far past it, and unbalanced."""
    openers = st.sampled_from(["(", "NOT ", "-", "-(", "NOT (", "dog OR (", f'tag:"{tags[0]}" ('])
    levels = st.integers(0, 3 * MAX_DEPTH) | st.integers(0, 3_000) if wild else st.integers(0, MAX_DEPTH + 1)
    return st.builds(lambda opener, n, inner, closed: opener * n + inner + ")" * (n if closed else n // 2),
                     openers, levels, term(tags, saved, paths, wild), st.booleans() if wild else st.just(True))


def wide(tags: list[str], saved: list[str], paths: list[str], wild: bool = True) -> st.SearchStrategy[str]:
    """Many terms, around MAX_TERMS and MAX_PHRASES."""
    return st.builds(lambda item, n, joiner: joiner.join([item] * n), term(tags, saved, paths, wild),
                     st.integers(0, 2 * MAX_TERMS), st.sampled_from([" ", " OR "]))


PARSER_TAGS, PARSER_SAVED, PARSER_PATHS = ["dog", "living room"], ["holiday"], ["/photos/2023", "/photos/caf\udce9"]


# ------------------------------------------------------------------------------------------------- parser


def prints_as_it_is(line: str) -> bool:
    """No control, format or surrogate character: nothing a terminal would act on or fail to print."""
    return all(char.isprintable() or unicodedata.category(char) == "Zs" for char in line)


def error_display_is_clean(error: QuerySyntaxError, text: str) -> None:
    """One message line that prints as it is; then, for a query with any text, the query and carets only."""
    lines = str(error).splitlines()
    assert len(lines) == (3 if text.strip() else 1), str(error)
    assert lines[0] and prints_as_it_is(lines[0])
    if len(lines) == 3:
        assert lines[1].startswith("  ") and prints_as_it_is(lines[1])
        assert re.fullmatch(r"  +\^+", lines[2])
    assert 0 <= error.position <= len(text) and text.startswith(error.token, error.position)


def depth(node: Node) -> int:
    if isinstance(node, And | Or):
        return 1 + max(depth(item) for item in node.items)
    return 1 + depth(node.item) if isinstance(node, Not) else 0


def within_the_limits(tree: Node, text: str) -> None:
    leaves = [node for node in walk(tree) if not isinstance(node, And | Or | Not)]
    assert len(leaves) <= MAX_TERMS
    assert sum(isinstance(node, Semantic | Similar) for node in leaves) <= MAX_PHRASES
    assert depth(tree) <= 2 * (MAX_DEPTH + 1)  # an OR of ANDs in each "(", or a NOT
    for node in leaves:
        assert 0 <= node.span[0] <= node.span[1] <= len(text)
        held = [getattr(node, name) for name in ("name", "text", "path") if hasattr(node, name)]
        for string in held:
            if isinstance(node, Folder | Similar):  # a file name: any byte (as os.fsdecode spells it) but NUL
                string.encode("utf-8", "surrogateescape")
                assert "\x00" not in string
            else:
                string.encode("utf-8")  # valid Unicode: no lone surrogate


@settings(max_examples=100, deadline=None)
@given(st.one_of(anything, *(make(PARSER_TAGS, PARSER_SAVED, PARSER_PATHS) for make in (query, deep, wide))))
def test_the_parser_returns_a_query_or_a_syntax_error(text: str) -> None:
    try:
        tree = parse(text)
    except QuerySyntaxError as error:
        error_display_is_clean(error, text)
    else:
        within_the_limits(tree, text)


@pytest.mark.parametrize(("text", "position"), [
    ("(" * 3_000 + "x", MAX_DEPTH),
    ("NOT " * 2_000 + "x", 4 * MAX_DEPTH),
    ("-" * 3_000 + "x", MAX_DEPTH),
    ("-(" * 3_000 + "x", MAX_DEPTH),
    ("x" + " y" * (MAX_TERMS + 5), None),  # one run of words is one phrase: no limit reached
    (" ".join(["tag:a"] * (MAX_TERMS + 5)), 6 * MAX_TERMS),
    (" OR ".join(["dog"] * (MAX_PHRASES + 5)), 7 * MAX_PHRASES),
    ("date:2023 " * 2_000, 10_000),
])  # fmt: skip
def test_each_limit_is_reported_where_it_is_passed(text: str, position: int | None) -> None:
    if position is None:
        assert parse(text) == Semantic(text)
        return
    with pytest.raises(QuerySyntaxError) as error:
        parse(text)
    assert error.value.position == position
    error_display_is_clean(error.value, text)


def test_the_caret_display_escapes_what_would_not_print() -> None:
    with pytest.raises(QuerySyntaxError) as error:
        parse('tag:"a\nb\x1b[2J" caf\udce9')
    assert str(error.value).splitlines() == [
        "'\\xe9' is not UTF-8 text: bytes like it can be part of a folder: or similar: path only (was the query "
        "typed in another encoding?)",
        '  tag:"a b\\x1b[2J" caf\\xe9',
        "                      ^^^^",
    ]
    assert parse("folder:/photos/caf\udce9") == Folder("/photos/caf\udce9")  # passed through as typed
    with pytest.raises(QuerySyntaxError, match="a file name cannot hold '\\\\x00'"):
        parse("similar:/photos/a\x00.jpg")


# ------------------------------------------------------------------------------------------------- engine


class HashEmbedder:
    """Any text to a fixed unit vector (from its hash), so free text runs without CLIP."""

    bundle = SimpleNamespace(version=VERSION)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        vectors = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8")).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
            vectors.append(vector / np.linalg.norm(vector))
        return torch.from_numpy(np.stack(vectors))


ENGINE_TAGS = ["dog", "cat", "beach", "living room"]
SAVED = {
    "dogs": "tag:dog",
    "chain0": "@chain1 -tag:cat", **{f"chain{i}": f"(@chain{i + 1} OR has:gps)" for i in range(1, 12)},
    "chain12": "beach",
    "double0": "@double1 @double1", **{f"double{i}": f"@double{i + 1} OR @double{i + 1}" for i in range(1, 9)},
    "double9": "tag:dog",
    "wide": " OR ".join(["camera:sony"] * 200),
    "phrases": " OR ".join(f'"thing {i}"' for i in range(30)),
    "loop": "@loop", "ping": "@pong", "pong": "@ping",
}  # fmt: skip


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:  # noqa: ANN001
    """Five photos in two folders (one of them not UTF-8), with tags, embeddings and hostile saved searches."""
    root = tmp_path_factory.mktemp("query_properties")
    catalog = Catalog.open(root / "catalog")
    folders = [str(root / "photos" / "2023"), str(root / "photos") + "/caf\udce9"]
    stamp = datetime(2024, 1, 1)
    rng = np.random.default_rng(0)
    with catalog.session() as session, session.begin():
        tags = [Tag(name=name, name_zh=None, kind="builtin", threshold=0.5) for name in ENGINE_TAGS]
        session.add_all(tags)
        session.flush()
        for i in range(5):
            photo = Photo(path=f"{folders[i % 2]}/{i}.jpg", size=1, mtime_ns=1, content_hash=str(i), format="jpeg",
                          taken_at=datetime(2020 + i, 6, 1) if i else None, camera_make="SONY" if i % 2 else None,
                          gps_lat=1.0 if i > 2 else None, gps_lon=2.0 if i > 2 else None, status="indexed",
                          attempts=0, first_seen=stamp, last_seen=stamp, embedder_version=VERSION)
            session.add(photo)
            session.flush()
            for tag in tags[: i % 4 + 1]:
                session.add(PhotoTag(photo_id=photo.id, tag_id=tag.id, score=0.5 + i / 10, updated_at=stamp,
                                     state=ACCEPTED if i % 2 else SUGGESTED, source="user" if i % 2 else "model"))
            vector = rng.normal(size=DIM).astype(np.float32)
            session.add(Embedding(photo_id=photo.id, model_version=VERSION, dim=DIM,
                                  vector=vector / np.linalg.norm(vector)))
        session.add_all(SavedSearch(name=name, query=text, created_at=stamp) for name, text in SAVED.items())
        Catalog.set_meta(session, GENERATION_KEY, "1")
    catalog.folders = folders  # type: ignore[attr-defined]
    yield catalog
    catalog.close()


def engine_paths(catalog: Catalog) -> list[str]:
    return [*catalog.folders, f"{catalog.folders[0]}/0.jpg", f"{catalog.folders[1]}/1.jpg", "/nonexistent/x.jpg"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_parsed_query_runs_or_fails_cleanly(catalog, data) -> None:  # noqa: ANN001
    paths = engine_paths(catalog)
    tags, saved = [*ENGINE_TAGS, "nosuchtag"], [*SAVED, "unknown"]
    text = data.draw(st.one_of(query(tags, saved, paths, wild=False), query(tags, saved, paths),
                               deep(tags, saved, paths, wild=False), wide(tags, saved, paths, wild=False)))
    sort = data.draw(st.sampled_from(["relevance", "date"]))
    limit = data.draw(st.sampled_from([None, 1, 50]))
    try:
        parse(text)
    except QuerySyntaxError:
        return  # the parser's property
    try:
        found = Searcher(catalog, HashEmbedder()).search(text, limit=limit, sort=sort, min_score=-1.0)
    except QuerySyntaxError as error:  # past a limit in a saved search
        error_display_is_clean(error, text)
    except SearchError as error:  # an unknown tag or saved search, a loop of them, a file similar: cannot read
        assert prints_as_it_is(str(error).splitlines()[0])
    else:
        assert isinstance(found, SearchResults) and len(found.results) <= (limit or 5)


# ---------------------------------------------------------------------------------------- at the limits

OPENERS = {"(": 1, "NOT (": 2, "-(": 2}
LEAVES = ["tag:dog", "date:2021..2023", "camera:sony", "has:gps", "state:accepted", "word"]


def deepest(opener: str, leaf: str, prefix: str) -> str:
    """``prefix``, then at each level ``leaf AND (other OR …)`` down to MAX_DEPTH: every level an AND holding an
    OR, so SQL needs its parentheses at each (measured: the costliest shape for SQLite's parser stack)."""
    steps = MAX_DEPTH // OPENERS[opener]
    others = [LEAVES[(LEAVES.index(leaf) + 1 + step) % len(LEAVES)] for step in range(steps)]
    return prefix + "".join(f"{leaf} {opener}{other} OR " for other in others) + leaf + ")" * steps


@pytest.mark.parametrize("prefix", ["", "word ", "tag:dog "])  # the general, free-text and tag-row ways
@pytest.mark.parametrize("opener", list(OPENERS))
def test_the_deepest_queries_run(catalog, opener, prefix) -> None:  # noqa: ANN001
    searcher = Searcher(catalog, HashEmbedder())
    for leaf in LEAVES:
        text = deepest(opener, leaf, prefix)
        for sort in ("relevance", "date"):
            assert isinstance(searcher.search(text, sort=sort, min_score=-1.0), SearchResults), text


def test_the_widest_queries_run(catalog) -> None:  # noqa: ANN001
    searcher = Searcher(catalog, HashEmbedder())
    folder = catalog.folders[1]
    per_level = MAX_TERMS // 3 - 2  # three wide levels, each one a parenthesised group of its own in SQL
    level = " OR ".join(["camera:sony", "date:2022", f'folder:"{folder}"', "has:gps"] * (per_level // 4))
    nested = "tag:dog (" + level + " OR -(" + level.replace(" OR ", " ") + " OR NOT (" + level + ")))"
    phrases = " OR ".join(f'"thing {i}"' for i in range(MAX_PHRASES))
    for text in (" OR ".join(["camera:sony"] * MAX_TERMS), " ".join(["date:..2030"] * MAX_TERMS), nested,
                 phrases, f"tag:dog ({phrases})", "word " + nested, "@wide @phrases"):
        for sort in ("relevance", "date"):
            assert isinstance(searcher.search(text, sort=sort, min_score=-1.0), SearchResults), text[:80]


def test_saved_searches_past_the_limits_point_at_their_name(catalog) -> None:  # noqa: ANN001
    searcher = Searcher(catalog, HashEmbedder())
    for text, message in [("dog @chain0", "in @chain0: nested too deeply"),
                          ("@double0", "in @double0: too many terms"),
                          ("(((((((((@dogs)))))))))", None),  # nine levels, and the saved query's one: ten
                          ("((((((((((@dogs))))))))))", "in @dogs: nested too deeply")]:
        if message is None:
            searcher.search(text)
            continue
        with pytest.raises(QuerySyntaxError) as error:
            searcher.search(text)
        assert str(error.value).startswith(message)
        assert error.value.token.strip("()") == message.split(":")[0].removeprefix("in ")  # the @name (its group)
        error_display_is_clean(error.value, text)
    with pytest.raises(SearchError, match="refers to itself"):
        searcher.search("@ping")
    assert Path(searcher.search("@dogs").results[0].path).name.endswith(".jpg")
