"""The stages of an index pass, each a plain function over one file or one batch.

identify (CPU workers): hash the bytes and read the metadata, no pixel decode →
decode (CPU workers): decode once (reduced-size JPEG decode, EXIF orientation) into the tagger's
and the embedder's input tensors → infer (the one process holding the device) → persist (the
indexer, in batched transactions). Failures come back as values, never as exceptions, so one bad
file never stops a run.

Workers are processes (``spawn``: safe next to torch's threads); ``workers=0`` runs every stage
in the calling process, which is what the tests and small jobs use.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
import torch

from indexer.schema import recorded_ns
from ram_model.errors import ImageError
from ram_model.raw import is_raw

HASH_CHUNK = 1 << 20
T = TypeVar("T")
R = TypeVar("R")
_THREAD_IO = "/proc/thread-self/io"  # Linux: this thread's I/O counters


@dataclass(frozen=True)
class Failure:
    """A file a stage could not handle: why (a short word) and a message naming the file."""

    path: str
    reason: str
    message: str


@dataclass
class Reads:
    """What one stage of a pass read: the photos it handled (a photo decoded in two rounds counts twice), the
    bytes that cost (:func:`counting_reads`), and the stage's wall time in the pass, which gives the rate a
    disk or network link has to carry."""

    photos: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def add(self, read: int) -> None:
        self.photos += 1
        self.bytes += read

    def report(self) -> dict[str, Any]:
        """The counts, with bytes per photo and the read rate in MB/s (None before anything was read)."""
        return {"photos": self.photos, "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "bytes_per_photo": round(self.bytes / self.photos) if self.photos else None,
                "mb_per_s": round(self.bytes / self.seconds / 1e6, 2) if self.seconds > 0 else None}


def _thread_read_bytes() -> int | None:
    """The bytes this thread's read system calls have returned so far (Linux's ``rchar``); None elsewhere."""
    try:
        with open(_THREAD_IO, "rb") as counters:
            for line in counters:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def counting_reads(function: Callable[[T], R], item: T) -> tuple[R, int]:
    """``function(item)`` and the bytes it read: what this thread's read system calls returned meanwhile (the
    photo, its sidecars, whatever a decoder library reads of them; 0 where the system does not count). The one
    rule every stage that reads photos is measured by, in any process or engine. Counted by the kernel, not by
    our readers, so a RAW file's embedded preview costs what LibRaw really reads of it; reading the counters
    adds ~100 bytes, and a process's first call also counts the modules it imports."""
    before = _thread_read_bytes()
    result = function(item)
    after = _thread_read_bytes()
    return result, after - before if before is not None and after is not None else 0


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=32)


def bytes_hash(data: bytes) -> str:
    """:func:`content_hash` of bytes in memory (a file about to be written, say)."""
    digest = _hasher()
    digest.update(data)
    return digest.hexdigest()


def content_hash(path: str) -> str:
    """blake2b-256 of the file's bytes, hex: identical files share it, a moved file keeps it."""
    return _hash_file(path)[1]


def _hash_file(path: str) -> tuple[os.stat_result, str]:
    """The stat and :func:`content_hash` of the regular file at ``path``, from one open file (so the two agree).
    Opened by ``_files.open_regular``: a path replaced by a folder, FIFO or device since it was listed raises
    OSError, never opened."""
    from indexer.metadata._files import open_regular

    with open_regular(path) as handle:
        info = os.fstat(handle.fileno())
        digest = _hasher()
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return info, digest.hexdigest()


@dataclass(frozen=True)
class Identified:
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    info: Any  # indexer.metadata.PhotoInfo, or None when the metadata could not be read
    error: Failure | None = None  # not an image at all: recorded as failed without decoding


def identify(path: str) -> Identified | Failure:
    """Stage 1: size, mtime, content hash and metadata of one file (no pixel decode)."""
    from indexer.metadata import read_photo_info

    try:
        info, digest = _hash_file(path)
    except OSError as exc:
        return Failure(path, "unreadable", f"{path}: cannot read it ({exc.strerror or exc})")
    try:
        photo_info, error = read_photo_info(path), None
    except ImageError as exc:
        # A RAW file Pillow cannot read may still hold a preview the decode stage can use.
        photo_info, error = None, None if is_raw(path) else Failure(path, exc.reason or "corrupt", str(exc))
    except Exception as exc:  # noqa: BLE001 - a metadata bug must not stop the run; the decode stage decides
        photo_info, error = None, None
        del exc
    return Identified(path, info.st_size, recorded_ns(info.st_mtime_ns), digest, photo_info, error)


