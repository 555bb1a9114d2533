"""End to end through the real `phototag index` command on a copy of ../shared/photos, tiny random models."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import event, func, select

from indexer.catalog import Catalog, head_revision
from indexer.report import photo_counts
from indexer.schema import ACCEPTED, REJECTED, SOURCE_USER, Embedding, Photo, PhotoTag, Run, Tag
from main import main
from tests.conftest import PHOTOS
from tests.indexer.conftest import TAGGER_2, manifest_entries

# What every broken file in ../shared/photos/edge must get (manifest "edge"): failed with this reason,
# or None for the files that must be indexed in spite of broken metadata.
EDGE = {
    "zero_bytes.jpg": "empty", "not_an_image.jpg": "not_an_image", "decompression_bomb.gif": "decompression_bomb",
    "corrupted.heic": "corrupt", "empty.heic": "empty", "truncated.heic": "truncated",
    "truncated_jpeg.jpg": "truncated",  # "decoded as far as possible or skipped": we skip, with the reason
    "invalid-exif.jpg": None, "hopper_bad_exif.jpg": None, "exif_gps_typeerror.jpg": None, "pil_sample_cmyk.jpg": None,
}


def index(capsys, *args: str) -> dict:  # noqa: ANN001
    code = main(["index", *map(str, args), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def photos_by_path(home: Path) -> dict[str, Photo]:
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        return {p.path: p for p in session.scalars(select(Photo))}


def tags_of(home: Path, path: Path) -> dict[str, tuple[str, str, float | None]]:
    """tag name → (source, state, score) for one photo."""
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        rows = session.execute(
            select(Tag.name, PhotoTag.source, PhotoTag.state, PhotoTag.score).join(Tag, Tag.id == PhotoTag.tag_id)
            .join(Photo, Photo.id == PhotoTag.photo_id).where(Photo.path == str(path))).all()
    return {name: (source, state, score) for name, source, state, score in rows}


def correct(home: Path, path: Path, name: str, state: str, source: str | None = None) -> None:
    """A person's correction, written as the GUI and `phototag tag` will write it."""
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        photo_id = session.scalar(select(Photo.id).where(Photo.path == str(path)))
        tag_id = session.scalar(select(Tag.id).where(Tag.name == name))
        row = session.get(PhotoTag, (photo_id, tag_id))
        if row is None:
            session.add(PhotoTag(photo_id=photo_id, tag_id=tag_id, source=source or SOURCE_USER, state=state,
                                 updated_at=datetime.now()))
        else:
            row.state = state


def test_first_pass_indexes_the_library_and_records_every_broken_file(home, photos, capsys) -> None:  # noqa: ANN001
    summary = index(capsys, photos)
    files = [p for p in photos.rglob("*") if p.is_file()]
    failing = {name for name, reason in EDGE.items() if reason}
    assert summary["new"] == len(files)
    assert summary["failed"] == len(failing)
    assert summary["tagged"] == summary["embedded"] == len(files) - len(failing)
    rows = photos_by_path(home)
    for name, reason in EDGE.items():
        row = rows[str(photos / "edge" / name)]
        if reason is None:
            assert row.status == "indexed", (name, row.error_message)
        else:
            assert (row.status, row.error_reason, row.attempts) == ("failed", reason, 1), name
            assert name in row.error_message
    # What the manifest says exiftool reads, the catalog holds.
    for entry in manifest_entries()["library"]:
        row = rows[str(photos / entry["path"])]
        assert row.status == "indexed" and row.content_hash and row.tagger_version and row.embedder_version
        exif = entry.get("exif", {})
        if "make" in exif:
            assert row.camera_make == exif["make"] and row.camera_model == exif["model"]
        if "taken" in exif:
            assert row.taken_at.strftime("%Y:%m:%d %H:%M:%S") == exif["taken"]
        if "size" in entry:
            assert sorted((row.width, row.height)) == sorted(entry["size"])
    pug = rows[str(photos / "library/animals/pug.heic")]
    assert abs(pug.gps_lat - 44.8505) < 1e-3 and abs(pug.gps_lon - 34.9766) < 1e-3
    # Tags and embeddings: every indexed photo has an embedding; the tiny tagger's tags are stored.
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        indexed = session.scalar(select(func.count()).where(Photo.status == "indexed"))
        assert session.scalar(select(func.count()).select_from(Embedding)) == indexed
        assert session.scalar(select(func.count()).select_from(PhotoTag)) > indexed
        assert session.scalar(select(Run.outcome)) == "completed"
        assert catalog.vectors_path.is_file()


