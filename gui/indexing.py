"""Background indexing: the library's index pass on a worker thread, and the panel that shows it.

The pass is ``Library.index`` (the same ``Indexer`` as ``phototag index``), run on a plain thread
holding the catalog's writer lock; its progress and failure callbacks reach the UI thread as queued
signals, so the window never waits for it. **Pause** sets the pass's stop event: it finishes the
batch in flight and returns. **Resume** runs a new pass, which is incremental: it skips everything
already done and continues where the last one stopped.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.library import Library
from indexer._paths import display_path
from indexer.pipeline import Failure

STAGE_NAMES = {"scan": "Finding files", "identify": "Reading new files", "model": "Tagging and embedding",
               "embed": "Embedding for free-text search", "models": "Loading the models"}
RATE_WINDOW_SECONDS = 30.0


class RateMeter:
    """Photos per second over the last ``window`` seconds of one stage, and the time left."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._points: deque[tuple[float, int]] = deque()
        self._stage: str | None = None

    def update(self, stage: str, done: int, total: int | None, now: float | None = None) -> tuple[float, float | None]:
        """(rate, seconds left or None) after ``done`` of ``total`` items of ``stage``."""
        now = time.monotonic() if now is None else now
        if stage != self._stage or (self._points and done < self._points[-1][1]):
            self._points.clear()
            self._stage = stage
        self._points.append((now, done))
        while len(self._points) > 2 and now - self._points[0][0] > self.window:
            self._points.popleft()
        (t0, d0), (t1, d1) = self._points[0], self._points[-1]
        rate = (d1 - d0) / (t1 - t0) if t1 - t0 > 0.2 and d1 > d0 else 0.0
        eta = (total - done) / rate if rate > 0 and total is not None and total > done else None
        return rate, eta


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


