"""The FAISS index of photo embeddings: a cache rebuilt from the catalog whenever it is in doubt.

The catalog (SQLite) holds every embedding with its photo id and is the source of truth. This
module keeps the same vectors in an exact inner-product index (``IndexIDMap2`` over
``IndexFlatIP``) so that "photos like this one" and free-text search do not scan SQLite. The
vectors are unit vectors, so the inner product is the cosine similarity.

On disk an index is two files: ``NAME.faiss`` (``faiss.write_index``) and ``NAME.json``
(``dim``, ``count``, ``state``, ``bytes``, ``faiss_version``, ``format``). ``state`` is an opaque
fingerprint of the catalog's embeddings chosen by the caller (for example
``"clip_vit_b16@1:42"``, embedder, version and generation). Each file is written to a temporary
file in the same folder, fsynced and renamed into place; the json is removed before the index is
replaced and written last, so a save interrupted at any point leaves no json, and :meth:`load`
treats the pair as stale. :meth:`load` returns ``None`` instead of raising for any file that is
missing, unreadable, of another dimension, of another count or of another state, and
:meth:`open` then rebuilds from the catalog and saves.

Exact or approximate search
---------------------------
Exact flat search reads every vector for every query: 512 float32 = 2 KiB per photo, 200 MB at
100k photos, 2 GB at 1M, 20 GB at 10M, and a single query is bound by memory bandwidth (about
10 ms at 100k and 0.1 s at 1M on the 2-core benchmark machine; ``indexer/VECTORS.md`` has the
numbers, ``bench/bench_vectors.py`` measures them). It stays the right choice up to about 1M
photos: results are exact, adds and removes are immediate and nothing is trained. Beyond that:

* ``IndexScalarQuantizer(d, QT_fp16, METRIC_INNER_PRODUCT)``: still exhaustive, half the memory
  (1 GB at 1M) and about half the latency, scores within about 1e-3. The first step.
* ``IndexHNSWFlat(d, 32, METRIC_INNER_PRODUCT)`` (M=32; ``efSearch`` 64-256 per query): about a
  millisecond per query at any size, for the vectors plus 2*M*4 = 256 bytes of graph each, slow
  builds (a minute per 100k on 2 cores) and no ``remove_ids``.
* ``IndexIVFFlat`` (nlist about 4*sqrt(N): 4,000 at 1M, 12,600 at 10M; ``nprobe`` 16-64 per
  query): scans nprobe/nlist of the data, needs training, supports ``remove_ids``.
  ``IndexIVFPQ`` (PQ64: 64 bytes a vector plus its id) holds 10M vectors in 720 MB; re-rank its
  top candidates exactly with the catalog's vectors.

``kind="ivfpq"`` (what ``auto`` picks from ``COMPRESSED_FROM`` = 2M vectors) is that IVF-PQ index: sqrt(N)
cells (at most 1,024), 64-byte codes plus an 8-byte id a vector, and the best ``k + R`` candidates by their
codes (``RERANK``) re-scored exactly with the catalog's float16 vectors (``exact_vectors``, one SQLite read).
Its memory is bounded: ~0.7 GB at 10M where IVF or flat keep 20 GB.

Every kind is built streaming (:meth:`VectorIndex.build_from`): one pass over the catalog's batches counts
them and keeps a uniform sample (at most ``TRAIN_SAMPLE``) to train on, a second adds them; no step holds
every vector twice (the old build concatenated all rows, then copied them: 7 GB peak at 1M).

Approximate settings must be chosen on real CLIP embeddings, measuring recall@50 against this
index; random vectors (the benchmark's) are their worst case. A GPU (``faiss-gpu-cu12``) pays
off only for large query batches, and the GPU flat index has no ``remove_ids``, so no
``to_gpu()`` is offered here.

Threads: FAISS >= 1.14 splits a single query's scan across all OpenMP threads, which on the
benchmark machine was 1.5-6x slower than one thread; ``VectorIndex.query_threads`` (default 1)
caps small searches. A process that also runs PyTorch should cap FAISS's pool too
(``faiss.omp_set_num_threads``) so the two do not oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np
from filelock import FileLock

from indexer._durable import fsync_file, fsync_folder

log = logging.getLogger(__name__)

FORMAT = 1
"""Version of the json written next to the index; a different one is stale."""

KINDS = ("auto", "flat", "ivf", "ivfpq")
APPROXIMATE_FROM = 250_000
"""With ``kind="auto"``, libraries of this many vectors or more get the approximate IVF index
(exact flat search costs ~10 ms per 100k vectors per query on one core); below half of it, an
IVF index goes back to flat. In between nothing changes, so a library near the line does not
flip back and forth."""
COMPRESSED_FROM = 2_000_000
"""With ``kind="auto"``, libraries of this many vectors or more get the compressed IVF-PQ index (72 bytes a
vector where IVF keeps 2 KiB: 0.7 GB at 10M instead of 20 GB); below half of it, back to IVF."""
IVF_NPROBE_SHARE = 0.02  # share of the inverted lists one query visits (at least 32)
PQ_BYTES = 64  # IVF-PQ: bytes of code a vector (sub-quantizers of 8 bits; the dimension must divide by it)
PQ_MAX_LISTS = 1024  # IVF-PQ cells: sqrt(N), at most this (assigning 10M vectors to 1,024 cells: ~3 min on 2 cores)
PQ_NPROBE_SHARE = 0.03  # share of an IVF-PQ index's cells one query visits (at least 24)
RERANK = 1024
RERANK_MAX = 4096
"""IVF-PQ: a query's best k + R candidates by their codes are re-scored with the exact vectors, R = one per 2,500
vectors, at least RERANK and at most RERANK_MAX. On clustered CLIP-like vectors: at 200k, 256 more gave recall@50
0.95, 512 0.99, 1024 0.998; at 10M (denser clusters) 1024 gave 0.81 (similar) and 4096 0.98
(bench/results/catalog.md)."""
TRAIN_SAMPLE = 200_000
"""A streaming build trains on a uniform sample of at most this many vectors (400 MB at 512 dimensions):
with one pass to count and sample and one to add, it never holds more than the sample, a batch and the index."""

ExactVectors = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``ids -> (ids found, their vectors [n, dim] float32)``: the exact vectors an IVF-PQ index re-scores its
candidates with (the catalog's, :func:`indexer.index.embedding_vectors`)."""
# An IVF index's id lookup (reconstruct and remove by id): faiss.DirectMap.Hashtable, which its stubs leave out.
_DIRECT_MAP_HASHTABLE: int = faiss.DirectMap.Hashtable  # type: ignore[attr-defined]


