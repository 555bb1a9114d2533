"""The thumbnail grid: one model row per photo, painted by a delegate (no widget per photo).

The model holds light :class:`indexer.browse.PhotoRow`s, so 100,000 photos cost a list, and asks
for a thumbnail only when a row is painted, i.e. on screen. Until it arrives the cell shows a
placeholder; decoded thumbnails live in a bounded in-memory cache (the disk cache is the loader's).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from gui.thumbnails import ImageLoader
from indexer._paths import display_path
from indexer.browse import PhotoRow

CELL = QSize(176, 204)  # thumbnail area 160 x 160, file name below
ICON = 160
MEMORY_CACHE = 3000  # decoded thumbnails kept in memory (about 100 KB each)

PHOTO_ID_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
SCORE_ROLE = Qt.ItemDataRole.UserRole + 3
FAILED_ROLE = Qt.ItemDataRole.UserRole + 4  # why the thumbnail could not be made, or None

Index = QModelIndex | QPersistentModelIndex


class PhotoGridModel(QAbstractListModel):
    """Rows of photos. A thumbnail arriving emits ``thumbnail_changed(row)`` (-1: all) rather than
    ``dataChanged``, which makes QListView lay out every row again: O(rows) per thumbnail."""

    thumbnail_changed = Signal(int)

    def __init__(self, loader: ImageLoader, parent: Any = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self._rows: list[PhotoRow] = []
        self._scores: dict[int, float] = {}
        self._row_of_path: dict[str, int] = {}
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._failed: dict[str, str] = {}
        loader.ready.connect(self._on_ready)
        loader.failed.connect(self._on_failed)

    # --- contents ------------------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[PhotoRow], scores: dict[int, float] | None = None) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._scores = dict(scores or {})
        self._row_of_path = {row.path: i for i, row in enumerate(self._rows)}
        self.loader.cancel_all()  # what was asked for the old rows is not on screen any more
        self.endResetModel()

    def photo(self, row: int) -> PhotoRow:
        return self._rows[row]

    def photos(self) -> list[PhotoRow]:
        return list(self._rows)

    def row_of(self, photo_id: int) -> int | None:
        for i, row in enumerate(self._rows):
            if row.id == photo_id:
                return i
        return None

    def forget_thumbnails(self) -> None:
        """Drop the decoded thumbnails (after a re-index, a photo's may have changed)."""
        self._pixmaps.clear()
        self._failed.clear()
        self.thumbnail_changed.emit(-1)

    def thumbnail(self, path: str) -> QPixmap | None:
        return self._pixmaps.get(path)

    # --- Qt model API --------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
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
            score = self._scores.get(row.id)
            extra = f"\nrelevance {score:.3f}" if score is not None else ""
            failed = self._failed.get(row.path)
            return display_path(f"{row.path}{extra}" + (f"\n{failed}" if failed else ""))
        if role == PHOTO_ID_ROLE:
            return row.id
        if role == PATH_ROLE:
            return row.path
        if role == SCORE_ROLE:
            return self._scores.get(row.id)
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
        return sorted(index.row() for index in self.selectionModel().selectedIndexes())

    def select_row(self, row: int, *, extend: bool = False) -> None:
        index = self.model().index(row, 0)
        flags = QItemSelectionModel.SelectionFlag.Select if extend else QItemSelectionModel.SelectionFlag.ClearAndSelect
        self.selectionModel().setCurrentIndex(index, flags)
        self.scrollTo(index)
