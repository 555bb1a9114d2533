"""Define a custom tag from descriptions and/or the selected photos, preview it, then save it.

Preview is ``Library.build_custom_tag`` + ``Library.custom_tag_matches`` on a worker thread (nothing is
written); Save, enabled once a preview of the current definition has been shown, is
``Library.save_custom_tag`` (save, then score the tag on every photo of the catalog), also off the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui._dialogs import action_buttons
from gui.errors import ErrorReporter
from gui.library import Library
from gui.tasks import TaskRunner
from indexer._paths import display_path

PREVIEW_LIMIT = 500  # rows shown; the count covers every match


class CustomTagDialog(QDialog):
    saved = Signal(str)  # the tag's name, once saved and applied

    def __init__(self, library: Library, selected: Sequence[int], *, indexing: Callable[[], bool] = lambda: False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New custom tag")
        self.resize(720, 560)
        self.library = library
        self.selected = list(selected)
        self.indexing = indexing
        self.errors = ErrorReporter(self)
        self.runner = TaskRunner(self, name="phototag-custom-tag")
        self.tag: Any = None  # the previewed definition, the one Save stores
        self.found: list[tuple[str, float]] = []
        self.applied: int | None = None
        self._auto_threshold = True  # follows the default until the person changes it

        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. my bike")
        self.descriptions = QPlainTextEdit()
        self.descriptions.setPlaceholderText("One description per line, e.g. a red road bike")
        self.descriptions.setMaximumHeight(90)
        count = len(self.selected)
        self.use_examples = QCheckBox(f"Use the {count} selected photo{'s' if count != 1 else ''} as examples")
        self.use_examples.setChecked(count > 0)
        self.use_examples.setEnabled(count > 0)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(-1.0, 1.0)
        self.threshold.setDecimals(3)
        self.threshold.setSingleStep(0.01)
        self._set_default_threshold()
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Descriptions", self.descriptions)
        form.addRow("", self.use_examples)
        form.addRow("Threshold (cosine)", self.threshold)

        self.results = QTableWidget(0, 2)
        self.results.setHorizontalHeaderLabels(["Score", "Photo"])
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.verticalHeader().setVisible(False)
        self.results.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.status = QLabel("Give a name and descriptions and/or examples, then Preview.")
        self.status.setWordWrap(True)
        self.preview_button = QPushButton("Preview")
        self.save_button = QPushButton("Save")
        self.save_button.setEnabled(False)
        buttons = action_buttons(self, self.preview_button, self.save_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.results, 1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)

        self.preview_button.clicked.connect(self.errors.guard(lambda _checked=False: self.preview()))
        self.save_button.clicked.connect(self.errors.guard(lambda _checked=False: self.save()))
        self.name.textChanged.connect(self._changed)
        self.descriptions.textChanged.connect(self._definition_changed)
        self.use_examples.toggled.connect(self._definition_changed)
        self.threshold.valueChanged.connect(self._threshold_edited)

    # --- the definition ----------------------------------------------------------------------------
    def description_lines(self) -> list[str]:
        return [line.strip() for line in self.descriptions.toPlainText().splitlines() if line.strip()]

    def examples(self) -> list[int]:
        return list(self.selected) if self.use_examples.isChecked() else []

    def _set_default_threshold(self) -> None:
        value = self.library.default_custom_threshold(self.description_lines(), self.examples())
        self.threshold.blockSignals(True)
        self.threshold.setValue(value)
        self.threshold.blockSignals(False)

    def _threshold_edited(self, _value: float) -> None:
        self._auto_threshold = False
        self._changed()

    def _definition_changed(self) -> None:
        if self._auto_threshold:
            self._set_default_threshold()
        self._changed()

    def _changed(self) -> None:
        """The definition changed: the preview shown no longer describes it, so Save waits for a new one."""
        if self.tag is not None:
            self.tag = None
            self.status.setText("Changed: Preview again before saving.")
        self.save_button.setEnabled(False)

    def _busy(self, busy: bool) -> None:
        for widget in (self.preview_button, self.name, self.descriptions, self.threshold):
            widget.setEnabled(not busy)
        self.use_examples.setEnabled(not busy and bool(self.selected))
        if busy:
            self.save_button.setEnabled(False)

    # --- preview and save --------------------------------------------------------------------------
    def preview(self) -> None:
        name, descriptions, examples = self.name.text().strip(), self.description_lines(), self.examples()
        if not name:
            self.errors.show("Give the custom tag a name first.", title="New custom tag")
            return
        if not descriptions and not examples:
            self.errors.show("Give at least one description, or use selected photos as examples.",
                             title="New custom tag")
            return
        threshold = self.threshold.value()
        library = self.library

        def work() -> tuple[Any, list[tuple[str, float]]]:
            tag = library.build_custom_tag(name, descriptions, examples, threshold)
            return tag, library.custom_tag_matches(tag)

        self._busy(True)
        self.tag = None
        self.status.setText("Scoring every photo (nothing is written)…")
        self.runner.submit(work, self._previewed, self._failed)

    def _previewed(self, result: tuple[Any, list[tuple[str, float]]]) -> None:
        self._busy(False)
        self.tag, self.found = result
        shown = self.found[:PREVIEW_LIMIT]
        self.results.setRowCount(len(shown))
        for row, (path, score) in enumerate(shown):
            score_item = QTableWidgetItem(f"{score:.3f}")
            score_item.setData(Qt.ItemDataRole.UserRole, score)
            score_item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.results.setItem(row, 0, score_item)
            self.results.setItem(row, 1, QTableWidgetItem(display_path(path)))
        more = f" (the best {PREVIEW_LIMIT} shown)" if len(self.found) > PREVIEW_LIMIT else ""
        self.status.setText(f"{self.tag.name} (threshold {self.tag.threshold:.3f}) would be suggested on "
                            f"{len(self.found):,} photo{'s' if len(self.found) != 1 else ''}{more}. "
                            "Save stores it and tags the whole library.")
        self.save_button.setEnabled(True)

    def preview_rows(self) -> list[tuple[str, float]]:
        """(path as ``display_path`` shows it, score) as the table shows them (tests read it)."""
        return [(path.text(), score.data(Qt.ItemDataRole.UserRole)) for r in range(self.results.rowCount())
                if (path := self.results.item(r, 1)) is not None and (score := self.results.item(r, 0)) is not None]

    def save(self) -> None:
        if self.tag is None:
            self.errors.show("Preview the tag first.", title="New custom tag")
            return
        if self.indexing():
            self.errors.show("Indexing is running and holds the catalog: pause it (Library panel), then Save.",
                             title="New custom tag")
            return
        tag, library = self.tag, self.library
        self._busy(True)
        self.status.setText(f"Saving {tag.name} and scoring it on every photo…")
        self.runner.submit(lambda: library.save_custom_tag(tag), lambda count: self._saved(tag.name, count),
                           self._failed)

    def _saved(self, name: str, count: int) -> None:
        self._busy(False)
        self.applied = count
        self.tag = None
        self.status.setText(f"Saved {name}: suggested on {count:,} photo{'s' if count != 1 else ''}.")
        self.saved.emit(name)

    def _failed(self, error: BaseException) -> None:
        self._busy(False)
        self.status.setText("Failed: see the message.")
        self.errors.show(error, title="New custom tag")

    def done(self, result: int) -> None:
        self.runner.shutdown()
        super().done(result)
