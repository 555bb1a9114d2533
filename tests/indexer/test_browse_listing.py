"""The listing a grid pages through: its count, first page and ids agree with list_photos, and the library
folders are applied as the complement of the photos outside them (path ranges between the roots)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from indexer import browse
from indexer._paths import within
from indexer.catalog import Catalog
from indexer.schema import Photo

STAMP = datetime(2024, 1, 1)
# Names that sort around a folder's prefix: "a!" and "a.jpg" before "a/", "a0" just after "a/"'s range.
NAMES = ["/lib", "/lib/a", "/lib/a!", "/lib/a.jpg", "/lib/a/x.jpg", "/lib/a/b/y.jpg", "/lib/a0/z.jpg", "/lib/ab.jpg",
         "/lib/b/c.jpg", "/lib/b/c/d.jpg", "/libx/e.jpg", "/m/f.jpg", "/", "/lib/a/b"]
ROOTS = [[], ["/lib"], ["/lib/a"], ["/lib/a", "/lib/a/b"], ["/lib/a/b", "/lib/b"], ["/lib/a", "/lib/a0"],
         ["/m", "/lib/a!"], ["/lib/a/x.jpg"], ["/"], ["/lib/b", "/lib/a", "/lib/b"]]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:  # noqa: ANN001
    rng = random.Random(3)
    catalog = Catalog.open(tmp_path_factory.mktemp("listing") / "catalog")
    with catalog.session() as session, session.begin():
        for number, name in enumerate(NAMES * 3):
            taken = None if number % 5 == 0 else STAMP - timedelta(days=rng.choice([1, 2, 3]))  # ties, undated
            session.add(Photo(path=name if number < len(NAMES) else f"{name}.{number}", size=1, mtime_ns=1,
                              taken_at=taken, status="missing" if number % 7 == 3 else "indexed", attempts=0,
                              first_seen=STAMP, last_seen=STAMP))
    yield catalog
    catalog.close()


@pytest.mark.parametrize("roots", ROOTS)
def test_outside_is_the_complement_of_under(catalog, roots) -> None:  # noqa: ANN001
    with catalog.session() as session:
        every = session.execute(select(Photo.id, Photo.path)).all()
    outside = set(browse.photo_ids_outside(catalog, roots).tolist())
    assert outside == {i for i, path in every if not within(path, roots)}


@pytest.mark.parametrize("roots", [None, *ROOTS])
@pytest.mark.parametrize("sort", ["date", "path"])
@pytest.mark.parametrize("include_missing", [False, True])
def test_count_first_page_and_ids_agree_with_the_listing(catalog, roots, sort, include_missing) -> None:  # noqa: ANN001
    with catalog.session() as session:
        every = session.execute(select(Photo.id, Photo.path, Photo.taken_at, Photo.status)).all()
    wanted = [row for row in every if (roots is None or within(row.path, roots))
              and (include_missing or row.status != "missing")]
    if sort == "date":  # newest first, undated last, then by path
        wanted.sort(key=lambda row: row.path)
        wanted.sort(key=lambda row: (row.taken_at is not None, row.taken_at or STAMP), reverse=True)
    else:
        wanted.sort(key=lambda row: row.path)
    options = {"roots": roots, "include_missing": include_missing}
    listed = browse.list_photos(catalog, sort=sort, **options)
    assert [row.id for row in listed] == [row.id for row in wanted]
    assert browse.list_photo_ids(catalog, sort=sort, **options).tolist() == [row.id for row in wanted]
    assert browse.count_photos(catalog, **options) == len(wanted)
    for limit in (1, 4, 100):
        assert browse.list_photos(catalog, sort=sort, limit=limit, **options) == listed[:limit]


@pytest.mark.parametrize(("roots", "include_missing"),
                         [(None, True), (["/lib"], False), (["/lib/a", "/lib/a0"], False)])
@pytest.mark.parametrize("sort", ["date", "path"])
def test_keyset_pages_and_positions_agree_with_the_listing(catalog, roots, include_missing, sort) -> None:  # noqa: ANN001
    """A page read after (or, backwards, before) any photo of the listing, with any offset, is that slice of the
    listing — across ties of date and the undated photos at the end; a photo's position is its index there."""
    options = {"roots": roots, "include_missing": include_missing, "sort": sort}
    listed = browse.list_photos(catalog, **options)
    assert len(listed) > 10 and len({row.taken_at for row in listed}) < len(listed)  # dates tie
    for reverse, order in ((False, listed), (True, listed[::-1])):
        assert browse.list_photos(catalog, reverse=reverse, **options) == order
        assert browse.list_photos(catalog, reverse=reverse, offset=5, limit=3, **options) == order[5:8]
        for position, row in enumerate(order):
            for offset in (0, 2, len(order)):
                for limit in (3, None):
                    wanted = order[position + 1 + offset:][:limit]
                    page = dict(after=row, offset=offset, limit=limit, reverse=reverse)
                    assert browse.list_photos(catalog, **page, **options) == wanted
                    assert browse.list_photo_ids(catalog, **page, **options).tolist() == [r.id for r in wanted]
    for position, row in enumerate(listed):
        assert browse.listing_position(catalog, row.id, **options) == position
    listed_ids = {row.id for row in listed}
    with catalog.session() as session:
        others = [i for i in session.scalars(select(Photo.id)) if i not in listed_ids]
    assert all(browse.listing_position(catalog, i, **options) is None for i in others[:5])


@pytest.mark.parametrize(("roots", "include_missing"), [(None, False), (None, True), (["/lib"], False),
                                                        (["/lib/a", "/lib/b"], True), ([], False)])
def test_a_far_offset_into_the_date_order_is_found_through_the_date_index(catalog, roots, include_missing,
                                                                         monkeypatch) -> None:  # noqa: ANN001
    """From _ANCHOR_FROM on, list_photos finds an offset's place by the dates alone (the photos newer than a date,
    less the left-out ones), then reads on from that date: every offset gives that slice of the listing."""
    options = {"roots": roots, "include_missing": include_missing}
    listed = browse.list_photos(catalog, **options)
    anchored: list[int] = []
    anchor = browse._date_anchor  # noqa: SLF001
    monkeypatch.setattr(browse, "_date_anchor", lambda *args: anchored.append(args[1]) or anchor(*args))
    monkeypatch.setattr(browse, "_ANCHOR_FROM", 1)
    for offset in range(len(listed) + 2):
        for limit in (1, 3, None):
            assert browse.list_photos(catalog, offset=offset, limit=limit, **options) == listed[offset:][:limit]
        assert browse.list_photo_ids(catalog, offset=offset, limit=4, **options).tolist() == [
            row.id for row in listed[offset:offset + 4]]
    assert len(anchored) == (4 * (len(listed) + 1) if roots != [] else 0)  # every offset from 1: through the dates
