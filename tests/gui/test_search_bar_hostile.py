"""Hostile input in the app's search bar and saved-searches panel (issue 15, item 8): the same one-line
message and caret display as the CLI, in the error box, and never an "unexpected error" with a traceback."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from indexer.search import MAX_DEPTH, MAX_PHRASES

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(("text", "message"), [
    ("(" * 300 + "tag:dog" + ")" * 300, f"nested too deeply: more than {MAX_DEPTH} levels"),  # was RecursionError
    (" ".join(f'"thing {i}"' for i in range(130)), f"too many phrases: the most is {MAX_PHRASES}"),  # SQLite's max()
    (" OR ".join(["has:gps"] * 1_500), "query too long"),  # was "Expression tree is too large"
])  # fmt: skip
def test_a_hostile_query_shows_the_caret_message(qtbot, window, capsys, text, message) -> None:  # noqa: ANN001
    window.search_bar.set_query(text)
    qtbot.waitUntil(window.search_done, timeout=10_000)
    shown = window.errors.messages[-1]
    assert shown.startswith(message) and len(shown.splitlines()) == 3
    assert set(shown.splitlines()[2].strip()) == {"^"}
    assert window.search_bar.count.text() == "query error"
    assert "Traceback" not in capsys.readouterr().err


def test_a_hostile_saved_search_name_shows_a_message(qtbot, window, monkeypatch) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QInputDialog

    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("clear\x1b[2J", True))
    window.search_bar.set_query("type:png")
    qtbot.waitUntil(window.search_done, timeout=10_000)
    qtbot.mouseClick(window.saved_panel.save_button, Qt.MouseButton.LeftButton)
    assert window.errors.messages[-1].startswith("a saved search needs a name without spaces")
    assert window.saved_panel.names() == []
