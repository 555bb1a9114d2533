"""Hostile folders, as a NAS holds them: names that are not UTF-8, links, unreadable or vanishing folders,
files swapped for folders or pipes mid-pass, clock skew, hard links, long names — through the real commands.

Each test builds its case in a temp folder and checks the pass finishes, the good photos are indexed, the bad
one is recorded with a reason (or skipped), and nothing the catalog knew is lost or marked missing by mistake.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from indexer import pipeline
from indexer.catalog import Catalog
from indexer.index import Indexer
from indexer.schema import Photo
from indexer.settings import Settings
from indexer.watch import Watcher
from main import main
from ram_model.cli import lazy_models

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt starts Qt (the app's test below)
_seed = iter(range(10_000))


def jpeg(path: str | bytes | Path) -> str:
    """A small distinct JPEG at ``path`` (bytes paths allowed, for names that are not UTF-8); its str path."""
    rng = np.random.default_rng(next(_seed))
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=80)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(buffer.getvalue())
    return os.fsdecode(path)


def run(capsys, *args: str | os.PathLike) -> tuple[int, str, str]:  # noqa: ANN001
    code = main([os.fsdecode(os.fspath(a)) if not isinstance(a, str) else a for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def index(capsys, *roots: str | os.PathLike) -> dict:  # noqa: ANN001
    code, out, err = run(capsys, "index", *roots, "--json")
    assert code == 0, err
    return json.loads(out)


def photos(home: Path) -> dict[str, Photo]:
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        return {photo.path: photo for photo in session.scalars(select(Photo))}


def statuses(home: Path) -> dict[str, str]:
    return {path: photo.status for path, photo in photos(home).items()}


def user_tags(capsys, path: str) -> list[str]:  # noqa: ANN001
    code, out, err = run(capsys, "tags", path, "--json")
    assert code == 0, err
    return [t["name"] for t in json.loads(out)[0]["tags"] if t["source"] == "user"]


# --- 1. names that are not valid UTF-8 ----------------------------------------------------------------------
def latin1_library(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """good.jpg, ``café.jpg`` in Latin-1, and ``déjà/x.jpg`` (a folder in Latin-1): the bytes paths."""
    library = tmp_path / "library"
    jpeg(library / "good.jpg")
    cafe = os.path.join(os.fsencode(library), b"caf\xe9.jpg")
    folder = os.path.join(os.fsencode(library), b"d\xe9j\xe0")
    jpeg(cafe)
    jpeg(os.path.join(folder, b"x.jpg"))
    return library, cafe, folder


def test_a_latin1_name_is_indexed_stored_as_its_bytes_and_shown_escaped(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library, cafe, folder = latin1_library(tmp_path)
    summary = index(capsys, library)
    assert (summary["new"], summary["failed"]) == (3, 0)
    assert statuses(home) == {str(library / "good.jpg"): "indexed", os.fsdecode(cafe): "indexed",
                              os.fsdecode(os.path.join(folder, b"x.jpg")): "indexed"}
    # Stored as exactly the OS's bytes (the same TEXT a valid UTF-8 name would get).
    with Catalog.open(home / "catalog") as catalog, catalog.engine.connect() as connection:
        stored = {row[0] for row in connection.exec_driver_sql("SELECT CAST(path AS BLOB) FROM photos")}
    assert cafe in stored and os.fsencode(library / "good.jpg") in stored

    code, out, err = run(capsys, "tags", os.fsdecode(cafe))
    assert code == 0, err
    assert out.startswith(f"{library}/caf\\xe9.jpg [indexed]")  # escaped for the terminal
    code, out, _ = run(capsys, "tags", os.fsdecode(cafe), "--json")
    assert code == 0 and os.fsencode(json.loads(out)[0]["path"]) == cafe  # JSON keeps the bytes (surrogate escapes)
    assert run(capsys, "status")[0] == run(capsys, "status", "--json")[0] == 0
    assert index(capsys, library)["unchanged"] == 3  # and the next pass knows them


def test_tag_and_search_take_a_path_that_is_not_utf8(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library, cafe, folder = latin1_library(tmp_path)
    index(capsys, library)
    inside = os.fsdecode(os.path.join(folder, b"x.jpg"))

    assert run(capsys, "tag", os.fsdecode(cafe), inside, "+mine")[0] == 0
    assert user_tags(capsys, os.fsdecode(cafe)) == user_tags(capsys, inside) == ["mine"]
    code, _, err = run(capsys, "tag", os.fsdecode(cafe), "+" + os.fsdecode(b"caf\xe9"))  # a tag, not a path: text
    assert code == 2 and "'caf\\xe9' is not UTF-8 text" in err
    code, _, err = run(capsys, "custom-tag", "add", os.fsdecode(b"caf\xe9"), "--example", os.fsdecode(cafe))
    assert code == 2 and "'caf\\xe9': its name and descriptions must be UTF-8 text" in err
    code, _, err = run(capsys, "custom-tag", "add", "latin", "--example", os.fsdecode(cafe), "--dry-run")
    assert code == 0, err  # a photo with such a name is a fine example

    code, out, err = run(capsys, "search", f"folder:{os.fsdecode(folder)}")
    assert code == 0, err
    assert out.split() == ["1.000", f"{library}/d\\xe9j\\xe0/x.jpg"]
    # A tag with a folder: the tag-row search way binds the folder too.
    code, out, err = run(capsys, "search", "--json", f"tag:mine folder:{os.fsdecode(folder)}")
    assert code == 0, err
    assert [os.fsencode(json.loads(line)["path"]) for line in out.splitlines()] == [os.path.join(folder, b"x.jpg")]
    code, out, err = run(capsys, "search", "--json", "--min-score", "-1", f"similar:{os.fsdecode(cafe)}")
    assert code == 0, err
    assert cafe in {os.fsencode(json.loads(line)["path"]) for line in out.splitlines()}


class Watching:
    """A Watcher on ``library`` whose batches go through an Indexer, as `phototag watch` runs them."""

    def __init__(self, library: Path) -> None:
        self.library = library
        self.passes: list = []
        self._done = threading.Condition()

    def __enter__(self) -> Watching:
        settings = Settings()
        self._catalog = Catalog.open(settings.catalog_dir)
        self._indexer = Indexer.from_settings(self._catalog, *lazy_models(settings), settings)
        self._watcher = Watcher([self.library], self._on_changes, settle_seconds=0.3)
        self._watcher.start()
        return self

    def _on_changes(self, changed: set[str], deleted: set[str]) -> None:
        summary = self._indexer.run(sorted(changed | deleted), allow_missing_roots=True)
        with self._done:
            self.passes.append(summary)
            self._done.notify_all()

    def wait_for_new(self, count: int) -> None:
        with self._done:
            assert self._done.wait_for(lambda: sum(p.new for p in self.passes) >= count, timeout=120), self.passes

    def __exit__(self, *_exc: object) -> None:
        self._watcher.stop()
        self._catalog.close()


def test_a_failure_message_holding_any_lone_surrogate_is_stored(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    # A decoder's error quoting half of a UTF-16 pair from a file's metadata (U+D83D: no file name holds it),
    # for a photo whose name is not UTF-8 either.
    library, cafe, _ = latin1_library(tmp_path)

    def broken(path: str, **_options: object) -> None:
        raise ValueError("bad comment 'caf\ud83d'")

    monkeypatch.setattr("ram_model.preprocess.open_image", broken)
    summary = index(capsys, library)
    assert (summary["new"], summary["failed"]) == (3, 3)
    message = photos(home)[os.fsdecode(cafe)].error_message
    assert message == f"{os.fsdecode(cafe)}: cannot decode it (ValueError: bad comment 'caf\\ud83d')"
    assert os.fsencode(message.split(":")[0]) == cafe  # the name's own bytes kept


def test_watch_keeps_a_batch_that_holds_such_a_name(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    jpeg(library / "first.jpg")
    index(capsys, library)
    with Watching(library) as watching:
        good = jpeg(library / "second.jpg")
        bad = jpeg(os.path.join(os.fsencode(library), b"na\xefve.jpg"))
        watching.wait_for_new(2)
    assert statuses(home) == {str(library / "first.jpg"): "indexed", good: "indexed", bad: "indexed"}


@pytest.mark.gui
def test_the_app_shows_such_a_name_and_its_thumbnail(qtbot, tmp_path) -> None:  # noqa: ANN001
    from PySide6.QtCore import Qt

    from gui.indexing import IndexingPanel
    from gui.photo_grid import PhotoGridModel
    from gui.thumbnails import ImageLoader, ThumbnailStore
    from indexer.browse import PhotoRow

    cafe = jpeg(os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg"))
    loader = ImageLoader(ThumbnailStore(tmp_path / "thumbnails", size=64), threads=1)
    model = PhotoGridModel(loader)
    model.set_rows([PhotoRow(1, cafe, None, 0, "indexed", None)])
    index = model.index(0)
    assert model.data(index) == "caf\\xe9.jpg"
    assert model.data(index, Qt.ItemDataRole.ToolTipRole) == f"{tmp_path}/caf\\xe9.jpg"
    qtbot.waitUntil(lambda: model.data(index, Qt.ItemDataRole.DecorationRole) is not None, timeout=20_000)
    loader.shutdown()
    panel = IndexingPanel()
    qtbot.addWidget(panel)
    panel.add_failure(cafe, "corrupt", f"{cafe}: cannot decode it")
    assert panel.failure_paths() == [f"{tmp_path}/caf\\xe9.jpg"]
    assert panel.failures.item(0, 3).text() == f"{tmp_path}/caf\\xe9.jpg: cannot decode it"


# --- 10. the same folder through a symbolic link -------------------------------------------------------------
def test_the_same_folder_through_a_symlinked_root_maps_to_the_same_rows(home, tmp_path, capsys) -> None:  # noqa: ANN001
    real = tmp_path / "real"
    paths = {jpeg(real / "a.jpg"), jpeg(real / "sub" / "b.jpg")}
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    assert index(capsys, link)["new"] == 2
    assert index(capsys, real)["unchanged"] == 2
    second = index(capsys, link)
    assert (second["new"], second["unchanged"], second["missing"]) == (0, 2, 0)
    assert set(photos(home)) == paths  # one row per file, under its real path
    assert run(capsys, "tag", str(link / "a.jpg"), "+mine")[0] == 0  # either spelling finds it
    assert user_tags(capsys, str(real / "a.jpg")) == ["mine"]


def test_rows_recorded_under_a_link_go_to_the_real_path_with_their_tags(home, tmp_path, capsys) -> None:  # noqa: ANN001
    real = tmp_path / "real"
    jpeg(real / "a.jpg")
    jpeg(real / "b.jpg")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    index(capsys, real)
    run(capsys, "tag", str(real / "a.jpg"), "+kept")
    ids = {photo.id for photo in photos(home).values()}
    # A catalog written before roots were resolved holds the link's spelling.
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        for photo in session.scalars(select(Photo)):
            photo.path = photo.path.replace(str(real), str(link), 1)
    summary = index(capsys, real)
    assert (summary["new"], summary["moved"], summary["missing"]) == (0, 2, 0)
    assert {photo.id for photo in photos(home).values()} == ids
    assert statuses(home) == {str(real / "a.jpg"): "indexed", str(real / "b.jpg"): "indexed"}
    assert user_tags(capsys, str(real / "a.jpg")) == ["kept"]


def test_rows_under_the_links_spelling_given_are_respelled_without_reading_a_file(home, tmp_path, capsys,  # noqa: ANN001
                                                                                  monkeypatch) -> None:  # noqa: ANN001
    # Fedora's /home -> /var/home, a NAS reached through a link: the catalog holds the link's spelling, and the
    # first pass after the upgrade is given that spelling again.
    real = tmp_path / "real"
    for name in ("a.jpg", "trip/b.jpg", b"caf\xe9.jpg", "twice.jpg"):
        jpeg(os.path.join(os.fsencode(real), os.fsencode(name)))
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    index(capsys, real)
    run(capsys, "tag", str(real / "a.jpg"), "+kept")
    before = {path: photo.id for path, photo in photos(home).items()}
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        for photo in session.scalars(select(Photo)):
            if photo.path != str(real / "twice.jpg"):
                photo.path = photo.path.replace(str(real), str(link), 1)
        # and one file under both spellings (two rows): the real one is kept, the other left to the content rule
        twice = session.scalars(select(Photo).where(Photo.path == str(real / "twice.jpg"))).one()
        session.add(Photo(path=str(link / "twice.jpg"), size=twice.size, mtime_ns=twice.mtime_ns,
                          content_hash=twice.content_hash, status="indexed", attempts=0, first_seen=twice.first_seen,
                          last_seen=twice.last_seen))

    hashed: list[str] = []
    hash_file = pipeline._hash_file
    monkeypatch.setattr(pipeline, "_hash_file", lambda path: hashed.append(path) or hash_file(path))
    summary = index(capsys, link)
    assert hashed == []  # no file read again: the rows were moved by their paths, never marked missing
    assert (summary["new"], summary["moved"], summary["missing"], summary["unchanged"]) == (0, 3, 1, 1)
    after = {path: photo for path, photo in photos(home).items()}
    assert {path: after[path].id for path in before} == before  # every row at its real path, the same row
    assert {after[path].status for path in before} == {"indexed"}
    assert all(after[path].missing_since is None for path in before)
    assert after[str(link / "twice.jpg")].status == "missing"
    assert user_tags(capsys, str(real / "a.jpg")) == ["kept"]
    assert index(capsys, link)["unchanged"] == 4


def test_a_library_root_that_becomes_a_symlink(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    jpeg(library / "a.jpg")
    jpeg(library / "trip" / "b.jpg")
    index(capsys, library)
    run(capsys, "tag", str(library / "a.jpg"), "+kept")
    ids = {photo.id for photo in photos(home).values()}
    nas = tmp_path / "nas"
    nas.mkdir()
    library.rename(nas / "library")  # the photos move to a share, the old folder becomes a link to it
    library.symlink_to(nas / "library", target_is_directory=True)

    summary = index(capsys, library)
    assert (summary["new"], summary["moved"]) == (0, 2)
    assert {photo.id for photo in photos(home).values()} == ids
    assert statuses(home) == {str(nas / "library" / "a.jpg"): "indexed", str(nas / "library/trip/b.jpg"): "indexed"}
    assert user_tags(capsys, str(library / "a.jpg")) == user_tags(capsys, str(nas / "library" / "a.jpg")) == ["kept"]
    code, out, _ = run(capsys, "search", f"folder:{library}/trip")
    assert code == 0 and out.split()[1:] == [str(nas / "library/trip/b.jpg")]

    (nas / "library").rename(nas / "unmounted")  # the share goes away: the link dangles
    code, _, err = run(capsys, "index", library)
    assert code == 2 and "does not exist" in err
    assert set(statuses(home).values()) == {"indexed"}  # nothing marked missing


def test_links_inside_a_library_are_not_followed(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library, outside = tmp_path / "library", tmp_path / "outside"
    jpeg(library / "inside.jpg")
    secret = jpeg(outside / "secret.jpg")
    (library / "link.jpg").symlink_to(secret)
    (library / "folder_link").symlink_to(outside, target_is_directory=True)
    (library / "loop").symlink_to(library, target_is_directory=True)
    assert index(capsys, library)["new"] == 1
    assert set(photos(home)) == {str(library / "inside.jpg")}
    # Links made while `watch` runs are not followed either.
    with Watching(library) as watching:
        (library / "new_link.jpg").symlink_to(secret)
        (library / "album.jpg").symlink_to(outside, target_is_directory=True)
        (library / "moved_in_link").symlink_to(outside, target_is_directory=True)
        new = jpeg(library / "new.jpg")
        watching.wait_for_new(1)  # the links came first: a batch for them would have run by now
    assert set(photos(home)) == {str(library / "inside.jpg"), new}


# --- beyond the list ------------------------------------------------------------------------------------------
def failing_scandir(monkeypatch, fails) -> None:  # noqa: ANN001
    """``os.scandir`` raising ``fails(path)`` (an OSError, or None to list the folder)."""
    real = os.scandir

    def scandir(path=".") -> object:  # noqa: ANN001
        error = None if isinstance(path, int) else fails(os.fspath(path))  # an int: a file descriptor
        if error is not None:
            raise error
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_permission_denied_on_one_subfolder_keeps_its_photos(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    jpeg(library / "open" / "1.jpg")
    locked = jpeg(library / "locked" / "2.jpg")
    index(capsys, library)
    new = jpeg(library / "open" / "3.jpg")
    failing_scandir(monkeypatch, lambda path: PermissionError(errno.EACCES, "Permission denied", path)
                    if path == str(library / "locked") else None)
    summary = index(capsys, library)
    assert (summary["new"], summary["missing"]) == (1, 0)
    assert [(f["path"], f["reason"]) for f in summary["failures"]] == [(str(library / "locked"), "unreadable")]
    assert statuses(home) == {str(library / "open" / "1.jpg"): "indexed", locked: "indexed", new: "indexed"}


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a folder whatever its mode")
def test_a_folder_without_read_permission_keeps_its_photos(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    jpeg(library / "open" / "1.jpg")
    locked = jpeg(library / "locked" / "2.jpg")
    index(capsys, library)
    (library / "locked").chmod(0)
    try:
        summary = index(capsys, library)
    finally:
        (library / "locked").chmod(0o755)
    assert summary["missing"] == 0 and statuses(home)[locked] == "indexed"


def nas_library(tmp_path: Path) -> tuple[Path, list[str]]:
    library = tmp_path / "nas"
    return library, [jpeg(library / folder / f"{n}.jpg") for folder in ("2019", "2020", "2021") for n in (1, 2)]


def test_a_share_that_stops_answering_mid_scan_marks_nothing_missing(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    library, files = nas_library(tmp_path)
    index(capsys, library)
    # The root lists, then every folder below it fails as a dropped SMB/NFS/FUSE connection does.
    with monkeypatch.context() as patch:
        failing_scandir(patch, lambda path: OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN), path)
                        if path.startswith(str(library) + os.sep) else None)
        summary = index(capsys, library)
    assert summary["missing"] == 0 and len(summary["failures"]) == 3
    assert set(statuses(home).values()) == {"indexed"}
    assert index(capsys, library)["unchanged"] == len(files)


def test_a_share_unmounted_mid_scan_stops_the_pass(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    library, files = nas_library(tmp_path)
    index(capsys, library)
    # The mount goes away once the scan is inside it: its folders vanish, then the root cannot be read.
    unmounted = threading.Event()
    real_stat = os.stat

    def scandir_fails(path: str) -> OSError | None:
        if path.startswith(str(library) + os.sep):
            unmounted.set()
            return FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return None

    def stat(path, *args, **kwargs) -> os.stat_result:  # noqa: ANN001, ANN002, ANN003
        if unmounted.is_set() and os.fspath(path) == str(library):
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN), path)
        return real_stat(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        failing_scandir(patch, scandir_fails)
        patch.setattr(os, "stat", stat)
        code, _, err = run(capsys, "index", library)
    assert code == 2 and "went away during the scan" in err
    assert set(statuses(home).values()) == {"indexed"}


def test_a_share_that_fails_while_files_are_read(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """EIO while hashing one new file, and while decoding another: both recorded, the rest indexed."""
    library, files = nas_library(tmp_path)
    index(capsys, library)
    hashed, decoded = jpeg(library / "2021" / "3.jpg"), jpeg(library / "2021" / "4.jpg")
    real_os_open, real_open = os.open, builtins.open

    def failing(real):  # noqa: ANN001, ANN202
        def opener(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if not isinstance(path, int) and os.fspath(path) == hashed:
                raise OSError(errno.EIO, os.strerror(errno.EIO), path)
            return real(path, *args, **kwargs)
        return opener

    import ram_model.preprocess

    real_image = ram_model.preprocess.open_image

    def open_image(path, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if os.fspath(path) == decoded:
            from ram_model.errors import ImageError

            raise ImageError(f"{path}: cannot read it (Input/output error)", reason="unreadable")
        return real_image(path, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", failing(real_os_open))
        patch.setattr(builtins, "open", failing(real_open))
        patch.setattr(ram_model.preprocess, "open_image", open_image)
        summary = index(capsys, library)
    assert summary["missing"] == 0
    assert sorted((f["path"], f["reason"]) for f in summary["failures"]) == [(hashed, "unreadable"),
                                                                             (decoded, "unreadable")]
    assert statuses(home)[decoded] == "failed" and all(statuses(home)[f] == "indexed" for f in files)
    again = index(capsys, library)  # the share is back: both are read now
    assert again["failed"] == 0 and statuses(home)[hashed] == statuses(home)[decoded] == "indexed"


def test_files_replaced_by_folders_or_pipes_mid_pass(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    good = jpeg(library / "good.jpg")
    to_folder, to_pipe = jpeg(library / "now_a_folder.jpg"), jpeg(library / "now_a_pipe.jpg")
    finished = threading.Event()
    unblocked: list[bool] = []

    def swap(stage: str, done: int, total: int | None) -> None:  # after the scan listed them, before they are read
        if stage == "scan" and total is not None:
            os.remove(to_folder)
            jpeg(os.path.join(to_folder, "inside.jpg"))
            os.remove(to_pipe)
            os.mkfifo(to_pipe)

    def guard() -> None:  # a reader blocked on the pipe would hang the test: let it go, and say so
        if finished.wait(60):
            return
        while not finished.is_set():
            try:
                os.close(os.open(to_pipe, os.O_WRONLY | os.O_NONBLOCK))
                unblocked.append(True)
            except OSError:
                pass
            time.sleep(0.2)

    settings = Settings()
    with Catalog.open(settings.catalog_dir) as catalog:
        indexer = Indexer.from_settings(catalog, *lazy_models(settings), settings, on_progress=swap)
        threading.Thread(target=guard, daemon=True).start()
        try:
            summary = indexer.run([library])
        finally:
            finished.set()
    assert not unblocked, "the pass blocked on a pipe"
    assert sorted(f.path for f in summary.failures) == [to_folder, to_pipe]
    assert {f.reason for f in summary.failures} == {"unreadable"}
    assert statuses(home) == {good: "indexed"}  # the two were new: no row to keep
    index(capsys, library)  # the next pass finds the folder's photo
    assert statuses(home)[os.path.join(to_folder, "inside.jpg")] == "indexed"


def test_a_device_or_fifo_swapped_in_for_a_photo_is_never_opened(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Opening some devices does something (a tape rewinds, a modem hangs up): hashing, decoding and the GPU's
    read of a photo check what a path is before they open it (``_files.open_regular``)."""
    os.mkfifo(tmp_path / "fifo.jpg")
    os.symlink("/dev/zero", tmp_path / "device.jpg")
    good = jpeg(tmp_path / "good.jpg")
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: opened.append(os.fsdecode(path)) or real_open(path, *a, **k))
    settings = pipeline.DecodeSettings(32, None, pixels=True)
    for name in ("fifo.jpg", "device.jpg"):
        path = str(tmp_path / name)
        failure = pipeline.identify(path)
        assert isinstance(failure, pipeline.Failure) and failure.reason == "unreadable", failure
        assert "not a regular file" in failure.message and opened == []
        assert isinstance(pipeline.decode(pipeline.DecodeJob(1, path, True, False), settings), pipeline.Failure)
        assert isinstance(pipeline._read(pipeline.Decoded(1, path, None, None, 1)), pipeline.Failure)
        assert opened == []
    assert isinstance(pipeline.identify(good), pipeline.Identified) and good in opened