class IndexingController(QObject):
    """Runs ``Library.index`` passes one at a time on a worker thread.

    States: ``idle``, ``running``, ``pausing`` (stop asked, the batch in flight finishes),
    ``paused`` (the last pass was interrupted; ``start`` resumes), ``done``."""

    progress = Signal(str, int, object)  # stage, done, total (None while unknown)
    failure_found = Signal(object, str, str)  # path (a str Qt would not mangle), reason, message
    finished = Signal(object)  # IndexSummary
    error = Signal(object)  # the exception that ended the pass
    state_changed = Signal(str)

    def __init__(self, library: Library, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.state = "idle"
        self.roots: list[str] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.finished.connect(self._on_finished)
        self.error.connect(self._on_error)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def resume(self) -> bool:
        """A new pass over the folders of the paused one: incremental, so it continues where that one stopped."""
        return self.start(self.roots)

    def start(self, roots: list[str]) -> bool:
        """Start a pass over ``roots``; False when one is running already."""
        if self.is_running() or not roots:
            return False
        self.roots = list(roots)
        self._stop = threading.Event()
        self._set_state("running")
        self._thread = threading.Thread(target=self._run, args=(self.roots, self._stop), name="phototag-index",
                                        daemon=True)
        self._thread.start()
        return True

    def pause(self) -> None:
        if self.is_running():
            self._stop.set()
            self._set_state("pausing")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the pass ends (closing the window); True when no pass is running."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_running()

    def _run(self, roots: list[str], stop: threading.Event) -> None:
        try:
            self.progress.emit("models", 0, None)
            self.library.models()  # the slow part of a first pass: say so before it starts
            summary = self.library.index(
                roots, stop=stop,
                on_progress=lambda stage, done, total: self.progress.emit(stage, done, total),
                on_failure=self._failure)
        except BaseException as exc:  # noqa: BLE001 - shown by the window as a message
            self.error.emit(exc)
        else:
            self.finished.emit(summary)

    def _failure(self, failure: Failure) -> None:
        self.failure_found.emit(failure.path, failure.reason or "", display_path(failure.message))

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _on_finished(self, summary: Any) -> None:
        self._set_state("paused" if summary.interrupted else "done")

    def _on_error(self, _exc: BaseException) -> None:
        self._set_state("idle")


class IndexingPanel(QWidget):
    """Library folders, the running pass (stage, progress, rate, ETA, pause/resume) and failed files."""

    add_folder_requested = Signal()
    remove_folder_requested = Signal(str)
    index_requested = Signal()  # index the library folders now
    pause_requested = Signal()
    resume_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folders = QListWidget()
        self.folders.setMaximumHeight(110)
        self.folders.setToolTip("The folders shown in the grid and indexed")
        self.add_button = QPushButton("Add folder…")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Stop showing and indexing the folder; its photos keep their tags in the "
                                      "catalog, so adding it back costs nothing")
        self.index_button = QPushButton("Index now")
        self.index_button.setToolTip("An incremental pass over the library folders: only new and changed photos "
                                     "cost anything")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Finish the batch in flight and stop. Resume continues where it stopped "
                                     "(the next pass skips what is done).")
        self.pause_button.setEnabled(False)
        self.stage = QLabel("Not indexing")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.rate = QLabel("")
        self.rate.setStyleSheet("color: gray;")
        self.model_counts = QLabel("")  # both progresses of the model work: searchable by text, tagged
        self.model_counts.setStyleSheet("color: gray;")
        self._counts: dict[str, tuple[int, int]] = {}  # "embed" / "model" -> (done, total)
        self.failures = QTableWidget(0, 4)
        self.failures.setHorizontalHeaderLabels(("File", "Reason", "Tries", "Message"))
        self.failures.verticalHeader().hide()
        self.failures.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.failures.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.failures.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.failures_title = QLabel("Files that could not be indexed")
        folder_buttons = QHBoxLayout()
        folder_buttons.addWidget(self.add_button)
        folder_buttons.addWidget(self.remove_button)
        run_buttons = QHBoxLayout()
        run_buttons.addWidget(self.index_button)
        run_buttons.addWidget(self.pause_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QLabel("<b>Library folders</b>"))
        layout.addWidget(self.folders)
        layout.addLayout(folder_buttons)
        layout.addLayout(run_buttons)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addWidget(self.rate)
        layout.addWidget(self.model_counts)
        layout.addWidget(self.failures_title)
        layout.addWidget(self.failures, 1)
        self.add_button.clicked.connect(self.add_folder_requested)
        self.remove_button.clicked.connect(self._remove)
        self.index_button.clicked.connect(self.index_requested)
        self.pause_button.clicked.connect(self._pause_or_resume)
        self._state = "idle"
        self._meter = RateMeter()

    def set_folders(self, folders: list[str]) -> None:
        self.folders.clear()
        self.folders.addItems(folders)
        self.remove_button.setEnabled(bool(folders))
        self.index_button.setEnabled(bool(folders) and self._state not in ("running", "pausing"))

    def _remove(self) -> None:
        item = self.folders.currentItem()
        if item is not None:
            self.remove_folder_requested.emit(item.text())

    def _pause_or_resume(self) -> None:
        if self._state == "running":
            self.pause_requested.emit()
        elif self._state == "paused":
            self.resume_requested.emit()

    def set_state(self, state: str, summary_line: str = "") -> None:
        self._state = state
        running = state in ("running", "pausing")
        self.index_button.setEnabled(not running and self.folders.count() > 0)
        self.pause_button.setEnabled(state in ("running", "paused"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        if state == "running":
            self._meter = RateMeter()
            self._counts = {}
            self.model_counts.setText("")
            self.stage.setText("Starting…")
            self.rate.setText("")
        elif state == "pausing":
            self.stage.setText("Pausing: finishing the batch in flight…")
        elif state == "paused":
            self.stage.setText("Paused. Resume continues where it stopped.")
            self.rate.setText(summary_line)
        elif state == "done":
            self.stage.setText("Up to date")
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
            self.rate.setText(summary_line)
        else:
            self.stage.setText(summary_line or "Not indexing")

    def show_progress(self, stage: str, done: int, total: int | None) -> None:
        if stage in ("embed", "model") and total is not None:
            self._counts[stage] = (done, total)
            self.model_counts.setText(" · ".join(
                f"{what}: {self._counts[key][0]:,} of {self._counts[key][1]:,}"
                for key, what in (("embed", "searchable by text"), ("model", "tagged")) if key in self._counts))
        if self._state == "pausing":
            return
        # Once embeddings come first (their own stage), the model stage is the tagging.
        name = "Tagging" if stage == "model" and "embed" in self._counts else STAGE_NAMES.get(stage, stage)
        if total is None:
            self.bar.setRange(0, 0)  # busy
            self.bar.setTextVisible(False)
            self.stage.setText(f"{name}…" + (f" {done:,}" if done else ""))
            self.rate.setText("")
            return
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, max(total, 1)))
        self.bar.setTextVisible(True)
        self.stage.setText(f"{name}: {done:,} of {total:,}")
        rate, eta = self._meter.update(stage, done, total)
        unit = "files" if stage == "scan" else "photos"
        self.rate.setText(" · ".join(x for x in (f"{rate:.1f} {unit}/s" if rate else "", format_eta(eta)) if x))

    def set_failures(self, rows: list[dict[str, Any]]) -> None:
        self.failures.setRowCount(0)
        for row in rows:
            self.add_failure(row["path"], row.get("reason") or "", row.get("message") or "", row.get("attempts"))

    def add_failure(self, path: str, reason: str, message: str, attempts: int | None = None) -> None:
        shown, message = display_path(path), display_path(message)
        for row in range(self.failures.rowCount()):  # a file failing again replaces its row
            item = self.failures.item(row, 0)
            if item is not None and item.toolTip() == shown:
                self.failures.removeRow(row)
                break
        row = self.failures.rowCount()
        self.failures.insertRow(row)
        name = QTableWidgetItem(display_path(os.path.basename(path)))
        name.setToolTip(shown)
        cells = [name, QTableWidgetItem(reason), QTableWidgetItem("" if attempts is None else str(attempts)),
                 QTableWidgetItem(message)]
        cells[3].setToolTip(message)
        cells[2].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for column, item in enumerate(cells):
            self.failures.setItem(row, column, item)
        self.failures_title.setText(f"Files that could not be indexed ({self.failures.rowCount()})")

    def failure_paths(self) -> list[str]:
        """The failed files as shown (``display_path``)."""
        return [item.toolTip() for row in range(self.failures.rowCount())
                if (item := self.failures.item(row, 0)) is not None]
