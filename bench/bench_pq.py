"""IVF-PQ at 10M photos by code size: recall@50 and time against the number of candidates re-scored exactly.

    .venv/bin/python bench/bench_pq.py 64     # the catalog's own index (bench_catalog.py tags --embeddings built it)
    .venv/bin/python bench/bench_pq.py 128    # builds a 128-byte IVF-PQ index of the same catalog once (~400 s)

On the 10M catalog of ``bench_catalog.py tags --embeddings`` (bench/.cache/catalog-full-10m): its 32 free-text and
32 similar queries, ``VectorIndex.search(query, 50)`` with R (``RERANK``) candidates beyond the 50 re-scored from
the catalog's stored vectors, each query twice (the second timed); recall@50 against the exact answers that
bench_catalog stored. Results: bench/results/catalog.md ("Code size").
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_search as bs  # noqa: E402
from bench_catalog import similar_vector  # noqa: E402

import indexer.vectors as vectors  # noqa: E402
from indexer.catalog import Catalog  # noqa: E402
from indexer.index import embedding_rows, embedding_vectors  # noqa: E402

FOLDER = HERE / ".cache" / "catalog-full-10m"
VERSION = bs.VERSION
STATE = f"{VERSION}:1"


def main() -> None:
    code_bytes = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    catalog = Catalog.open(FOLDER, create=False)
    truth = json.loads((FOLDER.parent / f"{FOLDER.name}.json").read_text(encoding="utf-8"))["truth"]

    def exact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return embedding_vectors(catalog, VERSION, ids)

    space = bs.EmbeddingSpace()
    with closing(sqlite3.connect(f"file:{FOLDER / 'catalog.db'}?mode=ro", uri=True)) as db:
        queries = {"free text": [(np.asarray(space.text(t["query"]), np.float32), t["ids"]) for t in truth["semantic"]],
                   "similar": [(similar_vector(db, t["query"]), t["ids"]) for t in truth["similar"]]}
    path = FOLDER / "vectors.auto.faiss" if code_bytes == 64 else FOLDER.parent / f"pq{code_bytes}.faiss"
    if not path.exists():
        vectors.PQ_BYTES = code_bytes
        begin = time.perf_counter()
        built = vectors.VectorIndex.build_from(512, lambda: embedding_rows(catalog, VERSION, 512), "ivfpq")
        print(f"built in {time.perf_counter() - begin:.0f} s", flush=True)
        built.save(path, STATE)
    index = vectors.VectorIndex.load(path, 512, STATE)
    assert index is not None, f"{path} is not an index of {STATE}"
    index.exact_vectors = exact
    print(f"| code | R | kind | p50 ms | recall@50 mean / min |  ({path.stat().st_size / 2**20:.0f} MiB)")
    for extra in (512, 1024, 2048, 4096):
        vectors.RERANK = vectors.RERANK_MAX = extra
        for kind, items in queries.items():
            times, recalls = [], []
            for query, wanted in items:
                for _ in range(2):
                    begin = time.perf_counter()
                    _scores, ids = index.search(query[None, :], 50)
                    seconds = time.perf_counter() - begin
                times.append(seconds)
                recalls.append(len(set(ids[0].tolist()) & set(wanted[:50])) / 50)
            print(f"| PQ{code_bytes} | {extra} | {kind} | {np.percentile(times, 50) * 1000:.1f} | "
                  f"{np.mean(recalls):.3f} / {np.min(recalls):.2f} |", flush=True)


if __name__ == "__main__":
    main()
