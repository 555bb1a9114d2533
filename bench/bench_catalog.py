"""The catalog at 1M and 10M photos: bytes per photo by table before and after migration 0006, the upgrade's
time, the vector index's streaming build (time, peak memory), and search latency and recall@50.

    .venv/bin/python bench/bench_catalog.py one-million      # 1M: legacy catalog, dbstat, upgrade, dbstat, searches
    .venv/bin/python bench/bench_catalog.py ten-million      # 10M simulated embeddings: IVF-PQ build and search
    .venv/bin/python bench/bench_catalog.py uniform          # the bound: 1M uniform random vectors, IVF-PQ recall

Data     1M: bench_search.py's synthetic catalog (20 tags a photo, 512-d CLIP-like clustered embeddings: 2000
         clusters in 100 topics, cosine ~0.45 between unrelated photos and ~0.75 within a cluster), built at
         schema revision 0005 (float32, text) and upgraded in place by Alembic (no backup copy).
         10M: embeddings only (a catalog's ``embeddings`` table, float16, the same generator; 5% of the photos
         near-duplicates of another: the same vector plus noise of norm 0.1, cosine ~0.995). A 10M catalog with
         its tag rows (200M rows, ~38 GB) does not fit this machine's disk: its size is the 1M one's times ten
         (every table grows by rows per photo).
Queries  similar: a stored photo's embedding; free text: bench_search's stand-in text vectors (one per phrase).
         recall@50: share of the exact top 50 (float16 catalog vectors, brute force) found.
Results  bench/.cache/catalog-*.json; bench/results/catalog.md is written from them by hand.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import bench_search as bs  # noqa: E402

CACHE = HERE / ".cache"
DUPLICATES, DUPLICATE_NOISE = 0.05, 0.1
QUERIES = 32


def say(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def dbstat(database: Path, photos: int) -> dict:
    """Bytes per photo by table (its indexes apart) and page fill, from SQLite's dbstat."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT name, sum(pgsize), sum(payload), count(*) FROM dbstat GROUP BY name").fetchall()
        free = db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    tables = {name: {"bytes": size, "per_photo": size / photos, "fill": payload / size if size else 0.0}
              for name, size, payload, _pages in rows if size >= 65536}
    return {"tables": tables, "used_per_photo": sum(size for _n, size, _p, _c in rows) / photos,
            "free_bytes": free, "file_bytes": database.stat().st_size}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- 1M: a legacy catalog, upgraded ----------------------------------------------------------------------
def one_million(count: int = 1_000_000) -> None:
    folder = CACHE / f"catalog-{count}"
    out: dict = {"count": count}
    if folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    built = bs.build_catalog(folder, count, legacy=True)
    out["build_legacy_s"] = time.perf_counter() - start
    (folder / "build.json").write_text(json.dumps(built) + "\n", encoding="utf-8")
    say("legacy built", out["build_legacy_s"])
    out["before"] = dbstat(folder / "catalog.db", count)
    say("before", out["before"]["used_per_photo"])
    start = time.perf_counter()
    bs.create_schema(folder, "head")  # the upgrade as Catalog.open runs it, without the backup copy
    out["upgrade_s"] = time.perf_counter() - start
    say("upgraded", out["upgrade_s"])
    out["after"] = dbstat(folder / "catalog.db", count)
    say("after", out["after"]["used_per_photo"])
    save("catalog-1m", out)
    queries = bs.make_queries(built, count, folder)
    queries = {kind: items[:QUERIES] for kind, items in queries.items()}
    for mode in ("flat", "ivfpq"):
        (folder / "vectors.faiss").unlink(missing_ok=True)
        (folder / "vectors.json").unlink(missing_ok=True)
        out[f"build_{mode}"] = in_process("build", {"catalog": str(folder), "mode": mode})
        say("index", mode, out[f"build_{mode}"])
        spec = {"catalog": str(folder), "mode": mode, "queries": queries if mode == "flat" else
                {k: v for k, v in queries.items() if k != "tag"}, "repeat": 3}
        out[f"search_{mode}"] = in_process("search", spec)
        save("catalog-1m", out)
        (folder / "vectors.faiss").rename(folder / f"vectors-{mode}.faiss")
        (folder / "vectors.json").rename(folder / f"vectors-{mode}.json")
    start = time.perf_counter()
    with closing(sqlite3.connect(folder / "catalog.db")) as db:
        db.execute("VACUUM")
    out["vacuum_s"] = time.perf_counter() - start
    out["after_vacuum"] = dbstat(folder / "catalog.db", count)
    save("catalog-1m", out)
    say("done 1M")


