"""The catalog at 1M and 10M photos: bytes per photo by table before and after migration 0006, the upgrade's
time, the vector index's streaming build (time, peak memory), and search latency and recall@50.

    .venv/bin/python bench/bench_catalog.py one-million      # 1M: legacy catalog, dbstat, upgrade, dbstat, searches
    .venv/bin/python bench/bench_catalog.py ten-million      # 10M simulated embeddings: IVF-PQ build and search
    .venv/bin/python bench/bench_catalog.py uniform          # the bound: 1M uniform random vectors, IVF-PQ recall
    .venv/bin/python bench/bench_catalog.py tags [COUNT]     # tag search at 10M photos (COUNT 200000: a check)
    .venv/bin/python bench/bench_catalog.py tags [COUNT] --embeddings [--index auto,ivfpq]
                                                             # and every embedding: all kinds of query, Searcher

Data     1M: bench_search.py's synthetic catalog (20 tags a photo, 512-d CLIP-like clustered embeddings: 2000
         clusters in 100 topics, cosine ~0.45 between unrelated photos and ~0.75 within a cluster), built at
         schema revision 0005 (float32, text) and upgraded in place by Alembic (no backup copy).
         10M: embeddings only (a catalog's ``embeddings`` table, float16, the same generator; 5% of the photos
         near-duplicates of another: the same vector plus noise of norm 0.1, cosine ~0.995). A 10M catalog with
         its tag rows (200M rows, ~38 GB) does not fit this machine's disk: its size is the 1M one's times ten
         (every table grows by rows per photo).
         tags: a COUNT-photo bench_search catalog (10M by default): every photo row, but of the photo_tags rows
         only those of the tags that bench_search's 40 tag queries name (see tag_search); no embeddings.
Queries  similar: a stored photo's embedding; free text: bench_search's stand-in text vectors (one per phrase).
         tags: bench_search's 40 tag queries (make_tag_queries), ``Searcher.search(query, limit=50)``.
         recall@50: share of the exact top 50 (float16 catalog vectors, brute force) found.
Results  bench/.cache/catalog-*.json; bench/results/catalog.md is written from them by hand.
"""

from __future__ import annotations

import argparse
import json
import os
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
CHUNK = 100_000


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
    """This process's peak RSS (VmHWM). Not ``getrusage``'s ru_maxrss: Linux carries the parent's peak over into a
    child it starts (exec keeps the high-water mark of the memory it replaces), so every ``in_process`` step
    reported at least the peak of the process that started it."""
    return bs.rss_mb()[1]


# --- 1M: a legacy catalog, upgraded ----------------------------------------------------------------------
def one_million(count: int = 1_000_000, stage: str = "all") -> None:
    """``stage``: "legacy" (build the 0005 catalog and measure it), "upgrade" (the rest), or "all"."""
    folder = CACHE / f"catalog-{count}"
    if stage in ("all", "legacy"):
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
        save("catalog-1m", out)
        if stage == "legacy":
            return
    out = json.loads((CACHE / "catalog-1m.json").read_text(encoding="utf-8"))
    built = json.loads((folder / "build.json").read_text(encoding="utf-8"))
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
                {k: v for k, v in queries.items() if k != "tag"}, "repeat": 1}
        out[f"search_{mode}"] = in_process("search", spec)
        save("catalog-1m", out)
        (folder / "vectors.faiss").rename(folder / f"vectors-{mode}.faiss")
        (folder / "vectors.json").rename(folder / f"vectors-{mode}.json")
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
    before = _rss_mb()
    start = time.perf_counter()
    index = searcher.vectors()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before, "kind": index.kind,
            "count": len(index), "file_mb": Path(spec["catalog"], "vectors.faiss").stat().st_size / 2**20}


def _search(spec: dict) -> dict:
    result = bs.worker(spec)
    for measured in result["queries"].values():
        for item in measured:
            item.pop("plan", None)
    return result


# --- 10M: embeddings only ----------------------------------------------------------------------------------
def generate(count: int, store: Path, rng: np.random.Generator, uniform: bool = False):  # noqa: ANN201
    """Write ``count`` embeddings as the catalog stores them (float16, ``indexer.schema.VECTOR_DTYPE``) into the
    array file ``store`` (row i: photo id i + 1); yields each chunk's (ids, float32 vectors as read back)."""
    from indexer.schema import VECTOR_DTYPE, decode_vectors

    space = bs.EmbeddingSpace()
    stored = np.lib.format.open_memmap(store, mode="w+", dtype=VECTOR_DTYPE, shape=(count, bs.DIM))
    previous = None
    for start in range(0, count, CHUNK):
        ids = np.arange(start + 1, min(start + CHUNK, count) + 1)
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
        half = vectors.astype(VECTOR_DTYPE)
        stored[start:start + len(ids)] = half
        raw, size = half.tobytes(), bs.DIM * 2
        yield ids, decode_vectors([raw[i * size:(i + 1) * size] for i in range(len(ids))])
        if start % 1_000_000 == 0:
            say("generated", start + len(ids))
    stored.flush()
    del stored


