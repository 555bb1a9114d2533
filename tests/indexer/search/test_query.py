"""The search query language: phrases, quoting, precedence, every field, spans, and every syntax error."""

from __future__ import annotations

from datetime import date

import pytest

from indexer.errors import IndexerError
from indexer.search import (
    And,
    Camera,
    DateRange,
    Folder,
    Has,
    Not,
    Or,
    QuerySyntaxError,
    SavedSearch,
    Semantic,
    Similar,
    Source,
    State,
    Tag,
    Type,
    format_error,
    parse,
    walk,
)

S, T = Semantic, Tag


# -------------------------------------------------------------------------------------- phrases


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("red car at night", S("red car at night")),
        ("  red   car\tat night ", S("red car at night")),
        ("rock and roll or not", S("rock and roll or not")),  # lower-case keywords are words
        ("t-shirt", S("t-shirt")),
        ("sunset tag:beach", And((S("sunset"), T("beach")))),
        ("red car tag:street blue sky", And((S("red car"), T("street"), S("blue sky")))),
        ("rock AND roll", And((S("rock"), S("roll")))),
        ("red car OR blue bike", Or((S("red car"), S("blue bike")))),
        ("(red car) blue", And((S("red car"), S("blue")))),
        ('"a dog on the beach"', S("a dog on the beach")),
        ('red "sports car"', And((S("red"), S("sports car")))),  # a quoted phrase is its own term
        ('"dog" "beach"', And((S("dog"), S("beach")))),
        ('"AND"', S("AND")),
        ('"tag:dog"', S("tag:dog")),
        ("12:30 sunset", S("12:30 sunset")),  # not a field: a field name starts with a letter
    ],
)
def test_phrases(query: str, expected: object) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (r'"say \"cheese\""', S('say "cheese"')),
        (r'"back\\slash"', S("back\\slash")),
        (r'similar:"C:\Users\me\My Photos\a.jpg"', Similar(r"C:\Users\me\My Photos\a.jpg")),  # other \ kept
        (r'tag:"6\" pizza"', T('6" pizza')),
        ('tag:"living room"', T("living room")),
        ("tag:狗", T("狗")),
        ("TAG:Dog", T("Dog")),  # field names in any case; the tag as typed
        ('"海滩 日落"', S("海滩 日落")),
        ("海滩 日落 tag:狗", And((S("海滩 日落"), T("狗")))),
        ("tag:café", T("café")),
    ],
)
def test_quoting_and_unicode(query: str, expected: object) -> None:
    assert parse(query) == expected


# ------------------------------------------------------------------------------------ operators


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tag:a OR tag:b tag:c", Or((T("a"), And((T("b"), T("c")))))),
        ("tag:a tag:b OR tag:c", Or((And((T("a"), T("b"))), T("c")))),
        ("tag:a AND tag:b OR tag:c AND tag:d", Or((And((T("a"), T("b"))), And((T("c"), T("d")))))),
        ("NOT tag:a tag:b", And((Not(T("a")), T("b")))),
        ("NOT tag:a OR tag:b", Or((Not(T("a")), T("b")))),
        ("tag:a NOT tag:b", And((T("a"), Not(T("b"))))),
        ("NOT NOT tag:a", Not(Not(T("a")))),
        ("-tag:x", Not(T("x"))),
        ("--tag:x", Not(Not(T("x")))),
        ('-"foggy"', Not(S("foggy"))),
        ("-@work", Not(SavedSearch("work"))),
        ("NOT (tag:a OR tag:b) tag:c", And((Not(Or((T("a"), T("b")))), T("c")))),
        ("-(tag:a OR tag:b)", Not(Or((T("a"), T("b"))))),
        ("(tag:a OR tag:b) (tag:c OR tag:d)", And((Or((T("a"), T("b"))), Or((T("c"), T("d")))))),
        ("tag:a (tag:b OR tag:c)", And((T("a"), Or((T("b"), T("c")))))),
        ("((tag:a))", T("a")),
        # NOT negates the next term, a whole phrase; "-" negates only the word it is glued to.
        ("NOT red car", Not(S("red car"))),
        ("-dog beach sunset", And((Not(S("dog")), S("beach sunset")))),
        ("sunset -dog beach", And((S("sunset"), Not(S("dog")), S("beach")))),
    ],
)
def test_precedence(query: str, expected: object) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tag:a tag:b AND tag:c (tag:d AND tag:e)", And(tuple(T(x) for x in "abcde"))),
        ("tag:a OR (tag:b OR tag:c) OR tag:d", Or(tuple(T(x) for x in "abcd"))),
        ("(tag:a tag:b) OR (tag:c OR tag:d)", Or((And((T("a"), T("b"))), T("c"), T("d")))),
    ],
)
def test_same_kind_is_flattened(query: str, expected: object) -> None:
    assert parse(query) == expected


