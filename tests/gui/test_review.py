"""The review queue in the app: Ctrl+R fills the grid with the most uncertain suggestions' photos; A accepts."""

from __future__ import annotations

import pytest

from indexer.personal.review import review_queue
from indexer.report import photo_tags

pytestmark = pytest.mark.gui


def state_of(window, path: str, tag: str) -> str | None:  # noqa: ANN001
    entry = photo_tags(window.library.catalog, path)
    return next((t["state"] for t in entry["tags"] if t["name"] == tag), None)


def test_review_fills_the_grid_in_queue_order_and_accepts(qtbot, window) -> None:  # noqa: ANN001
    queue = review_queue(window.library.catalog, limit=50)
    assert queue, "the indexed catalog should hold suggestions to review"
    expected = list(dict.fromkeys(item.photo_id for item in queue))

    window.review_action.trigger()
    qtbot.waitUntil(window.search_done, timeout=10_000)
    assert [row.id for row in window.grid_model.photos()] == expected
    message = window.statusBar().currentMessage()
    assert message.startswith(f"Review: {len(queue)} suggestions on {len(expected)} photo")
    assert "A accepts, R rejects, U undoes" in message

    # The first photo is selected with its queued tag selected in the pane; A accepts it.
    first = queue[0]
    qtbot.waitUntil(lambda: window.photo_pane.path == first.path)
    assert window.photo_pane.selected_tags() == [first.tag]
    assert state_of(window, first.path, first.tag) == "suggested"
    window.grid.setFocus()
    qtbot.keyClick(window.grid, "a")
    qtbot.waitUntil(window.idle)  # written off the UI thread
    assert state_of(window, first.path, first.tag) == "accepted"

    # Back to the whole library.
    window.show_library()
    qtbot.waitUntil(window.search_done, timeout=10_000)
    assert window.review is None
    assert window.grid_model.rowCount() == len(window.library.photos())