def ten_million(count: int = 10_000_000, name: str = "10m", uniform: bool = False) -> None:
    folder = CACHE / f"catalog-vectors-{name}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    database = folder / "embeddings.npy"
    rng = np.random.default_rng([bs.SEED, 17])
    space = bs.EmbeddingSpace()
    texts = np.stack([space.text(p) for p in bs.PHRASES[:QUERIES]])
    best = {kind: (np.full((QUERIES, 50), -np.inf, np.float32), np.full((QUERIES, 50), -1, np.int64))
            for kind in ("similar", "text")}
    similar = None
    start = time.perf_counter()
    for ids, vectors in generate(count, database, rng, uniform):
        if similar is None:  # photos of the first chunk (ids drawn like any): their exact neighbours, in one pass
            similar = vectors[np.sort(rng.choice(len(ids), QUERIES, replace=False))]
        _merge(best["text"], texts @ vectors.T, ids)
        _merge(best["similar"], similar @ vectors.T, ids)
    out: dict = {"count": count, "uniform": uniform, "generate_s": time.perf_counter() - start,
                 "file_bytes": database.stat().st_size}
    say("generated", out)
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


def _stored(folder: Path) -> np.ndarray:
    return np.load(folder / "embeddings.npy", mmap_mode="r")


def _rows(stored: np.ndarray, chunk: int = 50_000):  # noqa: ANN202
    """What ``indexer.index.embedding_rows`` yields from a catalog: (ids, unit float32 vectors) in batches."""
    from indexer.schema import decode_vectors

    def rows():  # noqa: ANN202
        for start in range(0, len(stored), chunk):
            half = np.ascontiguousarray(stored[start:start + chunk])
            size = bs.DIM * 2
            raw = half.tobytes()
            yield (np.arange(start + 1, start + len(half) + 1),
                   decode_vectors([raw[i * size:(i + 1) * size] for i in range(len(half))]))
    return rows


def _exact(stored: np.ndarray):  # noqa: ANN202
    """What ``indexer.index.embedding_vectors`` gives from a catalog, read from the array file."""
    from indexer.schema import decode_vectors

    def exact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, np.int64)
        half = stored[ids - 1]
        size = bs.DIM * 2
        raw = half.tobytes()
        return ids, decode_vectors([raw[i * size:(i + 1) * size] for i in range(len(ids))])
    return exact


def _build_vectors(spec: dict) -> dict:
    from indexer.vectors import VectorIndex

    folder = Path(spec["folder"])
    stored = _stored(folder)
    before = _rss_mb()
    start = time.perf_counter()
    index = VectorIndex.build_from(bs.DIM, _rows(stored), spec["kind"])
    seconds = time.perf_counter() - start
    index.save(folder / "vectors.faiss", "bench")
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before, "kind": index.kind,
            "count": len(index), "file_mb": (folder / "vectors.faiss").stat().st_size / 2**20}


def _search_vectors(spec: dict) -> dict:
    from indexer.vectors import VectorIndex

    folder = Path(spec["folder"])
    stored = _stored(folder)
    before = _rss_mb()
    start = time.perf_counter()
    index = VectorIndex.load(folder / "vectors.faiss", bs.DIM, "bench")
    assert index is not None
    load_s = time.perf_counter() - start
    after = _rss_mb()
    index.exact_vectors = _exact(stored)
    truth = np.load(folder / "truth.npz")
    out = {"load_s": load_s, "rss_before_mb": before, "rss_after_load_mb": after, "kind": index.kind}
    for kind, queries, want in (("similar", truth["similar"], truth["similar_ids"]),
                                ("text", truth["texts"], truth["text_ids"])):
        index.search(queries[:1], 50)  # warm-up
        times, recalls, fetch = [], [], []
        exact = index.exact_vectors

        def timed_exact(ids: np.ndarray, exact=exact, fetch=fetch) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
            begin = time.perf_counter()
            try:
                return exact(ids)
            finally:
                fetch.append(time.perf_counter() - begin)

        index.exact_vectors = timed_exact
        for query, wanted in zip(queries, want, strict=True):
            begin = time.perf_counter()
            _scores, ids = index.search(query[None, :], 50)
            times.append(time.perf_counter() - begin)
            recalls.append(len(set(ids[0].tolist()) & set(wanted.tolist())) / 50)
        index.exact_vectors = exact
        out[kind] = {"p50_ms": float(np.percentile(times, 50) * 1000), "p95_ms": float(np.percentile(times, 95) * 1000),
                     "fetch_p50_ms": float(np.percentile(fetch, 50) * 1000),
                     "recall_mean": float(np.mean(recalls)), "recall_min": float(np.min(recalls)),
                     "queries": len(times)}
    out["rss_end_mb"] = _rss_mb()
    return out


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- tag search at 10M: the photos and the queried tags' rows ---------------------------------------------
def tag_search(count: int = 10_000_000, repeat: int = 3, search_only: bool = False) -> None:
    """bench_search's tag queries on a catalog of ``count`` photos, each ``Searcher.search(query, limit=50)``.

    The catalog (bench_search.build_catalog, schema at the code's head revision) holds every photo row of a
    ``count``-photo bench_search catalog but, of its photo_tags rows (20 a photo: 200M at 10M, ~38 GB with the
    rest, more than this machine's disk), only those of the tags the queries name: a tag query reads its tags'
    ranges of the tag index, the photo rows and the missing photos, and the other tags' rows take no part in it.
    Phototag never runs ANALYZE (no sqlite_stat1), so SQLite's plans do not depend on the table's size either.
    No embeddings: tag queries do not read them. ``search_only``: measure the catalog built before.
    Results: bench/.cache/catalog-tags-NAME.json, NAME "10m" or the count."""
    name = "10m" if count == 10_000_000 else str(count)
    folder = CACHE / f"catalog-tags-{name}"
    queries = bs.make_tag_queries(*ranked_tag_names())
    if search_only:
        out = _built_before(folder)
    else:
        out = build_tag_catalog(folder, count, queried_tags(queries)) | {"name": f"tags-{name}"}
        save(f"catalog-tags-{name}", out)
        say("built", {k: v for k, v in out.items() if k != "tags_kept"})
    bs.into_page_cache(folder / "catalog.db")
    out["search"] = in_process("search_tags", {"catalog": str(folder), "queries": queries, "repeat": repeat})
    out["commit"] = bs.source_state()
    save(f"catalog-tags-{name}", out)
    say("searched: p50", out["search"]["p50_ms"], "ms, p95", out["search"]["p95_ms"], "ms")


