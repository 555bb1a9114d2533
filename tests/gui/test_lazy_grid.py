"""The grid at scale, and the stale-result rule: a 50,000-match search shows its count at once and holds a page of
rows, more pages are read as they are scrolled to; a newer search or selection wins over an older one; no catalog
read runs on the UI thread when the selection changes, the grid scrolls or the window refreshes.

The catalog: 50,000 photos (rows inserted straight into a catalog Alembic made) in one library folder, all
tagged "dog" with scores on a 0.01 grid (so the order's ties are settled by date, page by page); the files do
not exist (their thumbnails say "cannot show")."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gui.library import PAGE_SIZE
from gui.photo_grid import PAGES_KEPT
from tests.gui.conftest import make_settings

pytestmark = pytest.mark.gui
PHOTOS = 50_000
STAMP = "2024-05-01 03:00:00.000000"


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory) -> dict[str, Path]:  # noqa: ANN001
    from indexer.catalog import Catalog

    root = tmp_path_factory.mktemp("big")
    folder = root / "photos"
    folder.mkdir()
    Catalog.open(root / "catalog").close()  # the schema, through Alembic
    start = datetime(2015, 1, 1)
    with closing(sqlite3.connect(root / "catalog" / "catalog.db")) as db, db:
        db.execute("INSERT INTO tags (id, name, kind, threshold) VALUES (1, 'dog', 'builtin', 0.5), "
                   "(2, 'cat', 'builtin', 0.5)")
        db.executemany(
            "INSERT INTO photos (id, path, size, mtime_ns, content_hash, format, taken_at, status, attempts, "
            "first_seen, last_seen) VALUES (?, ?, 1, 1, ?, 'jpeg', ?, 'indexed', 0, ?, ?)",
            ((i, f"{folder}/{i // 1000:02d}/IMG_{i:06d}.jpg", f"{i:064x}",
              (start + timedelta(hours=(i * 7919) % 40_000)).strftime("%Y-%m-%d %H:%M:%S.%f"), STAMP, STAMP)
             for i in range(1, PHOTOS + 1)))
        db.executemany("INSERT INTO photo_tags (photo_id, tag_id, score, source, state, updated_at) "
                       "VALUES (?, 1, ?, 'model', 'suggested', ?)",
                       ((i, 0.5 + (i * 37 % 50) / 100, STAMP) for i in range(1, PHOTOS + 1)))
        db.executemany("INSERT INTO photo_tags (photo_id, tag_id, score, source, state, updated_at) "
                       "VALUES (?, 2, 0.9, 'model', 'suggested', ?)", ((i, STAMP) for i in range(1, 40)))
    (root / "catalog" / "library.json").write_text(f'{{"folders": ["{folder}"]}}', encoding="utf-8")
    return {"root": root, "catalog": root / "catalog"}


@pytest.fixture()
def big_window(qtbot, big_catalog, tmp_path, model_dir) -> Iterator:  # noqa: ANN001
    from gui.library import Library
    from gui.main_window import MainWindow

    catalog = tmp_path / "catalog"
    shutil.copytree(big_catalog["catalog"], catalog)
    settings = make_settings(tmp_path / "home", catalog, model_dir)
    library = Library.open(settings)
    window = MainWindow(library)
    qtbot.addWidget(window)
    window.resize(1400, 860)
    window.show()
    qtbot.waitUntil(window.idle, timeout=30_000)
    yield window
    window.shutdown()
    library.close()


def search(qtbot, window, text: str) -> None:  # noqa: ANN001
    window.search_bar.set_query(text)
    qtbot.waitUntil(window.search_done, timeout=30_000)


def visible_rows(window) -> list[int]:  # noqa: ANN001
    grid, model = window.grid, window.grid_model
    first = grid.indexAt(grid.viewport().rect().topLeft()).row()
    return [row for row in range(max(first, 0), min(first + 200, model.rowCount()))
            if grid.viewport().rect().intersects(grid.visualRect(model.index(row)))]


def test_the_count_comes_with_one_page_of_rows_and_scrolling_reads_more(qtbot, big_window) -> None:  # noqa: ANN001
    window, model = big_window, big_window.grid_model
    shown: list[tuple[int, int]] = []  # (count in the model, rows held) when the results reached the grid
    model.modelReset.connect(lambda: shown.append((model.rowCount(), model.held_rows())))
    read: list[int] = []
    model.page_read.connect(read.append)
    search(qtbot, window, "tag:dog")
    assert shown == [(PHOTOS, PAGE_SIZE)]  # every match counted, one page of rows
    assert window.search_bar.count.text() == f"{PHOTOS:,} matches"
    assert model.photo(PHOTOS - 1) is None  # not read yet: asked for now

    qtbot.waitUntil(lambda: window.grid.visualRect(model.index(PHOTOS - 1)).isValid(), timeout=30_000)  # laid out
    window.grid.scrollToBottom()
    last = (PHOTOS - 1) // PAGE_SIZE
    qtbot.waitUntil(lambda: bool(visible_rows(window)) and all(model.photo(row) is not None
                                                              for row in visible_rows(window)), timeout=30_000)
    assert max(visible_rows(window)) == PHOTOS - 1
    assert last in read and min(read) >= last - 3  # the pages on screen were read, not the ones scrolled past
    expected = window.library.searcher().search("tag:dog", limit=None)
    tail = [r.photo_id for r in expected.results[-PAGE_SIZE:]]
    assert [model.photo_id(row) for row in range(PHOTOS - PAGE_SIZE, PHOTOS)] == tail  # the search's order

    for row in range(0, PHOTOS, PHOTOS // 20):  # jumping around: memory stays a few pages
        window.grid.scrollTo(model.index(row))
        qtbot.waitUntil(lambda: all(model.photo(r) is not None for r in visible_rows(window)), timeout=30_000)
        assert model.held_rows() <= PAGES_KEPT * PAGE_SIZE
    assert len(set(read)) < 3 * 20 + 3


def test_a_newer_search_wins(qtbot, big_window, monkeypatch) -> None:  # noqa: ANN001
    """A search still running when newer ones come shows nothing; one not started yet never runs."""
    window, library = big_window, big_window.library
    release = threading.Event()
    ran: list[str] = []
    search_for = library.search

    def slow_search(text: str, **options) -> object:  # noqa: ANN003
        ran.append(text)
        if text == "tag:cat":
            release.wait(20)  # the first search is still running when the others come
        return search_for(text, **options)

    monkeypatch.setattr(library, "search", slow_search)
    resets: list[int] = []
    window.grid_model.modelReset.connect(lambda: resets.append(window.grid_model.rowCount()))
    window.run_search("tag:cat")
    qtbot.waitUntil(lambda: ran == ["tag:cat"])
    window.run_search("tag:dog -tag:cat")  # superseded before it starts
    window.run_search("tag:dog")
    release.set()
    qtbot.waitUntil(window.search_done, timeout=30_000)
    assert ran == ["tag:cat", "tag:dog"]
    assert resets == [PHOTOS]  # the old answer never reached the grid
    assert window.query == "tag:dog" and window.search_bar.count.text() == f"{PHOTOS:,} matches"


def test_a_newer_selection_wins(qtbot, big_window, monkeypatch) -> None:  # noqa: ANN001
    """The pane reads a photo off the UI thread; when the selection moves on before it is read, the older photo
    is never shown."""
    window, library = big_window, big_window.library
    release = threading.Event()
    details_of = library.details
    first = window.grid_model.photo_id(0)

    def slow_details(photo_id: int) -> object:
        if photo_id == first:
            release.wait(5)
        return details_of(photo_id)

    monkeypatch.setattr(library, "details", slow_details)
    shown: list[str] = []
    show_photo = window.photo_pane.show_photo
    monkeypatch.setattr(window.photo_pane, "show_photo",
                        lambda entry, details, **kw: shown.append(details["path"]) or show_photo(entry, details, **kw))
    window.grid.select_row(0)
    qtbot.wait(50)  # the read of row 0 has started
    window.grid.select_row(1)
    release.set()
    second = window.grid_model.photo(1).path
    qtbot.waitUntil(lambda: window.idle() and window.photo_pane.path == second, timeout=10_000)
    assert shown == [second]


def test_no_catalog_read_on_the_ui_thread(qtbot, big_window, monkeypatch) -> None:  # noqa: ANN001
    """Selection changes, scrolling and a refresh (F5: panels, vocabulary, saved searches, the listing) read the
    catalog from workers only."""
    window, catalog = big_window, big_window.library.catalog
    opened: list[str] = []
    session = catalog.session

    def watched() -> object:
        opened.append(threading.current_thread().name)
        return session()

    monkeypatch.setattr(catalog, "session", watched)
    for row in (0, 3, 7):
        window.grid.select_row(row)
        path = window.grid_model.photo(row).path
        qtbot.waitUntil(lambda path=path: window.idle() and window.photo_pane.path == path, timeout=10_000)
    window.grid.select_row(2, extend=True)
    qtbot.waitUntil(window.idle, timeout=10_000)
    window.grid.scrollTo(window.grid_model.index(PHOTOS // 2))
    qtbot.waitUntil(lambda: window.idle() and all(window.grid_model.photo(r) is not None
                                                  for r in visible_rows(window)), timeout=30_000)
    window.refresh()
    qtbot.waitUntil(window.idle, timeout=30_000)
    assert opened and threading.main_thread().name not in opened
    assert {"phototag-read", "phototag-rows", "phototag-search"} <= {name.rsplit("_", 1)[0] for name in opened}


def test_selecting_many_rows_does_not_visit_each_row(qtbot) -> None:  # noqa: ANN001
    """Ctrl+A, Shift+End and clearing a selection of 100,000 photos are one range each: the model is not asked
    about every row on the UI thread (QListView's own selectAll asks rowCount once per row)."""
    from PySide6.QtCore import Qt

    from gui.photo_grid import PhotoGrid, PhotoGridModel
    from gui.thumbnails import ImageLoader
    from indexer.browse import PhotoRow

    calls = [0]

    class Counting(PhotoGridModel):
        def rowCount(self, *args) -> int:  # noqa: ANN002, N802
            calls[0] += 1
            return super().rowCount(*args)

    loader = ImageLoader(None, threads=1)
    model = Counting(loader)
    count = 100_000
    model.set_rows([PhotoRow(i, f"/x/IMG_{i}.jpg", None, 0, "failed", None) for i in range(count)])
    grid = PhotoGrid(model)
    qtbot.addWidget(grid)
    grid.resize(900, 700)
    grid.show()
    qtbot.waitUntil(lambda: grid.visualRect(model.index(count - 1)).isValid(), timeout=30_000)  # laid out
    grid.select_row(0)
    calls[0] = 0
    qtbot.keyClick(grid, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert grid.selected_ranges() == [(0, count)] and calls[0] < 1_000
    calls[0] = 0
    grid.clearSelection()
    assert grid.selected_ranges() == [] and calls[0] < 1_000
    grid.select_row(5)
    calls[0] = 0
    qtbot.keyClick(grid, Qt.Key.Key_End, Qt.KeyboardModifier.ShiftModifier)
    assert grid.selected_ranges() == [(5, count)] and calls[0] < 1_000
    loader.shutdown()


def test_the_library_reads_the_pages_it_shows_not_its_whole_order(qtbot, big_window, monkeypatch) -> None:  # noqa: ANN001
    """Scrolling the whole library, near and far, reads each page on screen from the nearest photo read or end (keyset
    paging), never the whole order; every row is where the listing puts it, and a photo is found by its position."""
    from indexer import browse

    window, model = big_window, big_window.grid_model
    expected = browse.list_photo_ids(window.library.catalog, roots=window.library.folders()).tolist()
    limits: list[int | None] = []
    for name in ("list_photos", "list_photo_ids"):
        read = getattr(browse, name)
        monkeypatch.setattr(browse, name, lambda *args, read=read, **options: limits.append(options.get("limit"))
                            or read(*args, **options))
    qtbot.waitUntil(lambda: window.grid.visualRect(model.index(PHOTOS - 1)).isValid(), timeout=30_000)  # laid out
    for row in (PAGE_SIZE + 5, PHOTOS - 1, PHOTOS // 2, PHOTOS // 2 + 3 * PAGE_SIZE, 4 * PAGE_SIZE):
        window.grid.scrollTo(model.index(row))
        qtbot.waitUntil(lambda: all(model.photo(r) is not None for r in visible_rows(window)), timeout=30_000)
        assert row in visible_rows(window)
        assert [model.photo_id(r) for r in visible_rows(window)] == [expected[r] for r in visible_rows(window)]
    assert limits and all(limit is not None and limit <= PAGE_SIZE for limit in limits)
    found: list[int] = []
    model.locate(expected[PHOTOS // 3], found.append)  # not a row held: its position is counted in the catalog
    qtbot.waitUntil(lambda: bool(found), timeout=10_000)
    assert found == [PHOTOS // 3]


def test_actions_on_pages_not_read_read_and_write_off_the_ui_thread(qtbot, big_window, monkeypatch) -> None:  # noqa: ANN001
    """Ctrl+A over 50,000 photos (a page of them read) and a correction on a thousand: the ids are read and the
    correction written from workers; the action gets every id, the correction reaches every photo."""
    from PySide6.QtCore import QItemSelection, QItemSelectionModel

    from gui.custom_tag_dialog import CustomTagDialog

    window, catalog, model = big_window, big_window.library.catalog, big_window.grid_model
    assert model.held_rows() < 1000
    opened: list[str] = []
    session = catalog.session

    def watched() -> object:
        opened.append(threading.current_thread().name)
        return session()

    monkeypatch.setattr(catalog, "session", watched)
    window.grid.selectAll()
    window.new_custom_tag()  # its examples: the selection
    qtbot.waitUntil(lambda: bool(window.findChildren(CustomTagDialog)), timeout=30_000)
    dialog = window.findChildren(CustomTagDialog)[0]
    assert sorted(dialog.selected) == list(range(1, PHOTOS + 1))
    dialog.close()

    window.grid.selectionModel().select(QItemSelection(model.index(0), model.index(999)),
                                        QItemSelectionModel.SelectionFlag.ClearAndSelect)
    assert window.apply_edits(["+holiday"]) is not None
    qtbot.waitUntil(window.idle, timeout=60_000)
    assert opened and threading.main_thread().name not in opened
    with closing(sqlite3.connect(catalog.directory / "catalog.db")) as db:
        tagged = db.execute("SELECT photo_id FROM photo_tags JOIN tags ON tags.id = tag_id WHERE name = 'holiday'")
        assert sorted(i for (i,) in tagged) == sorted(browse_ids(window, 0, 1000))
    assert "1000 photos" in window.statusBar().currentMessage()


def browse_ids(window, start: int, stop: int) -> list[int]:  # noqa: ANN001
    from indexer import browse

    return browse.list_photo_ids(window.library.catalog, roots=window.library.folders())[start:stop].tolist()
