"""CPU benchmark of the full-size RAM++ Swin-L/384 tagger (random weights): speed, memory, precision.

    .venv/bin/python bench/bench_tagger.py                 # fp32 and bf16, batch 1, 4, 8
    .venv/bin/python bench/bench_tagger.py --precisions fp32 --batches 1

Each configuration runs in a fresh process so its peak RSS is its own. The model is converted once
into a random-weight bundle under bench/.cache (1.3 GB) and then loaded as a user's is: memory-mapped
in fp32, its matrix weights read into bf16 for bf16. Photos are decoded one at a time, as the
indexer's decode stage does, so no full-size decoded photo outlives its preprocessing. Memory is
peak RSS (VmHWM), the peak of private (anonymous) memory, and the file-backed pages at the end:
the weights file's and the rest (torch/CUDA libraries). Tag agreement is the F1 of each
configuration's tag sets against fp32 at batch 1 on the same photos. Results go to
bench/results/tagger_cpu.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _machine import cpu_name  # bench/ is the script folder, first on sys.path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
CACHE = HERE / ".cache"
BUNDLE = "bench_ram_plus_random"
PHOTOS = REPO.parent / "shared" / "photos" / "library"
REFERENCE_SECONDS = 3.2  # the reference implementation, fp32, batch 1, 2 CPU cores (spec)


def photos(count: int) -> list[Path]:
    files = sorted(p for p in PHOTOS.rglob("*") if p.is_file())
    return [files[i % len(files)] for i in range(count)]


def _interpreter() -> str:
    """The Python that ran this, relative to the checkout when it is inside it (``.venv/bin/python``)."""
    path = Path(sys.executable)
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def run_one(precision: str, batch: int, images: int) -> dict:
    """Measure one configuration in this process (called in a subprocess by ``main``)."""
    import torch

    from ram_model.preprocess import open_image, preprocess_batch
    from ram_model.store import ModelStore

    torch.set_num_threads(os.cpu_count() or 1)
    anon = AnonPeak()
    start = time.perf_counter()
    store = ModelStore(CACHE)
    tagger = store.load_tagger(BUNDLE, device="cpu", dtype=precision)
    load_seconds = time.perf_counter() - start
    size = tagger.image_size
    tensors = torch.cat([preprocess_batch([open_image(p, draft_size=size)], size) for p in photos(images)])
    tagger.predict(tensors[:batch])  # warm-up: first-call allocations and kernel selection
    probs, seconds = [], 0.0
    for first in range(0, images, batch):
        start = time.perf_counter()
        probs.append(tagger.predict(tensors[first : first + batch]))
        seconds += time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux: VmHWM
    weights_mib = resident_mib_of(store.get(BUNDLE).weights)
    probs_all = np.concatenate(probs)
    fired = (probs_all > tagger.thresholds).tolist()
    return {"precision": precision, "batch": batch, "images": images, "seconds_per_image": seconds / images,
            "load_seconds": load_seconds, "peak_rss_mib": peak_rss, "peak_anon_mib": anon.stop(),
            "file_weights_mib": weights_mib, "file_other_mib": status_mib("RssFile") - weights_mib,
            "fired": fired, "probs": probs_all.tolist(),
            "dtype": str(tagger.dtype), "threads": torch.get_num_threads()}


def status_mib(field: str) -> float:
    """A memory line of /proc/self/status (``RssAnon``, ``RssFile``, ...) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def resident_mib_of(file: Path) -> float:
    """How much of ``file`` is resident in this process's memory maps (the memory-mapped weights)."""
    kib, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].endswith(":"):  # a mapping's header: address, perms, ..., path
            inside = line.endswith(str(file))
        elif inside and fields[0] == "Rss:":
            kib += int(fields[1])
    return kib / 1024


class AnonPeak:
    """Samples the process's private (anonymous) resident memory every 20 ms and keeps the peak.

    Peak RSS also counts file-backed pages: the memory-mapped weights (page cache, shared and
    reclaimable) and the torch/CUDA libraries. Private memory is what the process really costs."""

    def __init__(self) -> None:
        import threading

        self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def current() -> float:
        return status_mib("RssAnon")

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, self.current())

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return max(self.peak, self.current())