def build_tag_catalog(folder: Path, count: int, kept: set[int], embeddings: bool = False) -> dict:
    """The catalog of :func:`tag_search`, with only the ``kept`` tags' rows (vocabulary indices) and, with
    ``embeddings``, every photo's embedding (:func:`full_search`); what it holds."""
    from ram_model.vocab import builtin_vocabulary

    if folder.exists():
        shutil.rmtree(folder)
    out: dict = {"count": count, "load_before_build": os.getloadavg()}
    start = time.perf_counter()
    built = bs.build_catalog(folder, count, only_tags=kept, embeddings=embeddings)
    out["build_s"] = time.perf_counter() - start
    out["load_after_build"] = os.getloadavg()
    database = folder / "catalog.db"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        out["schema_revision"] = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        out["photo_rows"] = db.execute("SELECT count(*) FROM photos").fetchone()[0]
        out["tag_rows_kept"] = db.execute("SELECT count(*) FROM photo_tags").fetchone()[0]
        if embeddings:  # ids 1..count, one row each (max, not count(*): that would read every page of the table)
            out["last_embedding_id"] = db.execute("SELECT max(photo_id) FROM embeddings").fetchone()[0]
    assert out["tag_rows_kept"] == built["tag_rows"]["written"]
    assert not embeddings or out["last_embedding_id"] == count
    names = builtin_vocabulary().names
    return out | {"tag_rows_full_catalog": built["tag_rows"]["drawn"], "file_bytes": database.stat().st_size,
                  "tags_kept": sorted(names[i] for i in kept),
                  "why_only_these_tags": "a tag query reads its tags' index ranges, the photo rows and the missing "
                                         "photos; the other tags' rows take no part in it"}


def ranked_tag_names() -> tuple[list[str], list[str]]:
    """The built-in tags' English and Chinese names by popularity rank: build_catalog's tags_by_rank and
    tags_zh_by_rank, without a catalog."""
    from ram_model.vocab import builtin_vocabulary

    vocabulary = builtin_vocabulary()
    by_rank, _probability = bs.tag_popularity(vocabulary.names)
    return [vocabulary.names[i] for i in by_rank], [vocabulary.names_zh[i] for i in by_rank]


def queried_tags(queries: list[tuple[str, str]]) -> set[int]:
    """Vocabulary indices of the tags the queries name, matched as the engine's ``_resolve_tag`` matches a
    name: the English name in any case, or the Chinese name (which several tags may share)."""
    from indexer.search import query as q
    from ram_model.vocab import builtin_vocabulary

    vocabulary = builtin_vocabulary()
    wanted = {node.name.strip() for _shape, text in queries for node in q.walk(q.parse(text))
              if isinstance(node, q.Tag)}
    lowered = {name.lower() for name in wanted}
    return {i for i, (name, name_zh) in enumerate(zip(vocabulary.names, vocabulary.names_zh, strict=True))
            if name.lower() in lowered or name_zh in wanted}


def _built_before(folder: Path) -> dict:
    """The results JSON of the catalog in ``folder`` (bench/.cache/FOLDER.json), which --search-only measures again;
    refused when the code's schema has moved on since it was built."""
    out = json.loads((CACHE / f"{folder.name}.json").read_text(encoding="utf-8"))
    if out["schema_revision"] != _head_revision():
        raise SystemExit(f"{folder} was built at schema revision {out['schema_revision']}, the code is at "
                         f"{_head_revision()}: build it again (without --search-only)")
    return out


def _head_revision() -> str:
    from indexer.catalog import head_revision

    return head_revision()


def _search_tags(spec: dict) -> dict:
    """Time each tag query (``spec["repeat"]`` runs, their median) after one warm-up run of the whole list."""
    from indexer.catalog import Catalog
    from indexer.search.engine import Searcher

    catalog = Catalog.open(spec["catalog"], create=False)
    searcher = Searcher(catalog)
    out: dict = {"repeat": spec["repeat"], "sqlite": sqlite3.sqlite_version, "load_before": os.getloadavg()}
    for _shape, text in spec["queries"]:
        searcher.search(text, limit=50)
    measured = []
    for shape, text in spec["queries"]:
        runs = []
        for _ in range(spec["repeat"]):
            begin = time.perf_counter()
            found = searcher.search(text, limit=50)
            runs.append((time.perf_counter() - begin) * 1000)
        measured.append({"shape": shape, "query": text, "ms": float(np.median(runs)), "runs_ms": runs,
                         "total": found.total, "total_is_lower_bound": found.total_is_lower_bound,
                         "ids": [r.photo_id for r in found.results]})
    catalog.close()
    times = [m["ms"] for m in measured]
    return out | {"load_after": os.getloadavg(), "p50_ms": float(np.percentile(times, 50)),
                  "p95_ms": float(np.percentile(times, 95)), "peak_rss_mb": peak_rss_mb(), "queries": measured}


