"""Scanning library roots: default excludes, patterns, unreadable folders, symlinks, the real library."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import indexer.scan
from indexer.errors import ScanError
from indexer.scan import FoundFile, ScanRules, scan
from tests.conftest import PHOTOS


def make_tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * len(name))


TREE = [
    "IMG_0001.jpg",
    "IMG_0002.JPG",
    "notes.txt",
    "IMG_0001.jpg.xmp",
    ".hidden.jpg",
    "2019/raw/DSC_1.NEF",
    "2019/beach.heic",
    "2019/@eaDir/beach.heic/SYNOPHOTO_THUMB_XL.jpg",
    "2019/.thumbnails/beach.png",
    "#recycle/old.jpg",
    "$RECYCLE.BIN/old.jpg",
    ".git/objects/a.png",
    "b/c/deep.webp",
    "b/c.jpg",
    "phototag-catalog/thumbs/1.jpg",
    "looks_like_a_photo.jpg/inside.png",
]


def rel_paths(root: Path, found: list[FoundFile]) -> list[str]:
    return [Path(item.path).relative_to(root).as_posix() for item in found]


def test_defaults_skip_hidden_system_folders_sidecars_and_other_files(tmp_path) -> None:  # noqa: ANN001
    make_tree(tmp_path, TREE)
    found = list(scan([tmp_path]))
    # A folder's files first (by name), then its subfolders in name order.
    assert rel_paths(tmp_path, found) == [
        "IMG_0001.jpg",
        "IMG_0002.JPG",
        "2019/beach.heic",
        "2019/raw/DSC_1.NEF",
        "b/c.jpg",
        "b/c/deep.webp",
        "looks_like_a_photo.jpg/inside.png",
    ]
    first = found[0]
    st = os.stat(tmp_path / "IMG_0001.jpg")
    assert first == FoundFile(str(tmp_path / "IMG_0001.jpg"), st.st_size, st.st_mtime_ns)
    assert os.path.isabs(first.path)
    assert list(scan([tmp_path])) == found  # deterministic


def test_include_and_exclude_patterns_match_names_or_root_relative_paths(tmp_path) -> None:  # noqa: ANN001
    make_tree(tmp_path, TREE)
    only_img = ScanRules().with_patterns(include=["img_*"])  # case-insensitive
    assert rel_paths(tmp_path, list(scan([tmp_path], only_img))) == ["IMG_0001.jpg", "IMG_0002.JPG"]

    by_path = ScanRules().with_patterns(include=["2019/*"])  # "*" crosses folders
    assert rel_paths(tmp_path, list(scan([tmp_path], by_path))) == ["2019/beach.heic", "2019/raw/DSC_1.NEF"]

    # A name pattern works at any depth (on folders too), a path pattern from the root; the defaults stay.
    rules = ScanRules().with_patterns(exclude=["RAW", "/b/c", "img_*"])
    assert rules.exclude[: len(indexer.scan.DEFAULT_EXCLUDES)] == indexer.scan.DEFAULT_EXCLUDES
    expected = ["2019/beach.heic", "b/c.jpg", "looks_like_a_photo.jpg/inside.png"]
    assert rel_paths(tmp_path, list(scan([tmp_path], rules))) == expected
    no_jpg = ScanRules().with_patterns(exclude=["*.JPG"])
    assert rel_paths(tmp_path, list(scan([tmp_path], no_jpg))) == [
        "2019/beach.heic",
        "2019/raw/DSC_1.NEF",
        "b/c/deep.webp",
    ]

    raw_only = ScanRules(extensions=frozenset({".nef"}))
    assert rel_paths(tmp_path, list(scan([tmp_path], raw_only))) == ["2019/raw/DSC_1.NEF"]


@pytest.mark.parametrize(
    "rules",
    [ScanRules(), ScanRules().with_patterns(include=["2019/*", "c.*"], exclude=["/b/c", "beach*"])],
    ids=["defaults", "patterns"],
)
def test_accepts_agrees_with_scan(tmp_path, rules) -> None:  # noqa: ANN001
    make_tree(tmp_path, TREE)
    scanned = {item.path for item in scan([tmp_path], rules)}
    every_file = {os.path.join(folder, name) for folder, _, names in os.walk(tmp_path) for name in names}
    assert {path for path in every_file if rules.accepts(path, tmp_path)} == scanned
    assert not rules.accepts(tmp_path.parent / "IMG_0001.jpg", tmp_path)  # outside the root


def test_unreadable_folder_is_reported_and_the_scan_goes_on(tmp_path) -> None:  # noqa: ANN001
    if os.geteuid() == 0:
        pytest.skip("root reads a folder whatever its permissions")
    make_tree(tmp_path, ["a/1.jpg", "locked/2.jpg", "z/3.jpg"])
    (tmp_path / "locked").chmod(0)
    try:
        errors: list[tuple[str, OSError]] = []
        found = list(scan([tmp_path], on_error=lambda path, exc: errors.append((path, exc))))
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert rel_paths(tmp_path, found) == ["a/1.jpg", "z/3.jpg"]
    assert [(path, type(exc)) for path, exc in errors] == [(str(tmp_path / "locked"), PermissionError)]


def test_listing_error_is_reported_and_the_scan_goes_on(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    # The same as above for any user (root included): the listing of one folder fails.
    make_tree(tmp_path, ["a/1.jpg", "locked/2.jpg", "z/3.jpg"])
    real_scandir = os.scandir
    locked = str(tmp_path / "locked")

    def scandir(path):  # noqa: ANN001, ANN202
        if path == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(indexer.scan.os, "scandir", scandir)
    errors: list[tuple[str, OSError]] = []
    found = list(scan([tmp_path], on_error=lambda path, exc: errors.append((path, exc))))
    assert rel_paths(tmp_path, found) == ["a/1.jpg", "z/3.jpg"]
    assert [(path, type(exc)) for path, exc in errors] == [(locked, PermissionError)]


def test_symlinks_skipped_by_default_and_loops_followed_once(tmp_path) -> None:  # noqa: ANN001
    make_tree(tmp_path, ["a/1.jpg", "b/2.jpg"])
    (tmp_path / "a" / "up").symlink_to(tmp_path, target_is_directory=True)  # a loop
    (tmp_path / "b" / "again.jpg").symlink_to(tmp_path / "a" / "1.jpg")
    (tmp_path / "b" / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")

    assert rel_paths(tmp_path, list(scan([tmp_path]))) == ["a/1.jpg", "b/2.jpg"]

    following = list(scan([tmp_path], ScanRules(follow_symlinks=True)))
    assert rel_paths(tmp_path, following) == ["a/1.jpg", "b/2.jpg", "b/again.jpg"]
    assert following[2].size == following[0].size  # the target's


def test_file_roots_overlapping_roots_and_a_missing_root(tmp_path) -> None:  # noqa: ANN001
    make_tree(tmp_path, ["a/1.jpg", "a/b/2.png", "a/notes.txt", ".hidden/3.jpg"])
    assert rel_paths(tmp_path, list(scan([tmp_path / "a" / "1.jpg"]))) == ["a/1.jpg"]
    assert list(scan([tmp_path / "a" / "notes.txt"])) == []
    # A root is scanned whatever its own name; overlapping roots give each file once.
    assert rel_paths(tmp_path, list(scan([tmp_path / ".hidden"]))) == [".hidden/3.jpg"]
    assert rel_paths(tmp_path, list(scan([tmp_path / "a" / "b", tmp_path / "a"]))) == ["a/b/2.png", "a/1.jpg"]

    with pytest.raises(ScanError, match=r"nowhere does not exist: check the path"):
        scan([tmp_path / "a", tmp_path / "nowhere"])  # raised at the call, before iterating


def test_real_library_is_found(manifest) -> None:  # noqa: ANN001
    found = {item.path: item for item in scan([PHOTOS / "library"])}
    expected = {os.path.abspath(PHOTOS / entry["path"]) for entry in manifest["library"]}
    assert expected <= set(found)
    assert all(found[path].size == os.path.getsize(path) for path in expected)


def test_many_files_scan_quickly(tmp_path) -> None:  # noqa: ANN001
    # Not a timed assertion (see bench/): a smoke check that a few thousand files take no time.
    for folder in range(30):
        (tmp_path / f"{folder:02}").mkdir()
        for index in range(100):
            (tmp_path / f"{folder:02}" / f"IMG_{index:04}.jpg").touch()
    start = time.perf_counter()
    count = sum(1 for _ in scan([tmp_path]))
    elapsed = time.perf_counter() - start
    assert count == 3000, elapsed