class VectorIndex:
    """Exact inner-product search (``IndexIDMap2`` over ``IndexFlatIP``) of unit vectors keyed by int64 ids.

    Ids are the catalog's photo ids (non-negative; FAISS uses -1 for "no result"). Every method
    is safe to call from several threads: one lock serialises them.

    ``query_threads`` caps the OpenMP threads of a search with fewer queries than FAISS has
    threads (set for the calling thread only, and restored); ``None`` leaves FAISS's setting.
    A single query is memory-bound: on the 2-core benchmark machine one thread answered it 1.5-6x
    faster than two, and it leaves the other cores to the tagger. Larger batches are split
    across threads by query, which does pay.
    """

    def __init__(self, dim: int, *, query_threads: int | None = 1) -> None:
        if dim <= 0:
            raise ValueError(f"vector dimension must be positive, got {dim}")
        self.dim = int(dim)
        self.query_threads = query_threads
        # An IndexIDMap2 over a flat index, or an IndexIVFFlat (``_ivf_ids`` set): see the casts where it matters.
        self._index: faiss.Index = faiss.index_factory(self.dim, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
        self._lock = threading.Lock()
        self._ivf_ids: np.ndarray | None = None  # the ids of an IVF index (it has no id map to look in)
        self._quantizer: faiss.Index | None = None  # an IVF index's cell centres (kept alive with it)
        self.exact_vectors: ExactVectors | None = None  # an IVF-PQ index re-scores its candidates with these

    @property
    def kind(self) -> str:
        """``"flat"`` (exact), ``"ivf"`` (approximate: inverted lists over k-means cells) or ``"ivfpq"`` (the same
        cells holding 64-byte product-quantised codes, candidates re-scored with :attr:`exact_vectors`)."""
        if self._ivf_ids is None:
            return "flat"
        return "ivfpq" if isinstance(self._index, faiss.IndexIVFPQ) else "ivf"

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray, kind: str = "auto",
              current: str | None = None) -> VectorIndex:
        """A new index over ``vectors``; ``kind="auto"`` picks IVF from ``APPROXIMATE_FROM`` vectors on and
        IVF-PQ from ``COMPRESSED_FROM`` on (see :meth:`build_from`, which this calls with one batch).

        When an id appears twice, its last vector wins.
        """
        probe = cls(dim)
        ids, vectors = _as_ids(ids), probe._as_vectors(vectors, "vectors")
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        ids, vectors = _last_of_duplicates(ids, vectors)
        return cls.build_from(dim, lambda: [(ids, vectors)], kind, current)

    @classmethod
    def build_from(cls, dim: int, rows: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
                   kind: str = "auto", current: str | None = None) -> VectorIndex:
        """A new index over the batches of ``rows()`` (ids unique across batches: a catalog's), built streaming.

        The first pass counts the vectors and keeps a uniform sample of at most ``TRAIN_SAMPLE`` of them; an
        IVF or IVF-PQ index is trained on it (k-means, and for IVF-PQ the product quantiser), then a second pass
        adds the batches. Memory: the sample, one batch and the index — never every vector twice. An index of
        no more vectors than the sample is built from the sample, in one pass.
        """
        index = cls(dim)
        count, sample_ids, sample = index._sample(rows())
        chosen = _resolve_kind(kind, count, current)
        if chosen != "flat":
            index._make_ivf(sample, count, pq=chosen == "ivfpq")
        if count == len(sample_ids):  # everything is in the sample: no second pass
            order = np.argsort(sample_ids, kind="stable")
            batches: Iterable[tuple[np.ndarray, np.ndarray]] = [(sample_ids[order], sample[order])]
        else:
            del sample, sample_ids
            batches = rows()
        added = [index._append(_as_ids(b[0]), index._as_vectors(b[1], "vectors")) for b in batches]
        if index._ivf_ids is not None:
            index._ivf_ids = np.sort(np.concatenate(added)) if added else np.empty(0, np.int64)
        if len(index) != count:
            raise ValueError(f"rows() gave {len(index)} vectors on its second pass and {count} on its first")
        return index

    def _sample(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[int, np.ndarray, np.ndarray]:
        """(count, ids, vectors): a uniform sample without replacement of at most TRAIN_SAMPLE rows, in one pass
        (each row gets a random key; the rows of the smallest keys are kept)."""
        rng = np.random.default_rng(0)
        count = 0
        keys, ids, vectors = np.empty(0), np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        for batch_ids, batch_vectors in batches:
            batch_ids, batch_vectors = _as_ids(batch_ids), self._as_vectors(batch_vectors, "vectors")
            if len(batch_ids) != len(batch_vectors):
                raise ValueError(f"{len(batch_ids)} ids for {len(batch_vectors)} vectors")
            count += len(batch_ids)
            batch_keys = rng.random(len(batch_ids))
            if len(keys) >= TRAIN_SAMPLE:  # full: only rows that beat the largest key kept can enter
                enter = batch_keys < keys.max()
                batch_keys, batch_ids, batch_vectors = batch_keys[enter], batch_ids[enter], batch_vectors[enter]
            keys = np.concatenate([keys, batch_keys])
            ids = np.concatenate([ids, batch_ids])
            vectors = np.concatenate([vectors, batch_vectors])
            if len(keys) > TRAIN_SAMPLE:
                keep = np.argpartition(keys, TRAIN_SAMPLE)[:TRAIN_SAMPLE]
                keys, ids, vectors = keys[keep], ids[keep], vectors[keep]
        return count, ids, vectors

    def _append(self, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Add vectors of ids not in the index yet (a build: no lookups); returns the ids."""
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids):
            with self._lock:
                self._index.add_with_ids(vectors, ids)
        return ids

    def _remove_present(self, present: np.ndarray) -> int:
        """Remove ids known to be in the index (call with the lock held)."""
        if self._ivf_ids is None or self.kind == "ivfpq":  # IVF-PQ: no direct map, the lists are scanned
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(present)))
            if self._ivf_ids is not None:
                self._ivf_ids = np.setdiff1d(self._ivf_ids, present, assume_unique=True)
            return removed
        # An IVF index with a hashtable direct map removes by an explicit id array only.
        removed = int(self._index.remove_ids(faiss.IDSelectorArray(present)))
        self._ivf_ids = np.setdiff1d(self._ivf_ids, present, assume_unique=True)
        return removed

    def _make_ivf(self, train_on: np.ndarray, count: int, pq: bool = False) -> None:
        """Train an empty IVF (``pq``: IVF-PQ) index for ``count`` vectors on ``train_on`` (a sample of them)."""
        if pq:
            nlist = int(min(PQ_MAX_LISTS, max(16, np.sqrt(max(count, 1)))))
            if self.dim % PQ_BYTES:
                raise ValueError(f"an IVF-PQ index of {PQ_BYTES} bytes needs a dimension divisible by it, "
                                 f"got {self.dim}")
        else:
            nlist = int(min(65536, max(16, 4 * np.sqrt(max(count, 1)))))
        available = len(train_on)
        needed = max(4 * nlist, 256) if pq else 4 * nlist  # PQ: 256 centroids per sub-quantizer
        if available < needed:
            kind = "IVF-PQ" if pq else "IVF"
            raise ValueError(f"an {kind} index of {nlist} cells needs at least {needed} vectors, got {available}")
        rng = np.random.default_rng(0)
        sample = train_on[rng.choice(available, size=min(available, max(40 * nlist, 65_536) if pq else 40 * nlist),
                                     replace=False)]
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf: faiss.IndexIVF
        if pq:
            ivf = faiss.IndexIVFPQ(quantizer, self.dim, nlist, PQ_BYTES, 8, faiss.METRIC_INNER_PRODUCT)
            ivf.nprobe = min(nlist, max(24, int(nlist * PQ_NPROBE_SHARE)))
        else:
            ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.nprobe = min(nlist, max(32, int(nlist * IVF_NPROBE_SHARE)))
        ivf.cp.niter = 10
        ivf.train(sample)
        if not pq:  # reconstruct and remove by id; IVF-PQ keeps no vectors to reconstruct, and removes by a scan
            ivf.set_direct_map_type(_DIRECT_MAP_HASHTABLE)
        self._index, self._quantizer = ivf, quantizer
        self._ivf_ids = np.empty(0, np.int64)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"VectorIndex(dim={self.dim}, count={len(self)})"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` [n, dim] under ``ids`` [n]; an id already present is replaced.

        When an id appears twice in one call, its last vector wins.
        """
        ids = _as_ids(ids)
        vectors = self._as_vectors(vectors, "vectors")
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids) == 0:
            return
        ids, vectors = _last_of_duplicates(ids, vectors)
        with self._lock:
            present = ids[self._contains(ids)]
            if len(present):
                # IndexIDMap2.remove_ids rebuilds its reverse map: only call it when needed.
                self._remove_present(present)
            self._index.add_with_ids(vectors, ids)
            if self._ivf_ids is not None:
                self._ivf_ids = np.union1d(self._ivf_ids, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids``; returns how many were in the index (unknown ids are ignored)."""
        ids = np.unique(_as_ids(ids))
        with self._lock:
            present = ids[self._contains(ids)]
            if len(present) == 0:
                return 0
            return self._remove_present(present)

    def search(self, queries: np.ndarray, k: int, *, effort: int = 1,
               codes: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best matches of each query: scores [n, k'] float32 and ids [n, k'] int64.

        ``queries`` is [n, dim] (or one [dim] vector). ``k' = min(k, len(self))``; rows are sorted
        by descending score. ``effort``: an approximate (IVF) index visits ``effort`` times its usual
        share of cells — for callers that keep only a few of the matches (a filter applied after),
        whose answers come from deep in the list where a visit of 2 % of the cells misses more; the
        time grows about in proportion. The flat index is exact whatever the effort.
        ``codes``: an IVF-PQ index answers with every candidate it would re-score (``k`` + R, see ``RERANK``)
        and the scores of their codes, reading no exact vector — for a caller that filters the candidates
        first and re-scores those that pass (:meth:`rescore`). Other kinds answer as without it.
        """
        return self._search(queries, k, None, effort=effort, codes=codes)

    def rescore(self, query: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the ids found, their exact scores against ``query`` [dim]), in the order of ``ids``: the vectors read
        through :attr:`exact_vectors` (what an IVF-PQ index, which keeps only codes, re-scores with)."""
        if self.exact_vectors is None:
            raise ValueError("re-scoring reads the exact vectors through exact_vectors, and none were given")
        found, vectors = self.exact_vectors(_as_ids(ids))
        if not len(found):
            return found, np.empty(0, np.float32)
        return found, np.asarray(vectors, np.float32) @ np.asarray(query, np.float32).reshape(-1)

    def search_ids(
        self, queries: np.ndarray, k: int, ids_subset: np.ndarray, *, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search`, restricted to the ids in ``ids_subset`` (a filtered query).

        ``k' = min(k, len(self), len(set(ids_subset)))``; when fewer subset ids are in the index,
        the missing places hold id -1 and score -inf. ``exact``: an approximate (IVF) index visits
        every list instead of ``nprobe`` of them, so every subset id is scored (a few ms per 10k ids
        at 1M photos: the cost is the subset, not the library); the flat index is always exact.
        """
        subset = np.unique(_as_ids(ids_subset))
        return self._search(queries, k, subset, exact=exact)

    def reconstruct(self, id_: int) -> np.ndarray:
        """The stored vector of ``id_`` (a copy); ``KeyError`` when the id is not in the index.

        An IVF-PQ index keeps only codes: its vectors come from :attr:`exact_vectors` (``KeyError`` without)."""
        if self.kind == "ivfpq":
            with self._lock:
                known = bool(self._contains(np.asarray([id_], np.int64))[0])
            found, vectors = self.exact_vectors(np.asarray([id_], np.int64)) if self.exact_vectors and known \
                else (np.empty(0, np.int64), None)
            if not len(found) or vectors is None:
                raise KeyError(id_)
            return np.asarray(vectors[0], np.float32)
        with self._lock:
            try:
                return self._index.reconstruct(int(id_))  # type: ignore[return-value]  # an array: the stubs say Tensor
            except RuntimeError:
                raise KeyError(id_) from None

    def ids(self) -> np.ndarray:
        """Every id in the index (int64, in storage order)."""
        with self._lock:
            if self._ivf_ids is not None:
                return self._ivf_ids.copy()
            return faiss.vector_to_array(cast(faiss.IndexIDMap2, self._index).id_map).astype(np.int64, copy=False)

    def save(self, path: Path, state: str) -> None:
        """Write the index to ``path`` and its description to ``path.with_suffix(".json")``, atomically.

        ``state`` is the catalog fingerprint :meth:`load` will be asked for. Concurrent saves
        and loads of the same path (other processes included) are serialised by ``PATH.lock``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path), self._lock:
            _save(self._index, path, state)

    @classmethod
    def load(cls, path: Path, dim: int, state: str) -> VectorIndex | None:
        """The index saved at ``path`` for ``state``, or ``None`` when it is missing or stale.

        Stale means: no json (never saved, or a save that did not finish), json or index
        unreadable, another format, dimension, count or state. Never raises for a bad file.
        """
        path = Path(path)
        if not _meta_path(path).exists():  # the common miss, without creating a lock file
            log.debug("no vector index at %s", path)
            return None
        with _file_lock(path):
            return _load(cls, path, dim, state)

    @classmethod
    def open(
        cls,
        path: Path,
        dim: int,
        state: str,
        rows: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
        kind: str = "auto",
        exact_vectors: ExactVectors | None = None,
    ) -> tuple[VectorIndex, bool]:
        """Load the index saved for ``state``, or rebuild it from ``rows()`` and save it.

        ``rows`` returns batches of (ids [n] int64, vectors [n, dim] float32) read from the
        catalog, each id once; it is called only on a rebuild, twice for an approximate index
        (:meth:`build_from`). ``exact_vectors``: where an IVF-PQ index finds the vectors to
        re-score its candidates with. Returns ``(index, rebuilt)``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            previous = _saved_kind(path)
            index = _load(cls, path, dim, state)
            if index is not None and _resolve_kind(kind, len(index), index.kind) == index.kind:
                index.exact_vectors = exact_vectors
                return index, False
            index = cls.build_from(dim, rows, kind, current=previous)
            index.exact_vectors = exact_vectors
            try:
                with index._lock:
                    _save(index._index, path, state)
            except (OSError, RuntimeError) as error:  # a full disk (faiss says RuntimeError): the index still
                log.warning("%s: the rebuilt vector index could not be saved (%s); it is rebuilt again when "
                            "next needed", path, error)  # serves from memory, and the catalog holds every vector
            log.info("rebuilt vector index %s: %d vectors of %d dimensions", path, len(index), dim)
            return index, True

    # -- plumbing --------------------------------------------------------------------------

    def _search(self, queries: np.ndarray, k: int, subset: np.ndarray | None, exact: bool = False, effort: int = 1,
                compressed: bool = True, codes: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if int(k) <= 0:
            raise ValueError(f"k must be positive, got {k}")
        queries = self._as_vectors(queries, "queries")
        if compressed and self.kind == "ivfpq":
            k = min(int(k), len(self), len(subset) if subset is not None else len(self))
            if k == 0 or len(queries) == 0:
                return np.empty((len(queries), k), np.float32), np.empty((len(queries), k), np.int64)
            return self._search_compressed(queries, k, subset, exact, effort, codes)
        with self._lock:
            k = min(int(k), len(self))
            if subset is not None:
                k = min(k, len(subset))
            if k == 0 or len(queries) == 0:
                return np.empty((len(queries), k), np.float32), np.empty((len(queries), k), np.int64)
            # FAISS >= 1.14 splits the database across threads when there are fewer queries than
            # threads (an sgemm per block); a SIMD scan on one thread beat it 1.5-6x (VECTORS.md).
            threads = self.query_threads if len(queries) < faiss.omp_get_max_threads() else None
            with _omp_threads(threads):
                if subset is None and (effort <= 1 or self._ivf_ids is None):
                    scores, ids = self._index.search(queries, k)
                elif subset is None:
                    ivf = cast(faiss.IndexIVF, self._index)
                    nprobe = min(ivf.nlist, ivf.nprobe * int(effort))
                    scores, ids = self._index.search(queries, k, params=_search_parameters(ivf=True, nprobe=nprobe))
                else:
                    selector = faiss.IDSelectorBatch(subset)
                    params: faiss.SearchParameters
                    if self._ivf_ids is not None:
                        ivf = cast(faiss.IndexIVF, self._index)
                        params = _search_parameters(ivf=True, sel=selector, nprobe=ivf.nlist if exact else ivf.nprobe)
                    else:
                        params = _search_parameters(ivf=False, sel=selector)
                    scores, ids = self._index.search(queries, k, params=params)
        scores[ids < 0] = -np.inf
        return scores, ids

    def _search_compressed(self, queries: np.ndarray, k: int, subset: np.ndarray | None,
                           exact: bool, effort: int, codes: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """IVF-PQ: the best ``k + effort * R`` candidates (R: see ``RERANK``) by their codes, re-scored with
        :attr:`exact_vectors` (a caller that filters the matches afterwards keeps answers from deep in the list:
        it looks harder); with ``codes``, all of them as their codes score them."""
        extra = min(RERANK_MAX, max(RERANK, len(self) // 2500))
        wanted = min(len(self), k + max(1, effort) * extra)
        if subset is not None:
            wanted = min(wanted, len(subset))
        # Answering by codes (no re-scoring here), the cells are visited as usual: what limits recall is how deep
        # the codes' ranking goes, not which cells are visited (at 10M: 96 cells instead of 30 changed no recall).
        scores, ids = self._search(queries, wanted, subset, exact=exact, effort=1 if codes else effort,
                                   compressed=False)
        if codes:
            return scores, ids
        if self.exact_vectors is None:
            return scores[:, :k], ids[:, :k]
        out_scores = np.full((len(queries), k), -np.inf, np.float32)
        out_ids = np.full((len(queries), k), -1, np.int64)
        for row, (query, candidates) in enumerate(zip(queries, ids, strict=True)):
            found, exact_scores = self.rescore(query, candidates[candidates >= 0])
            best = np.argsort(-exact_scores, kind="stable")[:k]
            out_scores[row, :len(best)], out_ids[row, :len(best)] = exact_scores[best], found[best]
        return out_scores, out_ids

    def _contains(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` are in the index (call with the lock held)."""
        n = len(self)
        if n == 0:
            return np.zeros(len(ids), dtype=bool)
        if self._ivf_ids is not None:
            return np.isin(ids, self._ivf_ids)
        # A zero-copy view of the id map, used at once: it is invalidated by the next add.
        stored = faiss.rev_swig_ptr(cast(faiss.IndexIDMap2, self._index).id_map.data(), n)
        return np.isin(ids, stored)

    def _as_vectors(self, vectors: np.ndarray, what: str) -> np.ndarray:
        array = np.asarray(vectors)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"{what} must have shape [n, {self.dim}], got {list(np.shape(vectors))}")
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{what} must be floating point, got {array.dtype}")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        return array


def _as_ids(ids: np.ndarray) -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim == 0:
        array = array[None]
    if array.ndim != 1:
        raise ValueError(f"ids must be one-dimensional, got shape {list(array.shape)}")
    if len(array) == 0:
        return np.empty(0, np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {array.dtype}")
    if array.min() < 0:
        raise ValueError("ids must be non-negative (FAISS uses -1 for 'no result')")
    if array.dtype == np.uint64 and array.max() > np.iinfo(np.int64).max:
        raise ValueError("ids must fit in int64")
    return np.ascontiguousarray(array, dtype=np.int64)


def _last_of_duplicates(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, last_from_end = np.unique(ids[::-1], return_index=True)
    if len(unique) == len(ids):
        return ids, vectors
    keep = np.sort(len(ids) - 1 - last_from_end)
    return ids[keep], np.ascontiguousarray(vectors[keep])


def _search_parameters(*, ivf: bool, **values: Any) -> faiss.SearchParameters:
    """FAISS search parameters given by keyword, as FAISS's Python wrapper takes them (it keeps ``sel`` alive
    with them; its stubs declare constructors without arguments)."""
    kind = faiss.SearchParametersIVF if ivf else faiss.SearchParameters
    return kind(**values)


@contextlib.contextmanager
def _omp_threads(threads: int | None) -> Iterator[None]:
    """Run FAISS with at most ``threads`` OpenMP threads; OpenMP keeps this per calling thread."""
    before = faiss.omp_get_max_threads()
    if threads is None or threads >= before:
        yield
        return
    faiss.omp_set_num_threads(max(1, threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _file_lock(path: Path) -> FileLock:
    return FileLock(str(path) + ".lock")


def _save(index: faiss.Index, path: Path, state: str) -> None:
    """Write index then json, each atomically; the old json goes first so no crash leaves a lie."""
    meta = _meta_path(path)
    meta.unlink(missing_ok=True)
    fsync_folder(path.parent)
    with _temporary(path) as tmp:
        faiss.write_index(index, str(tmp))
        fsync_file(tmp)
        os.replace(tmp, path)
    fsync_folder(path.parent)
    _write_meta(meta, {
        "dim": int(index.d),
        "count": int(index.ntotal),
        "state": state,
        "bytes": path.stat().st_size,
        "faiss_version": faiss.__version__,
        "kind": ("ivfpq" if isinstance(index, faiss.IndexIVFPQ) else "ivf") if isinstance(index, faiss.IndexIVF)
        else "flat",
        "format": FORMAT,
    })


def _write_meta(meta: Path, content: dict) -> None:
    with _temporary(meta) as tmp:
        tmp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        fsync_file(tmp)
        os.replace(tmp, meta)
    fsync_folder(meta.parent)


def _load(cls: type[VectorIndex], path: Path, dim: int, state: str) -> VectorIndex | None:
    meta_path = _meta_path(path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.debug("no vector index at %s", path)
        return None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        log.warning("vector index description %s is unreadable (%s); it will be rebuilt", meta_path, error)
        return None
    if not isinstance(meta, dict):
        log.warning("vector index description %s is not an object; it will be rebuilt", meta_path)
        return None
    expected = {"format": FORMAT, "dim": dim, "state": state}
    for key, value in expected.items():
        if meta.get(key) != value:
            log.info("vector index %s is stale: %s is %r, wanted %r", path, key, meta.get(key), value)
            return None
    try:
        size = path.stat().st_size
    except OSError as error:
        log.warning("vector index %s is unreadable (%s); it will be rebuilt", path, error)
        return None
    if meta.get("bytes") != size:
        log.warning("vector index %s has %d bytes, its description says %r; it will be rebuilt",
                    path, size, meta.get("bytes"))
        return None
    try:
        index = faiss.read_index(str(path))
    except Exception as error:  # FAISS reports every read problem as RuntimeError; be generous.
        log.warning("vector index %s is unreadable (%s); it will be rebuilt", path, error)
        return None
    flat = isinstance(index, faiss.IndexIDMap2) and isinstance(faiss.downcast_index(index.index), faiss.IndexFlat)
    ivf = isinstance(index, faiss.IndexIVFFlat | faiss.IndexIVFPQ)
    if not ((flat or ivf)
            and index.metric_type == faiss.METRIC_INNER_PRODUCT
            and index.d == dim
            and index.ntotal == meta.get("count")):
        log.warning("vector index %s does not match its description; it will be rebuilt", path)
        return None
    loaded = cls(dim)
    loaded._index = index
    if isinstance(index, faiss.IndexIVFFlat | faiss.IndexIVFPQ):
        if isinstance(index, faiss.IndexIVFFlat):
            index.set_direct_map_type(_DIRECT_MAP_HASHTABLE)
        lists = index.invlists
        assert lists is not None, "an IVF index read from a file has its inverted lists"
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(index.nlist) if lists.list_size(i)]
        loaded._ivf_ids = np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.empty(0, np.int64)
    return loaded


def _saved_kind(path: Path) -> str | None:
    """The kind of the index last saved at ``path``, stale or not (for the hysteresis of ``auto``)."""
    try:
        return json.loads(_meta_path(path).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def _resolve_kind(kind: str, count: int, current: str | None) -> str:
    """The index kind for ``count`` vectors (``current``: the kind in hand, for the hysteresis)."""
    if kind not in KINDS:
        raise ValueError(f"unknown vector index kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    if count >= COMPRESSED_FROM or (current == "ivfpq" and count >= COMPRESSED_FROM // 2):
        return "ivfpq"
    if count >= APPROXIMATE_FROM or (current in ("ivf", "ivfpq") and count >= APPROXIMATE_FROM // 2):
        return "ivf"
    return "flat"


@contextlib.contextmanager
def _temporary(path: Path) -> Iterator[Path]:
    """A fresh name next to ``path`` (same folder, so ``os.replace`` is atomic), removed on failure."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