# --- search at 10M with the embeddings in the catalog -----------------------------------------------------
VECTOR_KINDS = ("semantic", "mixed", "similar")  # the kinds of query the vector index answers


def full_search(count: int = 10_000_000, repeat: int = 3, search_only: bool = False,
                modes: tuple[str, ...] = ("auto",)) -> None:
    """bench_search's 40 tag, 32 semantic, 32 mixed and 32 similar queries through ``Searcher`` on a catalog of
    ``count`` photos WITH every photo's embedding (float16, in the catalog's ``embeddings`` table).

    The catalog is :func:`tag_search`'s (every photo row, the photo_tags rows of the tags the queries name: here
    the tag queries' and the mixed queries' tags) plus every embedding. For each vector index mode (``auto``:
    IVF-PQ from 2M photos, IVF from 250k; ``ivfpq`` forces the 10M index at a smaller size) the index is built as
    Phototag builds it (``Searcher.vectors()``: ``VectorIndex.build_from`` streaming ``embedding_rows`` from the
    catalog) in a process of its own, then the queries run in a fresh process (bench_search's ``worker``), each
    ``repeat`` times (median), with catalog.db read into the page cache as far as it fits. recall@50 against
    exact search (:func:`_full_truth`): every stored vector for semantic and similar queries, the photos that
    pass the tag and date terms for mixed ones. ``search_only``: reuse the catalog, its truth and built indexes.
    Results: bench/.cache/catalog-full-NAME.json, NAME "10m" or the count."""
    name = "10m" if count == 10_000_000 else str(count)
    folder = CACHE / f"catalog-full-{name}"
    texts = bs.text_queries(planned_build())
    if search_only:
        out = _built_before(folder)
    else:
        kept = queried_tags(texts["tag"] + texts["mixed"])
        out = build_tag_catalog(folder, count, kept, embeddings=True) | {"name": f"full-{name}"}
        out["bytes_per_photo"] = out["file_bytes"] / count
        save(f"catalog-full-{name}", out)
        say("built", {k: v for k, v in out.items() if k != "tags_kept"})
    queries = texts | {"similar": bs.similar_queries(count, folder)}
    if "truth" not in out:
        out["truth"] = in_process("full_truth", {"catalog": str(folder),
                                                 "queries": {kind: queries[kind] for kind in VECTOR_KINDS}})
        save(f"catalog-full-{name}", out)
        say("exact search done in", out["truth"]["seconds"], "s")
    for mode in modes:
        live, kept_files = bs.use_kept_vectors(folder, mode)
        try:
            measured = out.setdefault("modes", {}).setdefault(mode, {})
            if not live[0].exists():
                measured["build"] = in_process("build", {"catalog": str(folder), "mode": mode})
                say("index", mode, measured["build"])
                save(f"catalog-full-{name}", out)
            measured["memory_before"] = subprocess.run(["free", "-g"], capture_output=True, text=True,
                                                       check=False).stdout
            begin = time.perf_counter()
            bs.into_page_cache(folder / "catalog.db")
            measured["page_cache_read_s"] = time.perf_counter() - begin
            measured["page_cache"] = page_cache(folder / "catalog.db")
            say("catalog.db in the page cache:", measured["page_cache"])
            if "search" in measured:  # a run before, on the same catalog: its p50s kept, to show the spread
                measured.setdefault("earlier", []).append(_summary(measured["search"]))
            measured["search"] = in_process("search", {"catalog": str(folder), "mode": mode, "queries": queries,
                                                       "repeat": repeat})
            measured["load_average"] = os.getloadavg()
            measured["page_cache_after"] = page_cache(folder / "catalog.db")
            out["commit"] = bs.source_state()
            save(f"catalog-full-{name}", out)
            for kind, found in measured["search"]["queries"].items():
                say(mode, kind, "p50", f"{np.percentile([m['ms'] for m in found], 50):.1f} ms", "recall",
                    _recall(out["truth"], kind, found))
        finally:
            if live[0].exists() and live[1].exists():
                for source, target in zip(live, kept_files, strict=True):
                    source.rename(target)


def _summary(search: dict) -> dict:
    """p50 and p95 ms of each kind of query of a search run."""
    return {kind: {"p50_ms": float(np.percentile([m["ms"] for m in found], 50)),
                   "p95_ms": float(np.percentile([m["ms"] for m in found], 95))}
            for kind, found in search["queries"].items()}


def planned_build() -> dict:
    """What bench_search.text_queries needs of build_catalog's result, before the catalog is built."""
    from ram_model.vocab import builtin_vocabulary

    vocabulary = builtin_vocabulary()
    by_rank, probability = bs.tag_popularity(vocabulary.names)
    signatures = bs.tag_signatures(np.random.default_rng([bs.SEED, 3]), probability)
    return {"tags_by_rank": [vocabulary.names[i] for i in by_rank],
            "tags_zh_by_rank": [vocabulary.names_zh[i] for i in by_rank],
            "signatures": [[vocabulary.names[i] for i in row] for row in signatures]}


def page_cache(path: Path) -> dict:
    """How much of ``path`` the OS page cache holds (util-linux ``fincore``), and the machine's memory."""
    done = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)], capture_output=True,
                          text=True, check=False)
    resident = int(done.stdout.split()[0]) if done.returncode == 0 and done.stdout.strip() else None
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"file_bytes": path.stat().st_size, "resident_bytes": resident, "memory_bytes": memory}


