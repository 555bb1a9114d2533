"""Where an index pass's stage work runs: the engine seam of :class:`indexer.index.Indexer`.

The Indexer scans, reconciles, decides what to compute and writes the catalog (one writer, one transaction per
batch). An engine runs the stages that read photos and run the models, and hands their results back:

* ``identify(paths, reads)``: :func:`indexer.pipeline.identify` of each path, in any order;
* ``models(photos)``: a context (models loaded, workers started) giving ``infer(jobs, reads)``, which decodes
  the jobs and runs the models on them, yielding ``(batch, outputs)`` as :meth:`ModelStage.run` does, in any
  order; the Indexer stores each batch before it asks for the next, and closes the iterator to stop early;
* ``on_gpu``: whether the models run on a GPU (the Indexer orders its rounds by it).

Both count what they read with :func:`indexer.pipeline.counting_reads` into the ``reads`` they are given.
:class:`LocalEngine` runs on this machine; ``indexer.ray_engine.RayEngine`` on a Ray cluster (``--engine ray``).
:func:`engine_for` picks one from the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from indexer.errors import EngineError
from indexer.pipeline import (
    Decoded,
    DecodeJob,
    DecodeSettings,
    Failure,
    Identified,
    ModelStage,
    Outputs,
    Reads,
    Stages,
    batched,
    decode,
    identify,
)
from indexer.settings import COMPILE_FROM_PHOTOS, CPU_BATCH_SIZE

if TYPE_CHECKING:
    from indexer.settings import Settings

# Up to this many items a stage runs in this process: hashing a photo takes ~4 ms and decoding one
# ~50-70 ms on a core (bench/results/indexer_cpu.md), while a spawn worker pool starts in ~4 s (two cores) to
# ~13 s (15 workers: bench/results/clip_first_gpu.md).
IDENTIFY_IN_PROCESS = 500
DECODE_IN_PROCESS = 32
IDENTIFY_CHUNK = 16  # paths per worker task: identifying one takes ~4.5 ms, a task's round trip costs more

Results = Generator[tuple[list[Decoded | Failure], Outputs], None, None]
Infer = Callable[[Iterable[DecodeJob], Reads], Results]


class Engine(Protocol):
    """Runs a pass's identify, decode and model stages (see the module's docstring)."""

    @property
    def on_gpu(self) -> bool: ...

    def identify(self, paths: Sequence[str], reads: Reads) -> Generator[Identified | Failure, None, None]: ...

    def models(self, photos: int) -> AbstractContextManager[Infer]: ...

    def close(self) -> None:
        """The end of a pass: release what its stages held (worker processes)."""


def engine_for(settings: Settings, tagger: Any, embedder: Any) -> Engine:
    """The engine ``settings.engine`` names: ``local`` (this machine) or ``ray`` (a Ray cluster, the optional
    ``ray`` extra: imported only when chosen).

    Raises:
        EngineError: Ray is not installed, or its cluster cannot be reached.
    """
    if settings.engine == "ray":
        try:
            import ray.data  # noqa: F401 - only to tell a missing extra from a failure inside the engine
        except ImportError as exc:
            raise EngineError(f"the Ray engine needs Ray, which is not installed ({exc}): "
                              "pip install 'phototag[ray]', or index with --engine local") from exc
        from indexer.ray_engine import RayEngine

        return RayEngine(settings, tagger, embedder)
    return LocalEngine(tagger, embedder, workers=settings.workers, batch_size=settings.batch_size,
                       draft=settings.draft_decode, device_decode=settings.gpu_decode, compile=settings.compile)


class LocalEngine:
    """This machine: identify and decode in ``workers`` processes (in this one for a handful of files), the
    models in this process, on their device. On a GPU, photos travel as uint8 pixels and plain JPEGs are
    decoded by the GPU (unless ``device_decode`` is off), and the models are compiled when ``compile`` says so
    (None: when the first pass computes ``COMPILE_FROM_PHOTOS`` photos or more)."""

    def __init__(self, tagger: Any, embedder: Any, *, workers: int = 0, batch_size: int | None = None,
                 draft: bool = True, device_decode: bool = True, compile: bool | None = None) -> None:
        self.tagger = tagger
        self.embedder = embedder
        self.workers = workers
        self.batch_size = batch_size
        self.draft = draft
        self.device_decode = device_decode
        self.compile = compile
        self._stage: ModelStage | None = None
        self._stages: Stages | None = None  # the pass's worker pool, once a stage needed one
        self._compiled = False  # whether the stage's models run compiled
        self._measured_batch: int | None = None  # the batch size chosen when none is given

    @property
    def on_gpu(self) -> bool:
        return bool(self.tagger.device.type == "cuda")

    def identify(self, paths: Sequence[str], reads: Reads) -> Generator[Identified | Failure, None, None]:
        stages = self._stages_for(len(paths), IDENTIFY_IN_PROCESS)
        yield from stages.map(identify, paths, chunk=IDENTIFY_CHUNK, on_read=reads.add)

    @contextmanager
    def models(self, photos: int) -> Iterator[Infer]:
        stage = self._model_stage(photos)
        stages = self._stages_for(photos, DECODE_IN_PROCESS)
        settings = stage.settings
        if settings.device_jpeg:  # the GPU and the CPU workers each decode their share of the JPEGs
            from ram_model.accel import device_share

            settings = replace(settings, device_share=device_share(stages.workers, self._compiled))

        def infer(jobs: Iterable[DecodeJob], reads: Reads) -> Results:
            batch_size = self._batch_size()
            decoded = stages.map(partial(decode, settings=settings), jobs, lookahead=2 * batch_size,
                                 on_read=reads.add)
            for batch, outputs in stage.run(batched(decoded, batch_size)):
                reads.bytes += outputs.read  # the JPEGs the GPU decoded
                yield batch, outputs

        yield infer

    def close(self) -> None:
        if self._stages is not None:
            self._stages.close()
            self._stages = None

    def _stages_for(self, items: int, in_process_up_to: int) -> Stages:
        """Where a stage of ``items`` runs: the pass's worker pool, started by the first stage with more than
        ``in_process_up_to`` items and kept for the next (identify, then decoding: one start, not two); else
        this process, for a handful (a pass over a few new files, as ``watch`` runs), where starting spawn
        workers that import torch (seconds each) costs more than the work."""
        if self._stages is None and self.workers > 0 and items > in_process_up_to:
            self._stages = Stages(self.workers)
        return self._stages or Stages(0)

    def _model_stage(self, photos: int) -> ModelStage:
        """The model stage, built once per engine (a compiled model is compiled once)."""
        if self._stage is None:
            gpu = self.on_gpu
            transform = getattr(self.embedder, "pixel_transform" if gpu else "transform", None)
            settings = DecodeSettings(self.tagger.image_size, transform, self.draft, pixels=gpu,
                                      device_jpeg=gpu and self.device_decode)
            self._stage = ModelStage(self.tagger, self.embedder, settings, self.tagger.device)
            self._compiled = gpu and (self.compile if self.compile is not None else photos >= COMPILE_FROM_PHOTOS)
            if self._compiled:
                batch = self._batch_size()
                self.tagger.compile_batches(batch)
                self.embedder.compile_batches(batch)
        return self._stage

    def _batch_size(self) -> int:
        """``batch_size`` as given; else 8 off a GPU, and on one the largest that fits its free memory
        (measured once per engine)."""
        if self.batch_size is not None:
            return self.batch_size
        if self._measured_batch is None:
            if not self.on_gpu:
                self._measured_batch = CPU_BATCH_SIZE
            else:
                from ram_model.accel import auto_batch_size

                self._measured_batch = auto_batch_size(self.tagger, self.embedder)
        return self._measured_batch
