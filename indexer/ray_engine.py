"""The Ray engine (``phototag index --engine ray``): a pass's reading and model work on a Ray cluster.

The driver, the ``phototag`` process, does what it does with the local engine: it scans, decides what to compute
and writes the catalog, one transaction per batch, so a killed driver loses at most the batches in flight and the
next pass does exactly the rest. Ray Data runs the stages that read photos where its workers are, streaming, with
back-pressure between them:

* identify (:func:`indexer.pipeline.identify`: the content hash reads every byte, then the metadata): CPU tasks;
* decode (:func:`indexer.pipeline.decode`, with the settings a local pass on the models' device uses): CPU tasks;
* RAM++ and CLIP: actors, one GPU each when the cluster has GPUs, else on CPUs (``Settings.ray_actors``), each
  loading the models once from the model store at the driver's ``$PHOTOTAG_HOME/models`` path (it must be there
  on every node: shared storage, or a copy).

Results come back as the stages' own objects (Identified, Decoded, Failure), which the driver stores with the same
code as a local pass: the same values. A worker that dies (killed, out of memory, its node lost) has its task run
again, up to :data:`RETRIES` times; a file a worker cannot read comes back as a Failure with the reason, like any
unreadable file. ``Settings.ray_nodes`` maps path prefixes to nodes: the photos under a prefix are read on that
node when it can take the work (a soft affinity), so storage attached to a node is read there, not over the network.
"""

from __future__ import annotations

import logging
import math
import pickle
import signal
import threading
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import ray
import ray.data
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from indexer._paths import within
from indexer.engine import Infer, Results
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
    counting_reads,
    decode,
    identify,
)
from indexer.settings import CPU_BATCH_SIZE, Settings

RETRIES = 3  # runs of a task beyond the first when its worker dies
IDENTIFY_ROWS = 64  # paths per identify task
GPU_BATCH = 128  # photos per model call on a GPU actor, unless the settings give a batch size


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (None: RAY_ADDRESS, a cluster started on this machine with ``ray start``,
    else a new local one), unless this process has joined one already.

    Raises:
        EngineError: no cluster there.
    """
    if ray.is_initialized():
        return
    # ray.init installs its own SIGTERM handler; the one in place (the CLI's: stop after the batch in flight) stays.
    main = threading.current_thread() is threading.main_thread()
    term = signal.getsignal(signal.SIGTERM) if main else None
    try:
        with warnings.catch_warnings():  # a tip about a future default, on every start
            warnings.simplefilter("ignore", FutureWarning)
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EngineError(f"cannot join the Ray cluster{f' at {address}' if address else ''} ({exc}): start it "
                          "with 'ray start --head' on one machine and 'ray start --address ADDR' on the others, "
                          "then index with --ray-address ADDR") from exc
    finally:
        if main:
            signal.signal(signal.SIGTERM, term)


def node_ids(nodes: dict[str, str]) -> dict[str, str]:
    """``Settings.ray_nodes`` (path prefix → node id or IP address) with each node as the id of a live node.

    Raises:
        EngineError: the cluster has no such live node.
    """
    alive = [node for node in ray.nodes() if node["Alive"]]
    ids = {}
    for prefix, name in nodes.items():
        found = [node["NodeID"] for node in alive if name in (node["NodeID"], node["NodeManagerAddress"])]
        if not found:
            known = ", ".join(f"{node['NodeManagerAddress']} (id {node['NodeID']})" for node in alive)
            raise EngineError(f"Ray node {name!r} (for {prefix}) is not a live node of the cluster, whose nodes are "
                              f"{known}: correct --ray-node or PHOTOTAG_RAY_NODES")
        ids[prefix] = found[0]
    return ids


class RayEngine:
    """Identify, decode and the models on the Ray cluster the settings name (see the module's docstring).

    ``tagger`` and ``embedder`` are the driver's; only their input size and transform are read here (the actors
    load their own).

    Raises:
        EngineError: no cluster to join, a node in ``ray_nodes`` it does not have, or too few CPUs for the actors
            and the decoding.
    """

    def __init__(self, settings: Settings, tagger: Any, embedder: Any) -> None:
        connect(settings.ray_address)
        ray.data.DataContext.get_current().enable_progress_bars = False  # the pass reports its own progress
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self.settings = settings
        self.tagger = tagger
        self.embedder = embedder
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 0))
        self.actors = settings.ray_actors or self.gpus or max(1, cpus // 2)
        if cpus < self.actors + 1:  # each actor holds a CPU; decoding needs one more
            raise EngineError(f"the Ray cluster has {cpus} CPUs: too few for {self.actors} model actors and the "
                              "decoding (one CPU each); add nodes, or set fewer actors (PHOTOTAG_RAY_ACTORS)")
        self.batch_size = settings.batch_size or (GPU_BATCH if self.gpus else CPU_BATCH_SIZE)
        self.nodes = node_ids(settings.ray_nodes)

    @property
    def on_gpu(self) -> bool:
        return self.gpus > 0

    def close(self) -> None:
        """Nothing to release: the cluster's workers stay for the next pass (or the next driver)."""

    def identify(self, paths: Sequence[str], reads: Reads) -> Generator[Identified | Failure, None, None]:
        if not paths:
            return
        for rows in self._blocks(self._tasks(paths, _identify_row, IDENTIFY_ROWS)):
            for result, read in rows:
                reads.add(read)
                yield result

    @contextmanager
    def models(self, photos: int) -> Iterator[Infer]:
        gpu = self.on_gpu
        transform = getattr(self.embedder, "pixel_transform" if gpu else "transform")  # as a local pass there
        settings = DecodeSettings(self.tagger.image_size, transform, self.settings.draft_decode, pixels=gpu)
        models = {"models": str(self.settings.models_dir), "tagger": self.settings.tagger,
                  "embedder": self.settings.embedder, "precision": self.settings.precision,
                  "chunk_size": self.settings.chunk_size, "settings": settings}

        def infer(jobs: Iterable[DecodeJob], reads: Reads) -> Results:
            items = list(jobs)
            if not items:
                return
            decoded = self._tasks(items, _decode_row, self.batch_size, fn_kwargs={"settings": settings})
            computed = decoded.map_batches(
                _Models, fn_constructor_kwargs=models, batch_size=self.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=self.actors), num_cpus=1, num_gpus=1 if gpu else 0,
                max_task_retries=RETRIES)
            for rows in self._blocks(computed):  # an actor's batch: stored in one transaction
                outputs = Outputs({}, {}, {})
                for result, probs, vector, read in rows:
                    reads.add(read)
                    if probs is not None:
                        outputs.probs[result.photo_id] = probs
                    if vector is not None:
                        outputs.vectors[result.photo_id] = vector
                yield [result for result, *_ in rows], outputs

        yield infer

    def _tasks(self, items: Sequence[Any], function: Callable[..., dict[str, bytes]], rows_per_task: int,
               **map_args: Any) -> ray.data.Dataset:
        """``items`` (paths or decode jobs) mapped by ``function`` in CPU tasks of ``rows_per_task`` items; those
        under a prefix of ``ray_nodes`` placed on its node when it can take them. A row holds one pickled item:
        Arrow cannot hold every path as text (a file's name need not be UTF-8)."""
        groups: dict[str | None, list[Any]] = {}
        for item in items:
            groups.setdefault(self._node_for(item if isinstance(item, str) else item.path), []).append(item)
        parts = []
        for node, group in groups.items():
            rows = ray.data.from_items([{"item": pickle.dumps(item)} for item in group],
                                       override_num_blocks=math.ceil(len(group) / rows_per_task))
            placed: dict[str, Any] = {}  # the storage's node, when the path has one
            if node:
                placed["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
            parts.append(rows.map(function, num_cpus=1, max_retries=RETRIES, **placed, **map_args))
        return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]

    def _node_for(self, path: str) -> str | None:
        """The node whose storage holds ``path`` (the longest prefix of ``ray_nodes`` it lies under), if any."""
        prefixes = [prefix for prefix in self.nodes if within(path, [prefix])]
        return self.nodes[max(prefixes, key=len)] if prefixes else None

    @staticmethod
    def _blocks(dataset: ray.data.Dataset) -> Generator[list[Any], None, None]:
        """The rows of ``dataset``, unpickled, a block at a time as they come.

        Raises:
            EngineError: a task failed beyond its retries (or the cluster went away).
        """
        try:
            for block in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                yield [pickle.loads(item) for item in block["item"]]
        except RayError as exc:
            raise EngineError(f"the Ray cluster failed a task ({type(exc).__name__}: {exc}); the batches stored so "
                              "far are kept: run the pass again to do the rest") from exc


