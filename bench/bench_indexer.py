"""Indexer benchmarks on CPU: decode speed, end-to-end photos/s, a no-op re-scan of 100k files, catalog size.

    .venv/bin/python bench/bench_indexer.py                         # every section (about 10 minutes on 2 cores)
    .venv/bin/python bench/bench_indexer.py --only rescan,size      # some sections; the others stay in the file
    .venv/bin/python bench/bench_indexer.py --only e2e --repeat 1 --e2e-photos 8

decode   12 MP JPEGs (4000x3000, quality 90, made once under bench/.cache from ../shared/photos,
         upscaled with sensor-like noise so they weigh what a camera's do, about 3.5 MB; every
         fourth has EXIF orientation 6), in one process with one torch thread, as a decode worker
         runs: full vs reduced (draft) decode, the whole decode stage (``indexer.pipeline.decode``:
         decode, the tagger's 384 preprocess and CLIP's 224 transform) with and without the reduced
         decode, and the identify stage (blake2b + metadata).
e2e      a first pass over those JPEGs with the full-size random RAM++ Swin-L/384 and CLIP ViT-B/16
         bundles (made once under bench/.cache), through ``Indexer.run`` in this process, its time
         split by step, and through ``phototag index`` (wall time, start-up and model loading
         included); ``--workers`` 0 and 1, precision ``auto``, batch 8.
rescan   a no-op pass over 100k unchanged 100-byte .jpg files in 1000 folders whose rows were put
         straight into a catalog (status indexed, the versions of the models passed), with tiny
         random models: first with photo rows only, then on the full catalog of the size section
         (a pass with no model work neither loads nor saves its 100k-vector FAISS file, nor loads the
         models). ``Indexer.run`` split by step,
         and ``phototag index``.
size     that full catalog: the 4585 built-in tags, 20 model tags and one 512-d float32 embedding
         per photo; the database after a WAL checkpoint and after VACUUM, by table, and the FAISS file.

Random weights: the speeds are real, the tags meaningless. Every timing is taken ``--repeat``
times (default 3) and the tables give the median and the best, since the machine is shared.
The step split comes from wrappers put on one ``Indexer`` instance; no indexer code is changed.
Results go to bench/results/indexer_cpu.md, one section per benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from _machine import cpu_name  # noqa: E402 - bench/ is the script folder, first on sys.path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_tagger import BUNDLE as TAGGER_BUNDLE  # noqa: E402
from bench_tagger import CACHE, ensure_bundle  # noqa: E402

EMBEDDER_BUNDLE = "bench_clip_random"
# Tiny random models for the re-scan; the tagger's name makes its version string as long as the
# real RAM++'s ("ram_plus_swin_l_384@497c1788e87d"), which every photo_tags row repeats.
TINY_TAGGER, TINY_EMBEDDER = "bench_ram_plus_tiny_random", "bench_clip_tiny_random"
LIBRARY = REPO.parent / "shared" / "photos" / "library"
PHOTOS_12MP = CACHE / "photos_12mp_v1"
OUT = HERE / "results" / "indexer_cpu.md"
SECTIONS = ("decode", "e2e", "rescan", "size")
TITLE = "# Indexer on CPU (random weights)"

PHOTO_SIZE = (4000, 3000)
JPEG_QUALITY = 90
DRAFT_SIZE = 384
BATCH_SIZE = 8
RESCAN_AIM_SECONDS = 15.0  # the aim for a no-op pass over 100k files on this machine
TAGS_PER_PHOTO = 20
EMBED_DIM = 512
STAMP = "2024-05-01 03:00:00.000000"  # SQLAlchemy's DATETIME text format on SQLite
PER = 100_000  # sizes are given per this many photos


# --- helpers ---------------------------------------------------------------------------------------
def median_best(values: Sequence[float]) -> tuple[float, float]:
    return statistics.median(values), min(values)


def machine() -> str:
    import torch

    cpu = cpu_name()
    return f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__}, Python {platform.python_version()}"


def header(key: str, title: str, repeat: int | None) -> list[str]:
    command = " ".join(["bench/bench_indexer.py", *sys.argv[1:]])
    timings = ""
    if repeat:
        # Other work on the machine slows some runs: the load average says how busy it was meanwhile.
        load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
        timings = f" Timings: median and best of {repeat} runs; load average at the end {load} (1/5/15 min)."
    return [f"## {key}: {title}", "",
            f"Machine: {machine()}. Command: `.venv/bin/python {command}` ({date.today().isoformat()}).{timings}",
            ""]


def ensure_models(*names: tuple[str, str]) -> None:
    """Random-weight bundles under bench/.cache, made once: (arch, name) pairs."""
    from ram_model.store import ModelStore

    store = ModelStore(CACHE)
    for arch, name in names:
        if arch == "ram_plus_swin_l_384" and name == TAGGER_BUNDLE:
            ensure_bundle()
        elif not store.exists(name):
            print(f"writing random-weight {arch} bundle {name} to {CACHE} (once)", file=sys.stderr)
            store.create_random(arch, name, seed=0)


def phototag(home: Path, *args: Any, env: dict[str, str] | None = None) -> tuple[float, dict]:
    """Run ``phototag index ARGS --json`` as a user would (``env``: more variables); returns (wall seconds,
    summary)."""
    script = Path(sys.executable).with_name("phototag")
    launcher = [str(script)] if script.exists() else [sys.executable, str(REPO / "main.py")]
    command = [*launcher, "index", *map(str, args), "--json"]
    env = os.environ | {"PHOTOTAG_HOME": str(home), "PHOTOTAG_DEVICE": "cpu", "PHOTOTAG_AUTO_DOWNLOAD": "false"} \
        | (env or {})
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)


def bench_home(tmp: Path) -> Path:
    """A PHOTOTAG_HOME whose model store is bench/.cache."""
    home = tmp / "home"
    home.mkdir()
    (home / "models").symlink_to(CACHE, target_is_directory=True)
    return home


def expect(summary: dict, **counts: int) -> None:
    wrong = {key: (summary[key], value) for key, value in counts.items() if summary[key] != value}
    if wrong:
        raise RuntimeError(f"unexpected pass summary (got, wanted): {wrong}; full summary: {summary}")


def seconds_share(seconds: float, total: float) -> str:
    return f"{seconds:.2f} ({100 * seconds / total:.0f}%)" if total > 0 else f"{seconds:.2f}"


# --- timing one Indexer pass by step ----------------------------------------------------------------
STEPS = ("_start_run", "_sync_vocabulary", "_open_vectors", "_scan", "_known", "_reconcile", "_identify",
         "_model_work", "_save_vectors", "_finish_run")


@dataclass
class PassTimes:
    """Seconds spent in each step of one ``Indexer.run`` (``wait:FUNCTION``: waiting on a stage's results)."""

    wall: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, seconds: float) -> None:
        self.steps[key] = self.steps.get(key, 0.0) + seconds

    def get(self, key: str) -> float:
        return self.steps.get(key, 0.0)


