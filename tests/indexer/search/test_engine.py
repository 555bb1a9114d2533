"""Search on a synthetic catalog whose tags and embeddings are known, so every right answer is known."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from indexer.catalog import Catalog
from indexer.index import GENERATION_KEY
from indexer.schema import ACCEPTED, REJECTED, SUGGESTED, Embedding, Photo, PhotoTag, Tag
from indexer.search.engine import Searcher, SearchError
from indexer.search.query import QuerySyntaxError

DIM = 8
VERSION = "clip_test@v1"


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


class KnownTextEmbedder:
    """Stands in for CLIP's text encoder: each phrase has a fixed vector in the test's space."""

    bundle = SimpleNamespace(version=VERSION)

    def __init__(self, phrases: dict[str, np.ndarray]) -> None:
        self.phrases = phrases
        self.calls: list[str] = []

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        self.calls += texts
        return torch.from_numpy(np.stack([self.phrases[t] for t in texts]))


# name: (folder, format, taken, camera make, gps, tags {name: (score, state, source)}, embedding)
PHOTOS = {
    "beach_dog.jpg": ("/lib/2023/summer", "jpeg", datetime(2023, 7, 1, 10), "SONY", True,
                      {"dog": (0.9, SUGGESTED, "model"), "beach": (0.8, SUGGESTED, "model")}, unit(1, 0.1)),
    "dog.heic": ("/lib/2023/winter", "heif", datetime(2023, 1, 5, 9), "Apple", True,
                 {"dog": (0.7, SUGGESTED, "model")}, unit(0.9, 0.5)),
    "cat_beach.jpg": ("/lib/2022", "jpeg", datetime(2022, 8, 3), "Canon", False,
                      {"cat": (0.95, SUGGESTED, "model"), "beach": (None, ACCEPTED, "user")}, unit(0.2, 1)),
    "rejected_dog.png": ("/lib/2022", "png", None, None, False,
                         {"dog": (0.6, REJECTED, "model"), "living room": (None, ACCEPTED, "file")}, unit(-0.1, 0, 1)),
    "plain.jpg": ("/other", "jpeg", datetime(2019, 3, 3), "sony", False, {}, unit(0, 0, 0, 1)),
}
TAGS = {"dog": "狗", "cat": "猫", "beach": "海滩", "living room": "客厅", "abacus": "算盘"}


@pytest.fixture()
def catalog(tmp_path) -> Catalog:  # noqa: ANN001
    catalog = Catalog.open(tmp_path / "catalog")
    stamp = datetime(2024, 1, 1)
    with catalog.session() as session, session.begin():
        tag_ids = {}
        for name, zh in TAGS.items():
            tag = Tag(name=name, name_zh=zh, kind="builtin", threshold=0.5)
            session.add(tag)
            session.flush()
            tag_ids[name] = tag.id
        for name, (folder, fmt, taken, make, gps, tags, vector) in PHOTOS.items():
            photo = Photo(path=f"{folder}/{name}", size=1, mtime_ns=1, content_hash=name, format=fmt, taken_at=taken,
                          camera_make=make, gps_lat=1.0 if gps else None, gps_lon=2.0 if gps else None,
                          status="indexed", attempts=0, first_seen=stamp, last_seen=stamp, embedder_version=VERSION)
            session.add(photo)
            session.flush()
            for tag, (score, state, source) in tags.items():
                session.add(PhotoTag(photo_id=photo.id, tag_id=tag_ids[tag], score=score, state=state, source=source,
                                     updated_at=stamp))
            session.add(Embedding(photo_id=photo.id, model_version=VERSION, dim=DIM, vector=vector))
        session.add(Photo(path="/lib/gone.jpg", size=1, mtime_ns=1, status="missing", attempts=0, first_seen=stamp,
                          last_seen=stamp, format="jpeg", camera_make="SONY"))
        Catalog.set_meta(session, GENERATION_KEY, "1")
    yield catalog
    catalog.close()


@pytest.fixture()
def embedder() -> KnownTextEmbedder:
    return KnownTextEmbedder({"a dog on the beach": unit(1, 0.2), "cats": unit(0.1, 1),
                              "fractal art": unit(0, 0, 0, 0, 1)})


def names(results) -> list[str]:  # noqa: ANN001
    return [Path(r.path).name for r in results.results]


def test_tags_and_booleans(catalog) -> None:  # noqa: ANN001
    search = Searcher(catalog).search
    assert names(search("tag:dog")) == ["beach_dog.jpg", "dog.heic"]  # rejected_dog is not a dog; by score
    assert set(names(search("tag:dog tag:beach"))) == {"beach_dog.jpg"}
    assert set(names(search("tag:dog OR tag:cat"))) == {"beach_dog.jpg", "dog.heic", "cat_beach.jpg"}
    assert set(names(search("tag:beach -tag:dog"))) == {"cat_beach.jpg"}
    assert set(names(search("NOT tag:dog"))) == {"cat_beach.jpg", "rejected_dog.png", "plain.jpg"}
    assert set(names(search("(tag:dog OR tag:cat) tag:beach"))) == {"beach_dog.jpg", "cat_beach.jpg"}
    assert set(names(search("tag:dog OR tag:cat tag:beach"))) == {"beach_dog.jpg", "dog.heic", "cat_beach.jpg"}
    assert names(search("tag:狗")) == names(search("tag:DOG")) == names(search("tag:dog"))
    assert names(search('tag:"living room"')) == ["rejected_dog.png"]
    assert names(search("tag:abacus")).__len__() == 0
    found = search("tag:beach")
    assert found.results[0].tags == ["beach"] and found.total == 2
    assert names(found)[0] == "cat_beach.jpg"  # a person's accepted tag counts as score 1


def test_filters(catalog) -> None:  # noqa: ANN001
    search = Searcher(catalog).search
    assert set(names(search("date:2023"))) == {"beach_dog.jpg", "dog.heic"}
    assert set(names(search("date:2022-08..2023-01"))) == {"cat_beach.jpg", "dog.heic"}
    assert set(names(search("date:..2020"))) == {"plain.jpg"}
    assert set(names(search("camera:sony"))) == {"beach_dog.jpg", "plain.jpg"}  # any case; missing photos never
    assert set(names(search("folder:/lib/2023"))) == {"beach_dog.jpg", "dog.heic"}
    assert set(names(search("folder:/lib/20"))) == set()  # a folder, not a string prefix
    assert set(names(search("type:heic"))) == {"dog.heic"}
    assert set(names(search("has:gps"))) == {"beach_dog.jpg", "dog.heic"}
    assert set(names(search("-has:date"))) == {"rejected_dog.png"}
    assert set(names(search("state:rejected"))) == {"rejected_dog.png"}
    assert set(names(search("source:user"))) == {"cat_beach.jpg"}
    assert set(names(search("source:file"))) == {"rejected_dog.png"}
    assert set(names(search("tag:dog state:rejected"))) == {"rejected_dog.png"}  # the state of that tag
    assert set(names(search("tag:beach source:model"))) == {"beach_dog.jpg"}


def test_sort_by_date_and_limit(catalog) -> None:  # noqa: ANN001
    found = Searcher(catalog).search("has:tags", sort="date", limit=2)
    assert names(found) == ["beach_dog.jpg", "dog.heic"] and found.total == 4
    everything = Searcher(catalog).search("-tag:abacus", sort="date", limit=None)
    assert names(everything)[-1] == "rejected_dog.png"  # undated photos last


def test_semantic_ranking_and_cutoff(catalog, embedder) -> None:  # noqa: ANN001
    searcher = Searcher(catalog, embedder)
    found = searcher.search('"a dog on the beach"', min_score=-1)
    scores = {n: float(unit(1, 0.2) @ PHOTOS[n][6]) for n in PHOTOS}
    assert names(found) == sorted(scores, key=scores.get, reverse=True)
    # The catalog stores embeddings as float16 (indexer.schema.HalfVector): scores within a few 1e-4.
    assert [r.score for r in found.results] == pytest.approx(sorted(scores.values(), reverse=True), abs=1e-3)
    # The default cutoff keeps an unrelated query from returning the whole library.
    assert names(searcher.search("fractal art")) == []
    assert set(names(searcher.search("a dog on the beach", min_score=0.9))) == {"beach_dog.jpg", "dog.heic"}


def test_semantic_terms_mix_with_tags_and_booleans(catalog, embedder) -> None:  # noqa: ANN001
    searcher = Searcher(catalog, embedder)
    assert names(searcher.search("cats tag:beach", min_score=0.5)) == ["cat_beach.jpg"]
    assert set(names(searcher.search("cats OR tag:dog", min_score=0.9))) == {"cat_beach.jpg", "beach_dog.jpg",
                                                                              "dog.heic"}
    assert set(names(searcher.search("tag:dog -cats", min_score=0.5))) == {"beach_dog.jpg"}  # dog.heic is catty


def test_similar_returns_the_photo_itself_first(catalog, embedder) -> None:  # noqa: ANN001
    found = Searcher(catalog, embedder).search("similar:/lib/2022/cat_beach.jpg", min_score=-1)
    assert names(found)[0] == "cat_beach.jpg" and found.results[0].score == pytest.approx(1.0)
    with pytest.raises(SearchError, match="similar: cannot use this file"):
        Searcher(catalog, embedder).search("similar:/nowhere/x.jpg")


def test_saved_searches(catalog) -> None:  # noqa: ANN001
    searcher = Searcher(catalog)
    searcher.save("dogs", "tag:dog")
    searcher.save("dated_dogs", "@dogs has:date")
    assert searcher.saved() == {"dated_dogs": "@dogs has:date", "dogs": "tag:dog"}
    assert set(names(searcher.search("@dated_dogs"))) == {"beach_dog.jpg", "dog.heic"}
    assert set(names(searcher.search("@dogs -has:gps"))) == set()
    searcher.save("loop", "@loop")
    with pytest.raises(SearchError, match="refers to itself"):
        searcher.search("@loop")
    with pytest.raises(SearchError, match="did you mean '@?dogs'|no saved search"):
        searcher.search("@dgos")
    searcher.delete_saved("loop")
    assert "loop" not in searcher.saved()
    with pytest.raises(QuerySyntaxError):
        searcher.save("bad", "tag:dog AND")


def test_saved_searches_are_read_once_a_search(catalog, monkeypatch) -> None:  # noqa: ANN001
    searcher = Searcher(catalog)
    searcher.save("dogs", "tag:dog")
    searcher.save("dated_dogs", "@dogs has:date")
    reads = []
    read = Searcher.saved
    monkeypatch.setattr(Searcher, "saved", lambda self: reads.append(1) or read(self))
    assert set(names(searcher.search("@dated_dogs OR @dogs OR (@dogs -has:gps)"))) == {"beach_dog.jpg", "dog.heic"}
    assert len(reads) == 1  # not one catalog query per @name
    searcher.search("tag:dog")
    assert len(reads) == 1  # a query without @names reads none


def test_unknown_tag_suggests_the_closest(catalog) -> None:  # noqa: ANN001
    with pytest.raises(SearchError) as error:
        Searcher(catalog).search("tag:dgo beach")
    message = str(error.value)
    assert "unknown tag 'dgo'" in message and "'dog'" in message
    assert message.splitlines()[-2:] == ["  tag:dgo beach", "  ^^^^^^^"]  # the caret under tag:dgo


def test_cli_search_on_an_indexed_library(home, photos, capsys) -> None:  # noqa: ANN001
    from main import main

    assert main(["index", str(photos / "library")]) == 0
    capsys.readouterr()
    target = photos / "library" / "animals" / "pug.heic"
    assert main(["search", f"similar:{target}", "--json", "--min-score", "-1", "--limit", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["path"] == str(target) and lines[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert set(lines[0]) == {"path", "score", "tags", "taken_at"} and len(lines) == 3
    assert main(["search", "camera:sony", "-type:heif"]) == 0  # a leading '-' term is part of the query
    captured = capsys.readouterr()
    assert captured.out == "" and "0 matches" in captured.err
    assert main(["search", "--save", "sony", "camera:sony"]) == 0
    assert main(["search", "@sony", "--json"]) == 0
    paths = {json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()}
    assert {Path(p).name for p in paths} == {"cat.hif", "guitar_cw90.hif"}
    assert main(["search", "tag:3d", "AND"]) == 2
    assert "'AND' needs a term" in capsys.readouterr().err
    # --limit 0: every match, counted exactly, where a limit of 1 shows one of them.
    assert main(["search", "similar:" + str(target), "--min-score", "-1", "--limit", "0", "--json"]) == 0
    every = capsys.readouterr().out.splitlines()
    assert main(["search", "similar:" + str(target), "--min-score", "-1", "--limit", "1"]) == 0
    one = capsys.readouterr()
    assert len(every) > 3 and len(one.out.splitlines()) == 1 and f"{len(every)} matches, 1 shown" in one.err
    with pytest.raises(SystemExit) as refused:
        main(["search", "tag:dog", "--limit", "-1"])
    assert refused.value.code == 2 and "or 0 for all of them, not -1" in capsys.readouterr().err


def test_semantic_candidates_widen_when_the_first_pass_falls_short(catalog, embedder, monkeypatch) -> None:  # noqa: ANN001
    import indexer.search.engine as engine

    expected = names(Searcher(catalog, embedder).search('"a dog on the beach" tag:dog', min_score=-1, limit=3))
    monkeypatch.setattr(engine, "SEMANTIC_CANDIDATES", 3)
    monkeypatch.setattr(engine, "FIRST_CANDIDATES", 1)
    monkeypatch.setattr(engine, "CANDIDATES_PER_RESULT", 0)
    monkeypatch.setattr(engine, "PREFILTER_MAX", 0)  # tag:dog counts as matching many photos: no prefilter
    # First pass: the single best photo; AND tag:dog leaves 1 < 3 results, so all 3 candidates are asked for.
    found = Searcher(catalog, embedder).search('"a dog on the beach" tag:dog', min_score=-1, limit=3)
    assert names(found) == expected == ["beach_dog.jpg", "dog.heic"]
    assert found.total_is_lower_bound  # 3 of 5 photos were candidates: there may be more
    assert not Searcher(catalog, embedder).search("tag:dog").total_is_lower_bound


def test_free_text_with_a_selective_filter_scores_every_photo_of_the_filter(catalog, embedder,  # noqa: ANN001
                                                                            monkeypatch) -> None:
    import indexer.search.engine as engine

    query = '"a dog on the beach" tag:dog'
    expected = names(Searcher(catalog, embedder).search(query, min_score=-1, limit=3))
    monkeypatch.setattr(engine, "SEMANTIC_CANDIDATES", 1)  # the library's best photo alone would miss dog.heic
    monkeypatch.setattr(engine, "FIRST_CANDIDATES", 1)
    found = Searcher(catalog, embedder).search(query, min_score=-1, limit=3)
    assert names(found) == expected == ["beach_dog.jpg", "dog.heic"]
    assert found.total == 2 and not found.total_is_lower_bound  # the dog photos were all scored: exact
    # The same query with the filter above PREFILTER_MAX falls back to the candidates (and says so).
    monkeypatch.setattr(engine, "PREFILTER_MAX", 1)
    found = Searcher(catalog, embedder).search(query, min_score=-1, limit=3)
    assert names(found) == ["beach_dog.jpg"] and found.total_is_lower_bound