def _identify_row(row: dict[str, bytes]) -> dict[str, bytes]:
    """A task's work on one row: :func:`identify` of its path, and the bytes that read."""
    return {"item": pickle.dumps(counting_reads(identify, pickle.loads(row["item"])))}


def _decode_row(row: dict[str, bytes], settings: DecodeSettings) -> dict[str, bytes]:
    """A task's work on one row: :func:`decode` of its job, and the bytes that read."""
    return {"item": pickle.dumps(counting_reads(partial(decode, settings=settings), pickle.loads(row["item"])))}


class _Models:
    """A model actor: the tagger and the embedder, each loaded from the model store on first use (a round of
    embeddings only never loads the tagger), on the GPU Ray gave it, else on the CPU."""

    def __init__(self, models: str, tagger: str, embedder: str, precision: str, chunk_size: int | None,
                 settings: DecodeSettings) -> None:
        import torch

        from ram_model.store import LazyModel, ModelStore

        device = torch.device("cuda" if ray.get_gpu_ids() else "cpu")
        store = ModelStore(models)
        self.stage = ModelStage(
            LazyModel(store.get(tagger), lambda: store.load_tagger(tagger, device=device, dtype=precision,
                                                                   chunk_size=chunk_size)),
            LazyModel(store.get(embedder), lambda: store.load_embedder(embedder, device, precision)),
            settings, device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        """Decoded photos (with the bytes each read) → each with its probabilities and embedding; the inputs stay."""
        decoded = [pickle.loads(item) for item in batch["item"]]
        outputs = self.stage.compute(self.stage.prepare([result for result, _ in decoded]))()
        rows = []
        for result, read in decoded:
            probs = vector = None
            if isinstance(result, Decoded):
                probs, vector = outputs.probs.get(result.photo_id), outputs.vectors.get(result.photo_id)
                result = outputs.failures.get(result.photo_id) or Decoded(result.photo_id, result.path, None, None)
            rows.append(pickle.dumps((result, probs, vector, read)))
        return {"item": rows}
