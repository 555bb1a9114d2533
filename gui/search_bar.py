"""The search bar (query language, tag completion in English and Chinese, sort, relevance cutoff,
result count) and the saved-searches panel."""

from __future__ import annotations

import re
from collections.abc import Iterable

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

# The tag: term being typed at the cursor: tag:do, -tag:狗, tag:"living ro
_TAG_TOKEN = re.compile(r'(?:^|(?<=[\s(]))(-?tag:)(?:"([^"]*)|([^"\s()]*))$', re.IGNORECASE)


def quote_tag(name: str) -> str:
    return f'"{name}"' if any(c.isspace() or c in '()"' for c in name) else name


class TagCompleter(QCompleter):
    """Completes the ``tag:`` word under the cursor of a line edit with tag names (both languages)."""

    def __init__(self, line: QLineEdit, *, whole_line: bool = False) -> None:
        super().__init__(line)
        self._names = QStringListModel(self)
        self.setModel(self._names)
        self.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterMode(Qt.MatchFlag.MatchStartsWith)
        self.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.setMaxVisibleItems(12)
        self.whole_line = whole_line  # the add-tag box: the whole text is one tag name
        self.line = line
        self.setWidget(line)
        line.textEdited.connect(self._edited)
        self.activated[str].connect(self._insert)  # type: ignore[index]  # the stubs omit the overloads' index

    def set_names(self, names: Iterable[str]) -> None:
        self._names.setStringList(sorted(set(names), key=str.casefold))

    def names(self) -> list[str]:
        return self._names.stringList()

    def popup_shown(self) -> bool:
        """Whether the completion list is showing (Enter then picks from it)."""
        popup = self.popup()
        return popup is not None and popup.isVisible()

    def _hide_popup(self) -> None:
        popup = self.popup()
        if popup is not None:
            popup.hide()

    def _prefix(self) -> str | None:
        before = self.line.text()[: self.line.cursorPosition()]
        if self.whole_line:
            return before.strip()
        match = _TAG_TOKEN.search(before)
        if match is None:
            return None
        return match.group(2) if match.group(2) is not None else match.group(3)

    def _edited(self, _text: str) -> None:
        prefix = self._prefix()
        if not prefix:
            self._hide_popup()
            return
        self.setCompletionPrefix(prefix)
        if self.completionCount() == 0:
            self._hide_popup()
            return
        self.complete()

    def _insert(self, name: str) -> None:
        text, cursor = self.line.text(), self.line.cursorPosition()
        if self.whole_line:
            self.line.setText(name)
            return
        match = _TAG_TOKEN.search(text[:cursor])
        if match is None:
            return
        start = match.start()
        replacement = f"{match.group(1)}{quote_tag(name)} "
        rest = text[cursor:].lstrip()
        self.line.setText(text[:start] + replacement + rest)
        self.line.setCursorPosition(start + len(replacement))


class SearchBar(QWidget):
    """Emits ``search_requested(text, sort, min_score)`` on Enter, or when sort or cutoff change.

    An empty query shows the whole library (sorted by date)."""

    search_requested = Signal(str, str, float)

    def __init__(self, min_score: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.line = QLineEdit()
        self.line.setClearButtonEnabled(True)
        self.line.setPlaceholderText('Search: tag:dog beach  "a red car"  date:2023  camera:sony  -tag:cat  '
                                     '@saved   (Enter; empty: the whole library)')
        self.line.setToolTip("The query language of 'phototag search': tags (English or Chinese), free text, "
                             "similar:FILE, date:, camera:, folder:, type:, has:, state:, source:, AND/OR/NOT, @saved")
        self.completer = TagCompleter(self.line)
        self.sort = QComboBox()
        self.sort.addItem("Relevance", "relevance")
        self.sort.addItem("Date", "date")
        self.sort.setToolTip("Order of the results (an empty query is always by date)")
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(-1.0, 1.0)
        self.min_score.setDecimals(2)
        self.min_score.setSingleStep(0.01)
        self.min_score.setValue(min_score)
        self.min_score.setPrefix("cutoff ")
        self.min_score.setToolTip("Relevance cutoff of free-text and similar: terms (CLIP cosine similarity). "
                                  "Lower finds more, higher finds only close matches.")
        self.count = QLabel("")
        self.count.setMinimumWidth(110)
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.line, 1)
        layout.addWidget(self.sort)
        layout.addWidget(self.min_score)
        layout.addWidget(self.count)
        self.line.returnPressed.connect(self._request)
        self.sort.currentIndexChanged.connect(self._request)
        self.min_score.editingFinished.connect(self._request)

    def text(self) -> str:
        return self.line.text().strip()

    def set_query(self, text: str, *, run: bool = True) -> None:
        self.line.setText(text)
        if run:
            self._request()

    def _request(self) -> None:
        if self.completer.popup_shown():
            return  # Enter chose a completion; the query is not finished
        self.search_requested.emit(self.text(), self.sort.currentData(), self.min_score.value())

    def show_count(self, shown: int, *, searching: bool = False, query: str = "") -> None:
        if searching:
            self.count.setText("searching…")
        elif query:
            self.count.setText(f"{shown:,} match{'es' if shown != 1 else ''}")
        else:
            self.count.setText(f"{shown:,} photo{'s' if shown != 1 else ''}")


class SavedSearchesPanel(QWidget):
    """Saved searches (``@name``): click one to run it; save the current query; delete one."""

    run_requested = Signal(str)  # the query to run: "@name"
    save_requested = Signal()
    delete_requested = Signal(str)  # name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setToolTip("Click to run; @name in a query uses it too")
        self.save_button = QPushButton("Save current…")
        self.delete_button = QPushButton("Delete")
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.list.itemActivated.connect(self._run)
        self.list.itemClicked.connect(self._run)
        self.save_button.clicked.connect(self.save_requested)
        self.delete_button.clicked.connect(self._delete)

    def set_saved(self, saved: dict[str, str]) -> None:
        self.list.clear()
        for name, query in saved.items():
            item = QListWidgetItem(f"@{name}   {query}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(query)
            self.list.addItem(item)

    def names(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def _run(self, item: QListWidgetItem) -> None:
        self.run_requested.emit(f"@{item.data(Qt.ItemDataRole.UserRole)}")

    def _delete(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.delete_requested.emit(item.data(Qt.ItemDataRole.UserRole))