@dataclass(frozen=True)
class DecodeJob:
    photo_id: int
    path: str
    tagger: bool  # produce the tagger's input
    embedder: bool  # produce the embedder's input


@dataclass(frozen=True)
class Decoded:
    """Model inputs of one photo: float32 normalised, or uint8 pixels (``DecodeSettings.pixels``).

    A JPEG left to the GPU's decoder has no inputs yet: ``device_jpeg`` holds its EXIF orientation,
    and ``wants`` which models need it (tagger, embedder).
    """

    photo_id: int
    path: str
    tagger_input: torch.Tensor | None  # [3, S, S]
    embedder_input: torch.Tensor | None
    device_jpeg: int | None = None
    wants: tuple[bool, bool] = (False, False)


@dataclass(frozen=True)
class DecodeSettings:
    tagger_size: int
    embedder_transform: Callable[[Any], torch.Tensor] | None
    draft: bool = True
    # uint8 pixels instead of float32 inputs (a quarter of the bytes; the models normalise them on their device).
    pixels: bool = False
    # Leave plain JPEGs to the GPU's decoder (ram_model.accel.device_decodable); needs ``pixels``.
    device_jpeg: bool = False
    # The share of those JPEGs the GPU decodes; the CPU workers decode the rest, so both decoders work.
    device_share: float = 1.0

    def __post_init__(self) -> None:
        if self.device_jpeg and not self.pixels:
            raise ValueError("device_jpeg needs pixels=True: the device decoder gives uint8 pixels")


def _init_worker() -> None:
    # Ctrl-C goes to the whole process group: the parent finishes its batch, workers must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def decode(job: DecodeJob, settings: DecodeSettings) -> Decoded | Failure:
    """Stage 2: decode one photo into model inputs (or leave a plain JPEG to the GPU's decoder)."""
    from indexer.metadata._files import check_regular
    from ram_model.accel import device_decodable
    from ram_model.preprocess import open_image, preprocess, resized_pixels

    try:
        check_regular(job.path)  # the decoders open it by path: a pipe swapped in would block the pass
    except OSError as exc:
        return Failure(job.path, "unreadable", f"{job.path}: cannot read it ({exc.strerror or exc})")
    embedder_transform = settings.embedder_transform if job.embedder else None
    wants_embedding = embedder_transform is not None
    if settings.device_jpeg and _to_device(job.photo_id, settings.device_share):
        orientation = device_decodable(job.path)
        if orientation is not None:
            return Decoded(job.photo_id, job.path, None, None, orientation, (job.tagger, wants_embedding))
    try:
        draft = settings.tagger_size if settings.draft else None
        # One decode serves both models; the reduced decode stays above 384 px, so also above CLIP's 224.
        image = open_image(job.path, draft_size=draft)
        tagger_input = None
        if job.tagger:
            tagger_input = (resized_pixels if settings.pixels else preprocess)(image, settings.tagger_size)
        embedder_input = embedder_transform(image) if embedder_transform is not None else None
    except ImageError as exc:
        return Failure(job.path, exc.reason or "corrupt", str(exc))
    except MemoryError:
        return Failure(job.path, "too_large", f"{job.path}: not enough memory to decode it")
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one file must not stop the run
        return Failure(job.path, "corrupt", f"{job.path}: cannot decode it ({type(exc).__name__}: {exc})")
    return Decoded(job.photo_id, job.path, tagger_input, embedder_input)


def _to_device(photo_id: int, share: float) -> bool:
    """Whether this photo is among the ``share`` left to the GPU: spread evenly over ids (golden ratio)."""
    return share >= 1.0 or (photo_id * 0.6180339887) % 1.0 < share