def in_process(what: str, spec: dict) -> dict:
    """Run ``what`` in a fresh process (its peak RSS is its own)."""
    done = subprocess.run([sys.executable, __file__, f"_{what}", json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        say(done.stderr[-3000:])
        raise SystemExit(f"{what} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _build(spec: dict) -> dict:
    """Open the catalog's vector index (rebuilt: the files were removed) as the search engine does."""
    from indexer.catalog import Catalog
    from indexer.search.engine import Searcher

    catalog = Catalog.open(spec["catalog"], create=False)
    searcher = Searcher(catalog, bs.StandInTextEmbedder(bs.EmbeddingSpace()), vector_index=spec["mode"])
    start = time.perf_counter()
    index = searcher.vectors()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "kind": index.kind, "count": len(index),
            "file_mb": Path(spec["catalog"], "vectors.faiss").stat().st_size / 2**20}


def _search(spec: dict) -> dict:
    result = bs.worker(spec)
    for measured in result["queries"].values():
        for item in measured:
            item.pop("plan", None)
    return result


# --- 10M: embeddings only ----------------------------------------------------------------------------------
def generate(count: int, database: Path, rng: np.random.Generator, uniform: bool = False):  # noqa: ANN201
    """Write ``count`` embeddings into ``database`` (an ``embeddings`` table as the catalog's); yields each chunk's
    (ids, float32 vectors as stored: float16 read back as unit vectors)."""
    from indexer.schema import decode_vector, encode_vector

    space = bs.EmbeddingSpace()
    with closing(sqlite3.connect(database)) as db:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-200000"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("CREATE TABLE IF NOT EXISTS embeddings (photo_id INTEGER NOT NULL, model_version VARCHAR(128) "
                   "NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (photo_id))")
        previous = None
        for start in range(0, count, bs.CHUNK * 5):
            ids = np.arange(start + 1, min(start + bs.CHUNK * 5, count) + 1)
            if uniform:
                vectors = bs._unit(rng.standard_normal((len(ids), bs.DIM), dtype=np.float32))
            else:
                clusters = rng.choice(bs.CLUSTERS, size=len(ids), p=space.popularity)
                vectors = space.images(clusters, rng)
                if previous is not None:  # near-duplicates: bursts, edits, copies of earlier photos
                    twins = rng.random(len(ids)) < DUPLICATES
                    of = previous[rng.integers(len(previous), size=int(twins.sum()))]
                    noise = bs._unit(rng.standard_normal(of.shape, dtype=np.float32)) * DUPLICATE_NOISE
                    vectors[twins] = bs._unit(of + noise)
                previous = vectors
            blobs = [encode_vector(v) for v in vectors]
            with db:
                db.executemany("INSERT INTO embeddings VALUES (?, ?, 512, ?)",
                               zip(ids.tolist(), [bs.VERSION] * len(ids), blobs, strict=True))
            yield ids, np.stack([decode_vector(b) for b in blobs])
            if start % 1_000_000 == 0:
                say("generated", start + len(ids))


def ten_million(count: int = 10_000_000, name: str = "10m", uniform: bool = False) -> None:
    folder = CACHE / f"catalog-vectors-{name}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    database = folder / "catalog.db"
    rng = np.random.default_rng([bs.SEED, 17])
    space = bs.EmbeddingSpace()
    query_ids = np.sort(rng.choice(count, QUERIES, replace=False) + 1)
    texts = np.stack([space.text(p) for p in bs.PHRASES[:QUERIES]])
    similar = np.zeros((len(query_ids), bs.DIM), np.float32)
    best = {kind: (np.full((QUERIES, 50), -np.inf, np.float32), np.full((QUERIES, 50), -1, np.int64))
            for kind in ("similar", "text")}
    start = time.perf_counter()
    for ids, vectors in generate(count, database, rng, uniform):
        here = np.isin(query_ids, ids)
        similar[here] = vectors[query_ids[here] - ids[0]]
        for kind, queries in (("text", texts),):
            _merge(best[kind], queries @ vectors.T, ids)
    out: dict = {"count": count, "uniform": uniform, "generate_s": time.perf_counter() - start,
                 "file_bytes": database.stat().st_size}
    say("generated", out)
    # similar: the exact answers, in a second pass (the query vectors are known only now)
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        from indexer.schema import decode_vector

        last = 0
        while True:
            rows = db.execute("SELECT photo_id, vector FROM embeddings WHERE photo_id > ? ORDER BY photo_id "
                              "LIMIT 100000", (last,)).fetchall()
            if not rows:
                break
            ids = np.asarray([r[0] for r in rows])
            vectors = np.stack([decode_vector(r[1]) for r in rows])
            _merge(best["similar"], similar @ vectors.T, ids)
            last = int(ids[-1])
    out["exact_s"] = time.perf_counter() - start
    np.savez(folder / "truth.npz", similar=similar, texts=texts, similar_ids=best["similar"][1],
             text_ids=best["text"][1])
    save(f"catalog-{name}", out)
    if not os.environ.get("BENCH_GENERATE_ONLY"):
        index_vectors(name)


def index_vectors(name: str) -> None:
    """Build the IVF-PQ index of a generated embeddings table, then time its searches."""
    folder = CACHE / f"catalog-vectors-{name}"
    out = json.loads((CACHE / f"catalog-{name}.json").read_text(encoding="utf-8"))
    out["build"] = in_process("build_vectors", {"folder": str(folder), "kind": "ivfpq"})
    say("built", out["build"])
    save(f"catalog-{name}", out)
    out["search"] = in_process("search_vectors", {"folder": str(folder)})
    say("searched", out["search"])
    save(f"catalog-{name}", out)


def _merge(best: tuple[np.ndarray, np.ndarray], scores: np.ndarray, ids: np.ndarray) -> None:
    top_scores, top_ids = best
    joined = np.concatenate([top_scores, scores], axis=1)
    joined_ids = np.concatenate([top_ids, np.broadcast_to(ids, scores.shape)], axis=1)
    keep = np.argsort(-joined, axis=1, kind="stable")[:, :50]
    top_scores[:] = np.take_along_axis(joined, keep, axis=1)
    top_ids[:] = np.take_along_axis(joined_ids, keep, axis=1)


def _catalog_like(folder: Path):  # noqa: ANN202
    """An object with what indexer.index.embedding_rows/embedding_vectors use of a Catalog: its sessions."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    engine = create_engine(f"sqlite:///{folder / 'catalog.db'}")

    class Embeddings:
        session = sessionmaker(engine)

    return Embeddings()


def _build_vectors(spec: dict) -> dict:
    from indexer.index import embedding_rows
    from indexer.vectors import VectorIndex

    folder = Path(spec["folder"])
    catalog = _catalog_like(folder)
    start = time.perf_counter()
    index = VectorIndex.build_from(bs.DIM, lambda: embedding_rows(catalog, bs.VERSION, bs.DIM, chunk=50_000),
                                   spec["kind"])
    seconds = time.perf_counter() - start
    index.save(folder / "vectors.faiss", "bench")
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "kind": index.kind, "count": len(index),
            "file_mb": (folder / "vectors.faiss").stat().st_size / 2**20}


def _search_vectors(spec: dict) -> dict:
    from indexer.index import embedding_vectors
    from indexer.vectors import VectorIndex

    folder = Path(spec["folder"])
    catalog = _catalog_like(folder)
    with closing(sqlite3.connect(folder / "catalog.db")) as db:  # warm the page cache as bench_search does
        db.execute("SELECT count(*) FROM embeddings").fetchone()
    before = peak_rss_mb()
    start = time.perf_counter()
    index = VectorIndex.load(folder / "vectors.faiss", bs.DIM, "bench")
    assert index is not None
    load_s = time.perf_counter() - start
    after = _rss_mb()
    index.exact_vectors = lambda ids: embedding_vectors(catalog, bs.VERSION, ids)
    truth = np.load(folder / "truth.npz")
    out = {"load_s": load_s, "rss_before_mb": before, "rss_after_load_mb": after, "kind": index.kind}
    for kind, queries, want in (("similar", truth["similar"], truth["similar_ids"]),
                                ("text", truth["texts"], truth["text_ids"])):
        index.search(queries[:1], 50)  # warm-up
        times, recalls = [], []
        for query, exact in zip(queries, want, strict=True):
            begin = time.perf_counter()
            _scores, ids = index.search(query[None, :], 50)
            times.append(time.perf_counter() - begin)
            recalls.append(len(set(ids[0].tolist()) & set(exact.tolist())) / 50)
        out[kind] = {"p50_ms": float(np.percentile(times, 50) * 1000), "p95_ms": float(np.percentile(times, 95) * 1000),
                     "recall_mean": float(np.mean(recalls)), "recall_min": float(np.min(recalls)),
                     "queries": len(times)}
    out["rss_end_mb"] = _rss_mb()
    return out


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def save(name: str, data: dict) -> None:
    (CACHE / f"{name}.json").write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")


def main() -> None:
    what = sys.argv[1]
    if what.startswith("_"):
        handler = {"_build": _build, "_search": _search, "_build_vectors": _build_vectors,
                   "_search_vectors": _search_vectors}[what]
        print(json.dumps(handler(json.loads(sys.argv[2])), default=float))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    if what == "one-million":
        one_million(int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000)
    elif what == "ten-million":
        ten_million(int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000)
    elif what == "generate":
        os.environ["BENCH_GENERATE_ONLY"] = "1"
        ten_million(int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000)
    elif what == "index":
        index_vectors(sys.argv[2] if len(sys.argv) > 2 else "10m")
    elif what == "uniform":
        ten_million(int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000, name="uniform", uniform=True)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
