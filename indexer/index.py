"""One incremental index pass over some roots: scan → reconcile → identify → decode → infer → persist.

What a pass guarantees:

* an unchanged file (same path, size and mtime) costs one ``stat`` and nothing else;
* a file whose bytes changed is re-tagged; one only touched (same bytes) is not;
* a moved or renamed file (same bytes, old path gone) keeps its row, so its tags, embedding and
  every correction, without model work; a deleted one is marked missing, not forgotten;
* identical files at two paths are computed once (the second copies the first's results);
* a model change redoes only what that model produced;
* new photos come before backfill (photos holding an older model version's results), and off a GPU a
  photo's CLIP embedding comes before its RAM++ tags, so free-text search finds a new library while it is
  still being tagged (:meth:`Indexer._rounds`); a photo is ``indexed`` once both its results are current;
* every batch is written in one transaction: a kill -9 loses at most the batch in flight, and
  the next pass picks up exactly what is left (the catalog itself is the work ledger);
* a bad file is recorded (status ``failed``, reason, attempts) and retried on the next passes,
  up to ``max_attempts`` times until its content changes; the run goes on.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from indexer._paths import catalog_path, folder_prefix, within
from indexer.catalog import Catalog
from indexer.engine import Engine, Infer, LocalEngine, engine_for
from indexer.errors import CatalogError, ScanError
from indexer.pipeline import Decoded, DecodeJob, Failure, Identified, Reads, batched
from indexer.scan import FoundFile, ScanRules, scan
from indexer.schema import (
    ACCEPTED,
    BUILTIN,
    FAILED,
    INDEXED,
    KEYWORD,
    MISSING,
    PENDING,
    SOURCE_FILE,
    SOURCE_MODEL,
    SUGGESTED,
    Embedding,
    Photo,
    PhotoTag,
    Run,
    Tag,
    decode_vectors,
)
from indexer.settings import Settings

log = logging.getLogger(__name__)

GENERATION_KEY = "embeddings_generation"
VOCABULARY_KEY = "vocabulary_synced_for"  # the tagger version whose tags all have rows
IDENTIFY_BATCH = 256
Progress = Callable[[str, int, int | None], None]  # (stage, done, total)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _check_root(root: str) -> None:
    """ScanError unless ``root`` can be stat'ed: gone, or unreadable (a share that is not mounted)."""
    try:
        os.stat(root)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ScanError(f"{root} does not exist: check the path (is the share mounted?)") from exc
    except OSError as exc:
        raise ScanError(f"cannot read {root} ({exc.strerror or exc}): is the share mounted and readable? "
                        "Nothing was changed") from exc


def under(column: Any, roots: Sequence[str]) -> Any:
    """SQL condition: ``column`` is one of ``roots`` or lies below one (a prefix range, index-friendly)."""
    conditions = []
    for root in roots:
        prefix = folder_prefix(root)
        # Every path below ``prefix`` sorts between it and the same string with the separator bumped by one.
        upper = prefix[:-1] + chr(ord(os.sep) + 1)
        conditions += [column == root, (column >= prefix) & (column < upper)]
    return or_(*conditions)