def test_second_pass_does_no_model_work(home, photos, capsys, monkeypatch) -> None:  # noqa: ANN001
    import ram_model.cli as cli

    loads = []
    for name in ("load_tagger", "load_embedder"):
        real = getattr(cli, name)
        monkeypatch.setattr(cli, name, lambda *a, _real=real, **k: loads.append(a[1]) or _real(*a, **k))
    index(capsys, photos)
    assert len(loads) == 2
    before = {path: (row.indexed_at, row.content_hash) for path, row in photos_by_path(home).items()}
    summary = index(capsys, photos)
    assert summary["tagged"] == summary["embedded"] == summary["new"] == summary["changed"] == 0
    assert summary["unchanged"] == len(before)
    after = {path: (row.indexed_at, row.content_hash) for path, row in photos_by_path(home).items()}
    assert after == before
    # Failed files are retried on later passes, up to max_attempts, then wait for a change.
    assert summary["failed"] == sum(1 for reason in EDGE.values() if reason)
    index(capsys, photos)
    summary = index(capsys, photos)
    assert summary["failed"] == 0
    assert photos_by_path(home)[str(photos / "edge/zero_bytes.jpg")].attempts == 3
    # Nothing left to compute: the pass never loads the models (a nightly run over an unchanged library).
    loads.clear()
    assert index(capsys, photos)["unchanged"] == len(before)
    assert loads == []


def test_rename_move_modify_delete_duplicate_and_touch(home, photos, capsys) -> None:  # noqa: ANN001
    library = photos / "library"
    index(capsys, library)
    # Random tiny weights score all tags of a photo alike: on this one they fire (see conftest).
    coffee = library / "space/hubble_deep_field.jpg"
    moved = library / "elsewhere" / f"renamed {coffee.name}"
    hopper = library / "people/grace_hopper.jpg"
    model_tags = tags_of(home, coffee)
    assert len(model_tags) >= 2, "the tiny tagger fires tags on these photos"
    kept, dropped = sorted(model_tags)[:2]
    correct(home, coffee, kept, ACCEPTED)
    correct(home, coffee, dropped, REJECTED)
    if "abacus" not in model_tags:
        correct(home, coffee, "abacus", ACCEPTED)
    corrected = tags_of(home, coffee)
    old_id = photos_by_path(home)[str(coffee)].id

    moved.parent.mkdir()
    shutil.move(coffee, moved)
    (library / "space/rocket.jpg").unlink()
    shutil.copy(library / "flowers/dahlia.jpg", library / "dahlia copy.jpg")
    os.utime(hopper, ns=(time.time_ns(), time.time_ns()))  # touched, same bytes
    changed = library / "flowers/canon_flower.jpg"
    with Image.open(changed) as image:
        image.rotate(180).save(changed, quality=90)  # new content at the same path

    summary = index(capsys, library)
    assert (summary["moved"], summary["missing"], summary["new"], summary["changed"]) == (1, 1, 1, 1)
    assert summary["duplicates"] == 1
    assert summary["tagged"] == summary["embedded"] == 1  # only the changed photo went through the models
    rows = photos_by_path(home)
    assert rows[str(moved)].id == old_id and str(coffee) not in rows
    assert tags_of(home, moved) == corrected  # tags and corrections came along, no model work
    assert rows[str(library / "space/rocket.jpg")].status == "missing"
    assert rows[str(library / "space/rocket.jpg")].missing_since is not None
    twin = tags_of(home, library / "dahlia copy.jpg")
    original = tags_of(home, library / "flowers/dahlia.jpg")
    assert {k: v[2] for k, v in twin.items()} == {k: v[2] for k, v in original.items() if v[0] == "model"}
    assert rows[str(changed)].status == "indexed"

    # The deleted file comes back unchanged: indexed again, with no model work.
    shutil.copy(PHOTOS / "library/space/rocket.jpg", library / "space/rocket.jpg")
    summary = index(capsys, library)
    assert summary["tagged"] == 0 and (summary["moved"] + summary["restored"]) == 1
    assert photos_by_path(home)[str(library / "space/rocket.jpg")].status == "indexed"