# --------------------------------------------------------------------------------------- fields


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("date:2023", DateRange(date(2023, 1, 1), date(2024, 1, 1))),
        ("date:2023-01", DateRange(date(2023, 1, 1), date(2023, 2, 1))),
        ("date:2023-12", DateRange(date(2023, 12, 1), date(2024, 1, 1))),
        ("date:2023-01-15", DateRange(date(2023, 1, 15), date(2023, 1, 16))),
        ("date:2023-12-31", DateRange(date(2023, 12, 31), date(2024, 1, 1))),
        ("date:2023-01..2023-06", DateRange(date(2023, 1, 1), date(2023, 7, 1))),
        ("date:2019..2020", DateRange(date(2019, 1, 1), date(2021, 1, 1))),
        ("date:2023-06-15..2023-06", DateRange(date(2023, 6, 15), date(2023, 7, 1))),
        ("date:2023..2023", DateRange(date(2023, 1, 1), date(2024, 1, 1))),
        ("date:..2020", DateRange(None, date(2021, 1, 1))),
        ("date:2021..", DateRange(date(2021, 1, 1), None)),
        ('date:"2021-03..2021-04"', DateRange(date(2021, 3, 1), date(2021, 5, 1))),
        ("camera:sony", Camera("sony")),
        ('camera:"Canon EOS R5"', Camera("Canon EOS R5")),
        ("similar:~/Pictures/cat.jpg", Similar("~/Pictures/cat.jpg")),
        ('similar:"~/My Pictures/cat 1.jpg"', Similar("~/My Pictures/cat 1.jpg")),
        ("folder:/nas/photos/2019", Folder("/nas/photos/2019")),
        ('folder:"/nas/photos/Summer trip"', Folder("/nas/photos/Summer trip")),
        ("folder:/nas/Trip(2019)", Folder("/nas/Trip(2019)")),  # balanced parentheses stay in a bare value
        ("(folder:/nas/Trip(2019))", Folder("/nas/Trip(2019)")),
        ("(tag:dog OR tag:cat)", Or((T("dog"), T("cat")))),  # an unbalanced ")" ends a bare value
        ("type:heic", Type("heif")),
        ("type:HEIF", Type("heif")),
        ("type:hif", Type("heif")),
        ("type:jpg", Type("jpeg")),
        ("type:jpe", Type("jpeg")),
        ("type:.JPG", Type("jpeg")),
        ("type:tif", Type("tiff")),
        *[(f"type:{name}", Type(name)) for name in ("jpeg", "png", "webp", "avif", "mpo", "tiff", "gif", "bmp")],
        *[(f"has:{what}", Has(what)) for what in ("gps", "date", "camera", "tags", "embedding")],
        ("has:GPS", Has("gps")),
        *[(f"state:{value}", State(value)) for value in ("accepted", "suggested", "rejected")],
        *[(f"source:{value}", Source(value)) for value in ("user", "model", "file")],
        ("Source:User", Source("user")),
        ("@holidays", SavedSearch("holidays")),
        ('@"beach trips"', SavedSearch("beach trips")),
        ("@holidays -tag:people", And((SavedSearch("holidays"), Not(T("people"))))),
        ("sunset OR @best", Or((S("sunset"), SavedSearch("best")))),
    ],
)
def test_fields(query: str, expected: object) -> None:
    assert parse(query) == expected


def test_a_full_query() -> None:
    query = 'sunset tag:beach -tag:people date:2023-06..2023-08 (camera:sony OR camera:"pixel 7") has:gps'
    assert parse(query) == And(
        (
            S("sunset"),
            T("beach"),
            Not(T("people")),
            DateRange(date(2023, 6, 1), date(2023, 9, 1)),
            Or((Camera("sony"), Camera("pixel 7"))),
            Has("gps"),
        )
    )


# ------------------------------------------------------------------------------------ spans, walk


def test_spans_point_at_the_terms() -> None:
    query = 'red car tag:"living room" -tag:狗 (@a OR date:2023)'
    tree = parse(query)
    assert tree.span == (0, len(query))
    texts = [query[slice(*node.span)] for node in walk(tree)]
    assert texts == [
        query,
        "red car",
        'tag:"living room"',
        "-tag:狗",
        "tag:狗",
        "(@a OR date:2023)",
        "@a",
        "date:2023",
    ]


def test_span_takes_no_part_in_equality() -> None:
    assert Tag("dog", span=(3, 10)) == Tag("dog") == parse("  tag:dog")
    assert parse("  tag:dog").span == (2, 9)
    assert hash(Tag("dog", span=(1, 2))) == hash(Tag("dog"))


def test_walk_visits_every_node_parents_first() -> None:
    tree = parse("tag:a OR NOT (tag:b tag:c)")
    assert [type(node).__name__ for node in walk(tree)] == ["Or", "Tag", "Not", "And", "Tag", "Tag"]
    assert [node.name for node in walk(tree) if isinstance(node, Tag)] == ["a", "b", "c"]


def test_nodes_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Tag("dog").name = "cat"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------- errors


