"""How fast a pass stores model results in the catalog: can it keep up with a GPU (400-800 photos/s)?

    .venv/bin/python bench/bench_store.py [--photos 20000] [--repeat 3]

A library of ``--photos`` small files whose catalog rows are indexed but by an older tagger and
embedder, so a pass computes all of them. Decoding and the models are replaced by instant stand-ins
that give every photo TAGS_PER_PHOTO fired tags out of the 4,585 built-in ones and a 512-d unit
embedding, so what ``Indexer.run`` times is the rest: scanning the unchanged files, the pending
query, and the model stage's storing — tags (keeping a person's decisions), embeddings, FAISS adds,
custom-tag and personal-model hooks, one transaction per batch, the FAISS save. Batches of 128
photos, as on a GPU; no worker processes. Results: bench/results/store_cpu.md.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _machine import cpu_name  # noqa: E402
from bench_indexer import make_library  # noqa: E402

OUT = HERE / "results" / "store_cpu.md"
BATCH = 128
TAGS_PER_PHOTO = 20
EMBED_DIM = 512


@dataclass
class _Bundle:
    version: str


class StandInTagger:
    """What the indexer reads of a tagger when the model stage is replaced: the built-in vocabulary."""

    def __init__(self) -> None:
        import torch

        from ram_model.vocab import builtin_vocabulary

        self.vocabulary = builtin_vocabulary()
        self.tag_names = list(self.vocabulary.names)
        self.thresholds = np.asarray(self.vocabulary.thresholds, dtype=np.float32)
        self.bundle = _Bundle("ram_plus_swin_l_384@bench0000000")
        self.device = torch.device("cpu")
        self.image_size = 384


class StandInEmbedder:
    def __init__(self) -> None:
        import torch

        self.bundle = _Bundle("clip_vit_b16@bench00000000000")
        self.embed_dim = EMBED_DIM
        self.device = torch.device("cpu")
        self.transform = None


class InstantStage:
    """``ModelStage`` without models: every decoded photo gets TAGS_PER_PHOTO fired tags and an embedding."""

    def __init__(self, tagger: StandInTagger) -> None:
        from indexer.pipeline import DecodeSettings

        self.settings = DecodeSettings(384, None)
        self.thresholds = tagger.thresholds
        self.rng = np.random.default_rng(0)

    def run(self, batches: Iterable[list[Any]]) -> Iterator[tuple[list[Any], Any]]:
        from indexer.pipeline import Outputs

        for batch in batches:
            probs, vectors = {}, {}
            for item in batch:
                row = self.thresholds * self.rng.uniform(0.0, 0.9, self.thresholds.shape).astype(np.float32)
                fired = self.rng.choice(row.shape[0], TAGS_PER_PHOTO, replace=False)
                row[fired] = np.minimum(1.0, self.thresholds[fired] + 0.05)
                probs[item.photo_id] = row
                vector = self.rng.standard_normal(EMBED_DIM).astype(np.float32)
                vectors[item.photo_id] = vector / np.linalg.norm(vector)
            yield batch, Outputs(probs, vectors, {})


def instant_decode(job: Any, settings: Any = None) -> Any:
    from indexer.pipeline import Decoded

    return Decoded(job.photo_id, job.path, None, None)


def one_pass(tmp: Path, photos: int) -> tuple[float, float, int]:
    """Seconds of ``Indexer.run`` and of its storing, and the photos it stored."""
    from indexer import engine as engine_module
    from indexer.catalog import Catalog
    from indexer.index import Indexer

    tagger, embedder = StandInTagger(), StandInEmbedder()
    library = make_library(tmp, photos, max(1, photos // 100), "ram_plus_swin_l_384@older000000000",
                           "clip_vit_b16@older0000000000")
    stored = 0.0
    with Catalog.open(library.catalog) as catalog:
        indexer = Indexer(catalog, tagger, embedder, workers=0, batch_size=BATCH, compile=False)
        stage = InstantStage(tagger)
        indexer.engine._model_stage = lambda _photos: stage  # noqa: SLF001 - the models are what is left out
        real_store = indexer._store_results  # noqa: SLF001

        def timed_store(*args: Any) -> list[int]:
            nonlocal stored
            start = time.perf_counter()
            try:
                return real_store(*args)  # the photos it made indexed
            finally:
                stored += time.perf_counter() - start

        indexer._store_results = timed_store  # noqa: SLF001
        saved = engine_module.decode
        engine_module.decode = instant_decode
        try:
            start = time.perf_counter()
            summary = indexer.run([library.root])
            seconds = time.perf_counter() - start
        finally:
            engine_module.decode = saved
    with closing(sqlite3.connect(library.catalog / "catalog.db")) as db:
        tags = db.execute("SELECT count(*) FROM photo_tags").fetchone()[0]
    # (A few built-in names occur twice in the tag list: both fire one row.)
    if summary.tagged != photos or not 0.99 * photos * TAGS_PER_PHOTO <= tags <= photos * TAGS_PER_PHOTO:
        raise RuntimeError(f"expected {photos} photos with {TAGS_PER_PHOTO} tags each, got {summary.tagged}, {tags}")
    return seconds, stored, summary.tagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="phototag-store-") as name:
            runs.append(one_pass(Path(name), args.photos))
            print(f"pass: {runs[-1][2] / runs[-1][0]:.0f} photos/s, storing {runs[-1][1] / runs[-1][2] * 1e3:.2f} ms "
                  "a photo", flush=True)
    rate = statistics.median(photos / seconds for seconds, _stored, photos in runs)
    per_photo = statistics.median(stored / photos * 1e3 for _seconds, stored, photos in runs)
    text = "\n".join([
        "# Storing model results (CPU)", "",
        f"Written by `bench/bench_store.py` (what it measures: its docstring). Machine: {cpu_name()}; "
        f"{date.today().isoformat()}. Command: `.venv/bin/python bench/bench_store.py --photos {args.photos} "
        f"--repeat {args.repeat}`; median of {args.repeat} passes.", "",
        "| photos | pass photos/s (median) | `_store_results` ms/photo (median) | runs: photos/s |",
        "|---|---|---|---|",
        f"| {args.photos:,} | {rate:.0f} | {per_photo:.2f} | "
        + ", ".join(f"{p / s:.0f}" for s, _st, p in runs) + " |", ""])
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
