"""The Ray engine on this machine: photos/s against the local engine, what the driver can store, bytes read.

    .venv/bin/python bench/bench_ray.py [--photos 40] [--repeat 2] [--store-photos 5000] [--scaling-photos 120]

engines  a first pass over ``--photos`` camera-like 12 MP JPEGs (bench_indexer's, ~3.5 MB each) with the tiny
         random RAM++ and CLIP bundles, batches of 8, as a user runs it: ``phototag index --json`` in a fresh
         process, timed from start to exit, and a pass over two of them for the fixed costs (starting processes,
         Ray's job and actors, loading models), so the rate once running shows apart. The local engine decoding
         in its own process and in 1 worker process; the Ray engine joining
         a local Ray instance started once per row by this script (as ``ray start --head --num-cpus N`` would),
         with 1 and 2 model actors and one CPU more for identify and decode tasks. Each Ray pass pays what a pass
         on a cluster pays: its job's worker processes, and a model actor started per round (on a CPU: embeddings,
         then tags). The summary's bytes per photo and read rates come with each row.
scaling  photos/s against the number of model actors where the models are the work: small JPEGs (1.2 MP, decoded
         in a few ms) with the full-size CLIP ViT-B/16 (random weights) and the tiny tagger; Ray with 1, 2 and 3 CPU
         model actors, the local engine beside them, and CLIP's own rate on one core (the ideal per actor).
driver   what the driver can store, whatever the cluster computes: bench_store's pass with instant stand-ins for
         decoding and the models (its ``one_pass``), ``_store_results`` alone and the whole pass, in photos/s.
raw      bytes one photo costs each stage (``indexer.pipeline.counting_reads``): a DNG with a 160x120 preview and
         24 MB of sensor data (tests/indexer/test_reads.py's), and a 12 MP JPEG.

Random weights: the speeds are real, the tags meaningless. Results: bench/results/ray.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from _machine import cpu_name  # noqa: E402
from bench_indexer import CACHE, TINY_EMBEDDER, TINY_TAGGER, bench_home, ensure_models, phototag, twelve_mp_photos  # noqa: E402

OUT = HERE / "results" / "ray.md"
BATCH = 8
SCALING_EMBEDDER = "bench_clip_random"  # CLIP ViT-B/16 at full size, random weights: the real model's compute
SMALL_PHOTOS = CACHE / "photos_1mp_v1"


def cli_pass(home: Path, folder: Path, *args: str, embedder: str = TINY_EMBEDDER) -> tuple[float, dict[str, Any]]:
    """``phototag index FOLDER ARGS --json`` in a fresh process, with the tiny tagger and ``embedder`` (the tiny
    one unless given): (wall seconds, its summary)."""
    return phototag(home, folder, "--batch-size", BATCH, *args,
                    env={"PHOTOTAG_TAGGER": TINY_TAGGER, "PHOTOTAG_EMBEDDER": embedder})


def timed_passes(photos: list[Path], repeat: int, *args: str,
                 embedder: str = TINY_EMBEDDER) -> list[tuple[float, dict[str, Any]]]:
    """``repeat`` first passes over hard links to ``photos`` (a fresh catalog each)."""
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="phototag-ray-", dir=CACHE) as name:
            folder = Path(name) / "photos"
            folder.mkdir()
            for photo in photos:
                os.link(photo, folder / photo.name)
            seconds, summary = cli_pass(bench_home(Path(name)), folder, *args, embedder=embedder)
        if summary["tagged"] != len(photos):
            raise RuntimeError(f"expected {len(photos)} photos tagged: {summary}")
        runs.append((seconds, summary))
        print(f"  {' '.join(args) or 'local'}: {len(photos) / seconds:.2f} photos/s ({seconds:.1f} s)", flush=True)
    return runs


def row(label: str, photos: list[Path], repeat: int, *args: str) -> str:
    """A table row: ``repeat`` passes over ``photos``, and one over two of them, whose time is the pass's fixed
    cost (process, Ray job and actor starts, model loads): the difference gives the rate once running."""
    runs = timed_passes(photos, repeat, *args)
    fixed, _ = timed_passes(photos[:2], 1, *args)[0]
    seconds = statistics.median(seconds for seconds, _ in runs)
    rates = [len(photos) / seconds for seconds, _ in runs]
    identify, decode = runs[0][1]["read"]["identify"], runs[0][1]["read"]["decode"]
    return (f"| {label} | {statistics.median(rates):.2f} | {max(rates):.2f} | {seconds:.1f} | {fixed:.1f} | "
            f"{(len(photos) - 2) / (seconds - fixed):.2f} | "
            f"{identify['bytes_per_photo'] / 1e6:.2f} MB, {identify['mb_per_s']:.1f} MB/s | "
            f"{decode['bytes_per_photo'] / 1e6:.2f} MB, {decode['mb_per_s']:.1f} MB/s |")


def bench_engines(photos: list[Path], repeat: int) -> list[str]:
    import ray

    rows = []
    for workers in (0, 1):
        print(f"local engine, {workers} decode worker processes", flush=True)
        label = "local, decoding in its own process" if workers == 0 else "local, 1 decode worker process"
        rows.append(row(label, photos, repeat, "--workers", str(workers)))
    for actors in (1, 2):
        print(f"Ray engine, {actors} model actors, {actors + 1} CPUs", flush=True)
        ray.init(address="local", num_cpus=actors + 1, include_dashboard=False, logging_level=logging.WARNING)
        try:
            address = ray.get_runtime_context().gcs_address
            os.environ["PHOTOTAG_RAY_ACTORS"] = str(actors)
            label = f"Ray, {actors} model actor{'s' if actors > 1 else ''} + 1 CPU for tasks ({actors + 1} CPUs)"
            rows.append(row(label, photos, repeat, "--engine", "ray", "--ray-address", address))
        finally:
            os.environ.pop("PHOTOTAG_RAY_ACTORS", None)
            ray.shutdown()
    return ["| engine | photos/s (median) | best | pass s (median) | 2-photo pass s | photos/s once running | "
            "identify: read/photo, rate | decode: read/photo, rate |", "|---|---|---|---|---|---|---|---|", *rows]


def small_photos(count: int) -> list[Path]:
    """``count`` distinct 1.2 MP JPEGs (the 12 MP ones scaled to 1280x960), made once under bench/.cache: decoding
    one takes a few ms, so a pass's time is the models'."""
    from PIL import Image

    SMALL_PHOTOS.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in twelve_mp_photos(count):
        path = SMALL_PHOTOS / source.name
        if not path.exists():
            with Image.open(source) as image:
                image.resize((1280, 960), Image.Resampling.BICUBIC).save(path, quality=90, exif=image.getexif())
        paths.append(path)
    return paths


def one_core_rate() -> float:
    """Photos/s of CLIP ViT-B/16 (``SCALING_EMBEDDER``) on one core, batches of ``BATCH``: what one CPU model actor
    (one thread, as Ray gives an actor holding one CPU) can reach at best."""
    import time

    import torch

    from ram_model.store import ModelStore

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        embedder = ModelStore(CACHE).load_embedder(SCALING_EMBEDDER, "cpu", "auto")
        pixels = torch.randn(BATCH, 3, 224, 224)
        with torch.inference_mode():
            embedder.embed_image_tensors(pixels)
            begin = time.perf_counter()
            for _ in range(3):
                embedder.embed_image_tensors(pixels)
            return 3 * BATCH / (time.perf_counter() - begin)
    finally:
        torch.set_num_threads(threads)


def bench_scaling(photos: list[Path], repeat: int) -> list[str]:
    """Photos/s against the number of model actors, where the models are the work: ``photos`` small JPEGs, the
    full-size CLIP ViT-B/16 (random weights: its real compute) and the tiny tagger. Ray with 1, 2 and 3 CPU model
    actors (each one thread) and one CPU more for the tasks, and the local engine (torch on both cores); the rate
    once running is the difference between a pass over ``photos`` and one over two of them (the fixed costs)."""
    import ray

    ideal = one_core_rate()
    print(f"CLIP ViT-B/16 on one core: {ideal:.2f} photos/s", flush=True)
    rows, first = [], None
    for actors in (0, 1, 2, 3):
        label = "local engine (torch on 2 cores)" if not actors else \
            f"Ray, {actors} model actor{'s' if actors > 1 else ''} ({actors + 1} CPUs)"
        print(label, flush=True)
        args: tuple[str, ...] = ("--workers", "0")
        if actors:
            ray.init(address="local", num_cpus=actors + 1, include_dashboard=False, logging_level=logging.WARNING)
            os.environ["PHOTOTAG_RAY_ACTORS"] = str(actors)
            args = ("--engine", "ray", "--ray-address", ray.get_runtime_context().gcs_address)
        try:
            runs = timed_passes(photos, repeat, *args, embedder=SCALING_EMBEDDER)
            fixed = statistics.median(seconds for seconds, _ in timed_passes(photos[:2], repeat, *args,
                                                                              embedder=SCALING_EMBEDDER))
        finally:
            if actors:
                os.environ.pop("PHOTOTAG_RAY_ACTORS", None)
                ray.shutdown()
        seconds = statistics.median(seconds for seconds, _ in runs)
        running = (len(photos) - 2) / (seconds - fixed)
        if actors == 1:
            first = running
        versus = f"{running / first:.2f}x" if actors and first else ""
        cores = f"{min(actors, os.cpu_count() or 1) * ideal:.2f}" if actors else ""
        rows.append(f"| {label} | {len(photos) / seconds:.2f} | {seconds:.1f} | {fixed:.1f} | {running:.2f} | "
                    f"{versus} | {cores} |")
    return [f"CLIP ViT-B/16 alone on one core (one thread, batches of {BATCH}): {ideal:.2f} photos/s.", "",
            "| engine | photos/s (whole pass) | pass s (median) | 2-photo pass s | photos/s once running | "
            "once running vs 1 actor | the actors' cores at the one-core rate |", "|---|---|---|---|---|---|---|",
            *rows]


def bench_driver(photos: int) -> list[str]:
    from bench_store import one_pass

    with tempfile.TemporaryDirectory(prefix="phototag-store-") as name:
        seconds, stored, count = one_pass(Path(name), photos)
    return ["| photos | whole pass, photos/s | `_store_results` alone, photos/s (ms/photo) |", "|---|---|---|",
            f"| {count:,} | {count / seconds:.0f} | {count / stored:.0f} ({stored / count * 1e3:.2f}) |"]


def bench_raw(jpeg: Path) -> list[str]:
    from indexer.pipeline import DecodeJob, DecodeSettings, counting_reads, decode, identify
    from tests.conftest import write_dng

    settings = DecodeSettings(384, None)
    lines = ["| file | size | identify reads | decode reads (tagger input) |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="phototag-raw-") as name:
        warm = write_dng(Path(name) / "warm.NEF")  # the stages' modules are read once per process: not counted
        identify(str(warm))
        decode(DecodeJob(0, str(warm), True, False), settings)
        raw = write_dng(Path(name) / "IMG_0001.NEF", seed=1)
        for label, path in (("DNG: 160x120 preview, 4000x3000 16-bit sensor data", raw), ("12 MP JPEG", jpeg)):
            _, identified = counting_reads(identify, str(path))
            _, decoded = counting_reads(lambda job: decode(job, settings), DecodeJob(1, str(path), True, False))
            lines.append(f"| {label} | {path.stat().st_size / 1e6:.2f} MB | {identified / 1e6:.2f} MB | "
                         f"{decoded / 1e6:.3f} MB |")
    return lines


NOTES = "<!-- written by hand from here on: bench_ray.py keeps it when it rewrites the tables above -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40,
                        help="12 MP JPEGs per pass (above 32, a local pass decodes in its worker processes)")
    parser.add_argument("--repeat", type=int, default=2, help="passes per row (median and best reported)")
    parser.add_argument("--store-photos", type=int, default=5000, help="photos of the driver's store pass")
    parser.add_argument("--scaling-photos", type=int, default=120, help="small JPEGs per pass of the scaling rows")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    ensure_models(("ram_plus_tiny", TINY_TAGGER), ("clip_tiny", TINY_EMBEDDER))
    photos = twelve_mp_photos(args.photos)
    engines = bench_engines(photos, args.repeat)
    ensure_models(("clip_vit_b16", SCALING_EMBEDDER))
    scaling = bench_scaling(small_photos(args.scaling_photos), args.repeat)
    driver = bench_driver(args.store_photos)
    raw = bench_raw(photos[0])
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    command = (f"`.venv/bin/python bench/bench_ray.py --photos {args.photos} --repeat {args.repeat} "
               f"--store-photos {args.store_photos} --scaling-photos {args.scaling_photos}`")
    text = "\n".join([
        "# The Ray engine on one machine", "",
        f"Written by `bench/bench_ray.py` (what each table measures: its docstring). Machine: {cpu_name()}, "
        f"{os.cpu_count()} cores; {date.today().isoformat()}. Command: {command}; load average at the end {load} "
        "(1/5/15 min).", "",
        f"## Photos/s: first passes over {args.photos} 12 MP JPEGs, tiny random models, `phototag index` end to end",
        "", *engines, "",
        f"## The scaling curve: model actors, where the models are the work ({args.scaling_photos} 1.2 MP JPEGs, "
        "CLIP ViT-B/16)", "", *scaling, "",
        "## The driver's ceiling: storing results, nothing computed", "", *driver, "",
        "## Bytes one photo costs", "", *raw, ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = args.out.read_text(encoding="utf-8").partition(NOTES)[2] if args.out.exists() else ""
    args.out.write_text(text + (NOTES + kept if kept else ""), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
