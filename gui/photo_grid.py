"""The thumbnail grid: one model row per photo, painted by a delegate (no widget per photo).

The model knows how many photos a listing or search has at once, and holds their rows a page at a
time: the first page comes with the search, any other is read off the UI thread when it is painted,
and only the last ``PAGES_KEPT`` pages painted are kept — so a million matches cost their count and
a few thousand rows, not a million row objects. A cell whose page is being read shows a placeholder.
Thumbnails are asked for only when a row is painted, i.e. on screen; decoded ones live in a bounded
in-memory cache (the disk cache is the loader's).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPixmap, QRegion
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from gui.library import PAGE_SIZE, Pages, SearchOutcome
from gui.tasks import TaskRunner
from gui.thumbnails import ImageLoader
from indexer._paths import display_path
from indexer.browse import PhotoRow

CELL = QSize(176, 204)  # thumbnail area 160 x 160, file name below
ICON = 160
MEMORY_CACHE = 3000  # decoded thumbnails kept in memory (about 100 KB each)
PAGES_KEPT = 12  # pages of rows held (a screen shows one or two): the model's memory does not grow with the results
PAGES_ASKED = 4  # pages read at most at once; an older request (a page scrolled past) is dropped

PHOTO_ID_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
SCORE_ROLE = Qt.ItemDataRole.UserRole + 3
FAILED_ROLE = Qt.ItemDataRole.UserRole + 4  # why the thumbnail could not be made, or None

Index = QModelIndex | QPersistentModelIndex
_Page = tuple[list[PhotoRow | None], list[float | None]]


class PhotoGridModel(QAbstractListModel):
    """Rows of photos, read a page at a time (see the module's docstring). A thumbnail or a page arriving
    emits ``thumbnail_changed(row)`` (-1: all) rather than ``dataChanged``, which makes QListView lay out
    every row again: O(rows) per thumbnail."""

    thumbnail_changed = Signal(int)
    page_read = Signal(int)  # a page's rows arrived (its number)
    read_failed = Signal(object)  # the exception reading a page raised

    def __init__(self, loader: ImageLoader, parent: Any = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self._total = 0
        self._pages: OrderedDict[int, _Page] = OrderedDict()  # page number -> rows, scores; least recently shown first
        self._source: Pages | None = None  # reads the pages not held; None: every page is held
        self._asked: OrderedDict[int, None] = OrderedDict()  # pages being read
        self._generation = 0  # of the outcome shown: pages read for an older one are dropped
        self._reader = TaskRunner(self, name="phototag-rows")
        self._row_of_path: dict[str, int] = {}  # of the rows held
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._failed: dict[str, str] = {}
        loader.ready.connect(self._on_ready)
        loader.failed.connect(self._on_failed)

    # --- contents ------------------------------------------------------------------------------------
    def show(self, outcome: SearchOutcome) -> None:
        """Show a listing's or a search's photos: ``outcome.total`` rows at once, the first page's rows held,
        the others read from ``outcome.pages`` when painted."""
        self.beginResetModel()
        self._generation += 1
        self._total = outcome.total
        self._source = outcome.pages
        self._asked.clear()
        self._pages.clear()
        self._row_of_path.clear()
        rows = list(outcome.rows)
        scores = [outcome.scores.get(row.id) for row in rows]
        if self._source is None:  # every row given: held whole, never read again
            self._total = len(rows)
        for number in range(0, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE if self._source is None else 1):
            part = slice(number * PAGE_SIZE, (number + 1) * PAGE_SIZE)
            self._hold(number, (list(rows[part]), scores[part]))
        self.loader.cancel_all()  # what was asked for the old rows is not on screen any more
        self.endResetModel()

    def set_rows(self, rows: Sequence[PhotoRow], scores: dict[int, float] | None = None) -> None:
        """Show exactly ``rows`` (a short list, held whole)."""
        self.show(SearchOutcome("", len(rows), list(rows), dict(scores or {})))

    def photo(self, row: int) -> PhotoRow | None:
        """The row's photo, or None while its page is being read (asked for now if it is not)."""
        return self._at(row)[0]

    def photo_id(self, row: int) -> int | None:
        photo = self._at(row)[0]
        return None if photo is None else photo.id

    def photos(self) -> list[PhotoRow]:
        """The rows held, in grid order: every row when the photos fit in a page (or were given whole)."""
        return [row for number in sorted(self._pages) for row in self._pages[number][0] if row is not None]

    def held_rows(self) -> int:
        """How many row objects the model holds (at most ``PAGES_KEPT`` pages' worth)."""
        return sum(len(rows) for rows, _ in self._pages.values())

    def ids_reader(self, ranges: Sequence[tuple[int, int]]) -> Callable[[], list[int]]:
        """A function giving the ids of the rows in ``ranges`` (``(start, stop)`` pairs), in no particular order, to
        call off the UI thread: ranges whose rows are held now are answered from them, others read the catalog."""
        known: list[int] = []
        unknown: list[tuple[int, int]] = []
        for start, stop in ranges:
            held = self._source is None or stop - start <= PAGE_SIZE  # worth looking at the rows held
            rows = [self._held(row) for row in range(start, min(stop, self._total))] if held else []
            if held and (self._source is None or all(row is not None for row in rows)):
                known.extend(row.id for row in rows if row is not None)
            else:
                unknown.append((start, stop))
        source = self._source

        def read() -> list[int]:
            found = list(known)
            for start, stop in unknown:
                found.extend(source.ids(start, stop) if source is not None else [])
            return list(dict.fromkeys(found))

        return read

    def locate(self, photo_id: int, then: Callable[[int], None]) -> None:
        """Call ``then(row)`` with the row of ``photo_id`` (on the UI thread; not at all when it is not shown)."""
        for number, (rows, _) in self._pages.items():
            for offset, row in enumerate(rows):
                if row is not None and row.id == photo_id:
                    then(number * PAGE_SIZE + offset)
                    return
        source, generation = self._source, self._generation
        if source is not None:
            self._reader.submit(lambda: source.position(photo_id),
                                lambda row: then(row) if row is not None and generation == self._generation else None,
                                self.read_failed.emit)

    def loading(self) -> bool:
        """Whether some page (or a :meth:`locate`) is being read."""
        return self._reader.busy()

    def forget_thumbnails(self) -> None:
        """Drop the decoded thumbnails (after a re-index, a photo's may have changed)."""
        self._pixmaps.clear()
        self._failed.clear()
        self.thumbnail_changed.emit(-1)

    def thumbnail(self, path: str) -> QPixmap | None:
        return self._pixmaps.get(path)

    def shutdown(self) -> None:
        self._reader.shutdown()

    # --- pages ---------------------------------------------------------------------------------------
    def _held(self, row: int) -> PhotoRow | None:
        rows = self._pages.get(row // PAGE_SIZE, ([], []))[0]
        offset = row % PAGE_SIZE
        return rows[offset] if offset < len(rows) else None

    def _at(self, row: int) -> tuple[PhotoRow | None, float | None]:
        if not 0 <= row < self._total:
            return None, None
        number, offset = divmod(row, PAGE_SIZE)
        page = self._pages.get(number)
        if page is None:
            self._ask(number)
            return None, None
        self._pages.move_to_end(number)
        rows, scores = page
        return (rows[offset], scores[offset]) if offset < len(rows) else (None, None)

    def _ask(self, number: int) -> None:
        if self._source is None or number in self._asked:
            return
        self._asked[number] = None
        while len(self._asked) > PAGES_ASKED:
            self._asked.popitem(last=False)  # scrolled past: read it again if it comes back on screen
        source, asked, generation = self._source, self._asked, self._generation

        def read() -> _Page | None:
            return source.page(number) if number in asked else None  # the UI thread's dict, read: atomic

        self._reader.submit(read, lambda page: self._page_arrived(generation, number, page), self._read_failed)

    def _page_arrived(self, generation: int, number: int, page: _Page | None) -> None:
        if generation != self._generation or page is None:
            return
        self._asked.pop(number, None)
        self._hold(number, page)
        self.thumbnail_changed.emit(-1)  # the view paints the cells again (no relayout)
        self.page_read.emit(number)

    def _read_failed(self, error: BaseException) -> None:
        self._asked.clear()
        self.read_failed.emit(error)

    def _hold(self, number: int, page: _Page) -> None:
        self._pages[number] = page
        for offset, row in enumerate(page[0]):
            if row is not None:
                self._row_of_path[row.path] = number * PAGE_SIZE + offset
        while self._source is not None and len(self._pages) > PAGES_KEPT:
            _, (rows, _) = self._pages.popitem(last=False)
            for row in rows:
                if row is not None:
                    self._row_of_path.pop(row.path, None)

    # --- Qt model API --------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802 - Qt's signature
        return 0 if parent.isValid() else self._total

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, score = self._at(index.row())
        if row is None:  # its page is being read
            return "" if role == Qt.ItemDataRole.DisplayRole else None
        if role == Qt.ItemDataRole.DisplayRole:
            return display_path(os.path.basename(row.path))
        if role == Qt.ItemDataRole.DecorationRole:
            pixmap = self._pixmaps.get(row.path)
            if pixmap is not None:
                self._pixmaps.move_to_end(row.path)
                return pixmap
            if row.path not in self._failed:
                self.loader.request(row.path, row.content_hash)
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            extra = f"\nrelevance {score:.3f}" if score is not None else ""
            failed = self._failed.get(row.path)
            return display_path(f"{row.path}{extra}" + (f"\n{failed}" if failed else ""))
        if role == PHOTO_ID_ROLE:
            return row.id
        if role == PATH_ROLE:
            return row.path
        if role == SCORE_ROLE:
            return score
        if role == FAILED_ROLE:
            return self._failed.get(row.path) or (row.status if row.status == "failed" else None)
        return None

    # --- thumbnails arriving -------------------------------------------------------------------------
    def _changed(self, path: str) -> None:
        row = self._row_of_path.get(path)
        if row is not None:
            self.thumbnail_changed.emit(row)

    def _on_ready(self, path: str, image: QImage) -> None:
        if path not in self._row_of_path:
            return
        scaled = image.scaled(ICON, ICON, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
        self._pixmaps[path] = QPixmap.fromImage(scaled)
        while len(self._pixmaps) > MEMORY_CACHE:
            self._pixmaps.popitem(last=False)
        self._changed(path)

    def _on_failed(self, path: str, message: str) -> None:
        if path in self._row_of_path:
            self._failed[path] = message
            self._changed(path)


class PhotoDelegate(QStyledItemDelegate):
    """Paints a cell: the thumbnail (or a placeholder), the file name, and a search's relevance."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:  # noqa: N802
        return CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        painter.save()
        rect: QRect = option.rect.adjusted(4, 4, -4, -4)
        palette = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.AlternateBase))
        area = QRect(rect.x() + (rect.width() - ICON) // 2, rect.y() + 2, ICON, ICON)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            x = area.x() + (ICON - pixmap.width()) // 2
            y = area.y() + (ICON - pixmap.height()) // 2
            painter.drawPixmap(x, y, pixmap)
        else:
            failed = index.data(FAILED_ROLE)
            painter.fillRect(area.adjusted(8, 8, -8, -8), QColor(0, 0, 0, 28))
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "cannot show" if failed else "…")
        text_rect = QRect(rect.x() + 2, area.bottom() + 4, rect.width() - 4, rect.bottom() - area.bottom() - 4)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        name = option.fontMetrics.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole)),
                                             Qt.TextElideMode.ElideMiddle, text_rect.width())
        score = index.data(SCORE_ROLE)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        if score is not None:
            painter.drawText(area.adjusted(0, 0, -4, -2), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
                             f"{score:.2f}")
        painter.restore()


class PhotoGrid(QListView):
    """A virtualised, wrapping grid of equal cells; many photos can be selected (Ctrl/Shift, Ctrl+A)."""

    def __init__(self, model: PhotoGridModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)  # with the fixed cell size: layout without asking every row
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(5000)
        self.setMovement(QListView.Movement.Static)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(CELL.height() // 4)
        self.setMouseTracking(True)
        self.setItemDelegate(PhotoDelegate(self))
        self.setModel(model)
        self.setMinimumWidth(CELL.width() + 24)
        model.thumbnail_changed.connect(self._repaint_row)

    def selectAll(self) -> None:  # noqa: N802 - Qt's name (Ctrl+A)
        """Every row as one range: QListView's own asks the model for its row count once per row (it skips hidden
        rows, which this grid has none of): ~0.6 s on the UI thread at 200,000 photos."""
        rows = self.model().rowCount()
        if rows:
            self.selectionModel().select(QItemSelection(self.model().index(0, 0), self.model().index(rows - 1, 0)),
                                         QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def setSelection(self, rect: QRect, command: QItemSelectionModel.SelectionFlag) -> None:  # noqa: N802 - Qt's
        """Shift+click, Shift+End, a rubber band: the rows from the cell at one corner of ``rect`` to the cell at the
        other, in reading order — what QListView's own source says it should do — instead of every cell the
        rectangle covers, collected one by one on the UI thread (Shift+End on 200,000 photos: ~0.3 s)."""
        first, last = self.indexAt(rect.topLeft()), self.indexAt(rect.bottomRight())
        if (rect.width() <= 1 and rect.height() <= 1) or not first.isValid() or not last.isValid():
            super().setSelection(rect, command)
            return
        low, high = sorted((first.row(), last.row()))
        self.selectionModel().select(QItemSelection(self.model().index(low, 0), self.model().index(high, 0)), command)

    def visualRegionForSelection(self, selection: QItemSelection) -> QRegion:  # noqa: N802 - Qt's name
        """The viewport: QListView's own walks every selected row (Ctrl+A on 200,000 photos: ~0.6 s on the UI
        thread); repainting the cells on screen costs the same whatever is selected."""
        return QRegion(self.viewport().rect()) if not selection.isEmpty() else QRegion()

    def _repaint_row(self, row: int) -> None:
        if row < 0:
            self.viewport().update()
        else:
            self.viewport().update(self.visualRect(self.model().index(row, 0)))

    def grid_model(self) -> PhotoGridModel:
        model = self.model()
        assert isinstance(model, PhotoGridModel)
        return model

    def selected_rows(self) -> list[int]:
        return [row for start, stop in self.selected_ranges() for row in range(start, stop)]

    def selected_ranges(self) -> list[tuple[int, int]]:
        """The selection as sorted, disjoint ``(start, stop)`` row ranges: Ctrl+A on a million photos is one range,
        not a million indexes."""
        selection = self.selectionModel().selection()  # a list of ranges; the stubs do not say it iterates
        spans = sorted((r.top(), r.bottom() + 1) for r in selection if r.isValid())  # type: ignore[attr-defined]
        merged: list[tuple[int, int]] = []
        for start, stop in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
            else:
                merged.append((start, stop))
        return merged

    def select_row(self, row: int, *, extend: bool = False) -> None:
        index = self.model().index(row, 0)
        flags = QItemSelectionModel.SelectionFlag.Select if extend else QItemSelectionModel.SelectionFlag.ClearAndSelect
        self.selectionModel().setCurrentIndex(index, flags)
        self.scrollTo(index)
