"""The compressed (IVF-PQ) vector index with exact re-scoring, and the streaming build from catalog batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import indexer.vectors as vectors_module
from indexer.vectors import VectorIndex

DIM = 64  # IVF-PQ: 64 one-byte sub-quantizers, so the dimension divides by 64


def clustered(count: int, clusters: int = 60, seed: int = 0, dim: int = DIM) -> np.ndarray:
    """Unit vectors around cluster centres, with near-duplicates: like image embeddings, not uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, count)] + 0.35 * rng.standard_normal((count, dim)).astype(np.float32)
    twins = rng.random(count) < 0.05
    vectors[twins] = vectors[rng.integers(0, count, int(twins.sum()))] + 0.02 * rng.standard_normal(
        (int(twins.sum()), dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class Store:
    """The catalog's role: the exact vectors of ids (``VectorIndex.exact_vectors``), counting its calls."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.by_id = {int(i): v for i, v in zip(ids, vectors, strict=True)}
        self.calls = 0

    def __call__(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        found = [int(i) for i in ids if int(i) in self.by_id]
        return np.asarray(found, np.int64), np.stack([self.by_id[i] for i in found]) if found else np.empty((0, DIM))


def recall(found: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, want, strict=True)]))


COUNT = 2500


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return np.arange(5, COUNT + 5, dtype=np.int64), clustered(COUNT)


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory) -> Path:  # noqa: ANN001
    """An IVF-PQ index of ``data``, built once (training takes seconds), saved for each test to load."""
    ids, vectors = data
    path = tmp_path_factory.mktemp("pq") / "v.faiss"
    VectorIndex.build(DIM, ids, vectors, kind="ivfpq").save(path, "s")
    return path


def test_ivfpq_re_scored_finds_what_exact_search_finds(data, saved: Path) -> None:  # noqa: ANN001
    ids, vectors = data
    exact = VectorIndex.build(DIM, ids, vectors, kind="flat")
    compressed = VectorIndex.load(saved, DIM, "s")
    assert compressed is not None and (compressed.kind, len(compressed)) == ("ivfpq", COUNT)
    queries = clustered(30, seed=1)
    want_scores, want = exact.search(queries, 50)
    codes_only_scores, codes_only = compressed.search(queries, 50)  # no exact vectors: the codes' scores
    compressed.exact_vectors = store = Store(ids, vectors)
    scores, got = compressed.search(queries, 50)
    assert store.calls == 30
    assert recall(got, want) >= 0.95 and recall(got, want) > recall(codes_only, want)
    # Re-scored: the scores are the exact inner products, best first.
    found = got[0][got[0] >= 0]
    np.testing.assert_allclose(scores[0][: len(found)], vectors[found - 5] @ queries[0], atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert not np.allclose(codes_only_scores[:, 0], want_scores[:, 0], atol=1e-5)  # the codes are approximate


def test_ivfpq_adds_removes_saves_and_loads(data, saved: Path, tmp_path: Path) -> None:  # noqa: ANN001
    ids, vectors = data
    index = VectorIndex.load(saved, DIM, "s")
    assert index is not None
    store = Store(ids, vectors)
    index.exact_vectors = store
    # Replace one vector, add a new id, remove two (one unknown).
    moved = -vectors[0]
    store.by_id[5] = moved
    index.add(np.array([5, 99_999]), np.stack([moved, vectors[1]]))
    store.by_id[99_999] = vectors[1]
    assert len(index) == COUNT + 1 and 99_999 in set(index.ids().tolist())
    np.testing.assert_allclose(index.reconstruct(5), moved)  # from the exact vectors: the codes keep none
    assert index.search(moved[None, :], 1)[1][0, 0] == 5
    assert index.remove(np.array([6, 123_456])) == 1 and len(index) == COUNT
    assert 6 not in set(index.ids().tolist()) and 6 not in set(index.search(vectors[1:2], 50)[1][0].tolist())
    with pytest.raises(KeyError):
        index.reconstruct(6)
    # Saved and loaded: the same kind, ids and answers.
    index.save(tmp_path / "v.faiss", "s")
    loaded = VectorIndex.load(tmp_path / "v.faiss", DIM, "s")
    assert loaded is not None and loaded.kind == "ivfpq" and sorted(loaded.ids()) == sorted(index.ids())
    loaded.exact_vectors = store
    queries = clustered(5, seed=3)
    assert np.array_equal(loaded.search(queries, 20)[1], index.search(queries, 20)[1])
    subset = ids[::9]
    _, inside = loaded.search_ids(queries[:1], 7, subset)
    assert len(inside[0]) == 7 and set(inside[0].tolist()) <= set(subset.tolist())


def test_open_rebuilds_ivfpq_from_batches_and_passes_the_exact_vectors(data, tmp_path: Path) -> None:  # noqa: ANN001
    ids, vectors = data
    calls: list[int] = []

    def rows():  # noqa: ANN202
        calls.append(1)
        for start in range(0, len(ids), 1000):
            yield ids[start:start + 1000], vectors[start:start + 1000]

    store = Store(ids, vectors)
    index, rebuilt = VectorIndex.open(tmp_path / "v.faiss", DIM, "a", rows, kind="ivfpq", exact_vectors=store)
    assert rebuilt and index.kind == "ivfpq" and index.exact_vectors is store and len(index) == COUNT
    again, rebuilt = VectorIndex.open(tmp_path / "v.faiss", DIM, "a", rows, kind="ivfpq", exact_vectors=store)
    assert not rebuilt and again.kind == "ivfpq" and again.exact_vectors is store
    assert calls == [1]  # the library fits in the training sample: one pass; none when loaded


def test_auto_picks_ivfpq_for_the_largest_libraries(data, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    ids, vectors = data
    monkeypatch.setattr(vectors_module, "APPROXIMATE_FROM", 700)
    monkeypatch.setattr(vectors_module, "COMPRESSED_FROM", 2000)
    path = tmp_path / "v.faiss"

    def rows_of(n: int):  # noqa: ANN202
        return lambda: [(ids[:n], vectors[:n])]

    assert VectorIndex.open(path, DIM, "a", rows_of(2400))[0].kind == "ivfpq"
    resolve = vectors_module._resolve_kind
    assert [resolve("auto", 1200, "ivfpq"), resolve("auto", 1200, "ivf"), resolve("auto", 900, "ivfpq")] == [
        "ivfpq", "ivf", "ivf"]  # above half the line an IVF-PQ index stays; below, back to IVF
    assert [resolve("auto", 300, "ivfpq"), resolve("auto", 400, "ivfpq")] == ["flat", "ivf"]


def test_streaming_build_equals_the_build_from_one_array(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(vectors_module, "TRAIN_SAMPLE", 1000)  # fewer than the rows: two passes over them
    ids = np.random.default_rng(4).permutation(np.arange(100, 3100, dtype=np.int64))
    vectors = clustered(3000, dim=32, seed=4)
    passes: list[int] = []
    biggest: list[int] = []

    def rows():  # noqa: ANN202
        passes.append(1)
        for start in range(0, len(ids), 250):
            biggest.append(250)
            yield ids[start:start + 250], vectors[start:start + 250]

    streamed = VectorIndex.build_from(32, rows, "flat")
    whole = VectorIndex.build(32, ids, vectors, kind="flat")
    assert len(passes) == 2
    assert np.array_equal(streamed.ids(), whole.ids())  # the same vectors in the same order: the same index
    assert all(np.array_equal(streamed.reconstruct(int(i)), whole.reconstruct(int(i))) for i in ids[:50])
    queries = clustered(10, dim=32, seed=5)
    assert np.array_equal(streamed.search(queries, 40)[1], whole.search(queries, 40)[1])
    # IVF, streamed: trained on a sample, every vector added; scoring every cell gives the exact answers.
    ivf = VectorIndex.build_from(32, rows, "ivf")
    assert ivf.kind == "ivf" and sorted(ivf.ids().tolist()) == sorted(ids.tolist())
    scores, found = ivf.search_ids(queries, 40, ids, exact=True)
    want_scores, want = whole.search(queries, 40)
    assert np.array_equal(found, want) and np.allclose(scores, want_scores, atol=1e-6)


def test_streaming_build_needs_the_same_rows_twice(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(vectors_module, "TRAIN_SAMPLE", 100)
    vectors = clustered(300, dim=32)
    passes: list[int] = []

    def rows():  # noqa: ANN202  # a catalog that lost rows between the passes
        passes.append(1)
        count = 300 if len(passes) == 1 else 200
        return [(np.arange(count, dtype=np.int64), vectors[:count])]

    with pytest.raises(ValueError, match="second pass"):
        VectorIndex.build_from(32, rows, "flat")


def test_the_catalog_gives_the_exact_vectors_in_the_order_asked(tmp_path: Path) -> None:
    """``embedding_vectors`` (what the Searcher re-scores with) reads the ids in ascending order, for speed, and
    answers in the order asked: ids of other models or of no photo left out, repeated ids repeated."""
    from datetime import datetime

    from indexer.catalog import Catalog
    from indexer.index import embedding_vectors
    from indexer.schema import Embedding, Photo

    vectors = clustered(40, seed=3)
    stamp = datetime(2024, 1, 1)
    with Catalog.open(tmp_path / "catalog") as catalog:
        with catalog.session() as session, session.begin():
            session.add_all(Photo(id=n + 1, path=f"/p/{n}.jpg", size=1, mtime_ns=1, status="indexed", attempts=0,
                                  first_seen=stamp, last_seen=stamp) for n in range(40))
            session.flush()
            for n in range(40):
                session.add(Embedding(photo_id=n + 1, model_version="other@v1" if n == 7 else "clip@v1", dim=DIM,
                                      vector=vectors[n]))
        asked = np.asarray([30, 2, 8, 99, 17, 2, 40, 1], np.int64)  # 8: another model's; 99: no photo
        found, exact = embedding_vectors(catalog, "clip@v1", asked)
    assert found.tolist() == [30, 2, 17, 2, 40, 1]
    np.testing.assert_allclose(exact, vectors[found - 1], atol=2e-3)  # float16 on disk


def test_a_filtered_search_re_scores_only_what_passes_and_finds_what_exact_search_finds(tmp_path: Path,
                                                                                        monkeypatch) -> None:  # noqa: ANN001
    """Free text AND-ed with a tag and a date on an IVF-PQ index: the candidates come scored by their codes, SQL
    keeps those that pass, and only those are read and scored exactly — the same answers as exact search."""
    from datetime import datetime, timedelta

    import indexer.search.engine as engine
    from indexer.catalog import Catalog
    from indexer.index import GENERATION_KEY
    from indexer.schema import SUGGESTED, Embedding, Photo, PhotoTag, Tag
    from indexer.search.engine import Searcher
    from tests.indexer.search.test_engine import KnownTextEmbedder

    vectors = clustered(COUNT, seed=4)
    rng = np.random.default_rng(4)
    stamp = datetime(2024, 1, 1)
    with Catalog.open(tmp_path / "catalog") as catalog:
        with catalog.session() as session, session.begin():
            dog = Tag(name="dog", kind="builtin", threshold=0.5)
            session.add(dog)
            session.add_all(Photo(id=n + 1, path=f"/p/{n:04d}.jpg", size=1, mtime_ns=1, status="indexed", attempts=0,
                                  taken_at=datetime(2018, 1, 1) + timedelta(days=int(rng.integers(0, 1500))),
                                  first_seen=stamp, last_seen=stamp) for n in range(COUNT))
            session.flush()
            session.add_all(PhotoTag(photo_id=n + 1, tag_id=dog.id, score=0.8, state=SUGGESTED, source="model",
                                     updated_at=stamp) for n in range(COUNT) if rng.random() < 0.4)
            session.add_all(Embedding(photo_id=n + 1, model_version=KnownTextEmbedder.bundle.version, dim=DIM,
                                      vector=vectors[n]) for n in range(COUNT))
            Catalog.set_meta(session, GENERATION_KEY, "1")
        embedder = KnownTextEmbedder({"dogs": clustered(1, seed=9)[0], "cats": clustered(1, seed=10)[0]})
        reads: list[int] = []
        rescore = vectors_module.VectorIndex.rescore
        monkeypatch.setattr(vectors_module.VectorIndex, "rescore",
                            lambda self, query, ids: reads.append(len(ids)) or rescore(self, query, ids))
        monkeypatch.setattr(engine, "PREFILTER_MAX", 10)  # the dog photos are candidates, not scored all first
        approximate, flat = Searcher(catalog, embedder, vector_index="ivfpq"), Searcher(catalog, embedder,
                                                                                        vector_index="flat")
        for query in ("dogs tag:dog date:2019..2020", "cats tag:dog", "dogs date:2021"):
            compressed = approximate.search(query, limit=20, min_score=0.0)
            exact = flat.search(query, limit=20, min_score=0.0)
            assert [r.photo_id for r in compressed.results] == [r.photo_id for r in exact.results], query
            np.testing.assert_allclose([r.score for r in compressed.results], [r.score for r in exact.results],
                                       atol=1e-3)  # float16 on disk against the flat index's float32
            assert len(compressed.results) == 20
        assert len(reads) == 3 and all(0 < n < COUNT // 2 for n in reads)  # those that passed, not the candidates