def top_k_f1(reference: list[list[float]], other: list[list[float]], k: int = 20) -> float:
    """Agreement of the k highest-scoring tags per image (meaningful even when random weights fire few tags)."""
    ref, oth = np.asarray(reference), np.asarray(other)
    scores = []
    for a, b in zip(ref, oth, strict=True):
        top_a, top_b = set(np.argsort(-a)[:k].tolist()), set(np.argsort(-b)[:k].tolist())
        scores.append(len(top_a & top_b) / k)
    return float(np.mean(scores))


def f1(reference: list[list[bool]], other: list[list[bool]]) -> float:
    ref, oth = np.asarray(reference), np.asarray(other)
    true_pos = np.logical_and(ref, oth).sum()
    denominator = ref.sum() + oth.sum()
    return 1.0 if denominator == 0 else float(2 * true_pos / denominator)


def ensure_bundle() -> None:
    from ram_model.store import ModelStore

    store = ModelStore(CACHE)
    if not store.exists(BUNDLE):
        print(f"writing random-weight RAM++ Swin-L/384 bundle to {CACHE} (once)", file=sys.stderr)
        store.create_random("ram_plus_swin_l_384", BUNDLE, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--images", type=int, default=8, help="images timed per configuration")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tagger_cpu.md")
    parser.add_argument("--one", nargs=2, metavar=("PRECISION", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.images)))
        return
    ensure_bundle()
    rows = []
    for precision in args.precisions.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            done = subprocess.run(
                [sys.executable, __file__, "--one", precision, str(batch), "--images", str(args.images)],
                check=True, capture_output=True, text=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{precision} batch {batch}: {row['seconds_per_image']:.2f} s/image, "
                  f"peak RSS {row['peak_rss_mib']:.0f} MiB", file=sys.stderr)
    reference = next((r for r in rows if r["precision"] == "fp32" and r["batch"] == 1), rows[0])
    write_table(rows, reference, args.out)


def write_table(rows: list[dict], reference: dict, out: Path) -> None:
    import torch

    from ram_model.device import cpu_has_native_bf16

    cpu = cpu_name()
    lines = [
        "# RAM++ Swin-L/384 on CPU (random weights)",
        "",
        f"{time.strftime('%Y-%m-%d')}. "
        f"Machine: {cpu}, {os.cpu_count()} cores, native bf16: {'yes' if cpu_has_native_bf16() else 'no'}; "
        f"torch {torch.__version__} ({'CUDA' if torch.version.cuda else 'CPU-only'} build). "
        f"Command: `{_interpreter()} bench/bench_tagger.py`. "
        f"{rows[0]['images']} photos from ../shared/photos per configuration, after one warm-up batch. "
        f"Reference implementation: {REFERENCE_SECONDS} s/image fp32 at batch 1 (spec).",
        "",
        "Peak RSS is the process's VmHWM. It counts private memory (the peak of its anonymous resident "
        "memory) and file-backed pages: the memory-mapped weights (fp32; shared, reclaimable page cache) "
        "and the libraries, mostly torch's. Agreement with fp32 batch 1: F1 of the tags that "
        "fire ('fired': how many per image), overlap of the 20 highest-scoring tags per image, and the "
        "largest probability difference.",
        "",
        "| precision | batch | s/image | vs reference | peak RSS (MiB) | private (MiB) | file: weights (MiB) "
        "| file: libraries (MiB) | fired/image | tag F1 | top-20 overlap | max Δprob | load (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['precision']} | {row['batch']} | {row['seconds_per_image']:.2f} | "
            f"{REFERENCE_SECONDS / row['seconds_per_image']:.2f}x | {row['peak_rss_mib']:.0f} | "
            f"{row['peak_anon_mib']:.0f} | {row['file_weights_mib']:.0f} | {row['file_other_mib']:.0f} | "
            f"{np.asarray(row['fired']).sum(axis=1).mean():.1f} | "
            f"{f1(reference['fired'], row['fired']):.4f} | {top_k_f1(reference['probs'], row['probs']):.4f} | "
            f"{np.abs(np.asarray(reference['probs']) - np.asarray(row['probs'])).max():.2e} | "
            f"{row['load_seconds']:.1f} |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out.read_text())


if __name__ == "__main__":
    main()