def test_a_folder_replaced_by_a_file_mid_scan(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    kept = jpeg(library / "kept.jpg")
    gone = jpeg(library / "album" / "1.jpg")
    index(capsys, library)

    def replace(path: str) -> None:
        if path == str(library / "album"):
            shutil.rmtree(path)
            Path(path).write_bytes(b"not a folder")

    failing_scandir(monkeypatch, lambda path: replace(path))
    code, _, err = run(capsys, "index", library)
    assert code == 0 and "1 missing" in err
    assert "cannot read" not in err  # gone, not an unreadable folder to report
    assert statuses(home) == {kept: "indexed", gone: "missing"}


def test_two_names_differing_only_in_case(home, tmp_path, capsys) -> None:  # noqa: ANN001
    """On a case-sensitive disk both exist (two photos); a rename that changes only case is a move, which is
    what a case-insensitive share (SMB, macOS) shows when someone renames IMG.JPG to img.jpg."""
    library = tmp_path / "library"
    upper, lower = jpeg(library / "Trip" / "IMG.JPG"), jpeg(library / "Trip" / "img.jpg")
    assert index(capsys, library)["new"] == 2
    run(capsys, "tag", upper, "+upper")
    assert user_tags(capsys, upper) == ["upper"] and user_tags(capsys, lower) == []
    photo_id = photos(home)[upper].id
    os.remove(lower)
    (library / "Trip").rename(library / "trip")
    os.rename(library / "trip" / "IMG.JPG", library / "trip" / "img.jpg")
    summary = index(capsys, library)
    assert (summary["moved"], summary["new"]) == (1, 0)
    moved = str(library / "trip" / "img.jpg")
    assert photos(home)[moved].id == photo_id and user_tags(capsys, moved) == ["upper"]


def test_mtimes_in_the_future_index_once(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    skewed = {jpeg(library / "2100.jpg"): 2100, jpeg(library / "2300.jpg"): 2300}
    for path, year in skewed.items():
        seconds = int((year - 1970) * 365.25 * 86400)
        os.utime(path, ns=(seconds * 10**9, seconds * 10**9))  # ext4 keeps dates up to 2446, past int64 ns
    assert index(capsys, library)["new"] == 2
    again = index(capsys, library)
    assert (again["unchanged"], again["changed"]) == (2, 0)
    assert set(statuses(home).values()) == {"indexed"}


def test_hard_links_are_two_photos_computed_once(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    first = jpeg(library / "a.jpg")
    second = str(library / "b.jpg")
    os.link(first, second)
    summary = index(capsys, library)
    assert (summary["new"], summary["duplicates"], summary["tagged"]) == (2, 1, 1)
    run(capsys, "tag", second, "+b only")
    os.remove(first)
    assert index(capsys, library)["missing"] == 1
    assert statuses(home) == {first: "missing", second: "indexed"}
    assert user_tags(capsys, second) == ["b only"]


def test_names_of_255_bytes(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    utf8 = jpeg(library / ("é" * 125 + ".jpeg"))  # 255 bytes: the longest name most file systems allow
    latin1 = jpeg(os.path.join(os.fsencode(library), b"\xe9" * 250 + b".jpeg"))
    assert len(os.fsencode(os.path.basename(utf8))) == len(os.fsencode(os.path.basename(latin1))) == 255
    assert index(capsys, library)["new"] == 2
    assert statuses(home) == {utf8: "indexed", latin1: "indexed"}
    for path in (utf8, latin1):
        assert run(capsys, "tag", path, "+long")[0] == 0
        assert user_tags(capsys, path) == ["long"]
