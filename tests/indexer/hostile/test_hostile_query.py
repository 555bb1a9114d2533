"""Hostile search input through the real CLI (issue 15, item 8): nothing typed into a query or saved as one
ends in a traceback. Input past the query language's limits, or text a catalog cannot hold, is a malformed
query: exit 2 and one message line, then the query and carets under the place at fault; input within the
limits runs, however wide, and the engine stays within SQLite's limits even when the parser's are raised.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from indexer.catalog import Catalog
from indexer.schema import SavedSearch
from indexer.search import query
from main import main
from tests.conftest import PHOTOS
from tests.indexer.conftest import EMBEDDER, TAGGER

SMALL = ("animals/chelsea.png", "food/coffee.png", "space/rocket.jpg", "people/grace_hopper.jpg")
LATIN1 = b"caf\xe9"  # a folder name as an old Samba share gives it: Latin-1, not UTF-8
ENVIRONMENT = {"DEVICE": "cpu", "TAGGER": TAGGER, "EMBEDDER": EMBEDDER, "WORKERS": "0", "AUTO_DOWNLOAD": "false",
               "BATCH_SIZE": "4"}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, model_dir) -> Path:  # noqa: ANN001
    """A catalog of four small photos indexed with the tiny models, once for the module."""
    root = tmp_path_factory.mktemp("hostile_query")
    home = root / "home"
    home.mkdir()
    os.symlink(model_dir, home / "models")
    for name in SMALL:
        target = root / "photos" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PHOTOS / "library" / name, target)
    with pytest.MonkeyPatch.context() as env:
        for key, value in {"HOME": home, **ENVIRONMENT}.items():
            env.setenv(f"PHOTOTAG_{key}", str(value))
        assert main(["index", str(root / "photos")]) == 0
    return home / "catalog"


@pytest.fixture()
def library(home, indexed) -> Path:  # noqa: ANN001
    """``home`` with its own copy of the indexed catalog; returns the catalog folder."""
    shutil.copytree(indexed, home / "catalog", ignore=shutil.ignore_patterns("writer.*"))
    return home / "catalog"


def error_lines(capsys) -> tuple[str, str, str]:  # noqa: ANN001
    """The three lines a malformed query prints — message, query, carets — and nothing else (no traceback)."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3, err
    message, shown, carets = lines
    assert message.startswith("phototag: error: ") and shown.startswith("  ") and set(carets.strip()) == {"^"}
    return message, shown, carets


def under_carets(shown: str, carets: str) -> str:
    return shown[carets.index("^") : carets.rindex("^") + 1]


# --- the crashes of the issue --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "at_fault"), [
    ("(" * 300 + "tag:cat" + ")" * 300, "("),  # was RecursionError
    ("-" * 2_000 + "tag:cat", "-"),  # was RecursionError
    ("NOT " * 300 + "tag:cat", "NOT"),
    ("has:gps " + "(has:gps OR NOT (" * 100 + "has:gps" + "))" * 100, "NOT"),  # was SQLite's "parser stack overflow"
])  # fmt: skip
def test_deep_nesting_is_a_malformed_query(library, capsys, text, at_fault) -> None:  # noqa: ANN001
    assert main(["search", text]) == 2
    message, shown, carets = error_lines(capsys)
    assert f"nested too deeply: more than {query.MAX_DEPTH} levels" in message
    assert under_carets(shown, carets) == at_fault


def test_many_phrases_are_a_malformed_query(library, capsys) -> None:  # noqa: ANN001
    phrases = [f'"thing {i}"' for i in range(130)]  # was "too many arguments on function max"
    assert main(["search", *phrases]) == 2
    message, shown, carets = error_lines(capsys)
    assert f"too many phrases: the most is {query.MAX_PHRASES}" in message
    assert under_carets(shown, carets) == phrases[query.MAX_PHRASES]


def test_many_filters_are_a_malformed_query(library, capsys) -> None:  # noqa: ANN001
    assert main(["search", " OR ".join(["has:gps"] * 1_500)]) == 2  # was "Expression tree is too large"
    message, shown, carets = error_lines(capsys)
    assert f"query too long: 16,496 characters (the most is {query.MAX_QUERY_LENGTH:,})" in message
    assert shown.endswith("…") and shown[2] == "…"  # cut to the part around the carets
    assert main(["search", " OR ".join(["has:gps"] * 300)]) == 2
    message, shown, carets = error_lines(capsys)
    assert f"too many terms: the most is {query.MAX_TERMS}" in message
    assert under_carets(shown, carets) == "has:gps"


@pytest.mark.parametrize(("text", "at_fault"), [
    ("tag:caf\udce9", "\\xe9"),  # argv's spelling of the Latin-1 byte 0xe9; was UnicodeEncodeError
    ('dog OR tag:"caf\udce9 au lait"', "\\xe9"),
    ("camera:sony\udcff", "\\xff"),
    ("caf\udce9", "\\xe9"),  # free text
])  # fmt: skip
def test_bytes_that_are_not_utf8_outside_a_path_are_a_malformed_query(library, capsys, text, at_fault) -> None:  # noqa: ANN001
    assert main(["search", text]) == 2
    message, shown, carets = error_lines(capsys)
    assert "is not UTF-8 text" in message and "folder: or similar: path only" in message
    assert under_carets(shown, carets) == at_fault