def test_rejected_and_accepted_tags_survive_a_model_change(home, photos, capsys) -> None:  # noqa: ANN001
    library = photos / "library" / "orientation"
    index(capsys, library)
    cat = library / "hopper_orientation_3.jpg"
    first = tags_of(home, cat)
    assert len(first) >= 2, "the tiny tagger fires tags on this photo"
    rejected, accepted = sorted(first)[0], sorted(first)[-1]
    correct(home, cat, rejected, REJECTED)
    correct(home, cat, accepted, ACCEPTED)
    summary = index(capsys, library, "--tagger", TAGGER_2)
    files = len(list(library.iterdir()))
    # Only the tagger changed: everything is re-tagged, nothing re-embedded.
    assert summary["tagged"] == files and summary["embedded"] == 0
    second = tags_of(home, cat)
    assert second[rejected][1] == REJECTED and second[accepted][1] == ACCEPTED
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        suggested = set(session.scalars(select(PhotoTag.model_version).where(PhotoTag.state == "suggested")))
        photos_versions = set(session.scalars(select(Photo.tagger_version)))
    # The first model's suggestions are gone (replaced or dropped); only corrections outlive it.
    assert suggested <= {f"{TAGGER_2}@seed1"} and photos_versions == {f"{TAGGER_2}@seed1"}


def test_identical_files_are_computed_once(home, photos, capsys) -> None:  # noqa: ANN001
    folder = photos / "twins"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        shutil.copy(photos / "library/people/grace_hopper.jpg", folder / name)
    summary = index(capsys, folder)
    assert summary["new"] == 3 and summary["tagged"] == 1 and summary["duplicates"] == 2
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        vectors = list(session.scalars(select(Embedding.vector)))
    assert len(vectors) == 3 and all(np.array_equal(vectors[0], v) for v in vectors)


def test_status_failures_and_tags_commands(home, photos, capsys) -> None:  # noqa: ANN001
    index(capsys, photos)
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["photos"]["failed"] == sum(1 for r in EDGE.values() if r) and status["schema"] == head_revision()
    assert status["last_run"]["outcome"] == "completed"
    assert main(["failures", "--json"]) == 0
    failures = json.loads(capsys.readouterr().out)
    assert {Path(f["path"]).name: f["reason"] for f in failures} == {k: v for k, v in EDGE.items() if v}
    photo = photos / "library/animals/pug.heic"
    assert main(["tags", str(photo), "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{photo} [indexed]: ")
    assert main(["tags", str(photos / "nowhere.jpg")]) == 1
    assert "not in the catalog" in capsys.readouterr().err


def test_photo_counts_read_only_the_status_index(home, photos, capsys) -> None:  # noqa: ANN001
    """What the app shows after each pass: the status report's counts by status, from the status index alone —
    not every photo row and embedding, which at 10M photos took a minute."""
    index(capsys, photos)
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_rest) -> None:  # noqa: ANN001
        statements.append(statement)

    with Catalog.open(home / "catalog") as catalog:
        event.listen(catalog.engine, "before_cursor_execute", record)
        counts = photo_counts(catalog)
        event.remove(catalog.engine, "before_cursor_execute", record)
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        with catalog.session() as session:
            plans = [row[-1] for statement in reads
                     for row in session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}")]
    assert counts == status["photos"] and counts["indexed"] > 0 and counts["failed"] > 0
    assert plans == ["SCAN photos USING COVERING INDEX ix_photos_status"]


