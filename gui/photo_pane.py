"""The photo pane: the picture, its EXIF summary, and its tags to accept, reject or add.

Buttons and keys act on the tags selected in the list, for every photo selected in the grid:
A accepts (adding the tag where a photo lacks it), R rejects (never suggested again for those
photos), U undoes a decision, T goes to the add-tag box (Enter adds). The first suggestion is
selected when a photo is shown, and the selection stays in place after each decision, so a photo
is reviewed with A and R alone.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.search_bar import TagCompleter
from indexer._paths import display_path
from indexer.personal.corrections import EDIT_STATES

STATE_COLOURS = {"accepted": QColor(30, 130, 60), "rejected": QColor(170, 50, 40)}
SOURCE_LABELS = {"model": "model", "user": "you", "file": "file"}


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def exif_summary(details: dict[str, Any] | None) -> str:
    """Rich text lines: file, date, camera, pixels, format, size, place, status."""
    if details is None:
        return ""
    lines = [f"<b>{_escape(display_path(os.path.basename(details['path'])))}</b>",
             f"<span style='color:gray'>{_escape(display_path(os.path.dirname(details['path'])))}</span>"]
    facts = [("Taken", details.get("taken_at")), ("Camera", details.get("camera"))]
    if details.get("width") and details.get("height"):
        facts.append(("Pixels", f"{details['width']} × {details['height']}"))
    facts.append(("File", f"{(details.get('format') or '?').upper()}, {_size(details.get('size'))}"))
    if details.get("gps"):
        lat, lon = details["gps"]
        facts.append(("Place", f"{lat:.5f}, {lon:.5f}"))
    if details.get("status") != "indexed":
        status = details.get("status")
        if details.get("error"):
            status = f"{status}: {details['error']}"
        facts.append(("Status", status))
    lines += [f"{name}: {_escape(str(value))}" for name, value in facts if value]
    return "<br>".join(lines)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class PhotoPane(QWidget):
    """Shows one photo (the grid's current one) and asks for corrections: ``edits_requested`` carries
    ``["+dog", "-cat", "=bird"]`` for the window to apply to the selected photos."""

    edits_requested = Signal(list)
    COLUMNS = ("Tag", "Score", "Source", "State")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.selection_note = QLabel()
        self.selection_note.setWordWrap(True)
        self.selection_note.setStyleSheet("background: #fff3c4; color: #5a4500; padding: 4px;")
        self.selection_note.hide()
        self.image = QLabel("No photo selected")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(220, 220)
        self.image.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tags = QTableWidget(0, len(self.COLUMNS))
        self.tags.setHorizontalHeaderLabels(self.COLUMNS)
        self.tags.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tags.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tags.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tags.verticalHeader().hide()
        header = self.tags.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.hidden_note = QLabel()
        self.hidden_note.setStyleSheet("color: gray;")
        self.hidden_note.hide()
        self.accept_button = QPushButton("Accept (A)")
        self.reject_button = QPushButton("Reject (R)")
        self.undo_button = QPushButton("Undo (U)")
        self.accept_button.setToolTip("Accept the selected tags on every selected photo (adds them where missing)")
        self.reject_button.setToolTip("Reject the selected tags on every selected photo: never suggested again there")
        self.undo_button.setToolTip("Return the selected tags to suggestions (a tag you added is removed)")
        buttons = QHBoxLayout()
        for button in (self.accept_button, self.reject_button, self.undo_button):
            buttons.addWidget(button)
        self.add_line = QLineEdit()
        self.add_line.setPlaceholderText("Add a tag… (T, then Enter)")
        self.add_completer = TagCompleter(self.add_line, whole_line=True)
        self.add_button = QPushButton("Add")
        adding = QHBoxLayout()
        adding.addWidget(self.add_line, 1)
        adding.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.selection_note)
        layout.addWidget(self.image, 3)
        layout.addWidget(self.info)
        layout.addWidget(self.tags, 4)
        layout.addWidget(self.hidden_note)
        layout.addLayout(buttons)
        layout.addLayout(adding)
        self.accept_button.clicked.connect(self.accept_selected)
        self.reject_button.clicked.connect(self.reject_selected)
        self.undo_button.clicked.connect(self.undo_selected)
        self.add_button.clicked.connect(self.add_typed)
        self.add_line.returnPressed.connect(self._add_on_enter)
        self._pixmap: QPixmap | None = None
        self._path: str | None = None
        self._names: list[str] = []  # tag name of each table row
        self._shown: list[dict[str, Any]] = []  # the tag of each table row
        self._language = "en"
        self.set_enabled(False)

    # --- showing ------------------------------------------------------------------------------------
    def set_enabled(self, enabled: bool) -> None:
        for widget in (self.accept_button, self.reject_button, self.undo_button, self.add_line, self.add_button,
                       self.tags):
            widget.setEnabled(enabled)

    def clear(self) -> None:
        self._path, self._pixmap, self._names, self._shown = None, None, [], []
        self.image.setPixmap(QPixmap())
        self.image.setText("No photo selected")
        self.info.setText("")
        self.tags.setRowCount(0)
        self.selection_note.hide()
        self.hidden_note.hide()
        self.set_enabled(False)

    @property
    def path(self) -> str | None:
        return self._path

    def show_photo(self, entry: dict[str, Any] | None, details: dict[str, Any] | None, *, selected: int = 1,
                   language: str = "en", thresholds: dict[str, float | None] | None = None,
                   offset: float = 0.0, keep_row: bool = False) -> None:
        """Show a photo's tags (``indexer.report.photo_tags``) and facts (``indexer.browse.photo_details``)."""
        if entry is None or details is None:
            self.clear()
            return
        previous_row = self.tags.currentRow() if keep_row and self._path == entry["path"] else -1
        if self._path != entry["path"]:
            self._pixmap = None
            self.image.setPixmap(QPixmap())
            self.image.setText("loading…")
        self._path = entry["path"]
        self.info.setText(exif_summary(details))
        if selected > 1:
            self.selection_note.setText(f"<b>{selected} photos selected</b>: Accept, Reject, Undo and Add apply to "
                                        "all of them. The tags shown are this photo's.")
            self.selection_note.show()
        else:
            self.selection_note.hide()
        thresholds = thresholds or {}
        shown, hidden = [], 0
        for tag in entry["tags"]:
            threshold = thresholds.get(tag["name"])
            if (offset > 0 and tag["source"] == "model" and tag["state"] == "suggested" and tag["score"] is not None
                    and tag["score"] < (threshold or 0.0) + offset):
                hidden += 1
                continue
            shown.append(tag)
        self._fill(shown, language)
        self.hidden_note.setText(f"{hidden} weak suggestion{'s' if hidden != 1 else ''} hidden "
                                 f"(threshold offset +{offset:.2f}, in Settings)")
        self.hidden_note.setVisible(hidden > 0)
        self.set_enabled(True)
        if shown:
            row = previous_row if 0 <= previous_row < len(shown) else next(
                (i for i, t in enumerate(shown) if t["state"] == "suggested"), 0)
            self.tags.selectRow(row)

    def _fill(self, tags: list[dict[str, Any]], language: str) -> None:
        self.tags.setRowCount(len(tags))
        self._names, self._shown, self._language = [tag["name"] for tag in tags], list(tags), language
        for row, tag in enumerate(tags):
            self._set_row(row, tag)

    def _set_row(self, row: int, tag: dict[str, Any], *, pending: bool = False) -> None:
        """Show ``tag`` in table row ``row``; ``pending``: a decision being written (its state in italics)."""
        name = tag["name_zh"] if self._language == "zh" and tag["name_zh"] else tag["name"]
        other = tag["name"] if name != tag["name"] else tag["name_zh"]
        score = "" if tag["score"] is None else f"{tag['score']:.2f}"
        cells = [name, score, SOURCE_LABELS.get(tag["source"], tag["source"]), tag["state"] + ("…" if pending else "")]
        colour = STATE_COLOURS.get(tag["state"])
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if column == 0 and other:
                item.setToolTip(other)
            if column == 1:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if colour is not None:
                item.setForeground(QBrush(colour))
            if tag["state"] == "rejected" or (pending and column == 3):
                font = QFont(item.font())
                font.setStrikeOut(tag["state"] == "rejected")
                font.setItalic(pending and column == 3)
                item.setFont(font)
            self.tags.setItem(row, column, item)

    def show_pending(self, edits: list[str]) -> None:
        """Show decisions (``+dog``, ``-cat``, ``=bird``) at once, while they are written: the state each asks for,
        in italics, until the photo's tags are read again (:meth:`show_photo`). A tag added that the photo does not
        show gets a row of its own."""
        if self._path is None:
            return
        for edit in edits:
            sign, name = edit[:1], edit[1:].strip()
            state = EDIT_STATES.get(sign)
            if state is None or not name:
                continue
            row = next((row for row, tag in enumerate(self._shown)
                        if name.casefold() == tag["name"].casefold() or name == tag["name_zh"]), None)
            if row is None and state != EDIT_STATES["+"]:
                continue  # a decision on a tag this photo does not show
            if row is None:
                row = len(self._shown)
                self.tags.setRowCount(row + 1)
                self._shown.append({"name": name, "name_zh": None, "score": None, "source": "user", "state": state})
                self._names.append(name)
            self._shown[row] = {**self._shown[row], "state": state}
            self._set_row(row, self._shown[row], pending=True)

    def set_image(self, pixmap: QPixmap | None, *, path: str | None = None) -> None:
        """The picture for the shown photo (a thumbnail first, then a larger preview)."""
        if path is not None and path != self._path:
            return
        if pixmap is None or pixmap.isNull():
            return
        if self._pixmap is not None and self._pixmap.width() >= pixmap.width():
            return  # keep the larger picture already shown
        self._pixmap = pixmap
        self._rescale()

    def image_failed(self, message: str, *, path: str | None = None) -> None:
        if path is None or path == self._path:
            if self._pixmap is None:
                self.image.setText(f"cannot show this photo:\n{display_path(message)}")

    def _rescale(self) -> None:
        if self._pixmap is not None:
            size = self.image.size()
            self.image.setPixmap(self._pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                                     Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._rescale()

    # --- asking for corrections ----------------------------------------------------------------------
    def selected_tags(self) -> list[str]:
        rows = sorted({index.row() for index in self.tags.selectionModel().selectedRows()})
        return [self._names[row] for row in rows if row < len(self._names)]

    def tag_names_shown(self) -> list[str]:
        return list(self._names)

    def select_tag(self, name: str) -> bool:
        if name in self._names:
            self.tags.selectRow(self._names.index(name))
            return True
        return False

    def _decide(self, sign: str) -> bool:
        names = self.selected_tags()
        if not names or self._path is None:
            return False
        self.edits_requested.emit([f"{sign}{name}" for name in names])
        return True

    def accept_selected(self) -> bool:
        return self._decide("+")

    def reject_selected(self) -> bool:
        return self._decide("-")

    def undo_selected(self) -> bool:
        return self._decide("=")

    def focus_add(self) -> None:
        self.add_line.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.add_line.selectAll()

    def _add_on_enter(self) -> None:
        if not self.add_completer.popup_shown():
            self.add_typed()

    def add_typed(self) -> bool:
        names = [n.strip() for n in self.add_line.text().split(",") if n.strip()]
        if not names or self._path is None:
            return False
        self.add_line.clear()
        self.edits_requested.emit([f"+{name}" for name in names])
        return True