def _recall(truth: dict, kind: str, found: list[dict]) -> tuple[float, float] | None:
    """recall@50 of the search's results against the exact ones (bench_search.recall: paths compared)."""
    if kind not in truth:
        return None
    return bs.recall([{"paths": t["paths"]} for t in truth[kind]], found)


def _full_truth(spec: dict) -> dict:
    """Exact answers of the semantic, similar and mixed queries over every stored vector (float16, decoded as the
    catalog decodes them), in one pass over the ``embeddings`` table in chunks (a flat FAISS index of 10M vectors
    would take 20 GB). Semantic and similar: the 50 best non-missing photos scoring at least the cutoff; mixed:
    the same among the photos that pass the query's tag and date terms (found with SQL). Also every query's count
    of matches (photos at or above the cutoff)."""
    from indexer.schema import MISSING, REJECTED, TAG_STATES, decode_vectors
    from indexer.search import query as q
    from indexer.search.engine import DEFAULT_MIN_SCORE

    begin = time.perf_counter()
    queries = spec["queries"]
    space = bs.EmbeddingSpace()
    database = Path(spec["catalog"]) / "catalog.db"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        missing = np.asarray([r[0] for r in db.execute("SELECT id FROM photos WHERE status = ? ORDER BY id",
                                                       (MISSING,))], np.int64)
        similar = [similar_vector(db, text) for _shape, text in queries["similar"]]
        passing, mixed = [], []
        for _shape, text in queries["mixed"]:
            passing.append(_passing(db, q.parse(text), TAG_STATES.index(REJECTED), MISSING))
            (phrase,) = [n for n in q.walk(q.parse(text)) if isinstance(n, q.Semantic)]
            mixed.append(space.text(phrase.text))
        plain = np.stack([space.text(text) for _shape, text in queries["semantic"]] + similar)
        texts = np.stack(mixed)
        best = (np.full((len(plain), 50), -np.inf, np.float32), np.full((len(plain), 50), -1, np.int64))
        best_mixed = [(np.full((1, 50), -np.inf, np.float32), np.full((1, 50), -1, np.int64)) for _ in mixed]
        matches = np.zeros(len(plain), np.int64)
        matches_mixed = np.zeros(len(mixed), np.int64)
        last = 0
        while True:
            rows = db.execute("SELECT photo_id, vector FROM embeddings WHERE photo_id > ? ORDER BY photo_id LIMIT ?",
                              (last, CHUNK)).fetchall()
            if not rows:
                break
            ids = np.asarray([r[0] for r in rows], np.int64)
            vectors = decode_vectors([r[1] for r in rows])
            last = int(ids[-1])
            scores = plain @ vectors.T
            scores[:, np.isin(ids, missing)] = -np.inf
            matches += (scores >= DEFAULT_MIN_SCORE).sum(axis=1)
            _merge_top(best, scores, ids)
            for n, (photos, text) in enumerate(zip(passing, texts, strict=True)):
                inside = photos[np.searchsorted(photos, ids[0]):np.searchsorted(photos, last, side="right")]
                at = np.searchsorted(ids, inside)
                at = at[ids[np.minimum(at, len(ids) - 1)] == inside]  # photos without an embedding: none here
                chosen = vectors[at] @ text
                matches_mixed[n] += int((chosen >= DEFAULT_MIN_SCORE).sum())
                _merge_top(best_mixed[n], chosen[None, :], ids[at])
            if last % 1_000_000 < CHUNK:
                say("exact search:", last, "photos")
        exact = {"semantic": (best[0][:len(queries["semantic"])], best[1][:len(queries["semantic"])],
                              matches[:len(queries["semantic"])]),
                 "similar": (best[0][len(queries["semantic"]):], best[1][len(queries["semantic"]):],
                             matches[len(queries["semantic"]):]),
                 "mixed": (np.concatenate([b[0] for b in best_mixed]), np.concatenate([b[1] for b in best_mixed]),
                           matches_mixed)}
        out: dict = {"cutoff": DEFAULT_MIN_SCORE, "chunk": CHUNK}
        for kind, (scores, ids, counts) in exact.items():
            out[kind] = []
            for (_shape, text), row_scores, row_ids, matched, n in zip(queries[kind], scores, ids, counts,
                                                                       range(len(counts)), strict=True):
                keep = row_ids[(row_ids >= 0) & (row_scores >= DEFAULT_MIN_SCORE)].tolist()
                path = dict(db.execute(f"SELECT id, path FROM photos WHERE id IN ({','.join(map(str, keep))})")) \
                    if keep else {}
                entry = {"query": text, "ids": keep, "paths": [path[i] for i in keep], "matches": int(matched)}
                if kind == "mixed":
                    entry["passing_filters"] = len(passing[n])
                out[kind].append(entry)
    return out | {"seconds": time.perf_counter() - begin, "peak_rss_mb": peak_rss_mb()}


def similar_vector(db: sqlite3.Connection, text: str) -> np.ndarray:
    """The stored embedding of the photo a ``similar:PATH`` query names, decoded as the catalog decodes it."""
    from indexer.schema import decode_vectors
    from indexer.search import query as q

    (node,) = [n for n in q.walk(q.parse(text)) if isinstance(n, q.Similar)]
    blob = db.execute("SELECT e.vector FROM photos AS p JOIN embeddings AS e ON e.photo_id = p.id WHERE p.path = ?",
                      (node.path,)).fetchone()[0]
    return decode_vectors([blob])[0]