def test_missing_root_and_missing_catalog_are_clear_errors(home, tmp_path, capsys) -> None:  # noqa: ANN001
    assert main(["index", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["status", "--catalog", str(tmp_path / "none")]) == 2
    assert "no catalog" in capsys.readouterr().err


def test_an_emptied_library_folder_is_refused_as_an_unmounted_share(home, photos, tmp_path, capsys) -> None:  # noqa: ANN001
    share = tmp_path / "nas"
    share.mkdir()
    shutil.copy(photos / "library/people/grace_hopper.jpg", share / "hopper.jpg")
    shutil.copy(photos / "library/animals/pug.heic", share / "pug.heic")
    index(capsys, share)
    hidden = tmp_path / "unmounted"
    share.rename(hidden)
    share.mkdir()  # the mount point, empty while the share is not mounted
    assert main(["index", str(share)]) == 2
    err = capsys.readouterr().err
    assert "is empty, but the catalog holds 2 photos from it" in err and "--allow-empty" in err
    assert {p.status for p in photos_by_path(home).values()} == {"indexed"}  # nothing marked missing
    assert main(["index", str(share), "--allow-empty"]) == 0  # really deleted: marked missing, rows kept
    capsys.readouterr()
    assert {p.status for p in photos_by_path(home).values()} == {"missing"}
    share.rmdir()
    hidden.rename(share)  # mounted again: both come back with their tags
    index(capsys, share)
    assert {p.status for p in photos_by_path(home).values()} == {"indexed"}


def test_keywords_in_files_become_file_tags(home, photos, capsys) -> None:  # noqa: ANN001
    import piexif

    photo = photos / "library/people/grace_hopper.jpg"
    exif = piexif.dump({"0th": {piexif.ImageIFD.XPKeywords: "harbour;老照片".encode("utf-16le") + b"\0\0"}})
    piexif.insert(exif, str(photo))
    index(capsys, photo)
    tags = tags_of(home, photo)
    assert tags["harbour"] == ("file", ACCEPTED, None) and tags["老照片"] == ("file", ACCEPTED, None)
    # New keywords in the file replace the old ones it carried (a person's tags would stay).
    exif = piexif.dump({"0th": {piexif.ImageIFD.XPKeywords: "lighthouse".encode("utf-16le") + b"\0\0"}})
    piexif.insert(exif, str(photo))
    summary = index(capsys, photo)
    assert summary["changed"] == 1
    tags = tags_of(home, photo)
    assert "harbour" not in tags and tags["lighthouse"] == ("file", ACCEPTED, None)


def test_raw_files_go_through_the_decoder_and_are_recorded(home, tmp_path, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "raws"
    folder.mkdir()
    (folder / "IMG_0001.CR2").write_bytes(b"not really a raw file" * 50)
    (folder / "ok.jpg").write_bytes((PHOTOS / "library/space/rocket.jpg").read_bytes())
    summary = index(capsys, folder)
    assert (summary["new"], summary["failed"], summary["tagged"]) == (2, 1, 1)
    [failure] = summary["failures"]
    assert failure["path"].endswith("IMG_0001.CR2") and failure["reason"] in {"unsupported", "corrupt"}


def test_storing_results_replaces_suggestions_and_keeps_decisions(tmp_path) -> None:  # noqa: ANN001
    """A batch's results, stored in bulk: suggestions that no longer fire go, those that fire again get the
    new score and model version, a person's accept or reject stays (with the new score where it fired),
    new tags are suggested — each photo by its own rows; the embedding is inserted, then replaced; the
    photo rows are marked indexed."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from indexer.index import Indexer, IndexSummary, _Work
    from indexer.schema import SOURCE_MODEL

    names = ["a", "b", "c", "d", "e"]
    old = "old@1"
    before = {1: {"a": "suggested", "b": "suggested", "c": ACCEPTED, "d": REJECTED},
              2: {"a": "suggested", "e": REJECTED}}
    with Catalog.open(tmp_path / "catalog") as catalog:
        with catalog.session() as session, session.begin():
            tags = [Tag(name=name, kind="builtin", threshold=0.5) for name in names]
            photos = [Photo(path=f"/p{n}.jpg", size=1, mtime_ns=1, status="pending", attempts=0,
                            first_seen=datetime.now(UTC), last_seen=datetime.now(UTC)) for n in (1, 2)]
            session.add_all([*tags, *photos])
            session.flush()
            ids = {t.name: t.id for t in tags}
            pid = {1: photos[0].id, 2: photos[1].id}
            for n, states in before.items():
                for name, state in states.items():
                    session.add(PhotoTag(photo_id=pid[n], tag_id=ids[name], score=0.6, source=SOURCE_MODEL,
                                         state=state, model_version=old, updated_at=datetime.now(UTC)))
        tagger = SimpleNamespace(bundle=SimpleNamespace(version="new@2"), thresholds=np.full(5, 0.5, np.float32))
        embedder = SimpleNamespace(bundle=SimpleNamespace(version="clip@1"))
        indexer = Indexer(catalog, tagger, embedder)
        indexer._tag_ids = np.asarray([ids[n] for n in names])  # noqa: SLF001 - the vocabulary sync's result
        work = {n: _Work(pid[n], f"/p{n}.jpg", None, True, True) for n in (1, 2)}
        # Photo 1: b and c fire again, e is new, a (suggested) and d (rejected) do not fire.
        # Photo 2: a fires again, e (rejected) fires.
        probs = {1: np.asarray([0.1, 0.9, 0.8, 0.2, 0.7], np.float32), 2: np.asarray([0.95, 0, 0, 0, 0.85], np.float32)}
        for vector in (np.ones(4, np.float32), np.arange(4, dtype=np.float32)):
            summary = IndexSummary()
            with catalog.session() as session, session.begin():
                indexer._store_results(session, [(work[n], probs[n], vector * n) for n in (1, 2)],  # noqa: SLF001
                                       summary)
            assert summary.tagged == summary.embedded == 2
        with catalog.session() as session:
            rows = {(p, t): (state, round(score, 3), version) for p, t, state, score, version in session.execute(
                select(PhotoTag.photo_id, PhotoTag.tag_id, PhotoTag.state, PhotoTag.score, PhotoTag.model_version))}
            vectors = {e.photo_id: e.vector for e in session.scalars(select(Embedding))}
            states = {(p.status, p.tagger_version, p.embedder_version) for p in session.scalars(select(Photo))}
    assert rows == {(pid[1], ids["b"]): ("suggested", 0.9, "new@2"), (pid[1], ids["c"]): (ACCEPTED, 0.8, "new@2"),
                    (pid[1], ids["d"]): (REJECTED, 0.6, old), (pid[1], ids["e"]): ("suggested", 0.7, "new@2"),
                    (pid[2], ids["a"]): ("suggested", 0.95, "new@2"), (pid[2], ids["e"]): (REJECTED, 0.85, "new@2")}
    assert set(vectors) == {pid[1], pid[2]}
    # The second round's vectors replaced the first's (stored as float16, read back as unit vectors).
    last = np.arange(4) / np.linalg.norm(np.arange(4))
    assert np.allclose(vectors[pid[2]], last, atol=1e-3) and np.allclose(vectors[pid[1]], last, atol=1e-3)
    assert states == {("indexed", "new@2", "clip@1")}
