"""What the app does with one catalog, as plain Python over the ``indexer`` API (no Qt, no SQL).

The windows call these methods from worker threads: every catalog read (a listing, a search, a page of
the grid, the photo pane, the panels) and everything slow (an index pass, a metadata run, loading the
models) runs off the UI thread. The library folders, the folders the app indexes and shows, are kept in
``library.json`` in the catalog folder; until the app first changes them they are the folders past index
passes ran over (``phototag index`` included).

A listing or a search gives the grid a :class:`SearchOutcome`: the count and the first page of rows at once,
and :class:`Pages` to read any other page when it comes on screen — at a million photos the grid holds a
few pages of rows, and a search's matches as arrays of ids and scores (16 bytes a match); the whole library's
pages are read down the date index from the nearest photo already read.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from indexer import browse
from indexer._paths import catalog_path, spellings, within
from indexer.browse import PhotoRow
from indexer.catalog import Catalog
from indexer.catalog_models import choose_models
from indexer.errors import FileSkipped, IndexerError
from indexer.index import IndexSummary
from indexer.metadata._files import Folder, replace_file
from indexer.personal.corrections import Change, apply_edits
from indexer.pipeline import Failure
from indexer.report import failures, photo_counts, photo_tags
from indexer.settings import Settings

LIBRARY_FILE = "library.json"
PAGE_SIZE = 200  # photos read at a time for the grid (a screen shows a few dozen)
NEAR = 10 * PAGE_SIZE  # photos a page of the library skips at most from a known one; farther, it goes by its offset


class LibraryError(IndexerError):
    """Something the app was asked to do with the library cannot be done (the message says why)."""


class Pages:
    """The photos a grid shows, in order, read a page (``PAGE_SIZE`` photos) at a time. This base class holds
    every row (a short list: the review queue); :meth:`Library.listing` and :meth:`Library.search` give
    subclasses that read the catalog — call every method off the UI thread."""

    def __init__(self, rows: Sequence[PhotoRow], scores: dict[int, float] | None = None) -> None:
        self._rows = list(rows)
        self._scores = scores or {}
        self.total = len(self._rows)

    def page(self, number: int) -> tuple[list[PhotoRow | None], list[float | None]]:
        """The rows of page ``number`` and their scores (None: no score; a row None: the photo is gone)."""
        rows = self._rows[number * PAGE_SIZE:(number + 1) * PAGE_SIZE]
        return list(rows), [self._scores.get(row.id) for row in rows]

    def ids(self, start: int = 0, stop: int | None = None) -> list[int]:
        """The ids of the photos at positions ``start``..``stop``, in no particular order."""
        return [row.id for row in self._rows[start:stop]]

    def position(self, photo_id: int) -> int | None:
        """Where ``photo_id`` stands (None: not here)."""
        return next((i for i, row in enumerate(self._rows) if row.id == photo_id), None)

    def _rows_of(self, catalog: Catalog, ids: np.ndarray) -> list[PhotoRow | None]:
        found = {row.id: row for row in browse.photo_rows(catalog, ids.tolist())}
        return [found.get(i) for i in ids.tolist()]


class _ListedPages(Pages):
    """The library folders' photos by date. The first page comes with the count; a page near one read, or near
    either end, is read from the nearest photo whose position is known — the first and last of each page read —
    or from that end, down the date index (keyset paging, ``browse.list_photos(after=...)``: ~2 ms at 1M photos); a
    page far from any, by its offset, which ``browse`` finds through the date index alone (~0.1 s at 1M photos)."""

    def __init__(self, catalog: Catalog, folders: list[str], total: int, first: list[PhotoRow]) -> None:
        super().__init__(first)
        self.total = total
        self._catalog = catalog
        self._folders = folders
        self._known: dict[int, PhotoRow] = {}  # position -> its photo
        self._lock = threading.Lock()  # pages and ids are read from more than one worker
        self._note(0, first)

    def _note(self, start: int, rows: Sequence[PhotoRow]) -> None:
        if rows:
            with self._lock:
                self._known[start] = rows[0]
                self._known[start + len(rows) - 1] = rows[-1]

    def _read(self, start: int, stop: int, read: Callable[..., Any]) -> Any:
        """``read`` (``browse.list_photos`` or ``list_photo_ids``) of the positions ``start``..``stop``, from the
        nearest known photo or end."""
        with self._lock:
            known = list(self._known.items())
        ways: list[tuple[int, dict[str, Any]]] = [(start, {"offset": start}),
                                                  (self.total - stop, {"offset": self.total - stop, "reverse": True})]
        for position, row in known:
            if position < start:
                ways.append((start - position - 1, {"after": row, "offset": start - position - 1}))
            elif position >= stop:
                ways.append((position - stop, {"after": row, "offset": position - stop, "reverse": True}))
        skipped, way = min(ways, key=lambda option: option[0])
        if skipped > NEAR:
            way = {"offset": start}
        found = read(self._catalog, roots=self._folders, sort="date", limit=stop - start, **way)
        return found[::-1] if way.get("reverse") else found

    def page(self, number: int) -> tuple[list[PhotoRow | None], list[float | None]]:
        if number == 0:
            return super().page(0)
        start = number * PAGE_SIZE
        rows: list[PhotoRow] = self._read(start, min(start + PAGE_SIZE, self.total), browse.list_photos)
        self._note(start, rows)
        return list(rows), [None] * len(rows)

    def ids(self, start: int = 0, stop: int | None = None) -> list[int]:
        stop = self.total if stop is None else min(stop, self.total)
        return self._read(start, stop, browse.list_photo_ids).tolist() if start < stop else []

    def position(self, photo_id: int) -> int | None:
        return browse.listing_position(self._catalog, photo_id, roots=self._folders, sort="date")


class _RankedPages(Pages):
    """A search's matches: the engine's :class:`~indexer.search.engine.Ranking` (ids and scores), each page
    settled into the search's order as it is read."""

    def __init__(self, searcher: Any, ranking: Any) -> None:
        super().__init__([])
        self.total = len(ranking)
        self._searcher = searcher
        self._ranking = ranking

    def page(self, number: int) -> tuple[list[PhotoRow | None], list[float | None]]:
        ids, scores = self._searcher.settle(self._ranking, number * PAGE_SIZE, (number + 1) * PAGE_SIZE)
        return self._rows_of(self._searcher.catalog, ids), scores.tolist()

    def ids(self, start: int = 0, stop: int | None = None) -> list[int]:
        return self._searcher.members(self._ranking, start, stop).tolist()

    def position(self, photo_id: int) -> int | None:
        return self._searcher.position(self._ranking, photo_id)


