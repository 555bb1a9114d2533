"""``phototag gui``: the command and ``gui.run``."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gui import run
from gui.main_window import MainWindow
from main import main

pytestmark = pytest.mark.gui


def test_run_opens_indexes_the_folder_and_returns_when_closed(qtbot, settings, small_folder) -> None:  # noqa: ANN001
    seen: dict = {}

    def close_when_indexed() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if windows and windows[0].indexing.state == "done" and windows[0].search_done():
            seen["folders"] = windows[0].library.folders()
            seen["rows"] = windows[0].grid_model.rowCount()
            windows[0].close()
        else:
            QTimer.singleShot(50, close_when_indexed)

    QTimer.singleShot(50, close_when_indexed)
    assert run(str(small_folder), settings) == 0
    assert str(small_folder) in seen["folders"] and seen["rows"] > 6


def test_the_command_refuses_a_missing_folder(tmp_path, capsys) -> None:  # noqa: ANN001
    assert main(["gui", str(tmp_path / "nope"), "--catalog", str(tmp_path / "catalog")]) == 2
    assert "is not a folder" in capsys.readouterr().err
