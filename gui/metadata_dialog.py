"""Write tags as keywords for the selection or the search: the dry run first, then the real run.

Both are ``Library.write_metadata`` (``indexer.metadata.write.MetadataWriter``) on a worker thread.
Every real run backs up what it changes; ``phototag undo-metadata RUN`` restores it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui._dialogs import action_buttons
from gui.errors import message_for
from gui.library import Library
from gui.tasks import TaskRunner


class MetadataDialog(QDialog):
    """Writes with the settings of ``library`` (metadata profile, mode, sidecar naming; the language shown first:
    the keyword language when one was chosen, else the app's tag language)."""

    def __init__(self, library: Library, photo_ids: Sequence[int], scope: str, *,
                 indexing: Callable[[], bool] = lambda: False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Write metadata")
        self.resize(760, 480)
        self.library = library
        self.photo_ids = list(photo_ids)
        self.settings = library.settings
        self.indexing = indexing
        self.runner = TaskRunner(self, name="phototag-metadata")
        self._stop = threading.Event()  # closing the dialog ends a real run after the current photo
        self.summary: Any = None
        self.dry_summary: Any = None
        self.include = QComboBox()
        self.include.addItem("Accepted tags (accepted or added by you)", "accepted")
        self.include.addItem("Also the model's suggestions", "suggested")
        self.lang = QComboBox()
        for label, value in (("English", "en"), ("Chinese", "zh"), ("Both", "both")):
            self.lang.addItem(label, value)
        settings = self.settings
        lang = settings.metadata_lang if settings.chosen("metadata_lang") else settings.tag_language
        self.lang.setCurrentIndex(max(0, self.lang.findData(lang)))
        heading = QLabel(f"Keywords for <b>{len(self.photo_ids):,} photo{'s' if len(self.photo_ids) != 1 else ''}"
                         f"</b> ({scope}), into {self._where()}.<br>Nothing is written until you press "
                         "<b>Write</b>; every write can be undone with <tt>phototag undo-metadata</tt>.")
        heading.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Tags", self.include)
        form.addRow("Language", self.lang)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.dry_button = QPushButton("Show changes (dry run)")
        self.write_button = QPushButton("Write")
        self.write_button.setEnabled(False)
        buttons = action_buttons(self, self.dry_button, self.write_button)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(form)
        layout.addWidget(self.output, 1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.dry_button.clicked.connect(self.dry_run)
        self.write_button.clicked.connect(self.write)
        self.include.currentIndexChanged.connect(self._options_changed)
        self.lang.currentIndexChanged.connect(self._options_changed)

    def _where(self) -> str:
        from indexer.metadata.profiles import profile_named

        settings = self.settings
        profile = profile_named(settings.metadata_profile)
        naming = {"ext": "IMG.jpg.xmp", "replace": "IMG.xmp"}.get(settings.sidecar_naming or "")
        if naming is None:
            names = ["IMG.jpg.xmp"] if profile.ext_sidecar else []
            names += ["IMG.xmp for RAW"] if profile.stem_sidecar else []
            naming = ", ".join(names) or "IMG.jpg.xmp"
        where = {"sidecar": f"XMP sidecars ({naming})", "embed": f"the JPEGs themselves (others: {naming})",
                 "both": f"the JPEGs and XMP sidecars ({naming})"}[settings.metadata_mode or profile.mode]
        return f"{where}, for {profile.app}"

    def options(self, *, dry_run: bool) -> Any:
        from indexer.metadata.write import WriteOptions

        settings = self.settings
        return WriteOptions(mode=settings.metadata_mode, include=self.include.currentData(),
                            lang=self.lang.currentData(), sidecar_naming=settings.sidecar_naming,
                            profile=settings.metadata_profile, dry_run=dry_run)

    def _options_changed(self) -> None:
        self.write_button.setEnabled(False)
        self.status.setText("Options changed: run the dry run again before writing.")

    def _busy(self, busy: bool) -> None:
        self.dry_button.setEnabled(not busy)
        self.include.setEnabled(not busy)
        self.lang.setEnabled(not busy)
        if busy:
            self.write_button.setEnabled(False)

    def dry_run(self) -> None:
        self._busy(True)
        self.output.clear()
        self.status.setText("Looking at every file (nothing is written)…")
        options = self.options(dry_run=True)
        self.runner.submit(lambda: self.library.write_metadata(self.photo_ids, options),
                           self._dry_done, self._failed)

    def _show_reports(self, summary: Any) -> dict[str, int]:
        """A run ended: list its changed and skipped files; returns its counts."""
        self._busy(False)
        self.output.setPlainText("\n".join(r.line() for r in summary.files if r.status != "unchanged"))
        return summary.counts()

    def _dry_done(self, summary: Any) -> None:
        self.dry_summary = summary
        counts = self._show_reports(summary)
        self.status.setText(f"Dry run: {counts['would_write']} file(s) would be written, {counts['unchanged']} "
                            f"unchanged, {counts['skipped']} skipped. Nothing was changed.")
        self.write_button.setEnabled(counts["would_write"] > 0)

    def write(self) -> None:
        if self.indexing():
            self.status.setText("Indexing is running and holds the catalog: pause it (Library panel), then Write.")
            return
        self._busy(True)
        self.status.setText("Writing…")
        options = self.options(dry_run=False)
        self.runner.submit(lambda: self.library.write_metadata(self.photo_ids, options, stop=self._stop),
                           self._written, self._failed)

    def _written(self, summary: Any) -> None:
        self.summary = summary
        counts = self._show_reports(summary)
        undo = f" Undo with: phototag undo-metadata {summary.run_id}" if summary.run_id else ""
        self.status.setText(f"Wrote {counts['written']} file(s), {counts['unchanged']} unchanged, "
                            f"{counts['skipped']} skipped.{undo}")

    def _failed(self, error: BaseException) -> None:
        self._busy(False)
        self.status.setText(message_for(error))

    def done(self, result: int) -> None:
        """Closing: a run in flight stops after its current photo (a photo is written whole or not at all)."""
        self._stop.set()
        self.runner.shutdown()
        super().done(result)
