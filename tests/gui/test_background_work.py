"""Indexing, thumbnails and metadata writing run off the UI thread: the window keeps answering."""

from __future__ import annotations

import os
import time

import pytest
from PySide6.QtCore import QTimer

from indexer.report import photo_tags

pytestmark = pytest.mark.gui
TICK_MS = 20


def test_background_indexing_keeps_the_event_loop_responsive(qtbot, window, small_folder) -> None:  # noqa: ANN001
    before = window.grid_model.rowCount()
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    stages: list[str] = []
    window.indexing.progress.connect(lambda stage, done, total: stages.append(stage))
    timer.start()
    started = time.monotonic()
    window.add_folder(str(small_folder))  # adds the folder and indexes it in the background
    assert window.indexing.is_running()
    with qtbot.waitSignal(window.indexing.finished, timeout=120_000) as finished:
        pass
    elapsed = time.monotonic() - started
    timer.stop()
    summary = finished.args[0]
    assert (summary.new, summary.tagged, summary.failed) == (6, 6, 0)
    # The pass took a while (model loading, two batches) and the timer kept firing all along: no gap
    # anywhere near the length of the pass, which is what running it on the UI thread would give.
    gaps = [b - a for a, b in zip([started, *ticks], [*ticks, time.monotonic()], strict=True)]
    print(f"indexing took {elapsed:.2f}s; {len(ticks)} ticks of {TICK_MS} ms; longest gap {max(gaps) * 1000:.0f} ms")
    assert len(ticks) >= 0.25 * elapsed / (TICK_MS / 1000)
    assert max(gaps) < elapsed / 2
    assert {"scan", "identify", "model"} <= set(stages)
    assert window.indexing_panel.stage.text() == "Up to date" and "6 new" in window.indexing_panel.rate.text()
    qtbot.waitUntil(window.idle)  # the grid and the library panel, read again
    assert window.grid_model.rowCount() == before + 6
    assert str(small_folder) in [window.indexing_panel.folders.item(i).text()
                                 for i in range(window.indexing_panel.folders.count())]


def test_pause_then_resume_continues_where_it_stopped(qtbot, window, small_folder) -> None:  # noqa: ANN001
    window.library.add_folder(small_folder)
    assert window.start_indexing([str(small_folder)])
    window.indexing_panel.pause_button.click()  # asks the pass to stop after the batch in flight
    assert window.indexing.state == "pausing"
    with qtbot.waitSignal(window.indexing.finished, timeout=120_000) as paused:
        pass
    assert paused.args[0].interrupted and paused.args[0].tagged < 6
    assert window.indexing_panel.pause_button.text() == "Resume"
    assert "Resume continues" in window.indexing_panel.stage.text()
    window.indexing_panel.pause_button.click()  # Resume: a new, incremental pass
    with qtbot.waitSignal(window.indexing.finished, timeout=120_000) as resumed:
        pass
    assert not resumed.args[0].interrupted
    assert paused.args[0].tagged + resumed.args[0].tagged == 6
    for name in os.listdir(small_folder):
        assert photo_tags(window.library.catalog, small_folder / name)["status"] == "indexed"


def test_an_indexing_error_is_a_message(qtbot, window, tmp_path) -> None:  # noqa: ANN001
    gone = tmp_path / "gone"
    gone.mkdir()
    window.library.add_folder(gone)
    gone.rmdir()
    window.start_indexing([str(gone)])
    with qtbot.waitSignal(window.indexing.error, timeout=60_000):
        pass
    assert "does not exist" in window.errors.messages[-1]
    assert "Traceback" not in window.errors.messages[-1]
    assert not window.indexing.is_running()


def test_write_metadata_shows_the_dry_run_first(qtbot, window, small_folder) -> None:  # noqa: ANN001
    window.add_folder(str(small_folder))
    with qtbot.waitSignal(window.indexing.finished, timeout=120_000):
        pass
    qtbot.waitUntil(window.search_done)
    window.search_bar.set_query(f'folder:"{small_folder}"')
    qtbot.waitUntil(lambda: window.search_done() and window.grid_model.rowCount() == 6)
    window.grid.select_row(0)
    path = window.grid_model.photo(0).path
    from gui.metadata_dialog import MetadataDialog

    window.apply_edits(["+my trip"])
    window.write_metadata_for_selection()  # the dialog opens once the selection's ids are read
    qtbot.waitUntil(lambda: bool(window.findChildren(MetadataDialog)))
    dialog = window.findChildren(MetadataDialog)[0]
    qtbot.waitUntil(lambda: dialog.dry_summary is not None, timeout=30_000)
    sidecar = f"{path}.xmp"
    assert "would write sidecar" in dialog.output.toPlainText() and "+my trip" in dialog.output.toPlainText()
    assert not os.path.exists(sidecar)  # the dry run changed nothing
    assert dialog.write_button.isEnabled()
    dialog.lang.setCurrentIndex(dialog.lang.findData("both"))  # the dry run shown no longer applies
    assert not dialog.write_button.isEnabled()
    dialog.dry_summary = None
    dialog.dry_button.click()
    qtbot.waitUntil(lambda: dialog.dry_summary is not None, timeout=30_000)
    assert dialog.write_button.isEnabled()
    dialog.write_button.click()
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=30_000)
    assert os.path.exists(sidecar) and "my trip" in open(sidecar, encoding="utf-8").read()
    assert "undo-metadata" in dialog.status.text()
    dialog.close()


def test_the_app_indexes_with_the_gpu_settings(settings, small_folder, monkeypatch) -> None:  # noqa: ANN001
    """PHOTOTAG_GPU_DECODE and PHOTOTAG_COMPILE reach the app's indexer as they reach `phototag index`."""
    from gui.library import Library
    from indexer.index import Indexer, IndexSummary

    seen = {}

    def run(self, roots, **_options) -> IndexSummary:  # noqa: ANN001
        seen.update(device_decode=self.engine.device_decode, compile=self.engine.compile)
        return IndexSummary()

    monkeypatch.setattr(Indexer, "run", run)
    for gpu_decode, compile_ in ((False, True), (True, None)):
        library = Library.open(settings.model_copy(update={"gpu_decode": gpu_decode, "compile": compile_}))
        try:
            library.index([str(small_folder)])
        finally:
            library.close()
        assert seen == {"device_decode": gpu_decode, "compile": compile_}
