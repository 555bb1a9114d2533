"""What applying a custom tag to a 100k-photo library costs: the [N × 512] @ [512] product alone, and a
full retroactive ``custom_tags.apply`` on a synthetic catalog (read embeddings, score, write rows).

    .venv/bin/python bench/bench_custom_tags.py [--photos 100000] [--fires 0.05]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from indexer.catalog import Catalog
from indexer.personal import custom_tags
from indexer.schema import Embedding, Photo

DIM, VERSION = 512, "clip_vit_b16@bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--fires", type=float, default=0.05, help="share of photos the tag fires on")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.photos, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    prototype = vectors[:50].mean(axis=0)
    prototype /= np.linalg.norm(prototype)
    start = time.perf_counter()
    scores = vectors @ prototype
    product = time.perf_counter() - start
    threshold = float(np.quantile(scores, 1 - args.fires))
    with tempfile.TemporaryDirectory() as folder, Catalog.open(Path(folder)) as catalog:
        stamp = datetime(2024, 1, 1)
        with catalog.session() as session, session.begin():
            session.execute(Photo.__table__.insert(), [
                {"id": i + 1, "path": f"/lib/{i}.jpg", "size": 1, "mtime_ns": 1, "status": "indexed", "attempts": 0,
                 "first_seen": stamp, "last_seen": stamp} for i in range(args.photos)])
            session.execute(Embedding.__table__.insert(), [
                {"photo_id": i + 1, "model_version": VERSION, "dim": DIM, "vector": vectors[i]}
                for i in range(args.photos)])
        tag = custom_tags.build(catalog, "bench", examples=list(range(1, 51)), threshold=threshold)
        custom_tags.save(catalog, tag)
        start = time.perf_counter()
        counts = custom_tags.apply(catalog, ["bench"])
        first = time.perf_counter() - start
        start = time.perf_counter()
        custom_tags.apply(catalog, ["bench"])
        again = time.perf_counter() - start
    print(f"| photos | dim | product | apply (first, fires on {counts['bench']}) | apply again |")
    print("|---|---|---|---|---|")
    print(f"| {args.photos:,} | {DIM} | {product * 1000:.1f} ms | {first:.2f} s | {again:.2f} s |")


if __name__ == "__main__":
    main()
