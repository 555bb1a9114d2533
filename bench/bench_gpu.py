"""GPU benchmark: RAM++ Swin-L/384 and CLIP ViT-B/16 (random weights, full size) on one GPU.

    python bench/bench_gpu.py --sources DIR --out bench/results/gpu.md     # on the GPU machine
    .venv/bin/python bench/bench_gpu.py --device cpu --quick              # a dry run of every step

Measures, in one process and one session, what issue 8 asks for:
- the machine's fp16 matrix rate (an 8192³ product on random data): the ceiling shares refer to
  (and bf16's, for comparison);
- model only (inputs already on the GPU as uint8 pixels): photos/s and achieved TFLOP/s for RAM++
  alone, CLIP alone and both, eager fp16 (the product's GPU precision), then ``torch.compile``d;
  FLOPs counted by PyTorch's FlopCounterMode (matrix products, convolutions, attention) at batch 1;
- end to end from 12 MP JPEG files on disk through the product's own stages (decode workers →
  ``indexer.pipeline.ModelStage``): GPU decoding (nvJPEG) and CPU decoding (reduced-size decode in
  worker processes), with the peak GPU memory at the chosen batch size; and a whole
  ``Indexer.run`` into a new catalog (scan, identify, store, FAISS save included);
- the reference-style pipeline (fp32 weights and compute, batch 1, Pillow full decode, one photo at a
  time) on the same GPU, as the ratio to beat: end to end with its TFLOP/s and peak memory, and its
  models alone at batch 1;
- correctness: fp16 and bf16 on the GPU against fp32 on the CPU (same preprocessed inputs): tag
  F1 and logit differences; and GPU-decoded inputs against CPU-decoded ones (pixel differences, tag F1).

The 12 MP JPEGs are made from the photos in ``--sources`` (upscaled to 4000×3000 with a little sensor
noise, quality 92, a quarter of them with EXIF orientation 6), as camera files are.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from bench_draft import f1  # noqa: E402

from indexer.pipeline import DecodeJob, DecodeSettings, ModelStage, Stages, batched, decode  # noqa: E402
from ram_model import builtin_vocabulary  # noqa: E402
from ram_model.clip import create_embedder  # noqa: E402
from ram_model.preprocess import open_image, preprocess  # noqa: E402
from ram_model.store import random_tagger  # noqa: E402
from ram_model.tagger import Tagger  # noqa: E402

RESULTS: dict[str, object] = {}
LINES: list[str] = []
START = time.perf_counter()


def say(text: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f}s] {text}", flush=True)


def record(key: str, value: object, line: str | None = None) -> None:
    RESULTS[key] = value
    if line:
        LINES.append(line)
        say(line)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device, *, warmup: int = 2, seconds: float = 3.0,
          min_runs: int = 3) -> float:
    """Median seconds per call (device work included)."""
    for _ in range(warmup):
        function()
    sync(device)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        function()
        sync(device)
        times.append(time.perf_counter() - start)
        if len(times) >= 200:
            break
    return float(np.median(times))


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured TFLOP/s of an 8192³ matrix product in ``dtype`` on random data."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, seconds=2.0)
    return 2 * n**3 / seconds / 1e12


def count_flops(function: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        function()
    return float(counter.get_total_flops())


# --- models ---------------------------------------------------------------------------------------
def reduced_tagger(reference: Tagger, dtype: torch.dtype, device: torch.device) -> Tagger:
    """A copy of the fp32 tagger on ``device`` computing in ``dtype``, its matrix weights held in
    ``dtype`` as the model store loads them."""
    model = copy.deepcopy(reference.model)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in set(model.matmul_only_parameters()):
                parameter.data = parameter.data.to(dtype)
    return Tagger(model, reference.vocabulary, device=device, dtype=dtype)


def build_models(arch: str, embedder_arch: str, device: torch.device):  # noqa: ANN201
    """fp32 CPU tagger (the reference), fp16 tagger on ``device`` (the product's GPU precision),
    and CLIP in fp16 autocast on ``device``."""
    torch.manual_seed(0)
    model = random_tagger(arch)
    vocabulary = builtin_vocabulary() if model.num_class == 4585 else None
    if vocabulary is None:
        from ram_model.vocab import Vocabulary

        names = tuple(f"tag{i}" for i in range(model.num_class))
        vocabulary = Vocabulary(names, names, (0.5,) * model.num_class)
    reference = Tagger(model.eval(), vocabulary, device="cpu", dtype="fp32")
    fast = reduced_tagger(reference, torch.float16, device)
    embedder = create_embedder(embedder_arch).eval()
    fast_embedder = copy.deepcopy(embedder).to(device)
    fast_embedder.dtype = torch.float16  # as ModelStore.load_embedder sets it on a GPU
    return reference, fast, embedder, fast_embedder


# --- photos -----------------------------------------------------------------------------------------
def _make_one(args: tuple[str, str, int]) -> int:
    from PIL import Image

    source, target, index = args
    rng = np.random.default_rng(index)
    with Image.open(source) as image:
        image = image.convert("RGB")
        # A different crop of each source per file, so no two files decode to the same picture.
        w, h = image.size
        dx, dy = int(rng.integers(0, max(1, w // 10))), int(rng.integers(0, max(1, h // 10)))
        image = image.crop((dx, dy, w - max(1, w // 10) + dx, h - max(1, h // 10) + dy))
        big = image.resize((4000, 3000), Image.Resampling.BICUBIC)
    pixels = np.asarray(big, dtype=np.int16) + rng.normal(0, 3.0, (3000, 4000, 1)).astype(np.int16)
    big = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[274] = 6 if index % 4 == 3 else 1
    big.save(target, quality=92, exif=exif.tobytes())
    return Path(target).stat().st_size


def make_photos(sources: Path, folder: Path, count: int, workers: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(p for p in sources.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    jobs = [(str(found[i % len(found)]), str(folder / f"photo_{i:04d}.jpg"), i) for i in range(count)]
    with ProcessPoolExecutor(workers) as pool:
        sizes = list(pool.map(_make_one, jobs))
    record("jpeg_mean_bytes", float(np.mean(sizes)),
           f"made {count} 12 MP JPEGs from {len(found)} sources, mean {np.mean(sizes) / 1e6:.2f} MB")
    return [Path(job[1]) for job in jobs]


def distinct_copies(files: list[Path], folder: Path, count: int) -> list[Path]:
    """``count`` copies of ``files`` in turn in a new ``folder``, each with a few bytes after its end-of-image
    marker: they decode alike, but no two share a content hash (identical files would be computed once)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    copies = []
    for i in range(count):
        copy = folder / f"copy_{i:05d}.jpg"
        copy.write_bytes(files[i % len(files)].read_bytes() + i.to_bytes(4, "big"))
        copies.append(copy)
    return copies


# --- steps ------------------------------------------------------------------------------------------
def step_correctness(reference: Tagger, fast: Tagger, photos: list[Path], device: torch.device) -> None:
    """fp16 (the product's GPU precision) and bf16 on ``device`` against fp32 on the CPU."""
    size = reference.image_size
    inputs = torch.stack([preprocess(open_image(p), size) for p in photos])
    thresholds = torch.as_tensor(reference.thresholds)
    with torch.inference_mode():
        ref_logits = reference.model(inputs).float()
    ref_fired = torch.sigmoid(ref_logits) > thresholds
    # Random weights fire few tags at the official thresholds; a threshold at which 5 % of all tags
    # fire compares the two rankings where it matters as well.
    cut = torch.quantile(ref_logits.flatten()[:: max(1, ref_logits.numel() // 1_000_000)], 0.95)
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        tagger = fast if dtype == fast.dtype else reduced_tagger(reference, dtype, device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype):
            got_logits = tagger.model(inputs.to(device)).float().cpu()
        del tagger
        got_fired = torch.sigmoid(got_logits) > thresholds
        f1 = _f1(ref_fired, got_fired)
        f1_5 = _f1(ref_logits > cut, got_logits > cut)
        diff = (got_logits - ref_logits).abs()
        relative = ((got_logits - ref_logits).norm() / ref_logits.norm()).item()
        record(f"{name}_vs_fp32", {"f1": f1, "f1_top5pct": f1_5, "max_abs_logit": diff.max().item(),
                                   "mean_abs_logit": diff.mean().item(), "relative_l2": relative,
                                   "logit_std": ref_logits.std().item(), "fired_fp32": int(ref_fired.sum()),
                                   "fired": int(got_fired.sum()), "fired_top5pct": int((ref_logits > cut).sum()),
                                   "photos": len(photos)},
               f"{name} {device.type} vs fp32 CPU on {len(photos)} photos: tag F1 {f1:.4f} at the official "
               f"thresholds ({int(ref_fired.sum())} vs {int(got_fired.sum())} fired), {f1_5:.4f} at a 5 % "
               f"threshold ({int((ref_logits > cut).sum())} fired); |Δlogit| max {diff.max():.4f} mean "
               f"{diff.mean():.5f}, relative L2 {relative:.2e}")
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _f1(a: torch.Tensor, b: torch.Tensor) -> float:
    return f1(a.numpy(), b.numpy())


def step_decode_agreement(fast: Tagger, embedder, photos: list[Path], device: torch.device) -> None:  # noqa: ANN001
    from ram_model.accel import device_decodable
    from ram_model.preprocess import resized_pixels

    settings = DecodeSettings(fast.image_size, embedder.pixel_transform, draft=False, pixels=True, device_jpeg=True)
    stage = ModelStage(fast, embedder, settings, fast.device)
    jpegs = [p for p in photos if device_decodable(p) is not None]
    decoded = [decode(DecodeJob(i, str(p), True, True), settings) for i, p in enumerate(jpegs)]
    done, failures, _read = stage._device_decode(decoded)  # noqa: SLF001 - the step under test
    gpu = torch.stack([d.tagger_input.cpu() for d in done]).int()
    cpu = torch.stack([resized_pixels(open_image(p), fast.image_size) for p in jpegs]).int()
    cpu_draft = torch.stack([resized_pixels(open_image(p, draft_size=fast.image_size), fast.image_size)
                             for p in jpegs]).int()
    with torch.inference_mode():
        probs = [fast.probs_on_device(x.to(torch.uint8)).cpu() for x in (cpu, gpu, cpu_draft)]
    cut = torch.quantile(probs[0].flatten()[:: max(1, probs[0].numel() // 1_000_000)], 0.95)
    fired = [p > cut for p in probs]  # the 5 % threshold of step_correctness
    record("gpu_decode_agreement", {
        "photos": len(jpegs), "failures": len(failures), "bytes": sum(p.stat().st_size for p in jpegs),
        "pixel_mad_gpu": (gpu - cpu).abs().float().mean().item(), "pixel_max_gpu": (gpu - cpu).abs().max().item(),
        "pixel_mad_draft": (cpu_draft - cpu).abs().float().mean().item(),
        "f1_gpu": _f1(fired[0], fired[1]), "f1_draft": _f1(fired[0], fired[2]),
    }, f"decode agreement on {len(jpegs)} JPEGs vs Pillow full decode: GPU decode pixel MAD "
       f"{(gpu - cpu).abs().float().mean():.3f} (max {(gpu - cpu).abs().max()}), tag F1 {_f1(fired[0], fired[1]):.4f}; "
       f"CPU reduced decode MAD {(cpu_draft - cpu).abs().float().mean():.3f}, F1 {_f1(fired[0], fired[2]):.4f}")


def step_models(fast: Tagger, embedder, batch: int, device: torch.device, label: str, peak: float,
                flops: dict[str, float], seconds: float) -> None:  # noqa: ANN001
    generator = torch.Generator(device=device).manual_seed(1)
    tag_in = torch.randint(0, 256, (batch, 3, fast.image_size, fast.image_size), dtype=torch.uint8,
                           device=device, generator=generator)
    clip_in = torch.randint(0, 256, (batch, 3, embedder.image_size, embedder.image_size), dtype=torch.uint8,
                            device=device, generator=generator)
    runs = {"ram++": lambda: fast.probs_on_device(tag_in), "clip": lambda: embedder.embeddings_on_device(clip_in),
            "both": lambda: (fast.probs_on_device(tag_in), embedder.embeddings_on_device(clip_in))}
    for name, function in runs.items():
        per_call = timed(function, device, seconds=seconds)
        rate = batch / per_call
        work = {"ram++": flops["ram++"], "clip": flops["clip"], "both": flops["ram++"] + flops["clip"]}[name]
        tflops = work * rate / 1e12
        record(f"model_{label}_{name}_b{batch}", {"photos_per_s": rate, "tflops": tflops, "share": tflops / peak},
               f"model only, {label}, {name:5s} batch {batch}: {rate:8.1f} photos/s, {tflops:6.1f} TFLOP/s "
               f"({100 * tflops / peak:4.1f} % of measured peak)")


def step_decode_only(fast: Tagger, embedder, files: list[Path], batch: int, device: torch.device) -> None:  # noqa: ANN001
    """The GPU decoder alone, and with the resizing to both inputs, on one batch of files already read."""
    from torchvision.io import ImageReadMode, decode_jpeg

    from ram_model.accel import InputSpec, decode_on_device
    from ram_model.preprocess import IMAGENET_MEAN, IMAGENET_STD

    data = [p.read_bytes() for p in files[:batch]]
    encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
    specs = [InputSpec(fast.image_size, IMAGENET_MEAN, IMAGENET_STD, True),
             InputSpec(embedder.image_size, embedder.mean, embedder.std, False)]
    for label, function in (("decode", lambda: decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)),
                            ("decode+resize", lambda: decode_on_device(data, [1] * len(data), specs, device))):
        cpu = time.process_time()
        per_call = timed(function, device, warmup=1, seconds=2.0)
        runs = max(1, round(2.0 / per_call))
        cpu_share = (time.process_time() - cpu) / max(per_call * (runs + 1), 1e-9)
        record(f"gpu_{label}", {"photos_per_s": batch / per_call, "cpu_cores_busy": cpu_share},
               f"GPU JPEG {label:13s}: {batch / per_call:7.1f} photos/s (batch {batch}, about {cpu_share:.1f} CPU "
               f"cores busy)")


def step_end_to_end(fast: Tagger, embedder, files: list[Path], batch: int, workers: int, device: torch.device,
                    gpu_decode: bool, label: str, photos: int, share: float = 1.0) -> None:  # noqa: ANN001
    settings = DecodeSettings(fast.image_size, embedder.pixel_transform, draft=True, pixels=True,
                              device_jpeg=gpu_decode, device_share=share)
    stage = ModelStage(fast, embedder, settings, fast.device)
    jobs = [DecodeJob(i, str(files[i % len(files)]), True, True) for i in range(photos)]
    decoding = partial(decode, settings=settings)
    with Stages(workers) as stages:
        # Warm the workers (spawn + imports) and the models outside the timing.
        for _batch, _outputs in stage.run(batched(stages.map(decoding, jobs[:batch], lookahead=2 * batch), batch)):
            pass
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        count = failed = 0
        for batch_items, outputs in stage.run(batched(stages.map(decoding, jobs, lookahead=4 * batch), batch)):
            count += len(outputs.probs)
            failed += len(batch_items) - len(outputs.probs)
        sync(device)
        seconds = time.perf_counter() - start
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    record(f"e2e_{label}", {"photos_per_s": count / seconds, "photos": count, "failed": failed, "batch": batch,
                            "workers": workers, "gpu_mem_gib": memory, "gpu_share": share if gpu_decode else 0.0},
           f"end to end, {label}: {count / seconds:7.1f} photos/s ({count} photos in {seconds:.1f} s, "
           f"GPU decodes {share if gpu_decode else 0:.2f} of them, {failed} failed, batch {batch}, "
           f"{workers} decode workers, peak GPU memory {memory:.1f} GiB)")


def step_indexer(fast: Tagger, embedder, files: list[Path], photos: int, batch: int, workers: int,
                 work: Path) -> None:  # noqa: ANN001
    """The product's own number: ``Indexer.run`` over ``photos`` distinct files into a new catalog —
    scan, identify (hash, metadata), decoding, the models (as they are now: compiled after that
    step), storing in the catalog and the FAISS save. Each 12 MP file is copied with a few bytes
    after its end-of-image marker, so the copies decode alike but no two share a content hash
    (identical files would be computed once). The Indexer splits the JPEGs between the decoders by
    the eager rule: it did not compile the models itself."""
    import shutil
    from types import SimpleNamespace

    from indexer.catalog import Catalog
    from indexer.index import Indexer

    folder = work / "indexer_photos"
    shutil.rmtree(work / "indexer_catalog", ignore_errors=True)
    distinct_copies(files, folder, photos)
    fast.bundle = SimpleNamespace(version="bench_ram_plus@random")
    embedder.bundle = SimpleNamespace(version="bench_clip@random")
    with Catalog.open(work / "indexer_catalog") as catalog:
        indexer = Indexer(catalog, fast, embedder, workers=workers, batch_size=batch, compile=False)
        start = time.perf_counter()
        summary = indexer.run([folder])
        seconds = time.perf_counter() - start
    record("indexer_run", {"photos_per_s": summary.tagged / seconds, "photos": summary.tagged,
                           "failed": summary.failed, "seconds": seconds, "workers": workers},
           f"end to end, Indexer.run (scan, identify, decode, models, catalog, FAISS): "
           f"{summary.tagged / seconds:7.1f} photos/s ({summary.tagged} photos in {seconds:.1f} s, "
           f"{summary.failed} failed, {workers} workers)")


def step_reference(reference_model, embedder, vocabulary, files: list[Path], device: torch.device,
                   photos: int, peak: float, flops: dict[str, float], seconds: float) -> None:  # noqa: ANN001
    """The reference implementation's way: fp32, batch 1, Pillow full decode, one photo after another;
    then the same models alone at batch 1, as ``step_models`` measures the product's."""
    model = copy.deepcopy(reference_model)
    tagger = Tagger(model, vocabulary, device=device, dtype="fp32")
    clip = copy.deepcopy(embedder).to(device)
    size = tagger.image_size

    def one(path: Path) -> None:
        image = open_image(path)
        tagger.predict(preprocess(image, size).unsqueeze(0))
        clip.embed_images([image])

    one(files[0])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for path in files[1 : photos + 1]:
        one(path)
    sync(device)
    rate = photos / (time.perf_counter() - start)
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    tflops = rate * (flops["ram++"] + flops["clip"]) / 1e12
    record("reference_style", {"photos_per_s": rate, "photos": photos, "tflops": tflops, "share": tflops / peak,
                               "gpu_mem_gib": memory},
           f"reference style (fp32, batch 1, Pillow full decode, RAM++ + CLIP): {rate:.2f} photos/s, "
           f"{tflops:.2f} TFLOP/s ({100 * tflops / peak:.2f} % of measured peak), peak GPU memory {memory:.1f} GiB")
    step_models(tagger, clip, 1, device, "reference fp32", peak, flops, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sources", type=Path, default=REPO.parent / "shared" / "photos" / "library")
    parser.add_argument("--work", type=Path, default=Path("/tmp/phototag_bench_gpu"))
    parser.add_argument("--out", type=Path, help="markdown table (and a .json beside it)")
    parser.add_argument("--quick", action="store_true", help="tiny models, few photos: a dry run of every step")
    parser.add_argument("--files", type=int, default=256, help="distinct 12 MP JPEGs to make")
    parser.add_argument("--photos", type=int, default=2048, help="photos per end-to-end run")
    parser.add_argument("--batch", type=int, help="batch size (default: from free GPU memory)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--only-compiled", action="store_true", help="skip the eager measurements")
    parser.add_argument("--skip-reference", action="store_true", help="skip the reference-style run")
    parser.add_argument("--skip-indexer", action="store_true", help="skip the Indexer.run end-to-end pass")
    parser.add_argument("--skip-correctness", action="store_true", help="skip fp16/bf16 GPU vs fp32 CPU")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per model-only measurement")
    parser.add_argument("--shares", type=float, nargs="*", default=[],
                        help="GPU shares of the JPEGs to try end to end, compiled, besides the indexer's rule")
    args = parser.parse_args()
    device = torch.device(args.device)
    arch, embedder_arch = ("ram_plus_tiny", "clip_tiny") if args.quick else ("ram_plus_swin_l_384", "clip_vit_b16")
    if args.quick:
        args.files, args.photos, args.seconds = min(args.files, 8), min(args.photos, 32), 0.5
    torch.backends.cuda.matmul.allow_tf32 = False
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    record("machine", {"gpu": gpu, "torch": torch.__version__, "cpus": os.cpu_count()},
           f"machine: {gpu}, torch {torch.__version__}, {os.cpu_count()} CPUs")

    def attempt(name: str, function: Callable[[], None]) -> None:
        try:
            function()
        except Exception:  # noqa: BLE001 - one failed step must not cost the others' numbers
            say(f"STEP FAILED: {name}\n{traceback.format_exc()}")
            RESULTS[f"failed_{name}"] = traceback.format_exc()
        save(args.out)

    peak = matmul_peak(device, torch.float16)
    record("peak_tflops", peak, f"fp16 matrix product 8192³: {peak:.0f} TFLOP/s (the ceiling below)")
    bf16_peak = matmul_peak(device, torch.bfloat16)
    record("peak_tflops_bf16", bf16_peak, f"bf16 matrix product 8192³: {bf16_peak:.0f} TFLOP/s")
    reference, fast, embedder, fast_embedder = build_models(arch, embedder_arch, device)
    say("models built")
    files = make_photos(args.sources, args.work, args.files, min(16, args.workers + 1))
    sample = sorted(p for p in args.sources.rglob("*.jpg"))[:12] + files[:20]
    if not args.skip_correctness:
        attempt("correctness", lambda: step_correctness(reference, fast, sample, device))
    attempt("decode_agreement", lambda: step_decode_agreement(fast, fast_embedder, sample, device))

    flops: dict[str, float] = {}
    one_tag = torch.zeros(1, 3, fast.image_size, fast.image_size, dtype=torch.uint8, device=device)
    one_clip = torch.zeros(1, 3, fast_embedder.image_size, fast_embedder.image_size, dtype=torch.uint8, device=device)
    flops["ram++"] = count_flops(lambda: fast.probs_on_device(one_tag))
    flops["clip"] = count_flops(lambda: fast_embedder.embeddings_on_device(one_clip))
    record("gflop_per_photo", {k: v / 1e9 for k, v in flops.items()},
           f"GFLOP per photo: RAM++ {flops['ram++'] / 1e9:.1f}, CLIP {flops['clip'] / 1e9:.1f}")

    if args.batch:
        batch = args.batch
    elif device.type == "cuda":
        from ram_model.accel import auto_batch_size

        batch = auto_batch_size(fast, fast_embedder)
    else:
        batch = 8
    record("batch", batch, f"batch size: {batch} ({'given' if args.batch else 'from free GPU memory'})")
    from ram_model.accel import device_share

    attempt("decode_only", lambda: step_decode_only(fast, fast_embedder, files, batch, device))
    # The hybrid runs split the JPEGs as the indexer does (device_share), then at each --shares.
    share = device_share(args.workers)
    if not args.only_compiled:
        attempt("models_eager", lambda: step_models(fast, fast_embedder, batch, device, "eager", peak, flops,
                                                    args.seconds))
        attempt("e2e_hybrid", lambda: step_end_to_end(fast, fast_embedder, files, batch, args.workers, device, True,
                                                      "eager, GPU + CPU decode", args.photos, share))
        attempt("e2e_gpu", lambda: step_end_to_end(fast, fast_embedder, files, batch, args.workers, device, True,
                                                   "eager, GPU decode", args.photos))
        attempt("e2e_cpu", lambda: step_end_to_end(fast, fast_embedder, files, batch, args.workers, device, False,
                                                   "eager, CPU decode", args.photos))
    if not args.skip_reference:
        attempt("reference", lambda: step_reference(reference.model, embedder, reference.vocabulary, files, device,
                                                    min(24, len(files) - 1), peak, flops, args.seconds))
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the fp32 copies are gone
    if not args.no_compile:
        def compile_both() -> None:
            start = time.perf_counter()
            fast.compile_batches(batch)
            fast_embedder.compile_batches(batch)
            step_models(fast, fast_embedder, batch, device, "compiled", peak, flops, args.seconds)
            record("compile_seconds", time.perf_counter() - start)

        attempt("models_compiled", compile_both)
        for split in [device_share(args.workers, compiled=True), *args.shares]:
            attempt(f"e2e_hybrid_compiled_{split:.2f}", lambda split=split: step_end_to_end(
                fast, fast_embedder, files, batch, args.workers, device, True,
                f"compiled, GPU {split:.2f} + CPU decode", args.photos, split))
        attempt("e2e_gpu_compiled", lambda: step_end_to_end(fast, fast_embedder, files, batch, args.workers, device,
                                                            True, "compiled, GPU decode", args.photos))
    if not args.skip_indexer:
        attempt("indexer", lambda: step_indexer(fast, fast_embedder, files, args.photos, batch, args.workers,
                                                args.work))
    summary()
    save(args.out)
    return 0


def summary() -> None:
    ref = RESULTS.get("reference_style", {})
    for key, value in RESULTS.items():
        if key.startswith("e2e_") and isinstance(value, dict) and isinstance(ref, dict) and ref:
            say(f"{key}: {value['photos_per_s'] / ref['photos_per_s']:.1f}x the reference style")


def save(out: Path | None) -> None:
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(RESULTS, indent=1, default=str))
    out.write_text("\n".join(["```", *LINES, "```", ""]))


if __name__ == "__main__":
    sys.exit(main())
