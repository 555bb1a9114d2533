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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from ram_model.errors import ImageError
from ram_model.raw import is_raw

HASH_CHUNK = 1 << 20
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Failure:
    """A file a stage could not handle: why (a short word) and a message naming the file."""

    path: str
    reason: str
    message: str


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=32)


def bytes_hash(data: bytes) -> str:
    """:func:`content_hash` of bytes in memory (a file about to be written, say)."""
    digest = _hasher()
    digest.update(data)
    return digest.hexdigest()


def content_hash(path: str) -> str:
    """blake2b-256 of the file's bytes, hex: identical files share it, a moved file keeps it."""
    digest = _hasher()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
        stat = os.stat(path)
        digest = content_hash(path)
    except OSError as exc:
        return Failure(path, "unreadable", f"{path}: cannot read it ({exc.strerror or exc})")
    try:
        info, error = read_photo_info(path), None
    except ImageError as exc:
        # A RAW file Pillow cannot read may still hold a preview the decode stage can use.
        info, error = None, None if is_raw(path) else Failure(path, exc.reason or "corrupt", str(exc))
    except Exception as exc:  # noqa: BLE001 - a metadata bug must not stop the run; the decode stage decides
        info, error = None, None
        del exc
    return Identified(path, stat.st_size, stat.st_mtime_ns, digest, info, error)


@dataclass(frozen=True)
class DecodeJob:
    photo_id: int
    path: str
    tagger: bool  # produce the tagger's input
    embedder: bool  # produce the embedder's input


@dataclass(frozen=True)
class Decoded:
    photo_id: int
    path: str
    tagger_input: torch.Tensor | None  # [3, S, S] float32, normalised
    embedder_input: torch.Tensor | None


@dataclass(frozen=True)
class DecodeSettings:
    tagger_size: int
    embedder_transform: Callable[[Any], torch.Tensor] | None
    draft: bool = True


_settings: DecodeSettings | None = None


def _init_worker(settings: DecodeSettings | None) -> None:
    # Ctrl-C goes to the whole process group: the parent finishes its batch, workers must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    global _settings
    _settings = settings


def decode(job: DecodeJob, settings: DecodeSettings | None = None) -> Decoded | Failure:
    """Stage 2: decode one photo into model inputs."""
    from ram_model.preprocess import open_image, preprocess

    settings = settings or _settings
    assert settings is not None, "decode() needs settings (or a worker initialised with them)"
    try:
        draft = settings.tagger_size if settings.draft else None
        # One decode serves both models; the reduced decode stays above 384 px, so also above CLIP's 224.
        image = open_image(job.path, draft_size=draft)
        tagger_input = preprocess(image, settings.tagger_size) if job.tagger else None
        embedder_input = None
        if job.embedder and settings.embedder_transform is not None:
            embedder_input = settings.embedder_transform(image)
    except ImageError as exc:
        return Failure(job.path, exc.reason or "corrupt", str(exc))
    except MemoryError:
        return Failure(job.path, "too_large", f"{job.path}: not enough memory to decode it")
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one file must not stop the run
        return Failure(job.path, "corrupt", f"{job.path}: cannot decode it ({type(exc).__name__}: {exc})")
    return Decoded(job.photo_id, job.path, tagger_input, embedder_input)


class Stages:
    """Runs a stage function over items in order, in worker processes or in this one.

    ``map`` keeps up to ``lookahead`` items in flight, so decoding the next batch overlaps the
    model's work on this one.
    """

    def __init__(self, workers: int, settings: DecodeSettings | None = None) -> None:
        self.workers = workers
        self.settings = settings
        self._pool: Executor | None = None
        if workers > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(settings,),
            )
        else:
            global _settings
            _settings = settings

    def map(self, function: Callable[[T], R], items: Iterable[T], lookahead: int = 64) -> Iterator[R]:
        if self._pool is None:
            for item in items:
                yield function(item)
            return
        pending: list[Future[R]] = []
        for item in items:
            pending.append(self._pool.submit(function, item))
            if len(pending) >= lookahead:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def infer(tagger: Any, embedder: Any, decoded: list[Decoded]) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Stage 3: one batched call per model. Returns probabilities and embeddings by photo id."""
    probs: dict[int, np.ndarray] = {}
    vectors: dict[int, np.ndarray] = {}
    for_tags = [d for d in decoded if d.tagger_input is not None]
    if for_tags and tagger is not None:
        rows = tagger.predict(torch.stack([d.tagger_input for d in for_tags]))
        probs = {d.photo_id: row for d, row in zip(for_tags, rows, strict=True)}
    for_embed = [d for d in decoded if d.embedder_input is not None]
    if for_embed and embedder is not None:
        batch = torch.stack([d.embedder_input for d in for_embed])
        rows = embedder.embed_image_tensors(batch).numpy().astype(np.float32)
        vectors = {d.photo_id: row for d, row in zip(for_embed, rows, strict=True)}
    return probs, vectors