def _passing(db: sqlite3.Connection, tree: object, rejected: int, missing: str) -> np.ndarray:
    """Sorted ids of the non-missing photos that pass a mixed query's tag and date terms (``words tag:X
    date:A..B``): a row of tag X not rejected, taken in [A, B) (the engine's meaning of the terms)."""
    from indexer.search import query as q

    assert isinstance(tree, q.And), tree
    (tag,) = [n for n in tree.items if isinstance(n, q.Tag)]
    (dates,) = [n for n in tree.items if isinstance(n, q.DateRange)]
    assert len(tree.items) == 3 and dates.start is not None and dates.end is not None, tree
    tag_ids = [r[0] for r in db.execute("SELECT id FROM tags WHERE lower(name) = lower(?) OR name_zh = ?",
                                        (tag.name.strip(), tag.name.strip()))]
    assert tag_ids, tag
    rows = db.execute(
        f"SELECT DISTINCT t.photo_id FROM photo_tags AS t JOIN photos AS p ON p.id = t.photo_id "
        f"WHERE t.tag_id IN ({','.join(map(str, tag_ids))}) AND t.state != ? AND p.status != ? "
        f"AND p.taken_at >= ? AND p.taken_at < ? ORDER BY t.photo_id",
        (rejected, missing, dates.start.isoformat(), dates.end.isoformat()))
    return np.asarray([r[0] for r in rows], np.int64)


def _merge_top(best: tuple[np.ndarray, np.ndarray], scores: np.ndarray, ids: np.ndarray) -> None:
    """:func:`_merge` of a chunk's scores [q, n], its best 50 of each row picked first (a full sort of 100k
    scores per query per chunk would be most of the pass)."""
    if scores.shape[1] > 50:
        keep = np.argpartition(-scores, 49, axis=1)[:, :50]
        scores, ids = np.take_along_axis(scores, keep, axis=1), ids[keep]
    _merge(best, scores, ids)


def precision(count: int = 200_000) -> dict:
    """float16 against float32 storage: recall@50 and top-1 agreement of exact search, similar and free text."""
    from indexer.schema import VECTOR_DTYPE, decode_vectors

    rng = np.random.default_rng([bs.SEED, 23])
    space = bs.EmbeddingSpace()
    full = space.images(rng.choice(bs.CLUSTERS, size=count, p=space.popularity), rng)
    half = full.astype(VECTOR_DTYPE)
    raw, size = half.tobytes(), bs.DIM * 2
    stored = decode_vectors([raw[i * size:(i + 1) * size] for i in range(count)])
    queries = {"similar": full[rng.choice(count, QUERIES, replace=False)],
               "text": np.stack([space.text(p) for p in bs.PHRASES[:QUERIES]])}
    out: dict = {"count": count}
    for kind, q in queries.items():
        want = np.argsort(-(q @ full.T), axis=1)[:, :50]
        got = np.argsort(-(q @ stored.T), axis=1)[:, :50]
        overlap = [len(set(a) & set(b)) / 50 for a, b in zip(got, want, strict=True)]
        out[kind] = {"recall_at_50": float(np.mean(overlap)),
                     "top1_agreement": float(np.mean(got[:, 0] == want[:, 0])),
                     "max_score_change": float(np.abs(q @ full.T - q @ stored.T).max())}
    save("catalog-precision", out)
    return out


def report() -> str:
    """bench/results/catalog.md's tables from the JSON results (the prose around them is written by hand)."""
    import statistics

    lines: list[str] = []
    million = _load("catalog-1m")
    if million:
        count = million["count"]
        before, after = million["before"]["tables"], million.get("after", {}).get("tables", {})
        lines += [f"### Bytes per photo by table, {count:,} photos (SQLite dbstat: pages of each table and index)", "",
                  "| table or index | before (0005) B/photo | page fill | after (0006) B/photo | page fill |",
                  "|---|---:|---:|---:|---:|"]
        for name in sorted(set(before) | set(after), key=lambda n: -before.get(n, after.get(n, {})).get("bytes", 0)):
            b, a = before.get(name), after.get(name)
            lines.append(f"| {name} | {_num(b, 'per_photo')} | {_num(b, 'fill', 2)} | {_num(a, 'per_photo')} | "
                         f"{_num(a, 'fill', 2)} |")
        lines.append(f"| **all pages in use** | **{million['before']['used_per_photo']:,.0f}** | | "
                     f"**{million['after']['used_per_photo']:,.0f}** | |")
        lines += ["", f"Legacy build {million['build_legacy_s']:.0f} s; upgrade 0005 -> 0006 "
                  f"{million.get('upgrade_s', 0):.0f} s; file {million['before']['file_bytes'] / 2**30:.2f} GiB "
                  f"before, {million['after']['file_bytes'] / 2**30:.2f} GiB after the upgrade "
                  f"({million['after']['free_bytes'] / 2**30:.2f} GiB of it free pages until VACUUM).", ""]
        lines += ["### Vector index and search at 1M (the search engine end to end; recall@50 against the flat "
                  "index's results)", "",
                  "| index | build s | build peak RSS MiB | file MiB | kind of query | queries | p50 ms | p95 ms | "
                  "recall@50 mean / min |", "|---|---:|---:|---:|---|---:|---:|---:|---|"]
        flat = million.get("search_flat", {}).get("queries", {})
        for mode in ("flat", "ivfpq"):
            build = million.get(f"build_{mode}")
            searched = million.get(f"search_{mode}", {}).get("queries", {})
            for kind, measured in searched.items():
                times = [m["ms"] for m in measured]
                recall = ""
                if mode != "flat" and kind in flat:
                    values = [len(set(m["paths"]) & set(f["paths"])) / max(1, len(f["paths"]))
                              for m, f in zip(measured, flat[kind], strict=True)]
                    recall = f"{statistics.mean(values):.3f} / {min(values):.2f}"
                lines.append(f"| {mode} ({build['kind']}) | {build['seconds']:.0f} | {build['peak_rss_mb']:,.0f} | "
                             f"{build['file_mb']:,.0f} | {kind} | {len(times)} | {np.percentile(times, 50):.1f} | "
                             f"{np.percentile(times, 95):.1f} | {recall} |")
        lines.append("")
    for name, title in (("catalog-10m", "10M clustered CLIP-like embeddings"),
                        ("catalog-uniform", "uniform random embeddings (the worst case, a bound)")):
        data = _load(name)
        if not data or "search" not in data:
            continue
        build, search = data["build"], data["search"]
        lines += [f"### IVF-PQ at {data['count']:,} vectors: {title}", "",
                  f"Embeddings table {data['file_bytes'] / 2**30:.1f} GiB (float16), generated in "
                  f"{data['generate_s']:.0f} s. Build (two streaming passes over the table, training, adding): "
                  f"{build['seconds']:.0f} s, peak RSS {build['peak_rss_mb']:,.0f} MiB; index file "
                  f"{build['file_mb']:,.0f} MiB; loaded in {search['load_s']:.1f} s, RSS after load "
                  f"{search['rss_after_load_mb']:,.0f} MiB.", "",
                  "| kind of query | queries | p50 ms | p95 ms | recall@50 mean / min |", "|---|---:|---:|---:|---|"]
        for kind in ("similar", "text"):
            m = search[kind]
            lines.append(f"| {kind} | {m['queries']} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | "
                         f"{m['recall_mean']:.3f} / {m['recall_min']:.2f} |")
        lines.append("")
    lines += tag_search_report()
    lines += full_search_report()
    return "\n".join(lines)


