"""The desktop app on an indexed copy of the shared photos: browse, search, review and correct tags."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from gui.photo_grid import FAILED_ROLE, SCORE_ROLE
from indexer.browse import list_photos
from indexer.report import photo_counts, photo_tags

pytestmark = pytest.mark.gui


def wait_search(qtbot, window, text: str) -> None:  # noqa: ANN001
    window.search_bar.set_query(text)
    qtbot.waitUntil(window.search_done, timeout=10_000)


def grid_names(window) -> list[str]:  # noqa: ANN001
    return [os.path.basename(row.path) for row in window.grid_model.photos()]


def select(qtbot, window, name: str, *, extend: bool = False) -> str:  # noqa: ANN001
    row = grid_names(window).index(name)
    window.grid.select_row(row, extend=extend)
    path = window.grid_model.photo(row).path
    qtbot.waitUntil(lambda: window.photo_pane.path == window.grid_model.photo(window.grid.currentIndex().row()).path)
    return path


def state_of(window, path: str, tag: str) -> tuple[str, str] | None:  # noqa: ANN001
    entry = photo_tags(window.library.catalog, path)
    return next(((t["source"], t["state"]) for t in entry["tags"] if t["name"] == tag), None)


def state_shown(window, tag: str) -> str:  # noqa: ANN001
    pane = window.photo_pane
    return pane.tags.item(pane.tag_names_shown().index(tag), 3).text()


def selected_ids(qtbot, window) -> list[int]:  # noqa: ANN001
    found: list[list[int]] = []
    window.with_selected_ids(found.append, channel="test")
    qtbot.waitUntil(lambda: bool(found))
    return found[0]


def test_opens_on_the_library_and_lists_failures(window) -> None:  # noqa: ANN001
    expected = list_photos(window.library.catalog)
    assert window.grid_model.rowCount() == len(expected) > 20
    assert window.search_bar.count.text() == f"{len(expected)} photos"
    failed = {os.path.basename(p) for p in window.indexing_panel.failure_paths()}
    assert {"zero_bytes.jpg", "not_an_image.jpg", "truncated_jpeg.jpg", "decompression_bomb.gif"} <= failed
    reasons = {window.indexing_panel.failures.item(r, 0).text(): window.indexing_panel.failures.item(r, 1).text()
               for r in range(window.indexing_panel.failures.rowCount())}
    assert reasons["zero_bytes.jpg"] == "empty" and reasons["decompression_bomb.gif"] == "decompression_bomb"
    assert window.indexing_panel.folders.count() == 1


def test_search_tags_filters_and_errors(qtbot, window) -> None:  # noqa: ANN001
    wait_search(qtbot, window, "type:png")
    assert grid_names(window) and all(name.endswith(".png") for name in grid_names(window))
    assert window.search_bar.count.text() == f"{len(grid_names(window))} matches"

    # A tag some photos carry: the grid shows exactly the engine's answer.
    wait_search(qtbot, window, "has:tags")
    some = photo_tags(window.library.catalog, window.grid_model.photo(0).path)["tags"][0]
    wait_search(qtbot, window, f'tag:"{some["name"]}"')
    found = window.library.searcher().search(f'tag:"{some["name"]}"', limit=None)
    assert [row.id for row in window.grid_model.photos()] == [r.photo_id for r in found.results]
    if some["name_zh"]:  # the same search in Chinese
        wait_search(qtbot, window, f"tag:{some['name_zh']}")
        assert [row.id for row in window.grid_model.photos()] == [r.photo_id for r in found.results]

    wait_search(qtbot, window, "date:2013 type:mpo")  # two filters
    assert grid_names(window) == ["fujifilm.mpo"]

    wait_search(qtbot, window, "tag:dog AND (")  # a syntax error: a message with the caret display, no traceback
    assert window.errors.messages[-1].startswith("unclosed '('") and "^" in window.errors.messages[-1]
    wait_search(qtbot, window, "tag:nosuchtag")
    assert "unknown tag 'nosuchtag'" in window.errors.messages[-1]
    assert grid_names(window) == ["fujifilm.mpo"]  # a failed search leaves the grid as it was

    window.search_bar.min_score.setValue(-1.0)  # free text through CLIP (random weights): the cutoff decides
    wait_search(qtbot, window, "a cat on a sofa")
    indexed = [row for row in list_photos(window.library.catalog) if row.status == "indexed"]
    assert window.grid_model.rowCount() == len(indexed) and window.grid_model.data(window.grid_model.index(0),
                                                                                    SCORE_ROLE) is not None
    window.search_bar.min_score.setValue(1.0)
    wait_search(qtbot, window, "a cat on a sofa")
    assert window.grid_model.rowCount() == 0 and window.search_bar.count.text() == "0 matches"

    wait_search(qtbot, window, "")
    assert window.grid_model.rowCount() == len(list_photos(window.library.catalog))


def test_tag_completion_in_english_and_chinese(qtbot, window) -> None:  # noqa: ANN001
    names = window.search_bar.completer.names()
    vocabulary = window.library.vocabulary()
    chinese = next(zh for _, zh, _ in vocabulary if zh)
    english = next(name for name, _, _ in vocabulary if " " not in name)
    spaced = next(name for name, _, _ in vocabulary if " " in name)
    assert english in names and chinese in names and spaced in names
    line, completer = window.search_bar.line, window.search_bar.completer
    line.setFocus()
    qtbot.keyClicks(line, f"type:png tag:{english[:3]}")
    assert completer.completionPrefix() == english[:3] and completer.completionCount() >= 1
    completer.activated.emit(english)
    assert line.text() == f"type:png tag:{english} "
    qtbot.keyClicks(line, f'-tag:"{spaced[:-1]}')  # a name with a space, quoted
    assert completer.completionPrefix() == spaced[:-1]
    completer.activated.emit(spaced)
    assert line.text() == f'type:png tag:{english} -tag:"{spaced}" '
    qtbot.keyClicks(line, "tag:")
    line.insert(chinese[0])  # Chinese names complete too (QTest types ASCII only: an input method's insert)
    line.textEdited.emit(line.text())
    assert completer.completionPrefix() == chinese[0] and completer.completionCount() >= 1


def test_accept_reject_and_add_with_keys_and_mouse(qtbot, window) -> None:  # noqa: ANN001
    wait_search(qtbot, window, "has:tags")
    name = grid_names(window)[0]
    path = select(qtbot, window, name)
    pane = window.photo_pane
    suggested = [t["name"] for t in photo_tags(window.library.catalog, path)["tags"] if t["state"] == "suggested"]
    assert len(suggested) >= 2 and pane.tag_names_shown()

    window.grid.setFocus()
    assert pane.select_tag(suggested[0])
    qtbot.keyClick(window.grid, Qt.Key.Key_A)  # A accepts the selected tag
    assert state_shown(window, suggested[0]) == "accepted…"  # shown at once, written off the UI thread
    qtbot.waitUntil(window.idle)
    assert state_of(window, path, suggested[0]) == ("model", "accepted")
    assert state_shown(window, suggested[0]) == "accepted"  # as stored

    assert pane.select_tag(suggested[1])
    qtbot.mouseClick(pane.reject_button, Qt.MouseButton.LeftButton)  # the mouse rejects
    assert state_shown(window, suggested[1]) == "rejected…"
    qtbot.keyClick(window.grid, Qt.Key.Key_U)  # U undoes that decision (the selection stayed on the row)
    qtbot.waitUntil(window.idle)  # written in the order asked
    assert state_of(window, path, suggested[1]) == ("model", "suggested")
    assert pane.select_tag(suggested[1])
    qtbot.keyClick(window.grid, Qt.Key.Key_R)
    qtbot.waitUntil(window.idle)
    assert state_of(window, path, suggested[1]) == ("model", "rejected")

    qtbot.keyClick(window.grid, Qt.Key.Key_T)  # T goes to the add box; Enter adds
    assert pane.add_line.hasFocus()
    qtbot.keyClicks(pane.add_line, "my holiday")
    qtbot.keyClick(pane.add_line, Qt.Key.Key_Return)
    assert state_shown(window, "my holiday") == "accepted…"  # a row of its own at once
    qtbot.waitUntil(window.idle)  # written; the pane and the completion read the catalog again, off the UI thread
    assert state_of(window, path, "my holiday") == ("user", "accepted")
    assert "my holiday" in pane.tag_names_shown()
    assert "my holiday" in window.search_bar.completer.names()  # a new tag is offered at once


def test_a_tag_applied_to_many_photos_at_once(qtbot, window) -> None:  # noqa: ANN001
    wait_search(qtbot, window, "type:jpeg")
    names = grid_names(window)[:3]
    paths = [select(qtbot, window, names[0])]
    paths += [select(qtbot, window, name, extend=True) for name in names[1:]]
    assert len(selected_ids(qtbot, window)) == 3
    assert window.photo_pane.selection_note.isVisible() or not window.isVisible()
    window.photo_pane.add_line.setText("family")
    qtbot.mouseClick(window.photo_pane.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.idle)
    assert all(state_of(window, path, "family") == ("user", "accepted") for path in paths)
    window.apply_edits(["-family"])  # and removed from all at once
    qtbot.waitUntil(window.idle)
    assert all(state_of(window, path, "family") == ("user", "rejected") for path in paths)


def test_saved_searches(qtbot, window, monkeypatch) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QInputDialog

    answers = iter([("pngs", True), ("bad name", True)])
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: next(answers))
    wait_search(qtbot, window, "type:png")
    qtbot.mouseClick(window.saved_panel.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.idle)  # the list is read again off the UI thread
    assert window.saved_panel.names() == ["pngs"]
    wait_search(qtbot, window, "")
    window.saved_panel.list.itemClicked.emit(window.saved_panel.list.item(0))  # a click on it runs it
    qtbot.waitUntil(window.search_done)
    assert window.search_bar.text() == "@pngs"
    assert grid_names(window) and all(name.endswith(".png") for name in grid_names(window))
    qtbot.mouseClick(window.saved_panel.save_button, Qt.MouseButton.LeftButton)  # a bad name: a message
    assert "without spaces" in window.errors.messages[-1] and window.saved_panel.names() == ["pngs"]
    window.saved_panel.list.setCurrentRow(0)
    qtbot.mouseClick(window.saved_panel.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.idle() and window.saved_panel.names() == [])


def test_settings_are_kept_and_used(qtbot, window) -> None:  # noqa: ANN001
    import json

    from gui.preferences import PREFERENCES_FILE, Preferences
    from gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.library.settings, window)
    qtbot.addWidget(dialog)
    dialog.batch_size.setValue(2)
    dialog.threshold_offset.setValue(0.5)
    dialog.tag_language.setCurrentIndex(dialog.tag_language.findData("zh"))
    assert dialog.metadata_profile.currentData() == "all" and dialog.metadata_mode.currentData() == ""
    dialog.sidecar_naming.setCurrentIndex(dialog.sidecar_naming.findData("replace"))
    dialog.metadata_profile.setCurrentIndex(dialog.metadata_profile.findData("lightroom"))
    window.apply_settings(dialog.values())
    used = window.library.settings
    assert (used.batch_size, used.device, used.threshold_offset, used.tag_language, used.sidecar_naming,
            used.metadata_profile, used.metadata_mode) == (2, "cpu", 0.5, "zh", "replace", "lightroom", None)
    # Kept: the values chosen, by setting name; the device, left as it was, is not pinned.
    assert json.loads((used.home / PREFERENCES_FILE).read_text(encoding="utf-8")) == {
        "batch_size": 2, "metadata_profile": "lightroom", "sidecar_naming": "replace", "tag_language": "zh",
        "threshold_offset": 0.5}
    again = Preferences.load(window.preferences.base).settings  # the next start
    assert (again.batch_size, again.threshold_offset, again.tag_language, again.sidecar_naming,
            again.metadata_profile) == (2, 0.5, "zh", "replace", "lightroom")
    reopened = SettingsDialog(window.library.settings, window)  # shows what is used
    qtbot.addWidget(reopened)
    assert reopened.values() == dialog.values()

    wait_search(qtbot, window, "has:tags")
    select(qtbot, window, grid_names(window)[0])
    pane = window.photo_pane
    assert pane.hidden_note.text().split()[0].isdigit() and not pane.hidden_note.isHidden()  # weak ones hidden
    shown = [pane.tags.item(row, 0).text() for row in range(pane.tags.rowCount())]
    zh = {name: zh for name, zh, _ in window.library.vocabulary() if zh}
    assert all(text in zh.values() or text not in zh for text in shown)  # Chinese names where there are


def test_screenshot_of_the_main_window(qtbot, window, tmp_path) -> None:  # noqa: ANN001
    window.resize(1400, 860)
    wait_search(qtbot, window, "")
    tagged = {r.path for r in window.library.searcher().search("has:tags", limit=None).results}
    name = next(os.path.basename(row.path) for row in window.grid_model.photos()[3:] if row.path in tagged)
    path = select(qtbot, window, name)
    names = window.photo_pane.tag_names_shown()
    window.library.apply_edits(selected_ids(qtbot, window), [f"+{names[0]}", f"-{names[-1]}", "+holiday"])
    window.show_current_photo()
    assert state_of(window, path, "holiday") == ("user", "accepted")
    window.grid.scrollToTop()
    visible = [row for row in range(window.grid_model.rowCount())
               if window.grid.viewport().rect().intersects(window.grid.visualRect(window.grid_model.index(row)))]
    assert visible

    def thumbnails_shown() -> bool:
        model = window.grid_model
        return all(model.thumbnail(model.photo(row).path) is not None or model.data(model.index(row), FAILED_ROLE)
                   for row in visible)

    qtbot.waitUntil(thumbnails_shown, timeout=20_000)
    qtbot.waitUntil(lambda: window.photo_pane._pixmap is not None, timeout=20_000)
    target = tmp_path / "main_window.png"  # tests/gui/screenshots/ changes only on purpose:
    assert window.grab().save(str(target))  # PHOTOTAG_SCREENSHOT_DIR=tests/gui/screenshots ./dev test -k screenshot
    assert target.stat().st_size > 20_000
    if os.environ.get("PHOTOTAG_SCREENSHOT_DIR"):
        shutil.copy2(target, Path(os.environ["PHOTOTAG_SCREENSHOT_DIR"]) / target.name)


def test_a_correction_that_fails_is_a_message_and_the_pane_shows_what_is_stored(qtbot, window, monkeypatch) -> None:  # noqa: ANN001
    from indexer.personal.corrections import CorrectionError

    wait_search(qtbot, window, "has:tags")
    select(qtbot, window, grid_names(window)[0])
    tag = window.photo_pane.tag_names_shown()[0]
    before = state_shown(window, tag)

    def failing(ids: list[int], edits: list[str]) -> list:
        raise CorrectionError("the catalog could not be written: try again")

    monkeypatch.setattr(window.library, "apply_edits", failing)
    assert window.photo_pane.select_tag(tag) and window.photo_pane.reject_selected()
    assert state_shown(window, tag) == "rejected…"  # at once
    qtbot.waitUntil(window.idle)
    assert "could not be written" in window.errors.messages[-1] and "Traceback" not in window.errors.messages[-1]
    assert state_shown(window, tag) == before  # read again: as stored


def test_the_status_bar_counts_photos_by_status_from_the_status_index(qtbot, window) -> None:  # noqa: ANN001
    """After each refresh of the library panel: the counts by status only (the full status report reads the whole
    catalog, a minute at 10M photos)."""
    library = window.library
    counts = photo_counts(library.catalog)
    assert library.status() == {"catalog": str(library.catalog.directory), "photos": counts}
    assert counts["indexed"] > 0
    window.refresh_library_panel()
    qtbot.waitUntil(lambda: f"{counts['indexed']:,} indexed" in window.catalog_label.text(), timeout=10_000)
    assert f"{counts['failed']:,} failed" in window.catalog_label.text()
