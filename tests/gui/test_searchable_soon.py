"""While a pass tags, the search shown picks up photos as soon as they are searchable by text."""

from __future__ import annotations


def test_the_search_shown_runs_again_once_every_photo_is_embedded(qtbot, window, monkeypatch) -> None:  # noqa: ANN001
    window.run_search('"a photo"')
    qtbot.waitUntil(window.search_done)
    searched: list[str | None] = []
    monkeypatch.setattr(window, "run_search", lambda text=None, *args, **kwargs: searched.append(text) or 0)
    window.indexing.progress.emit("embed", 3, 5)
    assert searched == []  # still embedding: nothing new to show yet
    window.indexing.progress.emit("embed", 5, 5)
    assert searched == [window.query] and window.query  # the same search, now over every new photo
    window.indexing.progress.emit("model", 2, 5)
    assert len(searched) == 1  # tagging does not rerun it