class Stages:
    """Runs a stage function over items in order, in worker processes or in this one.

    ``map`` keeps up to ``lookahead`` items in flight, so decoding the next batch overlaps the
    model's work on this one; it sends them ``chunk`` at a time (one task each), which pays for
    small items such as paths to identify. The pool takes any picklable function, so one pool
    serves every stage of a pass (a spawn pool of 15 workers takes ~13 s to start:
    bench/results/clip_first_gpu.md).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Executor | None = None
        if workers > 0:
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker)

    def map(self, function: Callable[[T], R], items: Iterable[T], lookahead: int = 64, *, chunk: int = 1,
            on_read: Callable[[int], None] | None = None) -> Iterator[R]:
        """``function`` over ``items``, results in order; ``on_read`` is given the bytes each call read
        (:func:`counting_reads`, counted where the call runs)."""
        if on_read is None:
            yield from self._map(function, items, lookahead, chunk)
            return
        for result, read in self._map(partial(counting_reads, function), items, lookahead, chunk):
            on_read(read)
            yield result

    def _map(self, function: Callable[[T], R], items: Iterable[T], lookahead: int, chunk: int) -> Iterator[R]:
        if self._pool is None:
            for item in items:
                yield function(item)
            return
        pending: deque[Future[list[R]]] = deque()
        for group in batched(items, chunk):
            pending.append(self._pool.submit(_each, function, group))
            if len(pending) * chunk >= lookahead:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _each(function: Callable[[T], R], items: list[T]) -> list[R]:
    """One task of :meth:`Stages.map`: ``function`` over a chunk of items."""
    return [function(item) for item in items]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Outputs:
    """One batch's model results by photo id, and the photos that failed only now (a JPEG the GPU's
    decoder refused and the CPU decoder could not read either)."""

    probs: dict[int, np.ndarray]
    vectors: dict[int, np.ndarray]
    failures: dict[int, Failure]
    read: int = 0  # bytes the device's decoder read (JPEGs it decodes: :func:`counting_reads`)


@dataclass
class _Prepared:
    tagged: list[int]
    tagger_input: torch.Tensor | None
    embedded: list[int]
    embedder_input: torch.Tensor | None
    failures: dict[int, Failure]
    ready: Any = None  # a CUDA event: the inputs are complete on the device
    read: int = 0  # bytes read for the device's decoder


class ModelStage:
    """Stage 3: batches of decoded photos → probabilities and embeddings, on ``device`` (the models').

    ``prepare`` finishes the inputs on the device (GPU JPEG decoding and resizing, pinned copies of
    CPU-decoded pixels, on a side stream); ``compute`` starts both models and returns a function that
    waits for their results. On a GPU ``run`` prepares the next batch in a thread and collects a
    batch's results only once the next one is started (``ram_model.accel.pipelined``); elsewhere it
    runs the two steps in turn. ``tagger`` and ``embedder`` are only touched when a batch needs them,
    so lazily loaded models stay unloaded for work that does not need them.
    """

    def __init__(self, tagger: Any, embedder: Any, settings: DecodeSettings, device: torch.device) -> None:
        self.tagger = tagger
        self.embedder = embedder
        self.settings = settings
        self.device = device
        self._stream: Any = None

    def _specs(self, tagger: bool, embedder: bool) -> list[Any]:
        from ram_model.accel import InputSpec
        from ram_model.preprocess import IMAGENET_MEAN, IMAGENET_STD

        specs = []
        if tagger:
            specs.append(InputSpec(self.settings.tagger_size, IMAGENET_MEAN, IMAGENET_STD, stretch=True))
        if embedder:
            e = self.embedder
            specs.append(InputSpec(e.image_size, e.mean, e.std, stretch=False))
        return specs

    def _device_decode(self, items: list[Decoded]) -> tuple[list[Decoded], dict[int, Failure], int]:
        """Decode the JPEGs left to the device into inputs; one it refuses is decoded on the CPU. Returns the
        inputs, the failures and the bytes read."""
        from ram_model.accel import decode_on_device

        tagger = any(d.wants[0] for d in items)
        embedder = any(d.wants[1] for d in items)
        specs = self._specs(tagger, embedder)
        with ThreadPoolExecutor(min(8, len(items))) as pool:  # reads overlap, on a NAS above all
            counted = list(pool.map(partial(counting_reads, _read), items))
        contents = [data for data, _ in counted]
        failures: dict[int, Failure] = {}
        readable = []
        for d, data in zip(items, contents, strict=True):
            if isinstance(data, Failure):
                failures[d.photo_id] = data
            else:
                readable.append((d, data))
        results = decode_on_device([data for _, data in readable], [d.device_jpeg or 1 for d, _ in readable], specs,
                                   self.device) if readable else []
        cpu = DecodeSettings(self.settings.tagger_size, self.embedder.pixel_transform if embedder else None,
                             self.settings.draft, pixels=True)
        out: list[Decoded] = []
        for (d, _), inputs in zip(readable, results, strict=True):
            if inputs is None:
                again = decode(DecodeJob(d.photo_id, d.path, d.wants[0], d.wants[1]), cpu)
                if isinstance(again, Failure):
                    failures[d.photo_id] = again
                else:
                    out.append(again)
                continue
            found = iter(inputs)
            t = next(found) if tagger else None
            e = next(found) if embedder else None
            out.append(Decoded(d.photo_id, d.path, t if d.wants[0] else None, e if d.wants[1] else None))
        return out, failures, sum(read for _, read in counted)

    def prepare(self, batch: list[Decoded | Failure]) -> _Prepared:
        decoded = [d for d in batch if isinstance(d, Decoded)]
        if not decoded:
            return _Prepared([], None, [], None, {})
        on_gpu = self.device.type == "cuda"
        if on_gpu and self._stream is None:
            self._stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(self._stream) if on_gpu else nullcontext():
            jpegs = [d for d in decoded if d.device_jpeg is not None]
            failures: dict[int, Failure] = {}
            read = 0
            if jpegs:
                done, failures, read = self._device_decode(jpegs)
                decoded = [d for d in decoded if d.device_jpeg is None] + done
            tagged, tagger_input = _stacked([(d.photo_id, d.tagger_input) for d in decoded], self.device)
            embedded, embedder_input = _stacked([(d.photo_id, d.embedder_input) for d in decoded], self.device)
            prepared = _Prepared(tagged, tagger_input, embedded, embedder_input, failures, read=read)
            if on_gpu:
                prepared.ready = torch.cuda.Event()
                prepared.ready.record(self._stream)
        return prepared

    def compute(self, prepared: _Prepared) -> Callable[[], Outputs]:
        if prepared.ready is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(prepared.ready)
            for tensor in (prepared.tagger_input, prepared.embedder_input):
                if tensor is not None:
                    tensor.record_stream(stream)  # made on the side stream, read on this one
        probs = vectors = None
        if prepared.tagger_input is not None:
            probs = self.tagger.probs_later(prepared.tagger_input)
        if prepared.embedder_input is not None:
            vectors = self.embedder.embeddings_later(prepared.embedder_input)

        def result() -> Outputs:
            p = dict(zip(prepared.tagged, probs(), strict=True)) if probs else {}
            v = dict(zip(prepared.embedded, vectors(), strict=True)) if vectors else {}
            return Outputs(p, v, prepared.failures, prepared.read)

        return result

    def run(self, batches: Iterable[list[Decoded | Failure]]) -> Iterator[tuple[list[Decoded | Failure], Outputs]]:
        from ram_model.accel import pipelined

        if self.device.type == "cuda":
            yield from pipelined(batches, self.prepare, self.compute)
            return
        for batch in batches:
            yield batch, self.compute(self.prepare(batch))()


def _read(d: Decoded) -> bytes | Failure:
    from indexer.metadata._files import open_regular

    try:
        with open_regular(d.path) as stream:
            return stream.read()
    except OSError as exc:
        return Failure(d.path, "unreadable", f"cannot read {d.path}: {exc.strerror or exc}")


def _stacked(items: list[tuple[int, torch.Tensor | None]],
             device: torch.device) -> tuple[list[int], torch.Tensor | None]:
    """The photo ids and one ``[B, 3, S, S]`` batch on ``device`` of the inputs given (None: no input):
    host tensors stacked and copied through pinned memory, asynchronously on a GPU, then the tensors
    already on the device."""
    host = [(i, t) for i, t in items if t is not None and t.device.type == "cpu"]
    there = [(i, t) for i, t in items if t is not None and t.device.type != "cpu"]
    parts = []
    if host:
        stack = torch.stack([t for _, t in host])
        parts.append(stack.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else stack)
    if there:
        parts.append(torch.stack([t for _, t in there]))
    batch = (parts[0] if len(parts) == 1 else torch.cat(parts)) if parts else None
    return [i for i, _ in host + there], batch
