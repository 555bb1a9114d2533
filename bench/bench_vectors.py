"""Speed and size of the FAISS vector index (indexer/vectors.py) with random 512-d unit vectors.

    .venv/bin/python bench/bench_vectors.py                       # 100k and 1M, plus fp16/HNSW/IVF
    .venv/bin/python bench/bench_vectors.py --sizes 100000 --no-ann

For each size: add throughput (batches of 10k through ``VectorIndex.add``), the cost of adding
or replacing 1,000 vectors in a full index, single-query exact search latency at k=50 (median
and p95), a batch of 64 queries, a search restricted to a 1% subset, save and load times and
the file size. Then the alternatives VECTORS.md discusses: flat float16 storage
(``IndexScalarQuantizer(QT_fp16)``) at the largest size, and HNSW (M=32) and IVF-Flat
(nlist = 4*sqrt(N)) at the smallest, with recall@50 against exact search. Random vectors are the
worst case for approximate indexes (no clusters); real CLIP embeddings give higher recall at the
same settings. FAISS uses all cores (``--threads`` to change). The 1M run needs about 5 GB of
memory and 2 GB of temporary disk. Results go to bench/results/vectors.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
from _machine import cpu_name  # noqa: E402 - bench/ is the script folder, first on sys.path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from indexer.vectors import VectorIndex  # noqa: E402

BATCH = 10_000
STATE = "bench@1:1"


def unit_batches(n: int, dim: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Deterministic random unit vectors in batches, ids 1..n (never all in memory at once)."""
    for first in range(0, n, BATCH):
        count = min(BATCH, n - first)
        x = np.random.default_rng((seed, first)).standard_normal((count, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield np.arange(first + 1, first + count + 1, dtype=np.int64), x


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    return np.vstack([x for _, x in unit_batches(n, dim, seed)])


def latencies(search: Callable[[np.ndarray], object], queries: np.ndarray, threads: int = 1) -> tuple[float, float]:
    """Median and p95 of single-query calls with ``threads`` FAISS threads, in ms (after two warm-up calls)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        return _latencies(search, queries)
    finally:
        faiss.omp_set_num_threads(before)


def _latencies(search: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[float, float]:
    for q in queries[:2]:
        search(q[None])
    times = []
    for q in queries:
        start = time.perf_counter()
        search(q[None])
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_flat(n: int, dim: int, k: int, queries: np.ndarray, workdir: Path) -> dict:
    index = VectorIndex(dim)
    add_seconds = 0.0
    for ids, x in unit_batches(n, dim, seed=1):
        add_seconds += timed(lambda ids=ids, x=x: index.add(ids, x))[1]
    exact = index.search(queries, k)[1]  # the reference for the approximate indexes' recall
    fresh = unit(1000, dim, seed=2)
    _, add_new = timed(lambda: index.add(np.arange(n + 1, n + 1001, dtype=np.int64), fresh))
    _, replace = timed(lambda: index.add(np.arange(1, 1001, dtype=np.int64), fresh))
    threads = faiss.omp_get_max_threads()
    median, p95 = latencies(lambda q: index.search(q, k), queries, threads)  # query_threads=1, the default
    index.query_threads = None  # FAISS's own choice: the database split across all threads
    median_all, p95_all = latencies(lambda q: index.search(q, k), queries, threads)
    index.query_threads = 1
    _, batch64 = timed(lambda: index.search(queries[:64], k))
    subset = np.random.default_rng(3).choice(n, size=n // 100, replace=False).astype(np.int64) + 1
    filtered, _ = latencies(lambda q: index.search_ids(q, k, subset), queries[:10])
    path = workdir / f"flat_{n}.faiss"
    _, save = timed(lambda: index.save(path, STATE))
    index.remove(np.arange(1, n + 1001, dtype=np.int64))  # free its memory before loading the copy
    loaded, load = timed(lambda: VectorIndex.load(path, dim, STATE))
    assert loaded is not None and len(loaded) == n + 1000
    size = path.stat().st_size
    path.unlink()
    return {
        "n": n, "add_per_s": n / add_seconds, "add_new_1k_ms": add_new * 1000, "replace_1k_ms": replace * 1000,
        "median_ms": median, "p95_ms": p95,
        "median_all_ms": median_all, "p95_all_ms": p95_all, "batch64_ms": batch64 * 1000, "filtered_ms": filtered,
        "save_s": save, "load_s": load, "file_mb": size / 2**20, "exact": exact,
    }


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]))


def bench_raw(name: str, index: faiss.Index, n: int, dim: int, k: int, queries: np.ndarray, exact: np.ndarray,
              settings: list[tuple[str, Callable[[], None]]], train: bool = False) -> list[dict]:
    """Build a plain FAISS index over the same vectors, then time it under each search setting."""
    build_seconds = 0.0
    if train:
        sample = unit(min(n, 100_000), dim, seed=1)
        build_seconds += timed(lambda: index.train(sample))[1]
        del sample
    for _, x in unit_batches(n, dim, seed=1):
        build_seconds += timed(lambda x=x: index.add(x))[1]
    rows = []
    for label, apply in settings:
        apply()
        median, p95 = latencies(lambda q: index.search(q, k), queries)
        found = index.search(queries, k)[1] + 1  # positions to the ids 1..n used by unit_batches
        rows.append({"index": name, "n": n, "setting": label, "build_s": build_seconds, "median_ms": median,
                     "p95_ms": p95, "recall": recall(found, exact), "bytes_per_vector": bytes_per_vector(index, n)})
    return rows


def bytes_per_vector(index: faiss.Index, n: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.faiss"
        faiss.write_index(index, str(path))
        return path.stat().st_size / n


def machine() -> str:
    cpu = cpu_name()
    simd = getattr(faiss, "swigfaiss", None)
    return (f"{cpu}, {os.cpu_count()} cores, FAISS {faiss.__version__} ({simd.__name__ if simd else '?'}), "
            f"{faiss.omp_get_max_threads()} FAISS threads, NumPy {np.__version__}, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.2f} at the start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-ann", action="store_true", help="only the exact flat index")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "vectors.md")
    args = parser.parse_args()

    faiss.omp_set_num_threads(args.threads)
    dim, k = args.dim, args.k
    queries = unit(args.queries, dim, seed=7)
    flat, ann = [], []
    with tempfile.TemporaryDirectory(prefix="bench_vectors_") as folder:
        for n in args.sizes:
            print(f"flat {n:,} ...", flush=True)
            flat.append(bench_flat(n, dim, k, queries, Path(folder)))
    if not args.no_ann:
        largest, smallest = flat[-1], flat[0]
        n = largest["n"]
        print(f"fp16 {n:,} ...", flush=True)
        sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        ann += bench_raw("flat fp16 (SQfp16)", sq, n, dim, k, queries, largest["exact"],
                         [("exact", lambda: None)])
        del sq
        n = smallest["n"]
        print(f"HNSW {n:,} ...", flush=True)
        hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        ann += bench_raw("HNSW M=32, efC=40", hnsw, n, dim, k, queries, smallest["exact"], [
            (f"efSearch={ef}", lambda ef=ef: setattr(hnsw.hnsw, "efSearch", ef)) for ef in (64, 128, 256)])
        del hnsw
        nlist = int(4 * math.sqrt(n))
        print(f"IVF {n:,} nlist {nlist} ...", flush=True)
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = 10
        ann += bench_raw(f"IVF{nlist},Flat", ivf, n, dim, k, queries, smallest["exact"], [
            (f"nprobe={p}", lambda p=p: setattr(ivf, "nprobe", p)) for p in (8, 32, 128)], train=True)

    lines = [
        "# FAISS vector index benchmark",
        "",
        f"`bench/bench_vectors.py`: random {dim}-d unit vectors, k={k}, {args.queries} single queries.",
        "Single queries are timed with 1 FAISS thread and with all of them; everything else uses all.",
        f"Machine: {machine()}.",
        "",
        "## Exact search (`VectorIndex`: IDMap2 over IndexFlatIP)",
        "",
        f"| vectors | add (vectors/s) | add 1k new | replace 1k | query, 1 thread: median / p95 "
        f"| query, {args.threads} threads: median / p95 | 64 queries | 1% subset query | save | load | file |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in flat:
        lines.append(
            f"| {r['n']:,} | {r['add_per_s']:,.0f} | {r['add_new_1k_ms']:.1f} ms | {r['replace_1k_ms']:.1f} ms "
            f"| {r['median_ms']:.1f} / {r['p95_ms']:.1f} ms | {r['median_all_ms']:.1f} / {r['p95_all_ms']:.1f} ms "
            f"| {r['batch64_ms']:.0f} ms | {r['filtered_ms']:.1f} ms "
            f"| {r['save_s']:.2f} s | {r['load_s']:.2f} s | {r['file_mb']:,.0f} MiB |")
    if ann:
        lines += [
            "",
            "## Alternatives (plain FAISS indexes over the same vectors, 1 thread per query; recall@50 against exact)",
            "",
            "| index | vectors | search setting | build | query median | query p95 | recall@50 | bytes/vector |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in ann:
            lines.append(
                f"| {r['index']} | {r['n']:,} | {r['setting']} | {r['build_s']:.1f} s | {r['median_ms']:.2f} ms "
                f"| {r['p95_ms']:.2f} ms | {r['recall']:.3f} | {r['bytes_per_vector']:,.0f} |")
    lines += ["", "Random vectors have no neighbourhood structure: approximate-index recall here is a lower bound.",
              ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