def test_a_folder_that_is_not_utf8_is_searched(library, home, tmp_path, capsys) -> None:  # noqa: ANN001
    folder = os.fsencode(tmp_path / "photos") + b"/" + LATIN1
    os.makedirs(folder)
    Image.open(PHOTOS / "library" / SMALL[0]).convert("RGB").save(os.fsdecode(folder + b"/chat.jpg"))
    typed = os.fsdecode(folder)  # what argv holds for the bytes: caf\udce9
    assert main(["search", f"folder:{typed}", "--json"]) == 0  # not indexed yet: nothing, and no error
    assert capsys.readouterr().out == ""
    assert main(["index", str(tmp_path / "photos")]) == 0
    capsys.readouterr()
    assert main(["search", f"folder:{typed}", "--json"]) == 0
    found = [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()]
    assert found == [os.fsdecode(folder + b"/chat.jpg")]


# --- the engine within SQLite's limits, whatever the parser allows ------------------------------------


def test_the_engine_runs_queries_past_the_parser_limits(library, capsys, monkeypatch) -> None:  # noqa: ANN001
    for name in ("MAX_QUERY_LENGTH", "MAX_TERMS", "MAX_PHRASES"):
        monkeypatch.setattr(query, name, 1_000_000, raising=False)
    pngs = {"chelsea.png", "coffee.png"}
    wide_or = " OR ".join(["type:png", *["camera:nosuchcamera"] * 1_500])
    assert main(["search", wide_or, "--json"]) == 0  # was "Expression tree is too large"
    assert found_names(capsys) == pngs
    wide_and = " ".join(["type:png", *["-date:2999"] * 1_500])
    assert main(["search", wide_and, "--json"]) == 0  # was "Expression tree is too large"
    assert found_names(capsys) == pngs
    phrases = [f'"thing {i}"' for i in range(130)]  # was "too many arguments on function max"
    assert main(["search", *phrases, "--min-score", "-1", "--json"]) == 0
    assert found_names(capsys) == {Path(name).name for name in SMALL}


def found_names(capsys) -> set[str]:  # noqa: ANN001
    return {Path(json.loads(line)["path"]).name for line in capsys.readouterr().out.splitlines()}


# --- saved searches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["caf\udce9", "two words", "bell\x07", "clear\x1b[2J", 'quo"te', "paren)", "x" * 101])
def test_a_hostile_saved_search_name_is_refused(library, capsys, name) -> None:  # noqa: ANN001
    assert main(["search", "--save", name, "has:gps"]) == 2  # caf\udce9 was UnicodeEncodeError
    err = capsys.readouterr().err
    assert err.startswith("phototag: error: a saved search needs a name without spaces") and err.count("\n") == 1
    assert main(["search", "--list"]) == 0 and capsys.readouterr().out == ""


def test_saving_or_deleting_bytes_that_are_not_utf8(library, capsys) -> None:  # noqa: ANN001
    assert main(["search", "--save", "cafe", "folder:/photos/caf\udce9"]) == 2  # was UnicodeEncodeError
    message, shown, carets = error_lines(capsys)
    assert "a saved search cannot hold bytes that are not UTF-8" in message and under_carets(shown, carets) == "\\xe9"
    assert main(["search", "--delete", "caf\udce9"]) == 2  # was UnicodeEncodeError
    assert capsys.readouterr().err == "phototag: error: no saved search named 'caf\\udce9' (phototag search --list " \
                                      "shows them)\n"


def save_directly(catalog_dir: Path, saved: dict[str, str]) -> None:
    """Saved searches as a catalog may hold them (another tool, an older Phototag), bypassing ``--save``."""
    with Catalog.open(catalog_dir, create=False) as catalog, catalog.session() as session, session.begin():
        session.add_all(SavedSearch(name=name, query=text, created_at=datetime(2024, 1, 1))
                        for name, text in saved.items())


def test_saved_searches_count_against_the_limits(library, capsys) -> None:  # noqa: ANN001
    chain = {f"s{i}": f"@s{i + 1}" for i in range(1_000)} | {"s1000": "has:gps"}  # was RecursionError
    doubling = {f"d{i}": f"@d{i + 1} @d{i + 1}" for i in range(9)} | {"d9": "has:gps"}  # 512 has:gps; was
    save_directly(library, chain | doubling)  # "Expression tree is too large"
    assert main(["search", "type:png @s0"]) == 2
    message, shown, carets = error_lines(capsys)
    assert message == f"phototag: error: in @s0: nested too deeply: more than {query.MAX_DEPTH} levels of '(', " \
                      "NOT and '-' inside one another (an @name counts as one)"
    assert under_carets(shown, carets) == "@s0"
    assert main(["search", "@d0"]) == 2
    message, shown, carets = error_lines(capsys)
    assert f"in @d0: too many terms: the most is {query.MAX_TERMS}" in message and under_carets(shown, carets) == "@d0"
    assert main(["search", "@s995"]) == 0  # a short chain runs
