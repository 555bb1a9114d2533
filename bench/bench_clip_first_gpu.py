"""How soon a new library is searchable on a GPU: embeddings first (two rounds, each photo decoded twice) against
both models on each batch (the GPU default), through ``Indexer.run`` as the product runs it.

    python3 bench/bench_clip_first_gpu.py --sources DIR --out clip_first_gpu.md       # on the GPU machine
    .venv/bin/python bench/bench_clip_first_gpu.py --device cpu --quick              # a dry run of every step

bench_clip_first.py measures the same on a CPU, where embeddings first is the default; this one checks the
estimate behind the GPU's default (``Indexer._rounds``: one decode feeds both models there, and a second decode
was estimated to cost more than it gives). Full-size random RAM++ Swin-L/384 (fp16) and CLIP ViT-B/16, built as
bench_gpu builds them; ``--files`` distinct 12 MP JPEGs (bench_gpu's), each copied with a few bytes after its
end-of-image marker up to ``--photos`` files (no two share a content hash); decode workers as given; batch from
free GPU memory; not compiled. Passes interleaved, ``--repeat`` of each; medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from bench_clip_first import one_pass  # noqa: E402
from bench_gpu import build_models, distinct_copies, make_photos  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sources", type=Path, default=HERE.parent.parent / "shared" / "photos" / "library")
    parser.add_argument("--work", type=Path, default=Path("/tmp/phototag_bench_clip_first_gpu"))
    parser.add_argument("--out", type=Path, help="markdown table")
    parser.add_argument("--files", type=int, default=128, help="distinct 12 MP JPEGs to make")
    parser.add_argument("--photos", type=int, default=3072, help="photos per pass")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny models, few photos: a dry run of every step")
    args = parser.parse_args()
    if args.quick:
        args.files, args.photos, args.repeat, args.workers = 4, 16, 1, 0
    device = torch.device(args.device)
    arch, embedder_arch = ("ram_plus_tiny", "clip_tiny") if args.quick else ("ram_plus_swin_l_384", "clip_vit_b16")
    _, tagger, _, embedder = build_models(arch, embedder_arch, device)
    tagger.bundle = SimpleNamespace(version="bench_ram_plus@random")
    embedder.bundle = SimpleNamespace(version="bench_clip@random")
    files = make_photos(args.sources, args.work / "sources", args.files, min(16, args.workers + 1))
    photos = distinct_copies(files, args.work / "copies", args.photos)
    batch = None if device.type == "cuda" else 8
    one_pass(photos[:64], tagger, embedder, True, workers=args.workers, batch=batch, work=args.work)  # warm-up
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.repeat):
        for first in (False, True):
            runs[first].append(one_pass(photos, tagger, embedder, first, workers=args.workers, batch=batch,
                                        work=args.work))
            print(first, runs[first][-1], flush=True)

    def median(first: bool, key: str) -> float:
        return statistics.median(run[key] for run in runs[first])

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [
        f"# Time to a searchable library on {name}: embeddings first against both models on each batch", "",
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}; `bench/bench_clip_first_gpu.py "
        f"{' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')}). {args.photos} distinct 12 MP JPEGs, "
        f"{args.workers} decode workers, batch from free GPU memory, not compiled; medians of {args.repeat}.", "",
        "| pass | first searchable s | all searchable s | whole pass s | photos/s (whole pass) |",
        "|---|---|---|---|---|",
    ]
    for first, label in ((False, "both models on each batch (GPU default)"), (True, "embeddings first, then tags")):
        lines.append(f"| {label} | {median(first, 'first'):.1f} | {median(first, 'all'):.1f} | "
                     f"{median(first, 'end'):.1f} | {args.photos / median(first, 'end'):.0f} |")
    lines += ["", f"All searchable {median(False, 'all') / median(True, 'all'):.2f}x sooner with embeddings first; "
              f"whole pass {(median(True, 'end') / median(False, 'end') - 1) * 100:+.1f} %.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
