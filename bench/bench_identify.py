"""Where the first part of a GPU pass goes before any model runs: reading the files, identifying them (hash and
metadata) in worker processes, and starting those workers.

    python3 bench/bench_identify.py --sources DIR          # on the GPU machine (after bench_clip_first_gpu)

bench_clip_first_gpu found ~42 s from the start of a pass over 3,072 new 12 MP files to the first stored result
on the H200 machine, while the models took ~8.5 s for all of them. This splits those seconds: a plain read of
every file (the page cache as the pass finds it, then warm), ``identify`` in this process on a sample, the start
of a pool of spawn workers (each imports torch and the indexer), and ``identify`` over all files through
``indexer.pipeline.Stages`` as ``Indexer._identify`` runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_gpu import distinct_copies, make_photos  # noqa: E402

from indexer.engine import IDENTIFY_CHUNK  # noqa: E402
from indexer.pipeline import Stages, identify  # noqa: E402


def _noop(value: int) -> int:
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/phototag_bench_identify"))
    parser.add_argument("--files", type=int, default=128)
    parser.add_argument("--photos", type=int, default=3072)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    args = parser.parse_args()
    files = make_photos(args.sources, args.work / "sources", args.files, min(16, args.workers + 1))
    paths = [str(path) for path in distinct_copies(files, args.work / "copies", args.photos)]
    total = sum(os.path.getsize(p) for p in paths)
    print(f"{len(paths)} files, {total / 1e9:.2f} GB", flush=True)
    for label in ("read every file (page cache as left by writing them)", "read every file again"):
        start = time.perf_counter()
        for path in paths:
            with open(path, "rb") as handle:
                while handle.read(1 << 20):
                    pass
        seconds = time.perf_counter() - start
        print(f"{label}: {seconds:.1f} s, {total / seconds / 1e6:.0f} MB/s, {len(paths) / seconds:.0f} files/s",
              flush=True)
    start = time.perf_counter()
    for path in paths[:200]:
        identify(path)
    seconds = time.perf_counter() - start
    print(f"identify in this process: {seconds / 200 * 1000:.1f} ms a file", flush=True)
    for chunk in (1, IDENTIFY_CHUNK):
        start = time.perf_counter()
        with Stages(args.workers) as stages:
            list(stages.map(_noop, range(args.workers)))
            started = time.perf_counter() - start
            results = list(stages.map(identify, paths, chunk=chunk))
        seconds = time.perf_counter() - start
        print(f"pool, {chunk} paths a task: {args.workers} workers started (first results) after {started:.1f} s; "
              f"identify of {len(results)} files through Stages: {seconds:.1f} s in all, "
              f"{len(results) / (seconds - started):.0f} files/s after the start", flush=True)


if __name__ == "__main__":
    main()
