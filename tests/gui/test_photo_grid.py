"""The thumbnail grid and the thumbnail cache, without a catalog."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops, ImageStat
from PySide6.QtCore import QPoint

from gui.photo_grid import PhotoGrid, PhotoGridModel
from gui.thumbnails import ImageLoader, ThumbnailStore
from indexer.browse import PhotoRow
from tests.conftest import PHOTOS

pytestmark = pytest.mark.gui


class CountingLoader(ImageLoader):
    def __init__(self) -> None:
        super().__init__(None, size=64, threads=1)
        self.asked: set[str] = set()

    def request(self, path: str, content_hash: str | None = None) -> None:
        self.asked.add(path)
        super().request(path, content_hash)


def test_the_grid_scrolls_through_100k_photos_and_loads_only_what_is_shown(qtbot) -> None:  # noqa: ANN001
    loader = CountingLoader()
    model = PhotoGridModel(loader)
    grid = PhotoGrid(model)
    qtbot.addWidget(grid)
    grid.resize(1000, 800)
    grid.show()
    rows = [PhotoRow(i, f"/nowhere/IMG_{i:06d}.jpg", None, 0, "indexed", None) for i in range(100_000)]
    model.set_rows(rows)
    bar = grid.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 100_000 * 204 // 6, timeout=20_000)  # laid out (in batches)
    for step in range(0, 41):
        bar.setValue(bar.maximum() * step // 40)
        qtbot.wait(1)
    last = grid.indexAt(QPoint(20, grid.viewport().height() - 60))
    assert last.row() > 99_000
    assert 0 < len(loader.asked) < 2_000  # thumbnails only for the rows painted, not 100k
    qtbot.waitUntil(lambda: loader.pending() == 0, timeout=20_000)  # files that do not exist: "cannot show"
    loader.shutdown()


def test_thumbnails_are_upright_and_cached(tmp_path) -> None:  # noqa: ANN001
    store = ThumbnailStore(tmp_path / "thumbnails", size=64)
    folder = PHOTOS / "library" / "orientation"
    upright = store.file_for(str(folder / "hopper_orientation_1.jpg"), "aa11")
    assert upright == tmp_path / "thumbnails" / "aa" / "aa11.jpg"
    reference = Image.open(upright).convert("L")
    for n in range(2, 9):  # each EXIF orientation gives the same upright picture
        made = Image.open(store.file_for(str(folder / f"hopper_orientation_{n}.jpg"), None)).convert("L")
        assert made.size == reference.size
        assert ImageStat.Stat(ImageChops.difference(made, reference)).mean[0] < 12, n
    stamp = upright.stat().st_mtime_ns
    assert store.file_for(str(folder / "hopper_orientation_1.jpg"), "aa11").stat().st_mtime_ns == stamp  # cached
    big = Image.open(store.file_for(str(PHOTOS / "library" / "animals" / "pug.heic"), None))
    assert max(big.size) == 64 and big.width > big.height
