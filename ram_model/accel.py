"""Throughput on a GPU: JPEG decoding and preprocessing on the device, the batch size from free
memory, ``torch.compile``, and preparing the next batch while the models work on this one.

Decoding a 12 MP JPEG costs a CPU core 35-150 ms, so a GPU that tags hundreds of photos a second
is fed by its own JPEG decoder (nvJPEG through ``torchvision.io.decode_jpeg``). Only what nvJPEG
decodes like libjpeg goes there: baseline or extended sequential Huffman JPEG, 8 bits, greyscale or
YCbCr, not MPO. Everything else, and any file nvJPEG refuses, takes the CPU decoder
(:func:`ram_model.preprocess.open_image`), which also gives failures their proper message.

The device path turns a decoded photo into each model's input the way the CPU path does: EXIF
orientation as Pillow's ``exif_transpose`` applies it, then the tagger's stretch to S×S (bilinear,
antialiased) and CLIP's shortest-side bicubic resize and centre crop, rounded to 8-bit pixels as
Pillow's resize gives them, then normalised on the device. It is not bit-identical to Pillow: nvJPEG
upsamples colour differently from libjpeg, a mean of 0.5 levels per pixel (up to 46 at sharp colour
edges) on 12 MP photos, about what the CPU path's reduced-size decode differs (bench/results/gpu.md).
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image

from ram_model.preprocess import ORIENTATIONS

# Larger photos are left to the CPU decoder and its decompression-bomb check (a 64 MP RGB photo
# already takes 192 MB of GPU memory as decoded pixels).
DEVICE_JPEG_MAX_PIXELS = 64_000_000
# SOF markers of sequential Huffman JPEGs (baseline, extended): what nvJPEG decodes as libjpeg does.
_SEQUENTIAL_HUFFMAN = frozenset({0xC0, 0xC1})
_OTHER_SOF = frozenset({0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})

log = logging.getLogger(__name__)
Batchwise = Callable[[torch.Tensor], torch.Tensor]
T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


# Throughputs measured on the H200 with 12 MP JPEGs (bench/results/gpu.md): nvJPEG through torchvision
# with the resizing to both inputs, one CPU core's reduced-size decode, and RAM++ + CLIP alone (fp16,
# eager or compiled). Decoding and resizing scale with pixels, the models do not; the ratios are what
# split a stream of JPEGs between the GPU and the CPU workers.
GPU_JPEG_RATE = 410.0
CPU_JPEG_RATE_PER_WORKER = 15.0
MODEL_RATE_EAGER = 546.0
MODEL_RATE_COMPILED = 800.0


def device_share(workers: int, compiled: bool = False) -> float:
    """The share of plain JPEGs to decode on the GPU when ``workers`` CPU processes decode the rest.

    GPU decoding barely overlaps the models (end to end ≈ 1 / (1/models + 1/decoding), bench/results/
    gpu.md), so each photo the GPU decodes costs the models time, while the workers' photos cost it
    nothing. With G, C and M the GPU's decoding, the workers' and the models' rates, the pass runs
    at R = (G + C)·M / (M + G) when the GPU decodes 1 − C/R of the photos: both sides kept busy.
    (Measured with 15 workers: a GPU share of 0.51 gave 445 photos/s, 0.63 gave 405, 0.72 gave 368.)"""
    gpu, cpu = GPU_JPEG_RATE, CPU_JPEG_RATE_PER_WORKER * max(workers, 0)
    models = MODEL_RATE_COMPILED if compiled else MODEL_RATE_EAGER
    if cpu >= models:
        return 0.0  # the workers alone keep the models busy
    rate = (gpu + cpu) * models / (models + gpu)
    return max(0.0, 1.0 - cpu / rate)


# --- which files the device decodes ------------------------------------------------------------
def jpeg_frame(header: bytes) -> tuple[int, int, int, int, int] | None:
    """``(sof_marker, precision, height, width, components)`` of a JPEG's frame header, or None
    when ``header`` (the file's first bytes) is not a JPEG or ends before the frame header."""
    if header[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(header):
        if header[pos] != 0xFF:
            return None
        marker = header[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        length = int.from_bytes(header[pos + 2 : pos + 4], "big")
        if marker in _SEQUENTIAL_HUFFMAN or marker in _OTHER_SOF:
            frame = header[pos + 4 : pos + 10]
            if len(frame) < 6:
                return None
            return (marker, frame[0], int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big"), frame[5])
        pos += 2 + length
    return None


def device_decodable(path: str | Path) -> int | None:
    """The EXIF orientation (1-8) to apply after decoding ``path`` on the GPU, or None when the
    CPU decoder must take it (not a plain sequential JPEG, too large, MPO, unreadable)."""
    try:
        with Path(path).open("rb") as stream:
            header = stream.read(1 << 17)
            frame = jpeg_frame(header)
            if frame is None and len(header) == 1 << 17:  # a frame header behind large APP segments
                header += stream.read(1 << 20)
                frame = jpeg_frame(header)
    except OSError:
        return None
    if frame is None:
        return None
    marker, precision, height, width, components = frame
    if marker not in _SEQUENTIAL_HUFFMAN or precision != 8 or components not in (1, 3):
        return None
    if not 0 < height * width <= DEVICE_JPEG_MAX_PIXELS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The headers just read (Pillow stops at the scan): the file is not opened twice.
            with Image.open(io.BytesIO(header)) as image:
                if image.format != "JPEG" or image.info.get("adobe_transform") == 0:
                    return None  # MPO (several frames), or RGB stored without YCbCr
                try:
                    orientation = int(image.getexif().get(ExifTags.Base.Orientation, 1))
                except Exception:  # noqa: BLE001 - as open_image: a broken EXIF block keeps the photo as stored
                    orientation = 1
    except Exception:  # noqa: BLE001 - anything Pillow cannot even open goes to the CPU decoder for its message
        return None
    return orientation if 1 <= orientation <= 8 else 1


# --- preprocessing on the device ---------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """How one model's input is made from a photo: ``stretch`` to size×size (bilinear, the tagger),
    or resize the shortest side to ``size`` (bicubic) and crop the centre (CLIP)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stretch: bool


def upright(pixels: torch.Tensor, orientation: int) -> torch.Tensor:
    """``[C, H, W]`` turned as EXIF ``orientation`` says, exactly as Pillow's ``exif_transpose``."""
    mirror, turns = ORIENTATIONS.get(orientation, (False, 0))
    if mirror:
        pixels = pixels.flip(-1)
    return pixels.rot90(turns, dims=(-2, -1)) if turns else pixels


# Before the antialiased resize, photos are box-averaged by an integer factor that keeps at least twice
# the largest input size (Pillow's reducing_gap=2): the resize kernels' cost grows with the square of
# the scale factor, and on a 12 MP photo they were slower than nvJPEG itself (bench/results/gpu.md).
REDUCING_GAP = 2
# Photos of one size are resized together (a camera's photos mostly share one), this many pixels at
# a time: 12 bytes each in float32, so about 1.5 GB of working memory, ten 12 MP photos.
RESIZE_CHUNK_PIXELS = 128_000_000


def reduced(pixels: torch.Tensor, specs: Sequence[InputSpec]) -> torch.Tensor:
    """Upright uint8 ``[B, 3, H, W]`` → float ``[B, 3, H/k, W/k]``, box-averaged by ``k`` (often 1)."""
    x = pixels.float()
    factor = min(x.shape[-2:]) // (REDUCING_GAP * max(spec.size for spec in specs))
    return F.avg_pool2d(x, factor) if factor > 1 else x


def model_pixels(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Upright float photos ``[B, 3, H, W]`` (from :func:`reduced`) → ``[B, 3, S, S]`` uint8 model inputs."""
    height, width = x.shape[-2:]
    if spec.stretch:
        x = F.interpolate(x, size=(spec.size, spec.size), mode="bilinear", antialias=True, align_corners=False)
    else:
        # torchvision's Resize(size): the shortest side becomes size, the other is truncated, not rounded.
        if height <= width:
            target = (spec.size, int(spec.size * width / height))
        else:
            target = (int(spec.size * height / width), spec.size)
        if target != (height, width):
            x = F.interpolate(x, size=target, mode="bicubic", antialias=True, align_corners=False)
        top = int(round((x.shape[-2] - spec.size) / 2.0))
        left = int(round((x.shape[-1] - spec.size) / 2.0))
        x = x[..., top : top + spec.size, left : left + spec.size]
    return x.round_().clamp_(0, 255).to(torch.uint8)


def model_inputs(photos: Sequence[torch.Tensor], specs: Sequence[InputSpec]) -> list[list[torch.Tensor]]:
    """Every spec's uint8 ``[3, S, S]`` input of each upright uint8 ``[3, H, W]`` photo. Photos of
    one size go through each step together (a few kernels per group, not per photo); a photo's
    result is the same either way."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, pixels in enumerate(photos):
        groups.setdefault(tuple(pixels.shape), []).append(index)
    out: list[list[torch.Tensor]] = [[] for _ in photos]
    for shape, members in groups.items():
        step = max(1, RESIZE_CHUNK_PIXELS // (shape[-2] * shape[-1]))
        for start in range(0, len(members), step):
            part = members[start : start + step]
            x = reduced(torch.stack([photos[i] for i in part]), specs)
            for spec in specs:
                for index, pixels in zip(part, model_pixels(x, spec), strict=True):
                    out[index].append(pixels)
    return out


def decode_on_device(
    files: Sequence[bytes], orientations: Sequence[int], specs: Sequence[InputSpec], device: torch.device
) -> list[list[torch.Tensor] | None]:
    """Decode JPEG files on ``device`` (nvJPEG on CUDA, libjpeg-turbo on the CPU) and make every
    spec's uint8 input of each. A file the decoder refuses gives None (decode it on the CPU).

    The whole list goes to the decoder at once (nvJPEG's batched decode); if it refuses the
    batch, each file is decoded alone so that one bad file costs only itself.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in files]
    if device.type == "cuda":
        # torchvision allocates the decoded images on this stream but writes them from a stream of its
        # own that does not wait for this one: memory this stream freed while its kernels still read it
        # (the previous batch's photos) must not be written before they are done.
        torch.cuda.current_stream(device).synchronize()
    try:
        decoded: list[torch.Tensor | None] = list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        decoded = []
        for data in encoded:
            try:
                decoded.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                decoded.append(None)
    good = [i for i, pixels in enumerate(decoded) if pixels is not None]
    inputs = model_inputs([upright(pixels, orientations[i]) for i, pixels in enumerate(decoded) if pixels is not None],
                          specs)
    out: list[list[torch.Tensor] | None] = [None] * len(decoded)
    for i, found in zip(good, inputs, strict=True):
        out[i] = found
    return out


# --- batch size, compilation --------------------------------------------------------------------
def pick_batch_size(
    per_image_bytes: float, fixed_bytes: float, free_bytes: float, *, share: float = 0.7, limit: int = 256
) -> int:
    """The largest power of two (≤ ``limit``) whose predicted peak, ``fixed + per_image × batch``,
    fits in ``share`` of the free memory; at least 1."""
    batch = 1
    while batch * 2 <= limit and fixed_bytes + per_image_bytes * batch * 2 <= share * free_bytes:
        batch *= 2
    return batch


def measure_batch_size(run: Callable[[int], Any], device: torch.device, *, limit: int = 256,
                       probe: tuple[int, int] = (2, 4)) -> int:
    """Batch size for ``run(batch)`` (one model call on a synthetic batch) from the free GPU memory:
    the peak memory of two probe batches gives the cost per image; see :func:`pick_batch_size`."""
    peaks = []
    for batch in probe:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run(batch)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_image = max((peaks[1] - peaks[0]) / (probe[1] - probe[0]), 1.0)
    fixed = max(peaks[0] - per_image * probe[0], 0.0)
    torch.cuda.empty_cache()
    free, _total = torch.cuda.mem_get_info(device)
    return pick_batch_size(per_image, fixed, free, limit=limit)


def auto_batch_size(tagger: Any, embedder: Any, *, limit: int = 128) -> int:
    """The batch size for a tagger and an embedder sharing one GPU, from its free memory (at most
    ``limit``: beyond 128 a Swin-L batch gains nothing on an H100 and holds more photos in flight)."""
    device = tagger.device
    generator = torch.Generator(device=device).manual_seed(0)

    def run(batch: int) -> None:
        for size, model in ((tagger.image_size, tagger.probs_on_device), (embedder.image_size,
                                                                          embedder.embeddings_on_device)):
            pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device,
                                   generator=generator)
            model(pixels)

    return measure_batch_size(run, device, limit=limit)


def compile_fixed(function: Batchwise, batch: int) -> Batchwise:
    """``function`` through ``torch.compile`` (fused elementwise work around the matrix products),
    always called with exactly ``batch`` rows (:func:`fixed_batches`): it never recompiles."""
    compiled = torch.compile(function, dynamic=False)
    return lambda inputs: fixed_batches(compiled, inputs, batch)


def fixed_batches(function: Batchwise, inputs: torch.Tensor, batch: int) -> torch.Tensor:
    """``function`` over ``inputs`` in calls of exactly ``batch`` rows (the last padded with copies
    of its first row, whose outputs are dropped): a compiled function then never recompiles."""
    pieces = []
    for start in range(0, inputs.shape[0], batch):
        part = inputs[start : start + batch]
        short = batch - part.shape[0]
        if short:
            part = torch.cat([part, part[:1].expand(short, *part.shape[1:])])
        pieces.append(function(part)[: batch - short])
    return torch.cat(pieces)


# --- overlap ---------------------------------------------------------------------------------
_DONE = object()


def pipelined(items: Iterable[T], prepare: Callable[[T], P], compute: Callable[[P], Callable[[], R]],
              *, ahead: int = 2) -> Iterator[tuple[T, R]]:
    """Yield ``(item, result)`` in order, where ``prepare`` runs in a thread up to ``ahead`` items
    ahead and ``compute`` returns a function giving the result: the result of item n is asked
    for only after item n+1's work has been started, so a GPU stays busy while this thread stores
    results. An exception from either side is raised here."""
    prepared: queue.Queue[Any] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def feed() -> None:
        try:
            for item in items:
                value = (item, prepare(item))
                while not stop.is_set():
                    try:
                        prepared.put(value, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            prepared.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed over to the consuming thread
            prepared.put(exc)

    thread = threading.Thread(target=feed, name="phototag-prepare", daemon=True)
    thread.start()
    pending: tuple[T, Callable[[], R]] | None = None
    try:
        while True:
            value = prepared.get()
            if value is _DONE:
                break
            if isinstance(value, BaseException):
                raise value
            item, ready = value
            started = (item, compute(ready))
            if pending is not None:
                yield pending[0], pending[1]()
            pending = started
        if pending is not None:
            yield pending[0], pending[1]()
    finally:
        stop.set()
        while thread.is_alive():
            try:
                prepared.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def fetch_later(tensor: torch.Tensor, again: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> Callable[[], np.ndarray]:
    """Start copying ``tensor`` (one row per photo) to the host and return a function that waits for
    it (a NumPy array). From a GPU the copy goes to pinned memory without blocking this thread.

    ``again(rows)`` computes the given rows once more (another precision): rows that came out NaN —
    fp16 overflowed on that photo — are replaced by its result, with a warning."""
    if tensor.device.type != "cuda":
        array = tensor.cpu().numpy()
        fetch = lambda: array  # noqa: E731
    else:
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        done = torch.cuda.Event()
        done.record()

        def fetch() -> np.ndarray:
            done.synchronize()
            return host.numpy()

    def result() -> np.ndarray:
        array = fetch()
        if again is None:
            return array
        bad = np.flatnonzero(np.isnan(array.reshape(len(array), -1)).any(axis=1))
        if bad.size:
            log.warning("fp16 overflowed on %d of %d photos: computing them again in bf16", bad.size, len(array))
            array[bad] = again(torch.as_tensor(bad, device=tensor.device)).cpu().numpy()
        return array

    return result