@dataclass
class IndexSummary:
    """What one pass found and did."""

    new: int = 0
    changed: int = 0
    moved: int = 0
    unchanged: int = 0
    missing: int = 0
    restored: int = 0  # files that were missing and came back unchanged
    failed: int = 0
    duplicates: int = 0  # results copied from an identical file instead of computed
    tagged: int = 0  # photos the tagger ran on
    embedded: int = 0  # photos the embedder ran on
    interrupted: bool = False
    failures: list[Failure] = field(default_factory=list)
    # Metadata left out of photos that were still indexed (more keywords than a file may state, an
    # unreadable XMP, ...): reason "metadata", the message naming the file.
    warnings: list[Failure] = field(default_factory=list)
    # What the stages that read photos read, by the one rule of pipeline.counting_reads: identify reads
    # every byte of a new or changed file (its hash), decode what its decoder needs (a RAW's preview).
    read: dict[str, Reads] = field(default_factory=lambda: {"identify": Reads(), "decode": Reads()})

    def counts(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [asdict(f) for f in self.failures]
        data["read"] = {stage: reads.report() for stage, reads in self.read.items()}
        return data


@dataclass(frozen=True)
class _Known:
    id: int
    size: int
    mtime_ns: int
    status: str
    content_hash: str | None


@dataclass(frozen=True)
class _Work:
    id: int
    path: str
    content_hash: str | None
    needs_tags: bool
    needs_embedding: bool
    backfill: bool = False  # holds results of another model version: redone after every new photo


@dataclass(frozen=True)
class _Round:
    """One round of model work over a group of photos: which models it runs."""

    tags: bool
    embeddings: bool

    def given(self, donor: _Work) -> _Round:
        """What identical files get from ``donor`` after this round: what the round computed for it, and, in
        its first round (the one with embeddings when it needs one), what it held current already."""
        first = self.embeddings or not donor.needs_embedding
        return _Round(tags=self.tags or (first and not donor.needs_tags),
                      embeddings=self.embeddings or (first and not donor.needs_embedding))


# Embeddings first, then tags: free-text search finds a photo once its CLIP embedding is stored, long before
# RAM++ (9x CLIP's FLOPs, 7x its CPU time: bench/results/gpu.md, indexer_cpu.md) has tagged the library. Each
# round decodes the photo again (Indexer._rounds says when that pays).
EMBEDDINGS_THEN_TAGS = (_Round(tags=False, embeddings=True), _Round(tags=True, embeddings=False))
TOGETHER = (_Round(tags=True, embeddings=True),)  # one decode serves both models


@dataclass
class _Tally:
    """A pass's model work as its progress reports it: photos done (indexed, or failed) of ``total``, and
    photos whose embedding is stored (or that failed) of ``embeddings``."""

    total: int
    embeddings: int
    done: int = 0
    embedded: int = 0

    def fail(self, items: Sequence[_Work], step: _Round) -> None:
        self.done += len(items)
        if step.embeddings:
            self.embedded += sum(item.needs_embedding for item in items)

    def report(self, step: _Round) -> tuple[str, int, int]:
        """The progress to report during ``step``: stage ``embed`` in a round of embeddings only, else ``model``."""
        if step.embeddings and not step.tags:
            return "embed", self.embedded, self.embeddings
        return "model", self.done, self.total


AfterStore = Callable[[Session, Sequence[int]], None]
"""The indexer's one extension point: called inside each batch's write transaction with the ids of the photos
that batch made ``indexed`` (possibly none), after their model results are stored. Personal learning (custom
tags, the personal model: ``indexer.personal.hooks.after_store``) plugs in here; the indexer imports none of it."""


class Indexer:
    """Runs index passes on one catalog with one tagger and one embedder.

    ``tagger`` is a :class:`ram_model.tagger.Tagger` and ``embedder`` a
    :class:`ram_model.clip.ClipEmbedder`, each with a ``bundle`` (its ``version`` is recorded).
    Set ``stop`` to finish the current batch and return early (Ctrl-C). ``embeddings_first``: store every
    photo's embedding before tagging any (True), or run both models on each batch (False); None chooses
    (:meth:`_rounds`). ``after_store``: what runs on each stored batch (:data:`AfterStore`), in order; the CLI
    and the app pass ``indexer.personal.hooks.after_store``. ``engine``: where identify, decode and the
    models run (:mod:`indexer.engine`); by default this machine, as ``workers``, ``batch_size``, ``draft``,
    ``device_decode`` and ``compile`` say (:class:`indexer.engine.LocalEngine`).
    """

    def __init__(
        self,
        catalog: Catalog,
        tagger: Any,
        embedder: Any,
        *,
        workers: int = 0,
        batch_size: int | None = None,
        rules: ScanRules | None = None,
        draft: bool = True,
        device_decode: bool = True,
        compile: bool | None = None,
        max_attempts: int = 3,
        on_progress: Progress | None = None,
        on_failure: Callable[[Failure], None] | None = None,
        stop: threading.Event | None = None,
        vector_index: str = "auto",
        embeddings_first: bool | None = None,
        after_store: Sequence[AfterStore] = (),
        engine: Engine | None = None,
    ) -> None:
        self.catalog = catalog
        self.tagger = tagger
        self.embedder = embedder
        self.engine = engine or LocalEngine(tagger, embedder, workers=workers, batch_size=batch_size, draft=draft,
                                            device_decode=device_decode, compile=compile)
        self.rules = rules or ScanRules()
        self.max_attempts = max_attempts
        self.on_progress = on_progress or (lambda stage, done, total: None)
        self.on_failure = on_failure or (lambda failure: None)
        self.stop = stop or threading.Event()
        self.vector_index = vector_index
        self.embeddings_first = embeddings_first
        self.after_store = tuple(after_store)
        self.tagger_version: str = tagger.bundle.version
        self.embedder_version: str = embedder.bundle.version
        self._tag_ids: np.ndarray | None = None
        self._vectors: Any = None
        self._generation = 0
        self._failed_now: set[int] = set()  # failed in this pass: not retried until the next one
        self._vanished_now: set[int] = set()  # marked missing in this pass (a move found later is not missing)
        self._respelled: set[int] = set()  # moved from a link's spelling of a root to its real path in this pass

    @classmethod
    def from_settings(cls, catalog: Catalog, tagger: Any, embedder: Any, settings: Settings, **options: Any) -> Indexer:
        """An Indexer configured by ``settings`` (the CLI and the app build theirs alike), on the engine they name
        (:func:`indexer.engine.engine_for`); ``options`` add the rest (``on_progress``, ``stop``, ``rules`` ...)."""
        return cls(catalog, tagger, embedder, engine=engine_for(settings, tagger, embedder),
                   max_attempts=settings.max_attempts, vector_index=settings.vector_index, **options)

    # --- the pass --------------------------------------------------------------------------------
    def run(self, roots: Sequence[str | os.PathLike[str]], *, allow_missing_roots: bool = False) -> IndexSummary:
        """One incremental pass over ``roots`` (folders or files). Takes the catalog's writer lock
        is the caller's job (see :meth:`Catalog.writer`).

        A root reached through a symbolic link is indexed under its real path (``_paths.catalog_path``); rows
        recorded under the spelling given (by an older Phototag, or before the folder became a link) are moved
        to the real path first, by their paths (:meth:`_respell`), so no file is read again for them."""
        given = [os.path.abspath(os.fspath(root)) for root in roots]
        catalog_roots = [catalog_path(root) for root in given]
        aliases = {root: [root] for root in catalog_roots}  # each root -> every spelling the catalog may hold it under
        for old, new in zip(given, catalog_roots, strict=True):
            if old not in aliases[new]:
                aliases[new].append(old)
        if not allow_missing_roots:
            for root in catalog_roots:
                _check_root(root)
                self._refuse_an_empty_library_folder(root, aliases[root])
        summary = IndexSummary()
        self._failed_now, self._vanished_now = set(), set()
        self._respelled = self._respell(given, catalog_roots)
        self._vectors = None  # opened when model work needs it: the file may have changed since the last pass
        run_id = self._start_run(catalog_roots)
        outcome = "crashed"
        try:
            if self.catalog.get_meta(VOCABULARY_KEY) != self.tagger_version:
                self._sync_vocabulary()  # a new tagger: its tags get rows before the files' own keywords do
            found, unseen = self._scan(aliases, summary)
            known = self._known([name for names in aliases.values() for name in names])
            to_identify = self._reconcile(found, known, unseen, summary)
            self._identify(to_identify, known, found, summary)
            if not self.stop.is_set():
                self._model_work(catalog_roots, summary)
            summary.interrupted = self.stop.is_set()
            outcome = "interrupted" if summary.interrupted else "completed"
        finally:
            failing = sys.exc_info()[1] is not None
            self.engine.close()
            self._save_vectors(summary)
            try:
                self._finish_run(run_id, outcome, summary)
            except (CatalogError, OSError):
                if not failing:
                    raise
                # the error in flight (a full disk, a damaged page) says more than the record of it would
                log.warning("could not record the end of run %s", run_id, exc_info=True)
        return summary

    def _refuse_an_empty_library_folder(self, root: str, spellings: list[str]) -> None:
        """An empty folder that the catalog holds photos from is most likely an unmounted share's mount point:
        marking all of them missing would empty every search (and a later pass bring them back). Refuse."""
        try:
            with os.scandir(root) as entries:
                if next(entries, None) is not None:
                    return
        except OSError:
            return  # a file, or unreadable: the scan reports the latter
        held = self._held(root, spellings)
        if held:
            raise ScanError(f"{root} is empty, but the catalog holds {held} photos from it: is the share or drive "
                            "mounted? Nothing was changed. If the photos were really deleted, run again with "
                            "--allow-empty to mark them missing")

    def _held(self, root: str, spellings: list[str]) -> int:
        """Photos (not missing) the catalog holds under ``root``, by its ``spellings`` (``root`` and the links to it
        given)."""
        with self.catalog.session() as session:
            return session.scalar(select(func.count()).select_from(Photo).where(
                under(Photo.path, spellings), Photo.status != MISSING)) or 0

    # --- scan and reconcile ----------------------------------------------------------------------
    def _respell(self, given: Sequence[str], roots: Sequence[str]) -> set[int]:
        """Move the rows recorded under a spelling of a root as ``given`` (``/home/me/Photos`` where ``/home`` is
        a link) to its catalog spelling in ``roots`` (``/var/home/me/Photos``), path by path, in one write
        transaction: the same files, so each keeps its row and is then seen unchanged, with no file read again
        and no photo marked missing meanwhile. A row whose new path the catalog already holds (the same file
        recorded under both spellings) stays where it is, and the pass treats it as any row whose file is gone
        from its path. Returns the ids of the rows moved."""
        pairs = [(old, new) for old, new in zip(given, roots, strict=True) if old != new]
        moved: set[int] = set()
        if not pairs:
            return moved
        with self.catalog.session() as session, session.begin():
            for old, new in pairs:
                # In Python, not SQL: a path's bytes may not be UTF-8 (schema.PathText), so no substr().
                respelled = {photo_id: new.rstrip(os.sep) + path[len(old):] if path != old else new
                             for photo_id, path in session.execute(
                                 select(Photo.id, Photo.path).where(under(Photo.path, [old])))}
                taken: set[str] = set()
                for chunk in batched(list(respelled.values()), 500):
                    taken.update(session.scalars(select(Photo.path).where(Photo.path.in_(chunk))))
                free = [photo_id for photo_id, path in respelled.items() if path not in taken]
                if free:  # one executemany: no parameter limit to chunk for
                    session.execute(update(Photo), [{"id": photo_id, "path": respelled[photo_id]} for photo_id in free])
                moved.update(free)
        return moved

    def _scan(self, aliases: dict[str, list[str]], summary: IndexSummary) -> tuple[dict[str, FoundFile], list[str]]:
        """The files under the roots (``aliases``: each with its spellings), and the paths that could not be read
        (folders or files: what the catalog holds there is left as it is, not marked missing). A root that is gone
        is not scanned (its photos are missing); a share that drops away during the scan (the root no longer
        readable, or another device now) stops the pass with ScanError before anything is changed."""
        found: dict[str, FoundFile] = {}
        unseen: list[str] = []
        devices: dict[str, int | None] = {}  # root -> the device of a folder root (None: a file, or unreadable)
        for root in aliases:
            try:
                st = os.stat(root)
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone (a deleted file or folder a watcher reports): its photos are missing
            except OSError:
                st = None  # unreadable: the scan reports it, and what is known there is kept
            devices[root] = st.st_dev if st is not None and stat.S_ISDIR(st.st_mode) else None

        def unreadable(path: str, exc: OSError) -> None:
            unseen.append(path)
            failure = Failure(path, "unreadable", f"{path}: cannot read it ({exc.strerror or exc}); what the "
                                                  "catalog holds there is kept")
            summary.failed += 1
            summary.failures.append(failure)
            self.on_failure(failure)

        for count, item in enumerate(scan(list(devices), self.rules, on_error=unreadable), 1):
            found[item.path] = item
            if count % 5000 == 0:
                self.on_progress("scan", count, None)
        for root, device in devices.items():
            if device is None:
                continue
            try:
                now_device, reason = os.stat(root).st_dev, "it is on another device now"
            except OSError as exc:
                now_device, reason = None, exc.strerror or str(exc)
            if now_device != device and self._held(root, aliases[root]):
                raise ScanError(f"{root} went away during the scan ({reason}): was the share disconnected? "
                                "Nothing was changed; run again once it is back")
        self.on_progress("scan", len(found), len(found))
        return found, unseen

    def _known(self, roots: list[str]) -> dict[str, _Known]:
        with self.catalog.session() as session:
            rows = session.execute(
                select(Photo.path, Photo.id, Photo.size, Photo.mtime_ns, Photo.status, Photo.content_hash)
                .where(under(Photo.path, roots))
            )
            return {row[0]: _Known(*row[1:]) for row in rows}

    def _reconcile(self, found: dict[str, FoundFile], known: dict[str, _Known], unseen: list[str],
                   summary: IndexSummary) -> list[str]:
        """Sort files into unchanged, changed and new; mark vanished ones missing (not those in or under an
        ``unseen`` path, which could not be read). Returns the paths to identify."""
        to_identify: list[str] = []
        restored: list[int] = []
        for path, item in found.items():
            row = known.get(path)
            if row is None or row.size != item.size or row.mtime_ns != item.mtime_ns:
                to_identify.append(path)
            elif row.status == MISSING:
                restored.append(row.id)
            elif row.id in self._respelled:
                summary.moved += 1  # the same file, recorded under another spelling of its root until this pass
            else:
                summary.unchanged += 1
        vanished = [row.id for path, row in known.items()
                    if path not in found and row.status != MISSING and not within(path, unseen)]
        stamp = now()
        with self.catalog.session() as session, session.begin():
            for ids in batched(vanished, 500):
                session.execute(update(Photo).where(Photo.id.in_(ids)).values(status=MISSING, missing_since=stamp))
            for ids in batched(restored, 500):
                self._restore(session, ids)
        summary.missing += len(vanished)
        self._vanished_now = set(vanished)
        summary.restored += len(restored)
        return to_identify

    def _restore(self, session: Session, ids: list[int]) -> None:
        """A missing photo is back (same bytes): indexed again if its results are current, else pending."""
        session.execute(
            update(Photo).where(Photo.id.in_(ids))
            .values(status=PENDING, missing_since=None, error_reason=None, error_message=None, attempts=0)
        )
        session.execute(
            update(Photo).where(Photo.id.in_(ids), Photo.tagger_version == self.tagger_version,
                                Photo.embedder_version == self.embedder_version).values(status=INDEXED)
        )

    # --- identify: hash and metadata of new and changed files -----------------------------------
    def _identify(self, paths: list[str], known: dict[str, _Known], found: dict[str, FoundFile],
                  summary: IndexSummary) -> None:
        if not paths:
            return
        done = 0
        reads = summary.read["identify"]
        started = time.monotonic()
        try:
            with closing(self.engine.identify(paths, reads)) as results:
                for batch in batched(results, IDENTIFY_BATCH):
                    with self.catalog.session() as session, session.begin():
                        for result in batch:
                            self._record_identified(session, result, known, found, summary)
                    done += len(batch)
                    self.on_progress("identify", done, len(paths))
                    if self.stop.is_set():
                        return
        finally:
            reads.seconds += time.monotonic() - started

    def _record_identified(self, session: Session, result: Identified | Failure, known: dict[str, _Known],
                           found: dict[str, FoundFile], summary: IndexSummary) -> None:
        if isinstance(result, Failure):  # vanished or unreadable between scan and identify
            self._fail_path(session, result, summary)
            return
        stamp = now()
        facts = _facts(result)
        row = known.get(result.path)
        if row is not None and row.content_hash == result.content_hash:
            # Touched, not changed: same bytes, nothing to recompute.
            session.execute(update(Photo).where(Photo.id == row.id).values(
                size=result.size, mtime_ns=result.mtime_ns, last_seen=stamp))
            if row.status == MISSING:
                self._restore(session, [row.id])
                summary.restored += 1
            else:
                summary.unchanged += 1
            return
        if row is not None:
            # Changed content at the same path: a new picture for the models, corrections kept.
            session.execute(update(Photo).where(Photo.id == row.id).values(
                **facts, status=PENDING, attempts=0, error_reason=None, error_message=None, tagger_version=None,
                embedder_version=None, last_seen=stamp, missing_since=None))
            photo_id = row.id
            # Keywords are read again from the new bytes: the file's old keywords go, a person's tags stay.
            session.execute(delete(PhotoTag).where(PhotoTag.photo_id == photo_id, PhotoTag.source == SOURCE_FILE))
            summary.changed += 1
        else:
            donor = self._moved_from(session, result.content_hash, result.path, found)
            if donor is not None:
                session.execute(update(Photo).where(Photo.id == donor).values(
                    path=result.path, size=result.size, mtime_ns=result.mtime_ns, last_seen=stamp))
                self._restore(session, [donor])
                summary.moved += 1
                if donor in self._vanished_now:
                    self._vanished_now.discard(donor)
                    summary.missing -= 1
                return
            photo = Photo(path=result.path, **facts, status=PENDING, attempts=0, first_seen=stamp, last_seen=stamp)
            session.add(photo)
            session.flush()
            photo_id = photo.id
            summary.new += 1
        if result.info is not None:
            self._store_keywords(session, photo_id, result.info.keywords, stamp)
            summary.warnings += [Failure(result.path, "metadata", f"{result.path}: {note}")
                                 for note in result.info.warnings]
        if result.error is not None:  # not an image at all: no point decoding it
            self._fail(session, photo_id, result.error, summary)

    def _moved_from(self, session: Session, content_hash: str, new: str, found: dict[str, FoundFile]) -> int | None:
        """The photo the new path ``new`` was moved from: same bytes, and its old path is gone (a real move), or
        names this very file through a link to its folder (a spelling no root of the pass gave: those are moved
        by path before the scan, :meth:`_respell`)."""
        candidates = session.execute(
            select(Photo.id, Photo.path, Photo.status).where(Photo.content_hash == content_hash)
            .order_by((Photo.status == MISSING).desc(), Photo.id)
        ).all()
        for photo_id, path, status in candidates:
            if status == MISSING or (path not in found and (not os.path.exists(path) or catalog_path(path) == new)):
                return photo_id  # missing, gone, or this very file under another spelling (a link to its folder)
        return None

    def _store_keywords(self, session: Session, photo_id: int, keywords: Iterable[str], stamp: datetime) -> None:
        """Keywords already in the file become accepted tags with source ``file``."""
        for keyword in dict.fromkeys(k.strip() for k in keywords if k and k.strip()):
            tag_id = session.scalar(select(Tag.id).where(or_(Tag.name == keyword, Tag.name_zh == keyword)).limit(1))
            if tag_id is None:
                tag = Tag(name=keyword, kind=KEYWORD)
                session.add(tag)
                session.flush()
                tag_id = tag.id
            session.execute(sqlite_insert(PhotoTag).values(
                photo_id=photo_id, tag_id=tag_id, score=None, source=SOURCE_FILE, state=ACCEPTED,
                model_version=None, updated_at=stamp).on_conflict_do_nothing())

    # --- model work ------------------------------------------------------------------------------
    def _pending_work(self, roots: list[str]) -> list[_Work]:
        """The photos under ``roots`` with model work left: new ones first (never computed, or whose content
        changed), then backfill (holding results of another model version), each group in id order."""
        with self.catalog.session() as session:
            rows = session.execute(
                select(Photo.id, Photo.path, Photo.content_hash, Photo.tagger_version, Photo.embedder_version)
                .where(under(Photo.path, roots))
                .where(or_(
                    Photo.status == PENDING,
                    (Photo.status == INDEXED) & or_(Photo.tagger_version.is_distinct_from(self.tagger_version),
                                                    Photo.embedder_version.is_distinct_from(self.embedder_version)),
                    (Photo.status == FAILED) & (Photo.attempts < self.max_attempts),
                ))
                .order_by(Photo.id)
            ).all()
        work = [_Work(i, p, h, tv != self.tagger_version, ev != self.embedder_version,
                      tv not in (None, self.tagger_version) or ev not in (None, self.embedder_version))
                for i, p, h, tv, ev in rows if i not in self._failed_now]
        return sorted(work, key=lambda item: item.backfill)  # stable: id order within each group

    def _rounds(self) -> tuple[_Round, ...]:
        """The rounds each group of photos goes through: embeddings for all of them, then tags, as ``embeddings_first``
        says; by default when the models run on the CPU, where RAM++ takes 83 % of a pass and decoding 3 %
        (bench/results/indexer_cpu.md): the second decode costs ~2 %, and free-text search finds the library
        after the cheap round. On a GPU one decode feeds both models: decoding bounds the pass there (~400 photos/s
        end to end, the models alone ~790: bench/results/gpu.md), and a second decode would cost more than it
        gives (estimated for 100,000 photos: all searchable after ~2.7 min instead of ~4, done after ~6.5)."""
        first = self.embeddings_first if self.embeddings_first is not None else not self.engine.on_gpu
        return EMBEDDINGS_THEN_TAGS if first else TOGETHER

    def _model_work(self, roots: list[str], summary: IndexSummary) -> None:
        work = self._pending_work(roots)
        if not work:
            return  # the models are not needed: with lazy ones (ram_model.store.LazyModel), never loaded
        if self._tag_ids is None:
            self._sync_vocabulary()
        if self._vectors is None:
            self._open_vectors()
        tally = _Tally(len(work), sum(item.needs_embedding for item in work))
        self.on_progress("model", 0, tally.total)
        # Identical bytes are computed once: the first of each hash, unless a current result exists already.
        donors = self._current_donors({w.content_hash for w in work if w.content_hash})
        compute: list[_Work] = []
        copies: dict[str, list[_Work]] = {}
        for item in work:
            donor = donors.get(item.content_hash) if item.content_hash else None
            if item.content_hash and (donor is not None and donor != item.id or item.content_hash in copies):
                copies.setdefault(item.content_hash, []).append(item)
            else:
                compute.append(item)
                if item.content_hash:
                    copies.setdefault(item.content_hash, [])
        ready = [(digest, items) for digest, items in copies.items() if digest in donors and items]
        if ready:
            with self.catalog.session() as session, session.begin():
                for digest, items in ready:
                    tally.done += len(self._copy_results(session, donors[digest], items, summary))
                    tally.embedded += sum(item.needs_embedding for item in items)
            self.on_progress("model", tally.done, tally.total)

        if not compute:
            return  # only copies of photos computed before: neither the models nor the GPU are needed
        started = time.monotonic()
        try:
            with self.engine.models(len(compute)) as infer:
                for group in ([w for w in compute if not w.backfill], [w for w in compute if w.backfill]):
                    for step in self._rounds():
                        items = [w for w in group if w.id not in self._failed_now
                                 and (step.tags and w.needs_tags or step.embeddings and w.needs_embedding)]
                        if items and not self._run_round(step, items, copies, infer, tally, summary):
                            return
                        if step.embeddings and not step.tags:
                            self._save_vectors(summary)  # searches while tagging goes on load it, not rebuild it
        finally:
            summary.read["decode"].seconds += time.monotonic() - started

    def _run_round(self, step: _Round, items: list[_Work], copies: dict[str, list[_Work]], infer: Infer,
                   tally: _Tally, summary: IndexSummary) -> bool:
        """One round of model work over ``items``, batch by batch as the engine gives them back, each stored in
        one transaction with the copies for identical files; False when stopped."""
        jobs = (DecodeJob(w.id, w.path, step.tags and w.needs_tags, step.embeddings and w.needs_embedding)
                for w in items)
        by_id = {w.id: w for w in items}
        by_path = {w.path: w for w in items}
        self.on_progress(*tally.report(step))
        with closing(infer(jobs, summary.read["decode"])) as results:
            for batch, outputs in results:
                probs = outputs.probs if step.tags else {}
                vectors = outputs.vectors if step.embeddings else {}
                batch = [outputs.failures.get(r.photo_id, r) if isinstance(r, Decoded) else r for r in batch]
                with self.catalog.session() as session, session.begin():
                    done = [by_id[r.photo_id] if isinstance(r, Decoded) else by_path[r.path] for r in batch]
                    stored = [(item, probs.get(item.id), vectors.get(item.id))
                              for result, item in zip(batch, done, strict=True) if isinstance(result, Decoded)]
                    indexed = self._store_results(session, stored, summary)
                    tally.embedded += sum(vector is not None for _, _, vector in stored)
                    for result, item in zip(batch, done, strict=True):
                        followers = copies.get(item.content_hash, []) if item.content_hash else []
                        if isinstance(result, Failure):
                            self._fail(session, item.id, result, summary)
                            for follower in followers:
                                self._fail(session, follower.id, result, summary, path=follower.path)
                            tally.fail([item, *followers], step)
                        else:
                            given = step.given(item)
                            tally.done += len(self._copy_results(session, item.id, followers, summary, given))
                            if given.embeddings:
                                tally.embedded += sum(f.needs_embedding for f in followers)
                    self._after_store(session, indexed)  # e.g. custom tags and the personal model score these
                    tally.done += len(indexed)
                    if vectors:
                        self._bump_generation(session)
                self.on_progress(*tally.report(step))
                if self.stop.is_set():
                    return False
            return True

    def _current_donors(self, hashes: set[str]) -> dict[str, int]:
        """content hash → a photo whose results for these bytes are current."""
        donors: dict[str, int] = {}
        with self.catalog.session() as session:
            for chunk in batched(sorted(hashes), 500):
                rows = session.execute(
                    select(Photo.content_hash, func.min(Photo.id)).where(
                        Photo.content_hash.in_(chunk), Photo.status == INDEXED,
                        Photo.tagger_version == self.tagger_version, Photo.embedder_version == self.embedder_version,
                    ).group_by(Photo.content_hash))
                donors.update({digest: photo_id for digest, photo_id in rows if digest is not None})
        return donors

    def _store_results(self, session: Session,
                       stored: Sequence[tuple[_Work, np.ndarray | None, np.ndarray | None]],
                       summary: IndexSummary) -> list[int]:
        """One batch's results ``(photo, probabilities, embedding)``, in a few statements for the whole
        batch (a GPU pass stores hundreds of photos a second, bench/results/store_cpu.md). Returns the photos
        now indexed (:meth:`_mark_indexed`)."""
        stamp = now()
        scores: dict[int, dict[int, float]] = {}
        embeddings: dict[int, np.ndarray] = {}
        rows: list[dict[str, Any]] = []
        for item, probs, vector in stored:
            values: dict[str, Any] = {"id": item.id, "status": PENDING}
            if probs is not None:
                fired = np.flatnonzero(probs > self.tagger.thresholds)
                tag_ids = self._tag_ids
                assert tag_ids is not None, "the tagger's tag ids are resolved before its first batch"
                scores[item.id] = {int(tag_ids[i]): float(probs[i]) for i in fired}
                values["tagger_version"] = self.tagger_version
                summary.tagged += 1
            if vector is not None:
                embeddings[item.id] = vector
                values["embedder_version"] = self.embedder_version
                summary.embedded += 1
            rows.append(values)
        self._store_model_tags(session, scores, stamp)
        self._store_embeddings(session, embeddings)
        if rows:
            session.execute(update(Photo), rows)
        return self._mark_indexed(session, [item.id for item, _, _ in stored], stamp)

    def _mark_indexed(self, session: Session, ids: list[int], stamp: datetime) -> list[int]:
        """Mark those of ``ids`` whose tags and embedding both come from the current models ``indexed`` (the
        rest stay pending: the next round or pass computes what they lack); returns them."""
        indexed: list[int] = []
        for chunk in batched(ids, 500):
            indexed += session.scalars(
                update(Photo).where(Photo.id.in_(chunk), Photo.tagger_version == self.tagger_version,
                                    Photo.embedder_version == self.embedder_version)
                .values(status=INDEXED, indexed_at=stamp, error_reason=None, error_message=None, attempts=0)
                .returning(Photo.id).execution_options(synchronize_session=False))
        return indexed

    def _store_model_tags(self, session: Session, scores: dict[int, dict[int, float]], stamp: datetime) -> None:
        """Replace the model's suggestions of each photo (``photo id → {tag id: score}``); a person's accept
        or reject stays, with the new score."""
        if not scores:
            return  # a batch of embeddings only
        existing: dict[int, dict[int, str]] = {}
        for chunk in batched(list(scores), 500):
            for photo_id, tag_id, state in session.execute(
                    select(PhotoTag.photo_id, PhotoTag.tag_id, PhotoTag.state).where(PhotoTag.photo_id.in_(chunk))):
                existing.setdefault(photo_id, {})[tag_id] = state
        fired = {(photo_id, tag_id): score for photo_id, tags in scores.items() for tag_id, score in tags.items()}
        stale = [(photo_id, tag_id) for photo_id in scores for tag_id, state in existing.get(photo_id, {}).items()
                 if state == SUGGESTED and tag_id not in scores[photo_id]]
        write_suggestions(session, fired, stale, self.tagger_version, stamp)

    def _store_embeddings(self, session: Session, vectors: dict[int, np.ndarray]) -> None:
        """Insert or replace each photo's embedding (``photo id → vector``), and add them to the FAISS index."""
        if not vectors:
            return
        ids = np.fromiter(vectors, dtype=np.int64, count=len(vectors))
        matrix = np.stack([np.asarray(v, dtype=np.float32) for v in vectors.values()])
        statement = sqlite_insert(cast(Table, Embedding.__table__))
        session.execute(statement.on_conflict_do_update(
            index_elements=["photo_id"],
            set_={"model_version": statement.excluded.model_version, "dim": statement.excluded.dim,
                  "vector": statement.excluded.vector}),
            [{"photo_id": int(i), "model_version": self.embedder_version, "dim": matrix.shape[1],
              "vector": row} for i, row in zip(ids, matrix, strict=True)])
        if self._vectors is not None:
            self._vectors.add(ids, matrix)

    def _copy_results(self, session: Session, donor_id: int, items: list[_Work], summary: IndexSummary,
                      given: _Round = TOGETHER[0]) -> list[int]:
        """Give identical files the donor's model tags and embedding, or what of them ``given`` says (no model
        work); returns those now indexed."""
        if not items:
            return []
        stamp = now()
        values: dict[str, Any] = {"status": PENDING}
        if given.tags:
            scores = dict(session.execute(select(PhotoTag.tag_id, PhotoTag.score).where(
                PhotoTag.photo_id == donor_id, PhotoTag.source == SOURCE_MODEL)).all())
            fired = {k: v for k, v in scores.items() if v is not None}
            self._store_model_tags(session, {item.id: fired for item in items}, stamp)
            values["tagger_version"] = self.tagger_version
        vector = None
        if given.embeddings:
            vector = session.scalar(select(Embedding.vector).where(Embedding.photo_id == donor_id))
            if vector is not None:
                self._store_embeddings(session, {item.id: vector for item in items})
            values["embedder_version"] = self.embedder_version
        session.execute(update(Photo), [{"id": item.id, **values} for item in items])
        if vector is not None:
            self._bump_generation(session)
        indexed = self._mark_indexed(session, [item.id for item in items], stamp)
        self._after_store(session, indexed)
        summary.duplicates += len(indexed)
        return indexed

    def _after_store(self, session: Session, photo_ids: Sequence[int]) -> None:
        """Run the ``after_store`` extensions on the photos a batch just made ``indexed``, in its transaction."""
        for extension in self.after_store:
            extension(session, photo_ids)

    # --- failures --------------------------------------------------------------------------------
    def _fail(self, session: Session, photo_id: int, failure: Failure, summary: IndexSummary,
              path: str | None = None) -> None:
        if path is not None:
            failure = Failure(path, failure.reason, failure.message.replace(failure.path, path))
        session.execute(update(Photo).where(Photo.id == photo_id).values(
            status=FAILED, error_reason=failure.reason, error_message=failure.message,
            attempts=Photo.attempts + 1))
        self._failed_now.add(photo_id)
        summary.failed += 1
        summary.failures.append(failure)
        self.on_failure(failure)

    def _fail_path(self, session: Session, failure: Failure, summary: IndexSummary) -> None:
        photo_id = session.scalar(select(Photo.id).where(Photo.path == failure.path))
        if photo_id is not None:
            self._fail(session, photo_id, failure, summary)
        else:
            summary.failed += 1
            summary.failures.append(failure)
            self.on_failure(failure)

    # --- vocabulary, vectors, runs ---------------------------------------------------------------
    def _sync_vocabulary(self) -> None:
        """Make sure every tag the tagger scores has a row; remember row ids in score order."""
        vocabulary = self.tagger.vocabulary
        names = self.tagger.tag_names
        zh = dict(zip(vocabulary.names, vocabulary.names_zh, strict=True))
        thresholds = dict(zip(names, self.tagger.thresholds.tolist(), strict=True))
        with self.catalog.session() as session, session.begin():
            have = dict(session.execute(select(Tag.name, Tag.id)).all())
            missing = [name for name in names if name not in have]
            if missing:
                session.execute(sqlite_insert(Tag), [
                    {"name": name, "name_zh": zh.get(name) or None, "kind": BUILTIN, "threshold": thresholds[name]}
                    for name in missing])
                have = dict(session.execute(select(Tag.name, Tag.id)).all())
        self._tag_ids = np.asarray([have[name] for name in names], dtype=np.int64)
        with self.catalog.session() as session, session.begin():
            Catalog.set_meta(session, VOCABULARY_KEY, self.tagger_version)

    def _open_vectors(self) -> None:
        from indexer.vectors import VectorIndex

        self._generation = int(self.catalog.get_meta(GENERATION_KEY, "0") or 0)
        with self.catalog.session() as session:
            dim = session.scalar(select(Embedding.dim).where(Embedding.model_version == self.embedder_version).limit(1))
        dim = int(dim if dim is not None else self.embedder.embed_dim)

        def rows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            yield from embedding_rows(self.catalog, self.embedder_version, dim)

        def exact(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return embedding_vectors(self.catalog, self.embedder_version, ids)

        self._vectors, _rebuilt = VectorIndex.open(self.catalog.vectors_path, dim, self._vector_state(), rows,
                                                   kind=self.vector_index, exact_vectors=exact)
        self._saved_state = self._vector_state()  # what the file on disk reflects now

    def _vector_state(self) -> str:
        return f"{self.embedder_version}:{self._generation}"

    def _bump_generation(self, session: Session) -> None:
        self._generation += 1
        Catalog.set_meta(session, GENERATION_KEY, str(self._generation))

    def _save_vectors(self, summary: IndexSummary | None = None) -> None:
        # Only when this pass changed the embeddings: the file is 200 MB per 100k photos, slow on a NAS.
        if self._vectors is None or self._vector_state() == getattr(self, "_saved_state", None):
            return
        try:
            self._vectors.save(self.catalog.vectors_path, self._vector_state())
        except (OSError, RuntimeError) as error:  # faiss reports a failed write (a full disk) as RuntimeError
            # The file is a cache of the catalog: the next search or pass rebuilds it. Nothing is lost.
            message = (f"{self.catalog.vectors_path}: the vector index could not be saved ({error}); "
                       "it is rebuilt from the catalog when next needed")
            log.warning("%s", message)
            if summary is not None:
                summary.warnings.append(Failure(str(self.catalog.vectors_path), "vector_index", message))
            return
        self._saved_state = self._vector_state()

    def _start_run(self, roots: list[str]) -> int:
        with self.catalog.session() as session, session.begin():
            run = Run(started_at=now(), roots=json.dumps(roots, ensure_ascii=False), outcome="running",
                      tagger_version=self.tagger_version, embedder_version=self.embedder_version)
            session.add(run)
            session.flush()
            return run.id

    def _finish_run(self, run_id: int, outcome: str, summary: IndexSummary) -> None:
        counts = summary.counts()
        counts.pop("failures")  # each is on its photo's row
        counts["warnings"] = len(counts["warnings"])  # a number, not a message per photo: printed by the pass
        with self.catalog.session() as session, session.begin():
            session.execute(update(Run).where(Run.id == run_id).values(
                finished_at=now(), outcome=outcome, summary=json.dumps(counts)))


def write_suggestions(session: Session, fired: dict[tuple[int, int], float], stale: Sequence[tuple[int, int]],
                      model_version: str, stamp: datetime) -> None:
    """A model's photo tags, in bulk: each ``(photo id, tag id)`` that ``fired`` gets its score — a new row
    is a suggestion; a row that exists keeps its state and source (a person's accept or reject, a file's
    keyword: decisions win over a model) — and the ``stale`` pairs, suggestions that no longer fire, go.

    One upsert, so it holds whatever rows exist when it runs, even ones its caller never read."""
    for chunk in batched(stale, 400):  # two parameters a pair: under SQLite's old limit of 999
        session.execute(delete(PhotoTag).where(tuple_(PhotoTag.photo_id, PhotoTag.tag_id).in_(chunk),
                                               PhotoTag.source == SOURCE_MODEL, PhotoTag.state == SUGGESTED))
    if not fired:
        return
    statement = sqlite_insert(cast(Table, PhotoTag.__table__))
    session.execute(statement.on_conflict_do_update(
        index_elements=["photo_id", "tag_id"],
        set_={"score": statement.excluded.score, "model_version": statement.excluded.model_version,
              "updated_at": statement.excluded.updated_at}),
        [{"photo_id": photo_id, "tag_id": tag_id, "score": score, "source": SOURCE_MODEL, "state": SUGGESTED,
          "model_version": model_version, "updated_at": stamp} for (photo_id, tag_id), score in fired.items()])


def embedding_rows(catalog: Catalog, model_version: str, dim: int,
                   chunk: int = 20_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every stored embedding of ``model_version`` in batches of (ids, vectors) — to rebuild FAISS."""
    last = 0
    while True:
        with catalog.session() as session:  # the driver's rows: a rebuild reads millions
            rows = session.connection().exec_driver_sql(
                "SELECT photo_id, vector FROM embeddings WHERE model_version = ? AND dim = ? AND photo_id > ? "
                "ORDER BY photo_id LIMIT ?", (model_version, dim, last, chunk)).fetchall()
        if not rows:
            return
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        yield ids, decode_vectors([r[1] for r in rows])
        last = int(ids[-1])


def embedding_vectors(catalog: Catalog, model_version: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored embeddings of ``model_version`` among ``ids``: (the ids found, in the order given; their
    vectors [n, dim] float32). What an IVF-PQ vector index re-scores its candidates with."""
    wanted = np.asarray(ids, dtype=np.int64)
    # One statement, the ids as one JSON parameter, joined: SQLite seeks each id (~2 us), where ``IN (SELECT value
    # FROM json_each(?))`` was planned as a scan of the whole table (3,000 ids of 50k photos: 7 ms against 75 ms).
    # The ids in ascending order: the seeks then walk the table's pages forward (3,024 ids of 300k photos, a
    # cache shared with other work: 15 ms, against 230 ms in the order a vector index ranks them).
    # The driver's cursor: SQLAlchemy's result rows cost as much again as the query, on every search.
    with catalog.session() as session:
        driver = session.connection().connection.driver_connection
        assert driver is not None, "a session's connection is open"
        rows = driver.execute(
            "SELECT e.photo_id, e.vector FROM json_each(?) AS j JOIN embeddings AS e ON e.photo_id = j.value "
            "WHERE e.model_version = ?", (json.dumps(np.unique(wanted).tolist()), model_version)).fetchall()
    if not rows:
        return np.empty(0, np.int64), np.empty((0, 0), np.float32)
    found = np.asarray([r[0] for r in rows], np.int64)
    vectors = decode_vectors([r[1] for r in rows])
    position = {int(i): n for n, i in enumerate(found)}
    order = np.asarray([position[i] for i in wanted.tolist() if i in position], np.int64)
    return found[order], vectors[order]


def _facts(result: Identified) -> dict[str, Any]:
    info = result.info
    facts: dict[str, Any] = {"size": result.size, "mtime_ns": result.mtime_ns, "content_hash": result.content_hash}
    if info is None:
        return facts
    taken = info.taken_at
    if taken is not None and taken.tzinfo is not None:  # stored as the camera's local wall time
        taken = taken.replace(tzinfo=None)
    return facts | {
        "format": info.format, "width": info.width, "height": info.height, "orientation": info.orientation,
        "taken_at": taken, "camera_make": info.camera_make, "camera_model": info.camera_model,
        "gps_lat": info.gps_lat, "gps_lon": info.gps_lon,
    }