def syntax_error(query: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    return caught.value


def test_error_display_has_a_caret_under_the_token() -> None:
    error = syntax_error("colour:red AND tag:dog")
    assert isinstance(error, IndexerError)
    assert str(error) == (
        "unknown field 'colour' (known: tag, similar, date, camera, folder, type, has, state, source)\n"
        "  colour:red AND tag:dog\n"
        "  ^^^^^^"
    )
    assert (error.position, error.token, error.span, error.query) == (0, "colour", (0, 6), "colour:red AND tag:dog")


# (query, the offending token, words the message must contain)
ERRORS = [
    ("dog AND", "AND", "'AND' needs a term on its right"),
    ("dog AND OR cat", "AND", "'AND' needs a term on its right"),
    ("dog AND )", "AND", "'AND' needs a term on its right"),
    ("OR cat", "OR", "'OR' needs a term on its left"),
    ("AND cat", "AND", "'AND' needs a term on its left"),
    ("dog OR", "OR", "'OR' needs a term on its right"),
    ("(OR cat)", "OR", "'OR' needs a term on its left"),
    ("dog NOT", "NOT", "'NOT' needs a term on its right"),
    ("NOT", "NOT", "'NOT' needs a term on its right"),
    ("dog -", "-", "'-' must be glued"),
    ("dog - cat", "-", "'-' must be glued"),
    ("-AND cat", "-", "'-' must be glued"),
    ("(dog OR cat", "(", "unclosed '('"),
    ("((dog) cat", "(", "unclosed '('"),
    ("dog)", ")", "unmatched ')'"),
    (") dog", ")", "unmatched ')'"),
    ("(dog))", ")", "unmatched ')'"),
    ("dog ( )", "( )", "empty parentheses"),
    ("tag:", "tag:", "'tag:' needs a value, as in tag:dog"),
    ("dog tag: cat", "tag:", "'tag:' needs a value"),
    ('tag:""', 'tag:""', "'tag:' needs a value"),
    ("similar:", "similar:", "'similar:' needs a value"),
    ("colour:red", "colour", "unknown field 'colour'"),
    ("tga:dog", "tga", "did you mean 'tag'?"),
    ("date:2023-13", "2023-13", "month 13 is not 01 to 12"),
    ("date:2023-00", "2023-00", "month 0 is not 01 to 12"),
    ("date:2023-02-30", "2023-02-30", "day is out of range"),
    ("date:23", "23", "YYYY, YYYY-MM, YYYY-MM-DD"),
    ("date:2023/01", "2023/01", "bad date"),
    ("date:yesterday", "yesterday", "bad date"),
    ("date:0000", "0000", "the year must be"),
    ("date:2023..20x4", "20x4", "bad date '20x4'"),
    ("date:2023-13..2024", "2023-13", "month 13"),
    ("date:2023-06..2023-01", "2023-06..2023-01", "ends before it starts"),
    ("date:2023-07..2023-06-30", "2023-07..2023-06-30", "ends before it starts"),
    ("date:..", "..", "needs at least one end"),
    ("type:raw", "raw", "known: jpeg, png, webp, heif, avif, mpo, tiff, gif, bmp"),
    ("type:jpgg", "jpgg", "did you mean 'jpg'?"),
    ("has:colour", "colour", "known: gps, date, camera, tags, embedding"),
    ("state:maybe", "maybe", "known: accepted, suggested, rejected"),
    ("source:me", "me", "known: user, model, file"),
    ('"a dog', '"a dog', "unterminated quote"),
    ('dog OR tag:"living room', '"living room', "unterminated quote"),
    (r'"a \" b', r'"a \" b', "unterminated quote"),
    ('""', '""', "empty phrase"),
    ("@", "@", "needs the name of a saved search"),
]


@pytest.mark.parametrize(("query", "token", "message"), ERRORS)
def test_errors_point_at_the_offending_token(query: str, token: str, message: str) -> None:
    error = syntax_error(query)
    assert message in error.message
    assert error.token == token
    assert query[error.position : error.position + len(token)] == token
    # The caret line marks exactly the token's columns (all these queries are one column per character).
    query_line, caret_line = str(error).splitlines()[-2:]
    assert query_line == "  " + query
    assert caret_line == "  " + " " * error.position + "^" * len(token)


def test_the_first_error_from_the_left_wins() -> None:
    assert syntax_error('OR "unterminated').token == "OR"
    assert syntax_error(") colour:red").token == ")"
    assert syntax_error("colour:red )").token == "colour"


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_empty_query(query: str) -> None:
    error = syntax_error(query)
    assert "empty query" in error.message
    assert (error.position, error.token) == (0, "")
    assert str(error) == error.message


def test_caret_under_wide_characters() -> None:
    error = syntax_error("狗 AND")
    assert str(error).splitlines()[1:] == ["  狗 AND", "     ^^^"]  # 狗 takes two columns


def test_format_error_for_callers() -> None:
    query = "tag:dgo OR\tcat"
    node = parse(query).items[0]  # type: ignore[attr-defined]
    assert format_error(query, node.span, "unknown tag 'dgo' — did you mean 'dog'?") == (
        "unknown tag 'dgo' — did you mean 'dog'?\n  tag:dgo OR cat\n  ^^^^^^^"
    )
    assert format_error("dog", (3, 3), "here") == "here\n  dog\n     ^"  # an empty span: one caret
