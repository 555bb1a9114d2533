"""The read-only browsing queries the desktop app is built on, on a small synthetic catalog."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from indexer import browse
from indexer.catalog import Catalog
from indexer.errors import IndexerError
from indexer.schema import ACCEPTED, SUGGESTED, Photo, PhotoTag, Run, Tag

STAMP = datetime(2024, 1, 1)
# path: (status, taken_at, camera make, gps)
PHOTOS = {
    "/lib/a/old.jpg": ("indexed", datetime(2019, 5, 1), "SONY", (45.5, 6.25)),
    "/lib/a/new.jpg": ("indexed", datetime(2023, 7, 1), None, None),
    "/lib/b/undated.png": ("failed", None, None, None),
    "/lib/b/gone.jpg": ("missing", datetime(2021, 1, 1), None, None),
    "/lib/ab/other.jpg": ("pending", datetime(2020, 1, 1), None, None),
}


@pytest.fixture()
def catalog(tmp_path) -> Catalog:  # noqa: ANN001
    catalog = Catalog.open(tmp_path / "catalog")
    with catalog.session() as session, session.begin():
        dog = Tag(name="dog", name_zh="狗", threshold=0.6)
        cat = Tag(name="cat", name_zh="猫", threshold=0.7)
        session.add_all([dog, cat, Tag(name="abacus", name_zh=None, threshold=None)])
        session.flush()
        ids = {}
        for path, (status, taken, make, gps) in PHOTOS.items():
            photo = Photo(path=path, size=10, mtime_ns=1, content_hash=path[-8:], format="jpeg", width=40, height=30,
                          taken_at=taken, camera_make=make, gps_lat=gps[0] if gps else None,
                          gps_lon=gps[1] if gps else None, status=status, attempts=1 if status == "failed" else 0,
                          error_reason="truncated" if status == "failed" else None,
                          error_message="undated.png: truncated" if status == "failed" else None,
                          first_seen=STAMP, last_seen=STAMP)
            session.add(photo)
            session.flush()
            ids[path] = photo.id
        session.add(PhotoTag(photo_id=ids["/lib/a/old.jpg"], tag_id=dog.id, score=0.9, source="model",
                             state=SUGGESTED, updated_at=STAMP))
        session.add(PhotoTag(photo_id=ids["/lib/a/new.jpg"], tag_id=cat.id, score=None, source="user",
                             state=ACCEPTED, updated_at=STAMP))
        for roots in (["/lib/a"], ["/lib"], ["/lib/b/new-file.jpg"]):
            session.add(Run(started_at=STAMP, roots=json.dumps(roots), outcome="completed"))
    yield catalog
    catalog.close()


def names(rows: list[browse.PhotoRow]) -> list[str]:
    return [row.path.rsplit("/", 1)[1] for row in rows]


def test_list_photos_newest_first_without_missing_ones(catalog) -> None:  # noqa: ANN001
    assert names(browse.list_photos(catalog)) == ["new.jpg", "other.jpg", "old.jpg", "undated.png"]
    assert names(browse.list_photos(catalog, sort="path")) == ["new.jpg", "old.jpg", "other.jpg", "undated.png"]
    assert "gone.jpg" in names(browse.list_photos(catalog, include_missing=True))
    row = browse.list_photos(catalog)[0]
    assert (row.status, row.content_hash, row.taken_at) == ("indexed", "/new.jpg", datetime(2023, 7, 1))
    with pytest.raises(IndexerError, match="unknown sort"):
        browse.list_photos(catalog, sort="size")


def test_list_photos_under_folders(catalog) -> None:  # noqa: ANN001
    assert names(browse.list_photos(catalog, roots=["/lib/a"])) == ["new.jpg", "old.jpg"]  # not /lib/ab
    assert names(browse.list_photos(catalog, roots=["/lib/a", "/lib/b"])) == ["new.jpg", "old.jpg", "undated.png"]
    assert browse.list_photos(catalog, roots=[]) == []


def test_photo_rows_keep_the_order_given(catalog) -> None:  # noqa: ANN001
    rows = browse.list_photos(catalog)
    ids = [rows[2].id, rows[0].id, 9999, rows[1].id]
    assert [row.id for row in browse.photo_rows(catalog, ids)] == [rows[2].id, rows[0].id, rows[1].id]
    assert browse.photo_rows(catalog, []) == []


def test_photo_details(catalog) -> None:  # noqa: ANN001
    by_name = {row.path.rsplit("/", 1)[1]: row.id for row in browse.list_photos(catalog)}
    old = browse.photo_details(catalog, by_name["old.jpg"])
    assert old["camera"] == "SONY" and old["gps"] == (45.5, 6.25) and old["taken_at"] == "2019-05-01 00:00:00"
    assert (old["width"], old["height"], old["format"], old["status"]) == (40, 30, "jpeg", "indexed")
    failed = browse.photo_details(catalog, by_name["undated.png"])
    assert (failed["error_reason"], failed["attempts"]) == ("truncated", 1) and "truncated" in failed["error"]
    assert browse.photo_details(catalog, 9999) is None


def test_tag_names(catalog) -> None:  # noqa: ANN001
    assert browse.tag_names(catalog) == [("abacus", None, None), ("cat", "猫", 0.7), ("dog", "狗", 0.6)]
    assert [name for name, _, _ in browse.tag_names(catalog, used_only=True)] == ["cat", "dog"]


def test_library_roots_are_the_folders_indexed(catalog, tmp_path) -> None:  # noqa: ANN001
    assert browse.library_roots(catalog) == ["/lib"]  # /lib/a and /lib/b/new-file.jpg lie inside it
    single = tmp_path / "one.jpg"
    single.write_bytes(b"x")
    with catalog.session() as session, session.begin():
        session.add(Run(started_at=STAMP, roots=json.dumps([str(single), "/elsewhere"]), outcome="completed"))
    assert browse.library_roots(catalog) == ["/elsewhere", "/lib"]  # a file root (a watcher's pass) is left out
