"""The FAISS vector index: search, replace, remove, atomic save, stale-file detection and rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer import vectors
from indexer.vectors import VectorIndex

DIM = 16
STATE = "clip_tiny@1:1"


def unit(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def filled(n: int = 100, seed: int = 0) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    x = unit(n, seed)
    index = VectorIndex(DIM)
    index.add(ids, x)
    return index, ids, x


def batches(ids: np.ndarray, x: np.ndarray, size: int = 32):  # noqa: ANN201
    def rows():  # noqa: ANN202
        calls.append(1)
        for start in range(0, len(ids), size):
            yield ids[start:start + size], x[start:start + size]

    calls: list[int] = []
    return rows, calls


def test_a_vector_finds_itself_first() -> None:
    index, ids, x = filled()
    scores, found = index.search(x[:5], k=3)
    assert found.shape == (5, 3) and found.dtype == np.int64 and scores.dtype == np.float32
    assert list(found[:, 0]) == list(ids[:5])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert len(index) == 100


def test_inputs_are_cast_and_checked() -> None:
    index = VectorIndex(DIM)
    index.add([1, 2], unit(2).astype(np.float64))  # lists and float64 are accepted
    _, found = index.search(unit(2)[0].astype(np.float64), 1)  # one [dim] query
    assert found.shape == (1, 1)
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([3]), unit(1, dim=DIM + 1))
    with pytest.raises(ValueError, match="ids"):
        index.add(np.array([3, 4]), unit(1))
    with pytest.raises(ValueError, match="non-negative"):
        index.add(np.array([-1]), unit(1))
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.array([3]), np.full((1, DIM), np.nan, np.float32))


def test_adding_an_existing_id_replaces_its_vector() -> None:
    index, ids, x = filled()
    new = unit(1, seed=9)
    index.add(ids[[7]], new)
    assert len(index) == 100
    np.testing.assert_array_equal(index.reconstruct(int(ids[7])), new[0])
    scores, found = index.search(new, 1)
    assert found[0, 0] == ids[7] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    # Within one call the last vector of a repeated id wins.
    index.add(np.array([5, 5]), np.vstack([x[0], x[1]]))
    np.testing.assert_array_equal(index.reconstruct(5), x[1])
    assert len(index) == 101


def test_remove_counts_only_known_ids() -> None:
    index, ids, x = filled()
    assert index.remove(np.array([ids[0], ids[1], 999_999])) == 2
    assert index.remove(np.array([ids[0]])) == 0
    assert len(index) == 98
    _, found = index.search(x[:1], 98)
    assert ids[0] not in found and ids[1] not in found
    with pytest.raises(KeyError):
        index.reconstruct(int(ids[0]))
    assert set(index.ids()) == set(ids[2:])


def test_k_larger_than_the_index_is_clipped() -> None:
    index, ids, x = filled(n=5)
    scores, found = index.search(x[:2], k=50)
    assert found.shape == (2, 5)
    assert sorted(found[0]) == sorted(ids)
    empty = VectorIndex(DIM)
    scores, found = empty.search(x[:2], k=50)
    assert found.shape == (2, 0) and scores.shape == (2, 0)
    with pytest.raises(ValueError):
        index.search(x[:1], 0)


def test_query_threads_change_nothing_but_speed() -> None:
    x = unit(12_000, seed=4)  # large enough for FAISS to split one query across threads
    index = VectorIndex(DIM, query_threads=1)
    index.add(np.arange(len(x)), x)
    before = faiss.omp_get_max_threads()
    one = index.search(x[:1], 10)
    assert faiss.omp_get_max_threads() == before
    index.query_threads = None
    default = index.search(x[:1], 10)
    np.testing.assert_array_equal(one[1], default[1])
    np.testing.assert_allclose(one[0], default[0], rtol=1e-5)


def test_search_within_a_subset() -> None:
    index, ids, x = filled()
    subset = ids[50:60]
    scores, found = index.search_ids(x[:3], 4, subset)
    assert found.shape == (3, 4)
    assert set(found.ravel()) <= set(subset)
    # The same answer as brute force over the subset.
    expected = np.argsort(-(x[:3] @ x[50:60].T), axis=1)[:, :4] + 50
    np.testing.assert_array_equal(found, ids[expected])
    # A subset with ids not in the index: k is clipped to the subset, missing places padded with -1.
    scores, found = index.search_ids(x[:1], 10, np.array([ids[3], ids[4], 999_999]))
    assert found.shape == (1, 3)
    assert set(found[0, :2]) == {ids[3], ids[4]} and found[0, 2] == -1 and scores[0, 2] == -np.inf


def test_save_load_round_trip(tmp_path: Path) -> None:
    index, ids, x = filled()
    path = tmp_path / "vectors.faiss"
    index.save(path, STATE)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta | {"faiss_version": None} == {
        "dim": DIM, "count": 100, "state": STATE, "bytes": path.stat().st_size,
        "faiss_version": None, "format": 1, "kind": "flat"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    loaded = VectorIndex.load(path, DIM, STATE)
    assert loaded is not None and len(loaded) == 100 and loaded.dim == DIM
    for a, b in zip(index.search(x[:10], 7), loaded.search(x[:10], 7), strict=True):
        np.testing.assert_array_equal(a, b)
    loaded.add(np.array([1]), unit(1, seed=3))  # a loaded index is a working index
    assert len(loaded) == 101


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "vectors.faiss"
    filled()[0].save(path, STATE)
    return path


def test_load_missing_is_none(tmp_path: Path) -> None:
    assert VectorIndex.load(tmp_path / "nothing.faiss", DIM, STATE) is None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "index_missing", "json_garbage", "json_list"])
def test_load_damaged_is_none(tmp_path: Path, damage: str) -> None:
    path = _saved(tmp_path)
    meta = path.with_suffix(".json")
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":  # the size the json expects, but not an index
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    elif damage == "index_missing":
        path.unlink()
    elif damage == "json_garbage":
        meta.write_bytes(b"\xff{not json")
    else:
        meta.write_text("[1, 2]")
    assert VectorIndex.load(path, DIM, STATE) is None


def test_load_truncated_without_size_check_is_none(tmp_path: Path) -> None:
    # Even when the json agrees with the damaged size, reading fails softly.
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    meta = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps(meta | {"bytes": len(data) - 100}))
    assert VectorIndex.load(path, DIM, STATE) is None


def test_load_other_dim_state_or_count_is_none(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    assert VectorIndex.load(path, DIM * 2, STATE) is None
    assert VectorIndex.load(path, DIM, "clip_tiny@1:2") is None
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(meta | {"count": 99}))
    assert VectorIndex.load(path, DIM, STATE) is None
    meta_path.write_text(json.dumps(meta | {"format": 2}))
    assert VectorIndex.load(path, DIM, STATE) is None
    meta_path.write_text(json.dumps(meta))
    assert VectorIndex.load(path, DIM, STATE) is not None


def test_open_rebuilds_then_loads(tmp_path: Path) -> None:
    ids = np.arange(1, 101, dtype=np.int64)
    x = unit(100, seed=1)
    rows, calls = batches(ids, x)
    path = tmp_path / "sub" / "vectors.faiss"
    index, rebuilt = VectorIndex.open(path, DIM, STATE, rows)
    assert rebuilt and len(calls) == 1 and len(index) == 100
    again, rebuilt = VectorIndex.open(path, DIM, STATE, rows)
    assert not rebuilt and len(calls) == 1
    for a, b in zip(index.search(x[:5], 10), again.search(x[:5], 10), strict=True):
        np.testing.assert_array_equal(a, b)
    # A new catalog state rebuilds.
    _, rebuilt = VectorIndex.open(path, DIM, "clip_tiny@1:2", rows)
    assert rebuilt and len(calls) == 2


def test_a_save_interrupted_after_the_index_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _saved(tmp_path)  # a complete save for STATE
    assert VectorIndex.load(path, DIM, STATE) is not None

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(vectors, "_write_meta", crash)
    newer, _, _ = filled(n=100, seed=5)  # same count, other vectors: only the json tells them apart
    with pytest.raises(OSError, match="disk full"):
        newer.save(path, "clip_tiny@1:2")
    monkeypatch.undo()
    assert path.exists() and not path.with_suffix(".json").exists()
    assert VectorIndex.load(path, DIM, STATE) is None
    assert VectorIndex.load(path, DIM, "clip_tiny@1:2") is None

    ids = np.arange(1, 11, dtype=np.int64)
    rows, calls = batches(ids, unit(10, seed=2))
    index, rebuilt = VectorIndex.open(path, DIM, "clip_tiny@1:2", rows)
    assert rebuilt and len(index) == 10
    assert VectorIndex.load(path, DIM, "clip_tiny@1:2") is not None


# --- the approximate (IVF) kind ----------------------------------------------------------------------
def clustered(count: int, dim: int = 32, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors around cluster centres, like real image embeddings (random ones have no neighbours)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, count)] + 0.3 * rng.standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_ivf_index_finds_what_exact_search_finds(tmp_path) -> None:  # noqa: ANN001
    vectors = clustered(6000)
    ids = np.arange(10, 6010, dtype=np.int64)
    exact = VectorIndex.build(32, ids, vectors, kind="flat")
    approximate = VectorIndex.build(32, ids, vectors, kind="ivf")
    assert (exact.kind, approximate.kind, len(approximate)) == ("flat", "ivf", 6000)
    queries = clustered(20, seed=1)
    _, want = exact.search(queries, 50)
    _, got = approximate.search(queries, 50)
    recall = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(want, got, strict=True)])
    assert recall >= 0.9
    # Adds, replaces and removes work as on the flat index.
    approximate.add(np.array([10]), -vectors[0])
    assert np.allclose(approximate.reconstruct(10), -vectors[0])
    assert approximate.remove(np.array([11, 99999])) == 1 and len(approximate) == 5999
    assert 11 not in set(approximate.ids().tolist())
    # Saved and loaded, it stays IVF with the same answers.
    approximate.save(tmp_path / "v.faiss", "s")
    loaded = VectorIndex.load(tmp_path / "v.faiss", 32, "s")
    assert loaded is not None and loaded.kind == "ivf" and sorted(loaded.ids()) == sorted(approximate.ids())
    assert np.array_equal(loaded.search(queries, 10)[1], approximate.search(queries, 10)[1])
    subset = ids[::7]
    _, inside = loaded.search_ids(queries[:1], 5, subset)
    assert set(inside[0].tolist()) <= set(subset.tolist())


def test_ivf_effort_and_exact_subsets_look_further() -> None:
    vectors = clustered(6000, clusters=300)
    ids = np.arange(6000, dtype=np.int64)
    exact = VectorIndex.build(32, ids, vectors, kind="flat")
    approximate = VectorIndex.build(32, ids, vectors, kind="ivf")
    queries = clustered(30, clusters=300, seed=2)

    def recall(found: np.ndarray, want: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(want, found, strict=True)]))

    want = exact.search(queries, 500)[1]  # deep in the list, where visiting 2 % of the cells misses most
    usual, harder = approximate.search(queries, 500)[1], approximate.search(queries, 500, effort=8)[1]
    assert recall(usual, want) < recall(harder, want) and recall(harder, want) > 0.95
    assert np.array_equal(exact.search(queries, 500, effort=8)[1], want)  # exact whatever the effort
    # A subset scored exactly: every subset id, each with its true score, whichever cell it is in.
    subset = ids[::3]
    scores, found = approximate.search_ids(queries[:1], len(subset), subset, exact=True)
    assert sorted(found[0].tolist()) == subset.tolist()
    assert np.allclose(scores[0], vectors[found[0]] @ queries[0], atol=1e-5)


def test_auto_kind_follows_the_library_size_with_hysteresis(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import indexer.vectors as vectors_module

    monkeypatch.setattr(vectors_module, "APPROXIMATE_FROM", 4000)
    data = clustered(5000)
    path = tmp_path / "v.faiss"

    def rows_of(n: int):  # noqa: ANN202
        return lambda: [(np.arange(n, dtype=np.int64), data[:n])]

    index, rebuilt = VectorIndex.open(path, 32, "a", rows_of(3000))
    assert rebuilt and index.kind == "flat"
    index, rebuilt = VectorIndex.open(path, 32, "b", rows_of(5000))
    assert rebuilt and index.kind == "ivf"
    index, rebuilt = VectorIndex.open(path, 32, "b", rows_of(5000))
    assert not rebuilt and index.kind == "ivf"
    index, _ = VectorIndex.open(path, 32, "c", rows_of(3000))  # above half the line: stays IVF
    assert index.kind == "ivf"
    index, rebuilt = VectorIndex.open(path, 32, "c", rows_of(3000), kind="flat")  # forced
    assert rebuilt and index.kind == "flat"