def _measured(prefix: str, key: str) -> list[tuple[dict, str]]:
    """(results, title) of every catalog measured in bench/.cache/PREFIX-*.json (those holding ``key``), largest
    first."""
    measured = [data for path in CACHE.glob(f"{prefix}-*.json")
                if key in (data := json.loads(path.read_text(encoding="utf-8")))]
    checks = "photos (a check at a smaller size)"
    return [(data, "10M photos" if data["count"] == 10_000_000 else f"{data['count']:,} {checks}")
            for data in sorted(measured, key=lambda d: -d["count"])]


def tag_search_report() -> list[str]:
    """The "Tag search at 10M photos" tables (and those of smaller checks, if measured) from tag_search's JSON."""
    import statistics

    lines: list[str] = []
    for data, title in _measured("catalog-tags", "search"):
        search = data["search"]
        load = f"{search['load_before'][0]:.1f} / {search['load_after'][0]:.1f}"
        lines += [f"### Tag search at {title}", "",
                  f"{data['photo_rows']:,} photo rows and {data['tag_rows_kept']:,} of the full catalog's "
                  f"{data['tag_rows_full_catalog']:,} tag rows: those of the {len(data['tags_kept'])} tags the "
                  f"queries name ({data['why_only_these_tags']}). Built in {data['build_s']:.0f} s, catalog.db "
                  f"{data['file_bytes'] / 2**30:.2f} GiB, schema {data['schema_revision']}, code {data['commit']}, "
                  f"SQLite {search['sqlite']}. `Searcher.search(query, limit=50)`, each query run "
                  f"{search['repeat']} times after a warm-up of the list, its median counted; catalog.db in the "
                  f"page cache; load average {load} before / after.", "",
                  "| shape | example | p50 ms | matches (median) | \"at least\" share |", "|---|---|---:|---:|---:|"]
        queries = search["queries"]
        for shape in dict.fromkeys(m["shape"] for m in queries):
            mine = [m for m in queries if m["shape"] == shape]
            lower = sum(m["total_is_lower_bound"] for m in mine) / len(mine)
            lines.append(f"| {shape} | `{mine[0]['query']}` | {statistics.median(m['ms'] for m in mine):.1f} | "
                         f"{statistics.median(m['total'] for m in mine):,.0f} | {lower:.0%} |")
        aim = bs.AIMS["tag"][0]
        lines += ["", f"All {len(queries)} queries: p50 {search['p50_ms']:.1f} ms, p95 {search['p95_ms']:.1f} ms; "
                  f"aim p50 ≤ {aim:.0f} ms: {'met' if search['p50_ms'] <= aim else '**missed**'}.", ""]
    return lines