@dataclass
class SearchOutcome:
    """A listing's or a search's photos: how many, the first page's rows and their scores, and ``pages`` to
    read the others (None: ``rows`` are all of them)."""

    query: str
    total: int
    rows: list[PhotoRow] = field(default_factory=list)
    scores: dict[int, float] = field(default_factory=dict)
    pages: Pages | None = None


@dataclass
class ReviewOutcome(SearchOutcome):
    """The review queue's photos (most uncertain first, each once) and its suggestions in queue order."""

    items: list[Any] = field(default_factory=list)  # indexer.personal.review.ReviewItem

    def tag_of(self, photo_id: int) -> str | None:
        """The tag of the photo's first (most uncertain) queued suggestion."""
        return next((item.tag for item in self.items if item.photo_id == photo_id), None)


class Library:
    """One open catalog with the app's settings. Use :meth:`open`; :meth:`close` at the end."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.catalog = catalog
        self._given = settings  # the settings as given: a model chosen on purpose, or the catalog's
        self.settings = choose_models(catalog, settings).settings
        self._folders: list[str] | None = None
        self._spellings: list[str] | None = None  # of the folders: resolved (links) once, not on every search
        self._tagger: Any = None
        self._embedder: Any = None
        self._models_lock = threading.Lock()
        self._searcher: Any = None
        self._vocabulary: list[tuple[str, str | None, float | None]] | None = None

    @classmethod
    def open(cls, settings: Settings) -> Library:
        catalog = Catalog.open(settings.catalog_dir)
        try:
            return cls(settings, catalog)
        except BaseException:
            catalog.close()
            raise

    def close(self) -> None:
        self.catalog.close()

    def use_settings(self, settings: Settings) -> None:
        """New settings (the settings dialog): models load again on next use if device or batch changed."""
        self._given = settings
        settings = choose_models(self.catalog, settings).settings
        changed = (settings.device, settings.precision, settings.tagger, settings.embedder) != (
            self.settings.device, self.settings.precision, self.settings.tagger, self.settings.embedder)
        self.settings = settings
        if changed:
            with self._models_lock:
                self._tagger = self._embedder = None
            self._searcher = None

    # --- library folders ---------------------------------------------------------------------------
    @property
    def _folders_file(self) -> Path:
        return self.catalog.directory / LIBRARY_FILE

    def folders(self) -> list[str]:
        if self._folders is None:
            try:
                # Never through a link, never blocking on a FIFO: read by the rule replace_file writes it by.
                with Folder.open(self.catalog.directory, exact=False) as folder:
                    found = folder.read(LIBRARY_FILE)
                if found is None:
                    self._folders = browse.library_roots(self.catalog)
                else:
                    self._folders = [str(f) for f in json.loads(found[0]).get("folders", [])]
            except (FileSkipped, OSError, ValueError, AttributeError) as exc:
                raise LibraryError(f"{self._folders_file} is unreadable ({exc}); delete it to start "
                                   "from the folders indexed so far") from exc
        return list(self._folders)

    def _save_folders(self, folders: list[str]) -> None:
        # ASCII escapes: a folder name that is not valid UTF-8 is kept as its surrogates (json.loads gives them back).
        # Atomic, and never through a link planted at the file's or its temporary's name.
        replace_file(self._folders_file, json.dumps({"folders": folders}, indent=2).encode(), 0o600)
        self._folders = folders
        self._spellings = None

    def add_folder(self, folder: str | os.PathLike[str]) -> str:
        """Add a photo folder (absolute path returned); adding one already listed changes nothing."""
        path = catalog_path(folder)  # a linked folder as its real path, as the indexer records it
        if not os.path.isdir(path):
            raise LibraryError(f"{path} is not a folder: choose a folder of photos (is the share mounted?)")
        folders = self.folders()
        if within(path, folders):
            return path
        # A parent replaces the folders inside it.
        self._save_folders([f for f in folders if not within(f, [path])] + [path])
        return path

    def _folder_spellings(self) -> list[str]:
        """Every spelling the catalog may hold photos of the folders under (``_paths.spellings``: a linked folder
        as its real path, and as saved)."""
        if self._spellings is None:
            self._spellings = [name for folder in self.folders() for name in spellings(folder)]
        return self._spellings

    def remove_folder(self, folder: str) -> None:
        """Stop showing and indexing a folder. Its photos stay in the catalog with their tags and
        corrections (as ``phototag index`` keeps missing files): adding it back costs nothing."""
        self._save_folders([f for f in self.folders() if f != folder])

    # --- reading -----------------------------------------------------------------------------------
    def photos(self, sort: str = "date") -> list[PhotoRow]:
        """Every photo of the library folders (not missing ones), as rows."""
        return browse.list_photos(self.catalog, roots=self.folders(), sort=sort)

    def listing(self) -> SearchOutcome:
        """The photos of the library folders (not missing ones), newest first, for the grid: the count and the
        first page (at 1M photos, ~50 ms); the other pages are read as they are shown."""
        folders = self.folders()
        total = browse.count_photos(self.catalog, roots=folders)
        first = browse.list_photos(self.catalog, roots=folders, sort="date", limit=PAGE_SIZE)
        return SearchOutcome("", total, first, pages=_ListedPages(self.catalog, folders, total, first))

    def searcher(self) -> Any:
        if self._searcher is None:
            from indexer.search.engine import Searcher

            # Checked when a query first needs embeddings: another embedder than the catalog's is refused.
            choice = cache(lambda: choose_models(self.catalog, self._given, comparing=True))

            def load() -> Any:
                choice()
                return self.embedder()

            self._searcher = Searcher(self.catalog, load, embedder_version=lambda: choice().embedder_version,
                                      vector_index=self.settings.vector_index)
        return self._searcher

    def search(self, text: str, *, sort: str = "relevance", min_score: float | None = None) -> SearchOutcome:
        """Run a query (the search language) over the photos of the library folders: every match as ids and
        scores (no rows), the first page's rows; the other pages are read as they are shown.

        Raises ``QuerySyntaxError`` or ``SearchError``, whose message shows where the query is wrong."""
        searcher = self.searcher()
        ranking = searcher.rank(text, sort=sort,
                                min_score=self.settings.search_min_score if min_score is None else min_score)
        ranking = ranking.without(browse.photo_ids_outside(self.catalog, self.folders()))
        pages = _RankedPages(searcher, ranking)
        rows, scores = pages.page(0)
        first = [row for row in rows if row is not None]
        return SearchOutcome(text, len(ranking), first,
                             {row.id: score for row, score in zip(rows, scores, strict=True)
                              if row is not None and score is not None},
                             pages=pages)

    def review(self, tag: str | None = None, limit: int | None = 50) -> ReviewOutcome:
        """The review queue (``indexer.personal.review.review_queue``) on the library folders' photos, for the grid."""
        from indexer.personal.review import review_queue

        folders = self._folder_spellings()
        items = [i for i in review_queue(self.catalog, tag=tag, limit=limit) if within(i.path, folders)]
        ids = list(dict.fromkeys(item.photo_id for item in items))
        rows = browse.photo_rows(self.catalog, ids)
        return ReviewOutcome("", len(rows), rows, items=items)

    def tags(self, path: str) -> dict[str, Any] | None:
        return photo_tags(self.catalog, path)

    def details(self, photo_id: int) -> dict[str, Any] | None:
        return browse.photo_details(self.catalog, photo_id)

    def vocabulary(self, *, refresh: bool = False) -> list[tuple[str, str | None, float | None]]:
        """(name, Chinese name, threshold) of every tag in the catalog."""
        if self._vocabulary is None or refresh:
            self._vocabulary = browse.tag_names(self.catalog)
        return self._vocabulary

    def failures(self) -> list[dict[str, Any]]:
        folders = self._folder_spellings()
        return [row for row in failures(self.catalog) if within(row["path"], folders)]

    def status(self) -> dict[str, Any]:
        """The catalog's folder and its photos by status (not :func:`catalog_status`: that reads the whole catalog,
        a minute at 10M photos, on every refresh of the library panel)."""
        return {"catalog": str(self.catalog.directory), "photos": photo_counts(self.catalog)}

    # --- corrections --------------------------------------------------------------------------------
    def apply_edits(self, photo_ids: Sequence[int], edits: Sequence[str]) -> list[Change]:
        """``+tag`` accept or add, ``-tag`` reject, ``=tag`` undo, on every photo given; one transaction each.

        No writer lock: a correction is one short SQLite transaction that may run beside an index pass
        (the app's own included); the pass never undoes it (see ``indexer.personal.corrections``)."""
        changes = apply_edits(self.catalog, photo_ids, edits)
        if any(change.before is None for change in changes):
            self._vocabulary = None  # a new tag may have been created
        return changes

    # --- custom tags ---------------------------------------------------------------------------------
    def build_custom_tag(self, name: str, descriptions: Sequence[str], examples: Sequence[int],
                         threshold: float | None = None) -> Any:
        """A custom tag's definition (not saved); descriptions load the CLIP embedder (slow the first time)."""
        from indexer.personal import custom_tags

        embedder = self.embedder() if any(d.strip() for d in descriptions) else None
        return custom_tags.build(self.catalog, name, descriptions, examples, text_embedder=embedder,
                                 threshold=threshold)

    def custom_tag_matches(self, tag: Any, limit: int | None = None) -> list[tuple[str, float]]:
        """(path, score) of the photos ``tag`` would be suggested on, best first; nothing is written."""
        from indexer.personal import custom_tags

        return custom_tags.matches(self.catalog, tag, limit)

    def save_custom_tag(self, tag: Any) -> int:
        """Save ``tag`` and score it on every photo (holding the writer lock); returns how many it fires on."""
        from indexer.personal import custom_tags

        embedder = self.embedder() if tag.descriptions else None
        with self.catalog.writer(self.settings.lock_wait, task="custom-tag"):
            custom_tags.save(self.catalog, tag)
            counts = custom_tags.apply(self.catalog, [tag.name], text_embedder=embedder)
        self._vocabulary = None
        return counts.get(tag.name, 0)

    @staticmethod
    def default_custom_threshold(descriptions: Sequence[str], examples: Sequence[int]) -> float:
        from indexer.personal.custom_tags import default_threshold

        return default_threshold([d for d in descriptions if d.strip()], list(examples))

    # --- saved searches ----------------------------------------------------------------------------
    def saved_searches(self) -> dict[str, str]:
        return self.searcher().saved()

    def save_search(self, name: str, text: str) -> None:
        self.searcher().save(name, text)

    def delete_search(self, name: str) -> None:
        self.searcher().delete_saved(name)

    # --- models and indexing -----------------------------------------------------------------------
    def embedder(self) -> Any:
        """The CLIP embedder, loaded once (a text search needs only this one). Slow the first time."""
        with self._models_lock:
            if self._embedder is None:
                store = self._store(self.settings.embedder)
                self._embedder = store.load_embedder(self.settings.embedder, self.settings.device,
                                                     self.settings.precision)
            return self._embedder

    def models(self) -> tuple[Any, Any]:
        """The tagger and the embedder, loaded once (downloaded first if missing and allowed). Slow: call
        it from a worker thread."""
        embedder = self.embedder()
        with self._models_lock:
            if self._tagger is None:
                settings = self.settings
                self._tagger = self._store(settings.tagger).load_tagger(
                    settings.tagger, device=settings.device, dtype=settings.precision, chunk_size=settings.chunk_size)
            return self._tagger, embedder

    def _store(self, name: str) -> Any:
        """The model store, with ``name`` in it (downloaded first when it is missing and that is allowed)."""
        from ram_model.pretrained import weight_sources
        from ram_model.store import ModelStore

        store = ModelStore(self.settings.models_dir)
        if not store.exists(name) and self.settings.auto_download and name in weight_sources():
            store.download(name)
        return store

    def index(self, roots: Sequence[str], *, on_progress: Callable[[str, int, int | None], None] | None = None,
              on_failure: Callable[[Failure], None] | None = None,
              stop: threading.Event | None = None) -> IndexSummary:
        """One incremental pass over ``roots`` holding the writer lock. Setting ``stop`` ends it after the
        current batch; running it again continues where it stopped."""
        from indexer.index import Indexer
        from indexer.personal.hooks import after_store

        tagger, embedder = self.models()
        settings = self.settings
        indexer = Indexer.from_settings(self.catalog, tagger, embedder, settings, on_progress=on_progress,
                                        on_failure=on_failure, stop=stop, after_store=[after_store])
        with self.catalog.writer(settings.lock_wait, task="gui"):
            summary = indexer.run(list(roots))
        self._vocabulary = None
        return summary

    # --- metadata ----------------------------------------------------------------------------------
    def write_metadata(self, photo_ids: Sequence[int], options: Any, *, on_file: Callable[[Any], None] | None = None,
                       stop: threading.Event | None = None) -> Any:
        """Write (or, with ``options.dry_run``, show) the keywords of ``photo_ids`` (see
        ``indexer.metadata.write``). A real run holds the writer lock."""
        from indexer.metadata.write import MetadataWriter

        writer = MetadataWriter(self.catalog, options, on_file=on_file, stop=stop)
        if options.dry_run:
            return writer.run(photo_ids)
        with self.catalog.writer(self.settings.lock_wait, task="write-metadata"):
            return writer.run(photo_ids)

