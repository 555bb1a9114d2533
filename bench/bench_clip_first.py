"""How soon a new library is searchable: a first pass with embeddings first (the CPU default) against both models
on each batch (the GPU's way, and every pass before), on CPU.

    .venv/bin/python bench/bench_clip_first.py                       # 16 12 MP JPEGs, full-size random models
    .venv/bin/python bench/bench_clip_first.py --photos 8 --repeat 1

The photos and the random-weight RAM++ Swin-L/384 and CLIP ViT-B/16 bundles are bench_indexer's (made once
under bench/.cache). Each run indexes the photos into a new catalog through ``Indexer.run`` in this process
(models loaded once, before the runs: not timed; workers 0, batch 8, precision auto), and takes the time from
the start of the pass to: the first photo found by free-text search (its embedding committed), every photo
found by it, and the end of the pass. The second column of costs: the pass's extra time over the together
run, i.e. what decoding each photo a second time costs. Results go to bench/results/clip_first.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from _machine import cpu_name  # noqa: E402
from bench_indexer import CACHE, EMBEDDER_BUNDLE, TAGGER_BUNDLE, ensure_models, twelve_mp_photos  # noqa: E402

OUT = HERE / "results" / "clip_first.md"
BATCH = 8


def one_pass(photos: list[Path], tagger: object, embedder: object, embeddings_first: bool, *, workers: int = 0,
             batch: int | None = BATCH, work: Path = CACHE) -> dict[str, float]:
    """Seconds from the start of a first pass to its first searchable photo, to all, and to its end; and the
    CPU seconds of the whole pass (this process, every thread: what other work on the machine changes least).
    ``batch`` None: the Indexer's own choice (on a GPU, from its free memory)."""
    from indexer.catalog import Catalog
    from indexer.index import Indexer

    marks: dict[str, float] = {}
    total = len(photos)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        library = Path(tmp) / "library"
        library.mkdir()
        for photo in photos:
            os.link(photo, library / photo.name)  # no copy (a scan does not follow symbolic links)
        start, cpu = time.perf_counter(), time.process_time()

        def on_progress(stage: str, done: int, count: int | None) -> None:
            # Embeddings are committed before the progress call: "embed" rounds, or "model" when together.
            if stage == ("embed" if embeddings_first else "model") and done > 0:
                now = time.perf_counter() - start
                marks.setdefault("first", now)
                if done >= total:
                    marks.setdefault("all", now)

        with Catalog.open(Path(tmp) / "catalog") as catalog:
            indexer = Indexer(catalog, tagger, embedder, workers=workers, batch_size=batch, compile=False,
                              on_progress=on_progress, embeddings_first=embeddings_first)
            summary = indexer.run([library])
        marks["end"] = time.perf_counter() - start
        marks["cpu"] = time.process_time() - cpu
    if (summary.tagged, summary.embedded) != (total, total):
        raise SystemExit(f"the pass did not index every photo: {summary.counts()}")
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch

    from ram_model.store import ModelStore

    ensure_models(("ram_plus_swin_l_384", TAGGER_BUNDLE), ("clip_vit_b16", EMBEDDER_BUNDLE))
    photos = twelve_mp_photos(args.photos)
    store = ModelStore(CACHE)
    tagger = store.load_tagger(TAGGER_BUNDLE, device="cpu", dtype="auto")
    embedder = store.load_embedder(EMBEDDER_BUNDLE, device="cpu")
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    one_pass(photos[:BATCH], tagger, embedder, True)  # warm-up: first calls, page cache
    for _ in range(args.repeat):
        for first in (True, False):  # interleaved, so that the machine's load falls on both alike
            runs[first].append(one_pass(photos, tagger, embedder, first))
            print(first, runs[first][-1], file=sys.stderr)

    def median(first: bool, key: str) -> float:
        return statistics.median(run[key] for run in runs[first])

    def best(first: bool, key: str) -> float:
        return min(run[key] for run in runs[first])

    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [
        "# Time to a searchable library: embeddings first against both models on each batch (CPU)", "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, Python {sys.version.split()[0]}. "
        f"Command: `.venv/bin/python bench/bench_clip_first.py --photos {args.photos} --repeat {args.repeat}` "
        f"({date.today().isoformat()}). Medians of {args.repeat} interleaved runs; load average at the end {load} "
        "(1/5/15 min).", "",
        f"A first pass over {args.photos} distinct 12 MP JPEGs (bench_indexer's) into a new catalog, full-size "
        "random RAM++ Swin-L/384 and CLIP ViT-B/16 (precision auto), batch 8, workers 0, models loaded before. "
        "Seconds from the start of `Indexer.run` until the first photo is found by free-text search (its "
        "embedding committed), until every photo is, and until the pass ends (wall time, median and best), and "
        "the pass's CPU time (all threads of the process).", "",
        "| pass | first searchable s | all searchable s | whole pass s | best | s/photo | CPU s | best |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for first, name in ((False, "both models on each batch (GPU default; every pass before)"),
                        (True, "embeddings first, then tags (CPU default)")):
        lines.append(f"| {name} | {median(first, 'first'):.1f} | {median(first, 'all'):.1f} | "
                     f"{median(first, 'end'):.1f} | {best(first, 'end'):.1f} | "
                     f"{median(first, 'end') / args.photos:.2f} | {median(first, 'cpu'):.1f} | "
                     f"{best(first, 'cpu'):.1f} |")
    sooner = median(False, "all") / median(True, "all")
    lines += ["", f"Every photo searchable {sooner:.1f}x sooner (medians). The cost of decoding each photo twice: "
              f"whole pass {(median(True, 'end') / median(False, 'end') - 1) * 100:+.1f} % wall "
              f"({(best(True, 'end') / best(False, 'end') - 1) * 100:+.1f} % best to best), "
              f"{(median(True, 'cpu') / median(False, 'cpu') - 1) * 100:+.1f} % CPU "
              f"({(best(True, 'cpu') / best(False, 'cpu') - 1) * 100:+.1f} % best to best).", ""]
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