def full_search_report() -> list[str]:
    """The "Search at 10M photos, embeddings in the catalog" tables (and those of smaller checks) from
    full_search's JSON."""
    import statistics

    lines: list[str] = []
    for data, title in _measured("catalog-full", "modes"):
        truth = data["truth"]
        lines += [f"### Search at {title}, embeddings in the catalog", "",
                  f"{data['photo_rows']:,} photo rows, every photo's embedding (float16) and {data['tag_rows_kept']:,} "
                  f"of the full catalog's {data['tag_rows_full_catalog']:,} tag rows (those of the "
                  f"{len(data['tags_kept'])} tags the tag and mixed queries name). Built in {data['build_s']:.0f} s; "
                  f"catalog.db {data['file_bytes'] / 2**30:.2f} GiB ({data['bytes_per_photo']:,.0f} B a photo with "
                  f"the kept tag rows), schema {data['schema_revision']}, code {data.get('commit', '?')}. Exact "
                  f"answers (recall's reference): one pass over every stored vector in {truth['seconds']:.1f} s.", "",
                  "| index | kind | build s | build peak RSS MiB | file MiB | load s | RSS after load MiB | "
                  "catalog.db in page cache |", "|---|---|---:|---:|---:|---:|---:|---|"]
        for mode, result in data["modes"].items():
            build, search, cache = result.get("build", {}), result["search"], result["page_cache"]
            resident = "" if cache["resident_bytes"] is None else \
                f"{cache['resident_bytes'] / 2**30:.1f} of {cache['file_bytes'] / 2**30:.1f} GiB " \
                f"(RAM {cache['memory_bytes'] / 2**30:.0f} GiB)"
            lines.append(f"| {mode} | {search['kind']} | {_num(build, 'seconds')} | {_num(build, 'peak_rss_mb')} | "
                         f"{_num(build, 'file_mb')} | {search['load_s']:.1f} | {search['rss_after']:,.0f} | "
                         f"{resident} |")
        for mode, result in data["modes"].items():
            memory = next((line.split()[1:] for line in result["memory_before"].splitlines()
                           if line.startswith("Mem:")), None)
            if memory:
                lines.append(f"\n`free -g` before reading catalog.db for {mode}: total {memory[0]}, used {memory[1]}, "
                             f"free {memory[2]}, buff/cache {memory[4]}, available {memory[5]} GiB; catalog.db then "
                             f"read once ({result['page_cache_read_s']:.0f} s), load average "
                             f"{result['load_average'][0]:.1f} after the queries{_resident(result)}.")
        lines += ["", "| index | kind of query | queries | p50 ms | p95 ms | FAISS p50 ms | of it, exact vectors "
                  "read p50 ms | matches (median) | exact matches (median) | recall@50 mean / min |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for mode, result in data["modes"].items():
            for kind, found in result["search"]["queries"].items():
                times, faiss_ms = [m["ms"] for m in found], statistics.median(m["faiss_ms"] for m in found)
                share = _recall(truth, kind, found)
                exact = f"{statistics.median(t['matches'] for t in truth[kind]):,.0f}" if kind in truth else ""
                lines.append(f"| {mode} | {kind} | {len(found)} | {np.percentile(times, 50):.1f} | "
                             f"{np.percentile(times, 95):.1f} | {faiss_ms:.1f} | "
                             f"{statistics.median(m.get('fetch_ms', 0.0) for m in found):.1f} | "
                             f"{statistics.median(m['total'] for m in found):,.0f} | {exact} | "
                             f"{f'{share[0]:.3f} / {share[1]:.2f}' if share else ''} |")
        for mode, result in data["modes"].items():
            for number, earlier in enumerate(result.get("earlier", []), 1):
                lines.append(f"\nEarlier run {number} of {mode} on the same catalog, p50 / p95 ms: " + ", ".join(
                    f"{kind} {m['p50_ms']:.1f} / {m['p95_ms']:.1f}" for kind, m in earlier.items()) + ".")
        lines.append("")
    return lines


def _resident(result: dict) -> str:
    after = result.get("page_cache_after", {}).get("resident_bytes")
    return "" if after is None else f", {after / 2**30:.1f} GiB of catalog.db in the page cache after them"


def _load(name: str) -> dict | None:
    path = CACHE / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _num(entry: dict | None, key: str, digits: int = 0) -> str:
    return "" if entry is None else f"{entry[key]:,.{digits}f}"


def save(name: str, data: dict) -> None:
    (CACHE / f"{name}.json").write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")


def main() -> None:
    what = sys.argv[1]
    if what.startswith("_"):
        handler = {"_build": _build, "_search": _search, "_build_vectors": _build_vectors,
                   "_search_vectors": _search_vectors, "_search_tags": _search_tags, "_full_truth": _full_truth}[what]
        print(json.dumps(handler(json.loads(sys.argv[2])), default=float))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    if what == "one-million":  # [COUNT [STAGE]]
        one_million(int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000, sys.argv[3] if len(sys.argv) > 3 else "all")
    elif what == "ten-million":
        ten_million(int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000)
    elif what == "precision":
        print(precision())
    elif what == "report":
        print(report())
    elif what == "generate":
        os.environ["BENCH_GENERATE_ONLY"] = "1"
        ten_million(int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000)
    elif what == "index":
        index_vectors(sys.argv[2] if len(sys.argv) > 2 else "10m")
    elif what == "uniform":
        ten_million(int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000, name="uniform", uniform=True)
    elif what == "tags":
        parser = argparse.ArgumentParser(prog="bench_catalog.py tags", description=tag_search.__doc__)
        parser.add_argument("count", nargs="?", type=int, default=10_000_000, help="photos (default 10M)")
        parser.add_argument("--repeat", type=int, default=3, help="runs of each query (their median counts)")
        parser.add_argument("--search-only", action="store_true", help="measure the catalog built before")
        parser.add_argument("--embeddings", action="store_true",
                            help="also every photo's embedding, and the semantic, mixed and similar queries through "
                                 "the vector index (full_search; data name full-COUNT)")
        parser.add_argument("--index", default="auto",
                            help="with --embeddings: comma-separated vector_index modes to build and measure")
        args = parser.parse_args(sys.argv[2:])
        if args.embeddings:
            full_search(args.count, args.repeat, args.search_only, tuple(m.strip() for m in args.index.split(",")))
        else:
            tag_search(args.count, args.repeat, args.search_only)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
