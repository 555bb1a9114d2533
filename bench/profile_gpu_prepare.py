"""Where the GPU's input preparation spends its time: nvJPEG decoding of 12 MP JPEGs, then each step
that turns a decoded photo into the tagger's and CLIP's inputs, timed one by one (synchronised), and a
``torch.profiler`` table of the kernels of one whole batch; with ``--overlap``, whether decoding
overlaps the models at all: each alone, then both at once in two threads (as ``ModelStage.run``
does), with the preparing stream at normal and at high priority.

    python bench/profile_gpu_prepare.py --sources DIR [--overlap]     # on the GPU machine

Run 5 of bench_gpu.py found end to end ≈ 1 / (1/models + 1/decoding): the two barely overlap.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from bench_gpu import make_photos  # noqa: E402

from ram_model import accel  # noqa: E402
from ram_model.preprocess import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

SPECS = [accel.InputSpec(384, IMAGENET_MEAN, IMAGENET_STD, stretch=True),
         accel.InputSpec(224, (0.48, 0.46, 0.41), (0.27, 0.26, 0.28), stretch=False)]


def timed(label: str, function: Callable[[], object], photos: int, repeat: int = 3) -> object:
    torch.cuda.synchronize()
    function()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        out = function()
    torch.cuda.synchronize()
    ms = (time.perf_counter() - start) / repeat * 1000
    print(f"{label:48s} {ms:8.1f} ms per batch, {ms / photos:6.3f} ms per photo", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sources", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--overlap", action="store_true", help="also time decoding against the models")
    args = parser.parse_args()
    from torchvision.io import ImageReadMode, decode_jpeg

    files = make_photos(args.sources, Path("/tmp/phototag_profile"), args.batch, 16)
    data = [p.read_bytes() for p in files]
    encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
    n = len(data)
    decoded = timed("decode (batched nvJPEG)", lambda: decode_jpeg(encoded, mode=ImageReadMode.RGB, device="cuda"), n)
    cuda = torch.device("cuda")
    timed("decode_on_device (decode + inputs)", lambda: accel.decode_on_device(data, [1] * n, SPECS, cuda), n)
    timed("model_inputs (inputs of decoded photos)", lambda: accel.model_inputs(decoded, SPECS), n)
    chunk = decoded[:10]
    stacked = timed("stack 10", lambda: torch.stack(chunk), 10)
    floats = timed("float 10", lambda: stacked.float(), 10)
    timed("half 10", lambda: stacked.half(), 10)
    pooled = timed("avg_pool2d(3) float 10", lambda: F.avg_pool2d(floats, 3), 10)
    timed("avg_pool2d(3) half 10", lambda: F.avg_pool2d(stacked.half(), 3), 10)
    timed("avg_pool2d(3) channels_last float 10",
          lambda: F.avg_pool2d(floats.contiguous(memory_format=torch.channels_last), 3), 10)
    timed("bilinear AA 384 from pooled 10", lambda: F.interpolate(pooled, size=(384, 384), mode="bilinear",
                                                                 antialias=True), 10)
    timed("bilinear 384 no AA from pooled 10", lambda: F.interpolate(pooled, size=(384, 384), mode="bilinear"), 10)
    timed("bicubic AA 224x298 from pooled 10", lambda: F.interpolate(pooled, size=(224, 298), mode="bicubic",
                                                                    antialias=True), 10)
    timed("area 384 from floats 10", lambda: F.interpolate(floats, size=(384, 384), mode="area"), 10)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as prof:
        accel.decode_on_device(data, [1] * n, SPECS, cuda)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60), flush=True)
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15, max_name_column_width=60), flush=True)
    if args.overlap:
        overlap(data, args.batch)


def _rate(function: Callable[[], object], stop: threading.Event, counts: list[int], photos: int) -> None:
    while not stop.is_set():
        function()
        torch.cuda.synchronize()
        counts.append(photos)


def overlap(data: list[bytes], batch: int, seconds: float = 4.0) -> None:
    """Photos/s of the models (eager fp16, RAM++ + CLIP) and of decoding, alone and at once."""
    from bench_gpu import build_models

    _reference, tagger, _embedder, embedder = build_models("ram_plus_swin_l_384", "clip_vit_b16", torch.device("cuda"))
    generator = torch.Generator(device="cuda").manual_seed(0)

    def pixels(size: int) -> torch.Tensor:
        return torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device="cuda", generator=generator)

    tag_in, clip_in = pixels(tagger.image_size), pixels(embedder.image_size)

    def models() -> None:
        tagger.probs_on_device(tag_in)
        embedder.embeddings_on_device(clip_in)

    def decoding(stream: torch.cuda.Stream) -> Callable[[], object]:
        def run() -> object:
            with torch.cuda.stream(stream):
                return accel.decode_on_device(data, [1] * len(data), SPECS, torch.device("cuda"))
        return run

    models()
    for label, stream in (("normal", torch.cuda.Stream()), ("high", torch.cuda.Stream(priority=-1))):
        decode = decoding(stream)
        decode()
        results = {}
        for name, jobs in (("models alone", [models]), ("decoding alone", [decode]),
                           ("both at once", [models, decode])):
            stop, counts = threading.Event(), [[] for _ in jobs]
            threads = [threading.Thread(target=_rate, args=(job, stop, count, len(data)))
                       for job, count in zip(jobs, counts, strict=True)]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            time.sleep(seconds)
            stop.set()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
            results[name] = [sum(count) / elapsed for count in counts]
        print(f"prepare stream priority {label}: models alone {results['models alone'][0]:.0f} photos/s, "
              f"decoding alone {results['decoding alone'][0]:.0f}; at once: models "
              f"{results['both at once'][0]:.0f}, decoding {results['both at once'][1]:.0f}", flush=True)


if __name__ == "__main__":
    main()
