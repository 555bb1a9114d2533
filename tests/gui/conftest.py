"""Fixtures for the desktop app's tests: an offscreen Qt, tiny random models, and a catalog of the shared
photos indexed once per session (each test gets its own copy of the catalog)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import shutil  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from indexer.settings import Settings  # noqa: E402
from tests.conftest import PHOTOS  # noqa: E402
from tests.indexer.conftest import EMBEDDER, TAGGER, model_dir  # noqa: E402, F401 - model_dir: a reused fixture

# The two 20-33 MP HEIFs take seconds each to decode on a CPU; every format is still there without them.
LEFT_OUT = ("*.hif",)
SMALL_PHOTOS = ("library/animals/chelsea.png", "library/food/coffee.png", "library/space/rocket.jpg",
                "library/travel/china.jpg", "library/people/grace_hopper.jpg", "library/misc/camera.png")


def make_settings(home: Path, catalog: Path, model_dir: Path) -> Settings:  # noqa: F811
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        os.symlink(model_dir, home / "models")
    return Settings(home=home, catalog=catalog, device="cpu", precision="fp32", tagger=TAGGER, embedder=EMBEDDER,
                    workers=0, auto_download=False, batch_size=4, search_min_score=0.2)


@pytest.fixture(scope="session")
def indexed_library(tmp_path_factory, model_dir) -> dict[str, Path]:  # noqa: ANN001, F811
    """The shared photos (library and edge files) indexed with the tiny models, with their thumbnails."""
    from gui.library import Library
    from gui.thumbnails import THUMBNAILS_FOLDER, ThumbnailStore

    root = tmp_path_factory.mktemp("gui")
    photos = root / "photos"
    shutil.copytree(PHOTOS / "library", photos / "library", ignore=shutil.ignore_patterns(*LEFT_OUT))
    shutil.copytree(PHOTOS / "edge", photos / "edge")
    library = Library.open(make_settings(root / "home", root / "catalog", model_dir))
    try:
        library.add_folder(photos)
        library.index([str(photos)])
        store = ThumbnailStore(library.catalog.directory / THUMBNAILS_FOLDER)
        for row in library.photos():
            if row.status == "indexed":
                store.file_for(row.path, row.content_hash)
    finally:
        library.close()
    return {"photos": photos, "catalog": root / "catalog"}


@pytest.fixture()
def settings(indexed_library, tmp_path, model_dir) -> Settings:  # noqa: ANN001, F811
    """Settings on a fresh copy of the indexed catalog (corrections in one test never reach another)."""
    catalog = tmp_path / "catalog"
    shutil.copytree(indexed_library["catalog"], catalog, ignore=shutil.ignore_patterns("*.lock", "writer.json"))
    return make_settings(tmp_path / "home", catalog, model_dir)


@pytest.fixture()
def small_folder(tmp_path) -> Path:
    """A new folder of six small photos, not indexed yet: new pictures (one pixel changed), so the model
    runs on them rather than copying the results of the identical photos in the library."""
    from PIL import Image

    folder = tmp_path / "new_photos"
    folder.mkdir()
    for name in SMALL_PHOTOS:
        with Image.open(PHOTOS / name) as image:
            changed = image.convert("RGB")
        changed.putpixel((0, 0), (255, 0, 255))
        changed.save(folder / Path(name).name)
    return folder


@pytest.fixture()
def window(qtbot, settings) -> Iterator:  # noqa: ANN001
    from gui.library import Library
    from gui.main_window import MainWindow

    library = Library.open(settings)
    main_window = MainWindow(library)
    qtbot.addWidget(main_window)
    main_window.show()
    qtbot.waitUntil(main_window.idle, timeout=10_000)  # the grid, the panels and the vocabulary read
    yield main_window
    main_window.shutdown()
    library.close()