@contextmanager
def timed_pass(runner: Any) -> Iterator[PassTimes]:
    """Time the steps of the Indexer ``runner``'s next run, the waits on its stage workers and each model call."""
    import indexer.engine as engine_module

    times = PassTimes()

    def timed(key: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                times.add(key, time.perf_counter() - start)

        return wrapper

    original_stages = engine_module.Stages

    class TimedStages(original_stages):  # type: ignore[misc, valid-type]
        stage = "?"

        def map(self, function: Callable[[Any], Any], items: Any, lookahead: int = 64, **options: Any) -> Iterator[Any]:
            name = getattr(function, "__name__", None) or function.func.__name__  # decode is a partial
            self.stage = name
            results = super().map(function, items, lookahead, **options)
            while True:
                start = time.perf_counter()
                try:
                    result = next(results)
                except StopIteration:
                    return
                finally:
                    times.add(f"wait:{name}", time.perf_counter() - start)
                yield result

        def close(self) -> None:
            start = time.perf_counter()
            try:
                super().close()
            finally:
                times.add(f"close:{self.stage}", time.perf_counter() - start)

    # What the model stage calls (indexer.pipeline.ModelStage.compute); on a CPU they return when done.
    models = [(runner.tagger, "probs_on_device"), (runner.embedder, "embeddings_on_device")]
    engine_module.Stages = TimedStages
    for name in STEPS:
        setattr(runner, name, timed(name, getattr(runner, name)))
    for model, method in models:
        setattr(model, method, timed(method, getattr(model, method)))
    try:
        yield times
    finally:
        engine_module.Stages = original_stages
        for name in STEPS:
            delattr(runner, name)
        for model, method in models:
            delattr(model, method)


def timed_run(runner: Any, roots: list[Path]) -> tuple[PassTimes, dict]:
    with timed_pass(runner) as times:
        start = time.perf_counter()
        summary = runner.run(roots)
        times.wall = time.perf_counter() - start
    return times, summary.counts()


def median_pass(passes: list[PassTimes]) -> PassTimes:
    return sorted(passes, key=lambda p: p.wall)[(len(passes) - 1) // 2]


# --- 12 MP photos -----------------------------------------------------------------------------------
def twelve_mp_photos(count: int) -> list[Path]:
    """``count`` distinct camera-like 12 MP JPEGs, made once under bench/.cache."""
    sources = sorted(p for p in LIBRARY.rglob("*") if p.is_file() and p.parent.name != "orientation")
    PHOTOS_12MP.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = PHOTOS_12MP / f"IMG_{number:04d}.jpg"
        if not path.exists():
            print(f"writing {path.name} (12 MP, from {sources[number % len(sources)].name})", file=sys.stderr)
            _synthesise(sources[number % len(sources)], path, number)
        paths.append(path)
    return paths


def _synthesise(source: Path, target: Path, seed: int) -> None:
    import numpy as np
    from PIL import ExifTags, Image

    from ram_model.preprocess import open_image

    image = open_image(source)
    width, height = image.size
    if width * 3 > height * 4:  # centre crop to 4:3, then up to 4000x3000
        side = height * 4 // 3
        image = image.crop(((width - side) // 2, 0, (width - side) // 2 + side, height))
    else:
        side = width * 3 // 4
        image = image.crop((0, (height - side) // 2, width, (height - side) // 2 + side))
    pixels = np.asarray(image.resize(PHOTO_SIZE, Image.Resampling.BICUBIC), dtype=np.float32)
    # An upscaled picture is smooth and compresses to 1.5 MB; sensor-like noise (mostly luminance)
    # brings it to the 3-4 MB of a camera's 12 MP JPEG, and gives every file distinct bytes.
    rng = np.random.default_rng(seed)
    pixels += rng.standard_normal(pixels.shape[:2], dtype=np.float32)[..., None] * 6
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * 2
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Phototag", "Bench 12MP"
    exif[ExifTags.Base.Orientation] = 6 if seed % 4 == 3 else 1
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = f"2023:07:{1 + seed % 28:02d} 12:00:00"
    temporary = target.with_suffix(".tmp")
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(temporary, "JPEG", quality=JPEG_QUALITY,
                                                                    exif=exif)
    os.replace(temporary, target)


# --- decode -----------------------------------------------------------------------------------------
def bench_decode(photos: list[Path], repeat: int) -> list[str]:
    import torch
    from PIL import Image

    from indexer.pipeline import Decoded, DecodeJob, DecodeSettings, Identified, decode, identify
    from ram_model.preprocess import open_image
    from ram_model.store import ModelStore

    ensure_models(("clip_vit_b16", EMBEDDER_BUNDLE))
    transform = ModelStore(CACHE).load_embedder(EMBEDDER_BUNDLE).transform
    jobs = [DecodeJob(number, str(path), True, True) for number, path in enumerate(photos)]

    def stage(draft: bool) -> Callable[[DecodeJob], None]:
        settings = DecodeSettings(DRAFT_SIZE, transform, draft)

        def run(job: DecodeJob) -> None:
            result = decode(job, settings)
            if not isinstance(result, Decoded):
                raise RuntimeError(f"decode failed: {result}")

        return run

    def identify_one(job: DecodeJob) -> None:
        result = identify(job.path)
        if not isinstance(result, Identified) or result.error is not None:
            raise RuntimeError(f"identify failed: {result}")

    modes: list[tuple[str, Callable[[DecodeJob], Any]]] = [
        ("full decode: `open_image(path, draft_size=None)`", lambda job: open_image(job.path, draft_size=None)),
        (f"reduced decode: `open_image(path, draft_size={DRAFT_SIZE})`",
         lambda job: open_image(job.path, draft_size=DRAFT_SIZE)),
        ("decode stage, reduced (default): `pipeline.decode`, decode + 384 preprocess + CLIP 224", stage(True)),
        ("decode stage, full decode (`PHOTOTAG_DRAFT_DECODE=false`)", stage(False)),
        ("identify stage: `pipeline.identify`, blake2b + metadata (no pixels)", identify_one),
    ]
    sizes = {draft: open_image(photos[0], draft_size=draft).size for draft in (None, DRAFT_SIZE)}
    megabytes = statistics.mean(p.stat().st_size for p in photos) / 1e6
    rotated = sum(Image.open(p).getexif().get(0x0112, 1) != 1 for p in photos)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a decode worker (pipeline._init_worker)
    results = []
    try:
        for path in photos:
            path.read_bytes()  # into the page cache: this times decoding, not the disk
        for label, function in modes:
            per_photo = []
            for _ in range(repeat):
                start = time.perf_counter()
                for job in jobs:
                    function(job)
                per_photo.append((time.perf_counter() - start) / len(jobs))
            results.append((label, *median_best(per_photo)))
            print(f"decode: {label}: {results[-1][1] * 1000:.0f} ms/photo", file=sys.stderr)
    finally:
        torch.set_num_threads(threads)
    full = results[0][1]
    lines = header("decode", "12 MP JPEG decode, one process, one core", repeat) + [
        f"{len(photos)} distinct 4000x3000 JPEGs, quality {JPEG_QUALITY}, {megabytes:.1f} MB on average, "
        f"{rotated} with EXIF orientation 6 (decoded upright); files in the page cache; one torch thread. "
        f"The reduced decode gives {sizes[DRAFT_SIZE][0]}x{sizes[DRAFT_SIZE][1]} instead of "
        f"{sizes[None][0]}x{sizes[None][1]} (JPEG scale 1/4: 1/8 would fall under 384 px).",
        "",
        "| step | ms/photo (median) | best | photos/s per core (median) | vs full decode |",
        "|---|---|---|---|---|",
    ]
    for label, median, best in results:
        lines.append(f"| {label} | {median * 1000:.0f} | {best * 1000:.0f} | {1 / median:.1f} | "
                     f"{full / median:.2f}x |")
    return lines


# --- end to end -------------------------------------------------------------------------------------
def e2e_table(count: int, repeat: int, passes: dict[int, list[PassTimes]], cli: dict[int, list[float]],
              loads: tuple[float, float], dtype: str, threads: int) -> list[str]:
    lines = header("e2e", f"first pass over {count} 12 MP JPEGs, full-size RAM++ and CLIP (random)", repeat) + [
        f"{count} distinct 12 MP JPEGs (those of the decode section) into a new catalog: identify (hash, "
        f"metadata), decode, RAM++ Swin-L/384 ({dtype}, precision auto) and CLIP ViT-B/16 (fp32) in batches of "
        f"{BATCH_SIZE}, {threads} torch threads, persist. Model loading (not in the Indexer.run rows): RAM++ "
        f"{loads[0]:.1f} s, CLIP {loads[1]:.1f} s. The split is that of the median Indexer.run; decode is the "
        "time the main process waited for decoded photos (with a worker: what the model work did not hide, "
        "plus the start of the worker process); identify (hash, metadata, rows) likewise includes the start of its "
        "own worker; persist is the rest of the model stage (transactions, tags, embeddings, FAISS adds); pool stop "
        "is the shutdown of the two worker pools; other is setup, scan, reconcile and the FAISS save. The "
        "`phototag index` rows are wall times of the command: start-up, imports and model loading included.",
        "",
        "| run | wall s (median) | best | photos/s (median) | s/photo | identify | decode | RAM++ | CLIP | persist "
        "| pool stop | other |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workers, runs in passes.items():
        median, best = median_best([p.wall for p in runs])
        split = median_pass(runs)
        decode_wait, tagging, embedding = split.get("wait:decode"), split.get("probs_on_device"), split.get(
            "embeddings_on_device")
        persist = split.get("_model_work") - decode_wait - tagging - embedding - split.get("close:decode")
        identify = split.get("_identify") - split.get("close:identify")
        stop = split.get("close:decode") + split.get("close:identify")
        other = split.wall - split.get("_model_work") - split.get("_identify")
        cells = [seconds_share(s, split.wall)
                 for s in (identify, decode_wait, tagging, embedding, persist, stop, other)]
        lines.append(f"| `Indexer.run`, workers {workers} | {median:.1f} | {best:.1f} | {count / median:.2f} | "
                     f"{median / count:.2f} | " + " | ".join(cells) + " |")
    for workers, walls in cli.items():
        median, best = median_best(walls)
        lines.append(f"| `phototag index --workers {workers}` | {median:.1f} | {best:.1f} | {count / median:.2f} | "
                     f"{median / count:.2f} |" + " |" * 7)
    return lines


def bench_e2e(photos: list[Path], repeat: int) -> list[str]:
    import torch

    from indexer.catalog import Catalog
    from indexer.index import Indexer
    from ram_model.store import ModelStore

    ensure_models(("ram_plus_swin_l_384", TAGGER_BUNDLE), ("clip_vit_b16", EMBEDDER_BUNDLE))
    store = ModelStore(CACHE)
    start = time.perf_counter()
    tagger = store.load_tagger(TAGGER_BUNDLE, device="cpu", dtype="auto")
    tagger_load = time.perf_counter() - start
    start = time.perf_counter()
    embedder = store.load_embedder(EMBEDDER_BUNDLE)
    embedder_load = time.perf_counter() - start
    dtype = str(tagger.dtype).removeprefix("torch.")
    count = len(photos)
    wanted = {"new": count, "tagged": count, "embedded": count, "failed": 0}
    passes: dict[int, list[PassTimes]] = {}
    cli: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="phototag-bench-") as name:
        tmp = Path(name)
        library = tmp / "library"
        library.mkdir()
        for path in photos:
            try:
                os.link(path, library / path.name)
            except OSError:
                shutil.copy2(path, library / path.name)
        home = bench_home(tmp)
        # Round-robin over the four configurations, so that other work on the machine hits them alike.
        for number in range(repeat):
            for workers in (0, 1):
                folder = tmp / f"catalog-{workers}-{number}"
                with Catalog.open(folder) as catalog, catalog.writer():
                    runner = Indexer(catalog, tagger, embedder, workers=workers, batch_size=BATCH_SIZE)
                    times, summary = timed_run(runner, [library])
                expect(summary, **wanted)
                shutil.rmtree(folder)
                passes.setdefault(workers, []).append(times)
                print(f"e2e: Indexer.run, workers {workers}: {times.wall:.1f} s", file=sys.stderr)
            for workers in (0, 1):
                folder = tmp / f"cli-catalog-{workers}-{number}"
                seconds, summary = phototag(home, library, "--catalog", folder, "--workers", workers,
                                            "--tagger", TAGGER_BUNDLE, "--embedder", EMBEDDER_BUNDLE)
                expect(summary, **wanted)
                shutil.rmtree(folder)
                cli.setdefault(workers, []).append(seconds)
                print(f"e2e: phototag index --workers {workers}: {seconds:.1f} s", file=sys.stderr)
    return e2e_table(count, repeat, passes, cli, (tagger_load, embedder_load), dtype, torch.get_num_threads())


# --- a 100k-file library whose catalog already knows every file ---------------------------------------
PHOTO_COLUMNS = ("path", "size", "mtime_ns", "content_hash", "format", "width", "height", "orientation", "taken_at",
                 "camera_make", "camera_model", "gps_lat", "gps_lon", "status", "attempts", "tagger_version",
                 "embedder_version", "first_seen", "last_seen", "indexed_at")


@dataclass
class BigLibrary:
    """Small files on disk and a catalog holding a current, indexed row for each (no model ever ran)."""

    root: Path
    catalog: Path
    count: int
    folders: int
    tagger_version: str
    embedder_version: str
    notes: list[str] = field(default_factory=list)


def make_library(tmp: Path, count: int, folders: int, tagger_version: str, embedder_version: str) -> BigLibrary:
    from indexer.catalog import Catalog
    from indexer.scan import scan
    from ram_model.vocab import builtin_vocabulary

    root, catalog = tmp / "library", tmp / "catalog"
    start = time.perf_counter()
    payload = bytes(range(100))  # the scanner only stats: content does not matter
    per_folder = -(-count // folders)
    for number in range(count):
        event = number // per_folder
        folder = root / f"{2000 + event * 25 // folders}" / f"{event:04d} event"
        if number % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"IMG_{number:06d}.jpg").write_bytes(payload)
    found = list(scan([root]))  # the paths, sizes and mtimes exactly as a pass will see them
    made = time.perf_counter() - start
    start = time.perf_counter()
    Catalog.open(catalog).close()  # the schema, through the migrations
    vocabulary = builtin_vocabulary()
    rng = random.Random(0)
    with closing(sqlite3.connect(catalog / "catalog.db")) as db, db:
        db.executemany("INSERT INTO tags (name, name_zh, kind, threshold) VALUES (?, ?, 'builtin', ?)",
                       zip(vocabulary.names, [zh or None for zh in vocabulary.names_zh], vocabulary.thresholds,
                           strict=True))
        placeholders = ", ".join("?" * len(PHOTO_COLUMNS))
        db.executemany(f"INSERT INTO photos ({', '.join(PHOTO_COLUMNS)}) VALUES ({placeholders})",
                       (_photo_row(item.path, item.size, item.mtime_ns, number, rng, tagger_version, embedder_version)
                        for number, item in enumerate(found)))
    library = BigLibrary(root, catalog, len(found), folders, tagger_version, embedder_version)
    library.notes.append(f"{len(found):,} files made in {made:.0f} s, their rows inserted in "
                         f"{time.perf_counter() - start:.0f} s")
    if len(found) != count:
        raise RuntimeError(f"made {count} files but the scanner found {len(found)}")
    return library


def _photo_row(path: str, size: int, mtime_ns: int, number: int, rng: random.Random, tagger_version: str,
               embedder_version: str) -> tuple:
    """A photos row as a pass over a camera JPEG leaves it (metadata filled, a third with GPS)."""
    gps = (rng.uniform(-60, 70), rng.uniform(-180, 180)) if number % 3 == 0 else (None, None)
    taken = (f"20{10 + number % 14:02d}-{1 + number % 12:02d}-{1 + number % 28:02d} "
             f"{number % 24:02d}:{number % 60:02d}:{number * 7 % 60:02d}.000000")
    return (path, size, mtime_ns, rng.randbytes(32).hex(), "JPEG", 4000, 3000, 1, taken, "Canon", "Canon EOS 80D",
            *gps, "indexed", 0, tagger_version, embedder_version, STAMP, STAMP, STAMP)


def add_model_results(library: BigLibrary) -> None:
    """What the models would have left: TAGS_PER_PHOTO model tags and one unit embedding per photo."""
    from datetime import datetime

    import numpy as np

    from indexer.index import GENERATION_KEY
    from indexer.pipeline import batched
    from indexer.schema import SOURCE_MODEL, SUGGESTED, TAG_SOURCES, TAG_STATES, Microseconds, encode_vector

    # As the catalog stores them since migration 0006: codes for source and state, microseconds, float16.
    model, suggested = TAG_SOURCES.index(SOURCE_MODEL), TAG_STATES.index(SUGGESTED)
    stamp = Microseconds().process_bind_param(datetime.fromisoformat(STAMP), None)
    start = time.perf_counter()
    rng = random.Random(1)
    vector_rng = np.random.default_rng(1)
    with closing(sqlite3.connect(library.catalog / "catalog.db")) as db, db:
        tag_ids = [row[0] for row in db.execute("SELECT id FROM tags WHERE kind = 'builtin' ORDER BY id")]
        photo_ids = [row[0] for row in db.execute("SELECT id FROM photos ORDER BY id")]
        for chunk in batched(photo_ids, 10_000):
            vectors = vector_rng.standard_normal((len(chunk), EMBED_DIM), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            # Photo by photo, tags in vocabulary order, as Indexer._store_results writes them.
            db.executemany(
                "INSERT INTO photo_tags (photo_id, tag_id, score, source, state, model_version, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(photo_id, tag_id, rng.uniform(0.65, 1.0), model, suggested, library.tagger_version, stamp)
                 for photo_id in chunk for tag_id in sorted(rng.sample(tag_ids, TAGS_PER_PHOTO))])
            db.executemany("INSERT INTO embeddings (photo_id, model_version, dim, vector) VALUES (?, ?, ?, ?)",
                           [(photo_id, library.embedder_version, EMBED_DIM, encode_vector(vector))
                            for photo_id, vector in zip(chunk, vectors, strict=True)])
        # New embeddings make the FAISS file stale, as Indexer._bump_generation records.
        generation = int((db.execute("SELECT value FROM catalog_meta WHERE key = ?", (GENERATION_KEY,)).fetchone()
                          or ("0",))[0])
        db.execute("INSERT INTO catalog_meta (key, value) VALUES (?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (GENERATION_KEY, str(generation + 1)))
    library.notes.append(f"{len(photo_ids) * TAGS_PER_PHOTO:,} photo tags and {len(photo_ids):,} embeddings "
                         f"inserted in {time.perf_counter() - start:.0f} s")


# --- rescan -----------------------------------------------------------------------------------------
@dataclass
class RescanRuns:
    first: PassTimes  # the first pass on this catalog state (it may build the FAISS file)
    passes: list[PassTimes]
    cli: list[float]


def rescan_runs(library: BigLibrary, tagger: Any, embedder: Any, repeat: int, home: Path | None) -> RescanRuns:
    """No-op passes: ``Indexer.run`` once to settle, ``repeat`` times timed, then ``phototag index``."""
    from indexer.catalog import Catalog
    from indexer.index import Indexer

    wanted = {"unchanged": library.count, "new": 0, "changed": 0, "moved": 0, "missing": 0, "failed": 0,
              "tagged": 0, "embedded": 0}
    passes = []
    for _ in range(repeat + 1):
        with Catalog.open(library.catalog) as catalog, catalog.writer():
            times, summary = timed_run(Indexer(catalog, tagger, embedder, workers=0), [library.root])
        expect(summary, **wanted)
        passes.append(times)
        print(f"rescan: Indexer.run {times.wall:.1f} s", file=sys.stderr)
    walls = []
    for _ in range(repeat if home is not None else 0):
        seconds, summary = phototag(home, library.root, "--catalog", library.catalog, "--tagger", TINY_TAGGER,
                                    "--embedder", TINY_EMBEDDER)
        expect(summary, **wanted)
        walls.append(seconds)
        print(f"rescan: phototag index {seconds:.1f} s", file=sys.stderr)
    return RescanRuns(passes[0], passes[1:], walls)


RESCAN_COLUMNS = (("scan", "_scan"), ("load rows", "_known"), ("reconcile", "_reconcile"),
                  ("pending query", "_model_work"), ("FAISS load", "_open_vectors"), ("FAISS save", "_save_vectors"))


def rescan_table(library: BigLibrary, results: dict[str, RescanRuns], repeat: int) -> list[str]:
    lines = header("rescan", f"no-op pass over {library.count:,} unchanged files", repeat) + [
        f"{library.count:,} files of 100 bytes named .jpg in {library.folders:,} folders"
        " (the scanner only stats them) under a temporary folder, on local disk with their metadata in the "
        "page cache; a catalog with an indexed, current row for each (inserted directly: "
        f"{'; '.join(library.notes)}). Tiny random models ({TINY_TAGGER}, {TINY_EMBEDDER}: the pass does no model "
        "work). `Indexer.run` after one settling pass (shown as 'first pass'), split by step; `phototag index ROOT` "
        "is the command's wall time (start-up, imports and catalog open included; no model is loaded). 'photo rows "
        "only': the catalog has no tags or embeddings; 'full': the catalog of the size section (20 tags and a "
        f"512-d embedding per photo; a pass with no model work leaves its {library.count:,}-vector FAISS file "
        "alone and loads no model). "
        f"Aim: under {RESCAN_AIM_SECONDS:.0f} s.",
        "",
        "| catalog | run | wall s (median) | best | " + " | ".join(name for name, _ in RESCAN_COLUMNS) + " | other |",
        "|---|---|---|---|" + "---|" * (len(RESCAN_COLUMNS) + 1),
    ]

    def split(times: PassTimes) -> list[str]:
        steps = [times.get(step) for _, step in RESCAN_COLUMNS]
        return [f"{s:.2f}" for s in [*steps, times.wall - sum(steps)]]

    def row(*cells: str) -> str:
        return "| " + " | ".join(cells) + " |"

    for state, runs in results.items():
        lines.append(row(state, "`Indexer.run`, first pass", f"{runs.first.wall:.2f}", "", *split(runs.first)))
        median, best = median_best([p.wall for p in runs.passes])
        lines.append(row(state, "`Indexer.run`", f"{median:.2f}", f"{best:.2f}", *split(median_pass(runs.passes))))
        if runs.cli:
            median, best = median_best(runs.cli)
            verdict = "under" if median < RESCAN_AIM_SECONDS else "OVER"
            lines.append(row(state, f"`phototag index ROOT` ({verdict} the aim)", f"{median:.2f}", f"{best:.2f}",
                             *[""] * (len(RESCAN_COLUMNS) + 1)))
    return lines


# --- size -------------------------------------------------------------------------------------------
def size_table(library: BigLibrary) -> list[str]:
    database = library.catalog / "catalog.db"
    vectors = library.catalog / "vectors.faiss"
    if not vectors.exists():  # no-op passes do not write it: build it as a search would
        from indexer.catalog import Catalog
        from indexer.index import GENERATION_KEY, embedding_rows
        from indexer.vectors import VectorIndex

        with Catalog.open(library.catalog, create=False) as catalog:
            with closing(sqlite3.connect(database)) as db:
                version, dim = db.execute("SELECT model_version, dim FROM embeddings LIMIT 1").fetchone()
            state = f"{version}:{catalog.get_meta(GENERATION_KEY, '0')}"
            VectorIndex.open(catalog.vectors_path, dim, state, lambda: embedding_rows(catalog, version, dim))
    with closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        written = database.stat().st_size
        counts = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("photos", "photo_tags", "tags", "embeddings")}
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        vacuumed = database.stat().st_size
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        parts = db.execute(
            "SELECT m.tbl_name, m.type, group_concat(m.name, ', '), SUM(d.pgsize), SUM(d.payload) FROM "
            "(SELECT name, SUM(pgsize) AS pgsize, SUM(payload) AS payload FROM dbstat GROUP BY name) AS d "
            "JOIN sqlite_master AS m ON m.name = d.name GROUP BY m.tbl_name, m.type ORDER BY 4 DESC").fetchall()
    faiss_bytes = vectors.stat().st_size
    scale = PER / library.count

    def mb(size: float) -> str:
        return f"{size / 1e6:.1f}"

    lines = header("size", f"catalog size per {PER:,} photos", None) + [
        f"The full catalog of the rescan section: {counts['photos']:,} photos (paths like "
        f"`/tmp/…/library/2012/0498 event/IMG_049800.jpg`, a content hash, camera metadata, a third with GPS), "
        f"{counts['tags']:,} built-in tags, {counts['photo_tags']:,} photo tags ({TAGS_PER_PHOTO} model tags per "
        f"photo, with a {len(library.tagger_version)}-character model version each, as the real RAM++'s), "
        f"{counts['embeddings']:,} embeddings ({EMBED_DIM}-d float32, {EMBED_DIM * 4}-byte blobs). "
        f"SQLite page size {page_size}. 'Pages' is what dbstat counts after VACUUM, 'payload' the bytes of the rows "
        "in them.",
        "",
        f"| part | rows | MB (pages) | MB payload | fill | MB per {PER:,} photos |",
        "|---|---|---|---|---|---|",
    ]
    small = [part for part in parts if part[0] not in counts]
    small_pages, small_payload = sum(p[3] for p in small), sum(p[4] for p in small)
    for table, kind, names, pages, payload in [p for p in parts if p[0] in counts] + [
            (", ".join(sorted({p[0] for p in small})), "other", "", small_pages, small_payload)]:
        label = f"{table} ({'rows' if kind == 'table' else 'indexes: ' + names})" if kind != "other" else table
        rows = f"{counts[table]:,}" if kind == "table" else ""
        lines.append(f"| {label} | {rows} | {mb(pages)} | {mb(payload)} | {payload / pages:.0%} | "
                     f"{mb(pages * scale)} |")
    lines += [
        f"| **catalog.db** after `PRAGMA wal_checkpoint(TRUNCATE)`, as written | | {mb(written)} | | | "
        f"{mb(written * scale)} |",
        f"| **catalog.db** after `VACUUM` | | {mb(vacuumed)} | | | {mb(vacuumed * scale)} |",
        f"| **vectors.faiss** | {counts['embeddings']:,} | {mb(faiss_bytes)} | | | {mb(faiss_bytes * scale)} |",
        f"| **total** (catalog.db after VACUUM + vectors.faiss) | | {mb(vacuumed + faiss_bytes)} | | | "
        f"**{mb((vacuumed + faiss_bytes) * scale)}** |",
    ]
    return lines


# --- results file -----------------------------------------------------------------------------------
def read_sections(out: Path) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    if out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            if line.startswith("## "):
                current = line[3:].split(":", 1)[0].strip()
                sections[current] = []
            if current is not None:
                sections[current].append(line)
    for lines in sections.values():
        while lines and not lines[-1].strip():
            lines.pop()
    return sections


INTRO = ("Written by `bench/bench_indexer.py` (what each section measures: its docstring); `--only` reruns some "
         "sections and keeps the others. Random-weight models: the speeds are real, the tags meaningless.")


def write_results(out: Path, sections: dict[str, list[str]], *, title: str = TITLE, intro: str = INTRO,
                  order: Sequence[str] = SECTIONS) -> None:
    """Replace these sections of ``out``, keep its others (in ``order``), under ``title`` and ``intro``."""
    kept = read_sections(out) | sections
    lines = [title, "", intro]
    for key in order:
        if key in kept:
            lines += ["", *kept[key]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({','.join(SECTIONS)})")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing (median and best reported)")
    parser.add_argument("--decode-photos", type=int, default=16, help="12 MP JPEGs decoded per run")
    parser.add_argument("--e2e-photos", type=int, default=16, help="12 MP JPEGs indexed per end-to-end run")
    parser.add_argument("--files", type=int, default=100_000, help="files of the re-scan library")
    parser.add_argument("--folders", type=int, default=1000, help="folders they are spread over")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := sorted(set(only) - set(SECTIONS)):
        parser.error(f"unknown section {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    if "decode" in only:
        write_results(args.out, {"decode": bench_decode(twelve_mp_photos(args.decode_photos), args.repeat)})
    if "e2e" in only:
        write_results(args.out, {"e2e": bench_e2e(twelve_mp_photos(args.e2e_photos), args.repeat)})
    if "rescan" in only or "size" in only:
        from ram_model.store import ModelStore

        ensure_models(("ram_plus_tiny", TINY_TAGGER), ("clip_tiny", TINY_EMBEDDER))
        store = ModelStore(CACHE)
        tagger = store.load_tagger(TINY_TAGGER, device="cpu", dtype="auto")
        embedder = store.load_embedder(TINY_EMBEDDER)
        with tempfile.TemporaryDirectory(prefix="phototag-bench-") as name:
            tmp = Path(name)
            library = make_library(tmp, args.files, args.folders, tagger.bundle.version, embedder.bundle.version)
            home = bench_home(tmp) if "rescan" in only else None
            results = {}
            if "rescan" in only:
                results["photo rows only"] = rescan_runs(library, tagger, embedder, args.repeat, home)
            add_model_results(library)
            # Without the rescan section, one pass still writes the FAISS file the size section measures.
            full = rescan_runs(library, tagger, embedder, args.repeat if "rescan" in only else 0, home)
            if "rescan" in only:
                results["full"] = full
                write_results(args.out, {"rescan": rescan_table(library, results, args.repeat)})
            if "size" in only:
                write_results(args.out, {"size": size_table(library)})
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
