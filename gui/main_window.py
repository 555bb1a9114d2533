"""The main window: search bar and thumbnail grid in the middle, the library and saved searches on the
left, the photo pane on the right. It wires widgets to :class:`gui.library.Library` calls. Every catalog
read runs off the UI thread: listings and searches on one worker, the photo pane and the panels on
another (the grid's pages on its own), each kind on a channel where the newest call wins
(:mod:`gui.tasks`) — a slow old answer never replaces a newer search's or selection's. An action on the
selection gets its ids off the UI thread too (a selection may reach pages not read yet). A correction shows
in the photo pane at once and is written on a worker of its own, in the order asked; the pane then reads
the photo's tags again."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QItemSelection, QModelIndex, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from gui.custom_tag_dialog import CustomTagDialog
from gui.errors import ErrorReporter
from gui.indexing import IndexingController, IndexingPanel
from gui.library import Library, ReviewOutcome, SearchOutcome
from gui.metadata_dialog import MetadataDialog
from gui.photo_grid import PhotoGrid, PhotoGridModel
from gui.photo_pane import PhotoPane
from gui.preferences import Preferences
from gui.search_bar import SavedSearchesPanel, SearchBar
from gui.settings_dialog import SettingsDialog
from gui.tasks import TaskRunner
from gui.thumbnails import THUMBNAILS_FOLDER, ImageLoader, ThumbnailStore

PREVIEW_SIZE = 1600
SHORTCUTS = (
    ("A", "accept the selected tag(s) on the selected photo(s)"),
    ("R", "reject the selected tag(s)"),
    ("U", "undo the decision on the selected tag(s)"),
    ("T", "add a tag (type, then Enter; several: dog, cat)"),
    ("Ctrl+F", "go to the search bar"),
    ("Ctrl+R", "review suggestions (the most uncertain first); Ctrl+L: back to the whole library"),
    ("Ctrl+A", "select every photo in the grid (in the grid)"),
    ("F5", "refresh the grid"),
    ("Ctrl+O", "add a folder to the library"),
    ("Ctrl+I", "index the library folders now"),
    ("Ctrl+,", "settings"),
)


def summary_line(summary: Any) -> str:
    parts = [f"{summary.new} new", f"{summary.changed} changed", f"{summary.moved} moved",
             f"{summary.missing} missing", f"{summary.failed} failed"]
    return ", ".join(parts) + f"; tagged {summary.tagged}"


class MainWindow(QMainWindow):
    def __init__(self, library: Library, preferences: Preferences | None = None) -> None:
        """``library`` is open on ``preferences.settings`` (the settings chosen in the app over the environment's)."""
        super().__init__()
        self.library = library
        self.preferences = preferences or Preferences(library.settings)
        self.setWindowTitle(f"Phototag — {library.catalog.directory}")
        self.resize(1400, 860)
        self.errors = ErrorReporter(self)
        self.tasks = TaskRunner(self, name="phototag-search")  # listings and searches
        self.reads = TaskRunner(self, name="phototag-read")  # the photo pane, the panels, the vocabulary
        # Corrections, one after another, and the ids of the photos an action is asked for: the action then sees
        # every correction asked before it.
        self.writes = TaskRunner(self, name="phototag-write")
        self.thumbnails = ImageLoader(ThumbnailStore(library.catalog.directory / THUMBNAILS_FOLDER),
                                      threads=max(1, min(4, (os.cpu_count() or 2) - 1)), parent=self)
        self.previews = ImageLoader(None, size=PREVIEW_SIZE, threads=1, capacity=2, parent=self)
        self.grid_model = PhotoGridModel(self.thumbnails, self)
        self.grid = PhotoGrid(self.grid_model)
        self.search_bar = SearchBar(library.settings.search_min_score)
        self.saved_panel = SavedSearchesPanel()
        self.photo_pane = PhotoPane()
        self.indexing = IndexingController(library, self)
        self.indexing_panel = IndexingPanel()
        self.query = ""  # the query the grid shows ("" the whole library)
        self._thresholds: dict[str, float | None] = {}
        self._show_pending = False
        self._closed = False
        self.review: ReviewOutcome | None = None  # the review queue the grid shows, if it does
        self._build()
        self._connect()
        self.refresh_library_panel()
        self.refresh_vocabulary()
        self.refresh_saved()
        self.run_search("")

    # --- layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        centre = QWidget()
        layout = QVBoxLayout(centre)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.search_bar)
        layout.addWidget(self.grid, 1)
        self.setCentralWidget(centre)
        self.library_dock = self._dock("Library", self.indexing_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.saved_dock = self._dock("Saved searches", self.saved_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.photo_dock = self._dock("Photo", self.photo_pane, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.library_dock, self.photo_dock], [330, 380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.library_dock, self.saved_dock], [560, 200], Qt.Orientation.Vertical)
        self.catalog_label = QLabel()
        self.statusBar().addPermanentWidget(self.catalog_label)

        menu = self.menuBar().addMenu("&Library")
        self._action(menu, "&Add folder…", self.choose_folder, "Ctrl+O")
        self._action(menu, "&Index now", self.start_indexing, "Ctrl+I")
        self._action(menu, "&Pause indexing", self.indexing.pause)
        menu.addSeparator()
        self._action(menu, "Write metadata for the &selection…", self.write_metadata_for_selection)
        self._action(menu, "Write metadata for the &search results…", self.write_metadata_for_results)
        self._action(menu, "New &custom tag…", self.new_custom_tag)
        menu.addSeparator()
        self._action(menu, "Se&ttings…", self.open_settings, "Ctrl+,")
        self._action(menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        view = self.menuBar().addMenu("&View")
        self._action(view, "&Refresh", self.refresh, "F5")
        self._action(view, "&Search", self.focus_search, "Ctrl+F")
        self.review_action = self._action(view, "Re&view suggestions", self.review_suggestions, "Ctrl+R")
        self._action(view, "Whole &library", self.show_library, "Ctrl+L")
        for dock in (self.library_dock, self.saved_dock, self.photo_dock):
            view.addAction(dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts)
        # Single keys: a line edit being typed in takes its letters first (Qt's ShortcutOverride).
        for key, slot in (("A", self.accept_tags), ("R", self.reject_tags), ("U", self.undo_tags),
                          ("T", self.photo_pane.focus_add)):
            QShortcut(QKeySequence(key), self, slot)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu: Any, text: str, slot: Any, shortcut: Any = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(self.errors.guard(lambda _checked=False: slot()))
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        guard = self.errors.guard
        self.search_bar.search_requested.connect(guard(self.run_search))
        self.saved_panel.run_requested.connect(lambda query: self.search_bar.set_query(query))
        self.saved_panel.save_requested.connect(guard(self.ask_save_search))
        self.saved_panel.delete_requested.connect(guard(self.delete_search))
        self.grid.selectionModel().selectionChanged.connect(self._selection_changed)
        self.grid.selectionModel().currentChanged.connect(self._current_changed)
        self.grid_model.modelReset.connect(self._grid_reset)
        self.grid_model.read_failed.connect(self.errors.show)
        self.photo_pane.edits_requested.connect(guard(self.apply_edits))
        self.thumbnails.ready.connect(self._thumbnail_ready)
        self.previews.ready.connect(self._preview_ready)
        self.previews.failed.connect(lambda path, message: self.photo_pane.image_failed(message, path=path))
        self.thumbnails.failed.connect(lambda path, message: self.photo_pane.image_failed(message, path=path))
        panel = self.indexing_panel
        panel.add_folder_requested.connect(guard(self.choose_folder))
        panel.remove_folder_requested.connect(guard(self.remove_folder))
        panel.index_requested.connect(guard(self.start_indexing))
        panel.pause_requested.connect(self.indexing.pause)
        panel.resume_requested.connect(guard(self.resume_indexing))
        self.indexing.progress.connect(self._index_progress)
        self.indexing.failure_found.connect(panel.add_failure)
        self.indexing.state_changed.connect(lambda state: panel.set_state(state) if state in ("running", "pausing")
                                            else None)
        self.indexing.finished.connect(self._index_finished)
        self.indexing.error.connect(self._index_failed)

    # --- library panel ------------------------------------------------------------------------------
    def refresh_library_panel(self) -> int:
        """Read the library folders, the failures and the counts off the UI thread, then show them."""
        library = self.library
        return self.reads.submit(lambda: (library.folders(), library.failures(), library.status()),
                                 lambda found: self._show_library_panel(*found), self.errors.show,
                                 channel="library-panel")

    def _show_library_panel(self, folders: list[str], failures: list[dict[str, Any]], status: dict[str, Any]) -> None:
        self.indexing_panel.set_folders(folders)
        self.indexing_panel.set_failures(failures)
        counts = status["photos"]
        self.catalog_label.setText(f"{counts.get('indexed', 0):,} indexed · {counts.get('pending', 0):,} waiting · "
                                   f"{counts.get('failed', 0):,} failed   catalog: {status['catalog']}")

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a photo folder to the library")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str, *, index: bool = True) -> str:
        """Add ``folder`` to the library, show it, and index it in the background."""
        path = self.library.add_folder(folder)
        self.refresh_library_panel()
        self.run_search(self.search_bar.text())
        if index:
            self.start_indexing([path] if not self.indexing.is_running() else None)
        return path

    def remove_folder(self, folder: str) -> None:
        if self.indexing.is_running() and folder in self.indexing.roots:
            self.errors.show("This folder is being indexed: pause indexing first, then remove it.")
            return
        self.library.remove_folder(folder)
        self.refresh_library_panel()
        self.run_search(self.search_bar.text())

    def start_indexing(self, roots: list[str] | None = None) -> bool:
        if self.indexing.is_running():
            self.statusBar().showMessage("Indexing is running already", 4000)
            return False
        roots = roots or self.library.folders()
        if not roots:
            self.errors.show("The library has no folders yet: add one (Library ▸ Add folder…).")
            return False
        self.indexing_panel.set_state("running")
        return self.indexing.start(roots)

    def resume_indexing(self) -> bool:
        if self.indexing.is_running() or not self.indexing.roots:
            return False
        self.indexing_panel.set_state("running")
        return self.indexing.resume()

    def _index_progress(self, stage: str, done: int, total: int | None) -> None:
        self.indexing_panel.show_progress(stage, done, total)
        if stage == "identify" and total is not None and done >= total and not self.query:
            self.run_search("", keep_selection=True)  # new photos appear (thumbnails come before tags)
        elif stage == "embed" and total and done >= total and self.query:
            # Every new photo is searchable by text now (tags come after): the search shown includes them.
            self.run_search(self.query, keep_selection=True)

    def _index_finished(self, summary: Any) -> None:
        self.indexing_panel.set_state("paused" if summary.interrupted else "done", summary_line(summary))
        self.refresh_library_panel()
        self.refresh_vocabulary()
        self.run_search(self.query, keep_selection=True)

    def _index_failed(self, error: BaseException) -> None:
        self.indexing_panel.set_state("idle", "Indexing stopped: see the message")
        self.errors.show(error)

    # --- search and the grid ------------------------------------------------------------------------
    def focus_search(self) -> None:
        self.search_bar.line.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_bar.line.selectAll()

    def refresh(self) -> None:
        self.grid_model.forget_thumbnails()
        self.refresh_library_panel()
        self.refresh_vocabulary()
        self.refresh_saved()
        self.run_search(self.query, keep_selection=True)

    def run_search(self, text: str | None = None, sort: str | None = None, min_score: float | None = None, *,
                   keep_selection: bool = False) -> int:
        """Show ``text``'s results (the whole library for ""), computed off the UI thread: the count and the
        first page at once, the other pages as they come on screen. A newer search (or review) wins: this one
        then never runs, or shows nothing. Returns a token; :meth:`search_done` tells when it is shown."""
        text = self.search_bar.text() if text is None else text.strip()
        sort = sort or self.search_bar.sort.currentData()
        min_score = self.search_bar.min_score.value() if min_score is None else min_score
        self.search_bar.show_count(0, searching=True)
        library = self.library
        if text:
            def work() -> SearchOutcome:
                return library.search(text, sort=sort, min_score=min_score)
        else:
            work = library.listing
        keep = self._current_photo_id() if keep_selection else None
        return self.tasks.submit(work, lambda outcome: self._show_results(outcome, keep),
                                 lambda error: self._search_failed(error), channel="search")

    def review_suggestions(self, tag: str | None = None, limit: int | None = 50) -> int:
        """Fill the grid with the review queue's photos (most uncertain first), off the UI thread; returns
        a token like :meth:`run_search`. A, R and U then work on them; :meth:`show_library` goes back."""
        self.search_bar.set_query("", run=False)
        self.search_bar.show_count(0, searching=True)
        library = self.library
        return self.tasks.submit(lambda: library.review(tag, limit), lambda outcome: self._show_results(outcome, None),
                                 self._search_failed, channel="search")

    def show_library(self) -> int:
        """Back to the whole library (out of a search or the review queue)."""
        self.search_bar.set_query("", run=False)
        return self.run_search("")

    def search_done(self) -> bool:
        """Whether the latest listing or search has been shown."""
        return not self.tasks.busy()

    def idle(self) -> bool:
        """Whether every read asked for has been shown and every correction written: the listing or search, the
        photo pane, the panels, the grid's pages (tests wait on it)."""
        return not (self.tasks.busy() or self.reads.busy() or self.writes.busy() or self.grid_model.loading())

    def _show_results(self, outcome: SearchOutcome, keep: int | None) -> None:
        self.query = outcome.query
        self.review = outcome if isinstance(outcome, ReviewOutcome) else None
        self.grid_model.show(outcome)
        self.search_bar.show_count(outcome.total, query=outcome.query)
        if self.review is not None:
            n, m = len(self.review.items), outcome.total
            self.statusBar().showMessage(f"Review: {n} suggestion{'s' if n != 1 else ''} on {m} photo"
                                         f"{'s' if m != 1 else ''} — A accepts, R rejects, U undoes")
            if outcome.total:
                self.grid.select_row(0)
        if keep is not None:
            self.grid_model.locate(keep, self.grid.select_row)

    def _search_failed(self, error: BaseException) -> None:
        self.search_bar.count.setText("query error")
        self.errors.show(error, title="Search")

    def _grid_reset(self) -> None:
        self.reads.drop("photo")  # a photo of the grid shown before is not to be shown now
        self.photo_pane.clear()

    # --- selection and the photo pane ---------------------------------------------------------------
    def selection_ranges(self) -> list[tuple[int, int]]:
        """The selected rows as ``(start, stop)`` ranges; the current row when none is selected."""
        ranges = self.grid.selected_ranges()
        if not ranges:
            index = self.grid.currentIndex()
            ranges = [(index.row(), index.row() + 1)] if index.isValid() else []
        return ranges

    def with_selected_ids(self, then: Callable[[list[int]], object], *, channel: str) -> int | None:
        """Call ``then(ids)`` (on the UI thread) with the ids of the selected photos (:meth:`selection_ranges`), got
        off the UI thread: from the rows the grid holds, or from the catalog for a selection reaching pages not read
        yet (Shift+End, Ctrl+A) — after the corrections asked before, so that the action sees them. The newest call
        on ``channel`` wins. Returns the read's token (None: nothing is selected, ``then`` is not called)."""
        ranges = self.selection_ranges()
        if not ranges:
            return None
        return self.writes.submit(self.grid_model.ids_reader(ranges), then, self.errors.show, channel=channel)

    def _current_photo_id(self) -> int | None:
        index = self.grid.currentIndex()
        return self.grid_model.photo_id(index.row()) if index.isValid() else None

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._show_soon()

    def _current_changed(self, _current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_soon()

    def _show_soon(self) -> None:
        """One pane update per burst of selection signals (a click sends two, Shift+End many)."""
        if not self._show_pending:
            self._show_pending = True
            QTimer.singleShot(0, self._show_now)

    def _show_now(self) -> None:
        self._show_pending = False
        self.show_current_photo()

    def show_current_photo(self, *, keep_row: bool = False) -> int | None:
        """Show the current (or first selected) photo in the pane, its facts and tags read off the UI thread; a
        newer selection wins. Returns the read's token (None: nothing to show)."""
        index = self.grid.currentIndex()
        ranges = self.grid.selected_ranges()
        if not index.isValid() and ranges:
            index = self.grid_model.index(ranges[0][0])
        if not index.isValid():
            self.reads.drop("photo")
            self.photo_pane.clear()
            return None
        selected = max(1, sum(stop - start for start, stop in ranges))
        read_ids = self.grid_model.ids_reader([(index.row(), index.row() + 1)])
        library = self.library

        def read() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
            ids = read_ids()
            details = library.details(ids[0]) if ids else None
            return (library.tags(details["path"]) if details is not None else None), details

        return self.reads.submit(read, lambda found: self._show_photo(*found, selected=selected, keep_row=keep_row),
                                 self.errors.show, channel="photo")

    def _show_photo(self, entry: dict[str, Any] | None, details: dict[str, Any] | None, *, selected: int,
                    keep_row: bool) -> None:
        if details is None:  # gone from the catalog since the grid was filled
            self.photo_pane.clear()
            return
        settings = self.library.settings
        self.photo_pane.show_photo(entry, details, selected=selected, language=settings.tag_language,
                                   thresholds=self._thresholds, offset=settings.threshold_offset,
                                   keep_row=keep_row)
        path = details["path"]
        queued = self.review.tag_of(details["id"]) if self.review is not None and not keep_row else None
        if queued is not None:
            self.photo_pane.select_tag(queued)
        self.photo_pane.set_image(self.grid_model.thumbnail(path), path=path)
        if details["status"] != "missing":
            self.previews.cancel_all()
            self.previews.request(path)

    def _thumbnail_ready(self, path: str, _image: QImage) -> None:
        if path == self.photo_pane.path:
            self.photo_pane.set_image(self.grid_model.thumbnail(path), path=path)

    def _preview_ready(self, path: str, image: QImage) -> None:
        self.photo_pane.set_image(QPixmap.fromImage(image), path=path)

    # --- corrections --------------------------------------------------------------------------------
    def apply_edits(self, edits: list[str]) -> int | None:
        """Apply ``+tag``/``-tag``/``=tag`` to the selected photos: the photo pane shows them at once; the selection's
        ids are read and the catalog written off the UI thread, one correction after another in the order asked;
        then the pane shows the photo's tags as stored. Returns the write's token (None: nothing selected)."""
        ranges = self.selection_ranges()
        if not ranges:
            self.statusBar().showMessage("Select a photo first", 4000)
            return None
        read_ids, library = self.grid_model.ids_reader(ranges), self.library
        self.photo_pane.show_pending(edits)

        def write() -> tuple[int, int]:
            ids = read_ids()
            return len(ids), len(library.apply_edits(ids, edits))

        return self.writes.submit(write, lambda done: self._edits_written(edits, *done), self._edits_failed)

    def _edits_written(self, edits: list[str], photos: int, changes: int) -> None:
        what = f"{photos} photo{'s' if photos != 1 else ''}"
        self.statusBar().showMessage(f"{changes} change{'s' if changes != 1 else ''} on {what}: {' '.join(edits)}"
                                     if changes else "Nothing to change", 5000)
        if any(edit.startswith("+") for edit in edits):
            self.refresh_vocabulary()
        self._edits_done()

    def _edits_failed(self, error: BaseException) -> None:
        self.errors.show(error)
        self._edits_done()

    def _edits_done(self) -> None:
        if not self.writes.busy():  # the pane reads the stored tags once no correction is left to write
            self.show_current_photo(keep_row=True)

    def _decide(self, decide: Any) -> None:
        if self.photo_pane.path is None:
            self.statusBar().showMessage("Select a photo first", 4000)
        elif not decide():
            self.statusBar().showMessage("Select a tag in the photo pane first", 4000)

    def accept_tags(self) -> None:
        self._decide(self.photo_pane.accept_selected)

    def reject_tags(self) -> None:
        self._decide(self.photo_pane.reject_selected)

    def undo_tags(self) -> None:
        self._decide(self.photo_pane.undo_selected)

    def refresh_vocabulary(self) -> int:
        """Read the tag names (completion, thresholds) off the UI thread, then use them."""
        library = self.library
        return self.reads.submit(lambda: library.vocabulary(refresh=True), self._use_vocabulary, self.errors.show,
                                 channel="vocabulary")

    def _use_vocabulary(self, vocabulary: list[tuple[str, str | None, float | None]]) -> None:
        names = [name for name, _, _ in vocabulary] + [zh for _, zh, _ in vocabulary if zh]
        self.search_bar.completer.set_names(names)
        self.photo_pane.add_completer.set_names(names)
        self._thresholds = {name: threshold for name, _, threshold in vocabulary}

    # --- saved searches -----------------------------------------------------------------------------
    def refresh_saved(self) -> int:
        """Read the saved searches off the UI thread, then list them."""
        library = self.library
        return self.reads.submit(library.saved_searches, self.saved_panel.set_saved, self.errors.show, channel="saved")

    def ask_save_search(self) -> None:
        text = self.search_bar.text()
        if not text:
            self.errors.show("Type a query first, then save it under a name.")
            return
        name, ok = QInputDialog.getText(self, "Save search", f"Save “{text}” as @")
        if ok and name.strip():
            self.save_search(name.strip(), text)

    def save_search(self, name: str, text: str) -> None:
        self.library.save_search(name, text)
        self.refresh_saved()
        self.statusBar().showMessage(f"Saved as @{name}", 4000)

    def delete_search(self, name: str) -> None:
        self.library.delete_search(name)
        self.refresh_saved()

    # --- metadata and settings ----------------------------------------------------------------------
    def write_metadata_for_selection(self) -> int | None:
        """Open the metadata dialog on the selected photos once their ids are read (off the UI thread)."""
        token = self.with_selected_ids(lambda ids: self._metadata_dialog(ids, "the selection"), channel="metadata")
        if token is None:
            self.errors.show("Select photos first (or use Write metadata for the search results).")
        return token

    def write_metadata_for_results(self) -> int | None:
        """Open the metadata dialog on every photo of the grid, once their ids are read (off the UI thread)."""
        total = self.grid_model.rowCount()
        if not total:
            self.errors.show("The grid is empty: nothing to write.")
            return None
        scope = f"the search {self.query!r}" if self.query else "the whole library"
        return self.writes.submit(self.grid_model.ids_reader([(0, total)]),
                                  lambda ids: self._metadata_dialog(ids, scope), self.errors.show, channel="metadata")

    def _metadata_dialog(self, ids: list[int], scope: str) -> MetadataDialog:
        dialog = MetadataDialog(self.library, ids, scope, indexing=self.indexing.is_running, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        dialog.dry_run()  # the dry run is always shown first
        return dialog

    def new_custom_tag(self) -> int:
        """Open the custom tag dialog, with the grid's selection offered as examples once their ids are read (off the
        UI thread); returns the read's token."""
        return self.writes.submit(self.grid_model.ids_reader(self.grid.selected_ranges()), self._custom_tag_dialog,
                                  self.errors.show, channel="custom-tag")

    def _custom_tag_dialog(self, examples: list[int]) -> CustomTagDialog:
        dialog = CustomTagDialog(self.library, examples, indexing=self.indexing.is_running, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(lambda _name: self._custom_tag_saved())
        dialog.open()
        return dialog

    def _custom_tag_saved(self) -> None:
        self.refresh_vocabulary()
        self.show_current_photo(keep_row=True)

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.library.settings, self)
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog.values())

    def apply_settings(self, values: Mapping[str, Any]) -> None:
        """Use ``values`` (setting name -> value, the settings dialog's) and keep those that differ from the
        environment's as the app's choices (``gui.json``)."""
        self.preferences = self.preferences.choose(values)
        self.preferences.save()
        self.library.use_settings(self.preferences.settings)
        if self.indexing.is_running():
            self.statusBar().showMessage("Device and batch size apply from the next index pass", 6000)
        self.show_current_photo(keep_row=True)

    def show_shortcuts(self) -> None:
        text = "\n".join(f"{key:8}  {what}" for key, what in SHORTCUTS)
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", "Keyboard shortcuts",
                          QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(f"<pre>{text}</pre>")
        box.open()

    # --- closing ------------------------------------------------------------------------------------
    def shutdown(self, timeout: float = 120.0) -> None:
        """Stop the background work: an index pass ends after its batch in flight (the next resumes)."""
        if self._closed:
            return
        self._closed = True
        if self.indexing.is_running():
            self.statusBar().showMessage("Finishing the batch in flight…")
            self.indexing.pause()
            self.indexing.wait(timeout)
        self.thumbnails.shutdown()
        self.previews.shutdown()
        self.tasks.shutdown()
        self.reads.shutdown()
        self.writes.shutdown(cancel=False)  # the corrections asked for are written
        self.grid_model.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)
