"""End to end through `phototag write-metadata` / `undo-metadata` on copies of ../shared/photos.

Round trips are read back by exiftool and exiv2 (skipped, with the reason, where they are not
installed: `./dev test` installs both) and by Phototag's own reader.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select, update

from indexer.catalog import Catalog
from indexer.metadata import _files, embed, journal
from indexer.metadata.embed import JpegFile
from indexer.metadata.read import read_photo_info
from indexer.pipeline import content_hash
from indexer.schema import ACCEPTED, REJECTED, SOURCE_MODEL, Photo, PhotoTag, Tag
from main import main
from tests.conftest import PHOTOS
from tests.indexer.metadata.helpers import copy_indexed, index_once, needs, run, tag

# One photo of each kind: camera EXIF with a Canon maker note, EXIF orientation, no EXIF at all, an
# existing Adobe XMP packet, a non-standard XMP header, MPO, WebP, HEIC, PNG.
SAMPLES = {
    "canon_flower.jpg": "flowers/canon_flower.jpg",
    "hopper_orientation_6.jpg": "orientation/hopper_orientation_6.jpg",
    "grace_hopper.jpg": "people/grace_hopper.jpg",
    "hubble_deep_field.jpg": "space/hubble_deep_field.jpg",
    "dahlia.jpg": "flowers/dahlia.jpg",
    "sugarshack.mpo": "travel/sugarshack.mpo",
    "flower.webp": "flowers/flower.webp",
    "pug.heic": "animals/pug.heic",
    "chelsea.png": "animals/chelsea.png",
}
JPEGS = ["canon_flower.jpg", "hopper_orientation_6.jpg", "grace_hopper.jpg", "hubble_deep_field.jpg", "dahlia.jpg",
         "sugarshack.mpo"]
NOT_EMBEDDED = ["flower.webp", "pug.heic", "chelsea.png"]
EXIFTOOL_FIELDS = ["-XMP:Subject", "-XMP:HierarchicalSubject", "-XMP:TagsList", "-XMP:LastKeywordXMP",
                   "-EXIF:XPKeywords"]


def exiftool(*paths: Path, options: tuple[str, ...] = ()) -> dict[str, dict]:
    needs("exiftool")
    out = subprocess.run(["exiftool", "-j", "-charset", "filename=utf8", *options, *EXIFTOOL_FIELDS,
                          *map(str, paths)], capture_output=True, text=True, check=True).stdout
    return {Path(entry["SourceFile"]).name: entry for entry in json.loads(out)}


def exiv2(path: Path) -> dict[str, str]:
    """exiv2 -px: XMP key -> value (lists as 'a, b')."""
    needs("exiv2")
    out = subprocess.run(["exiv2", "-px", str(path)], capture_output=True, text=True).stdout
    values = {}
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3:
            values[parts[0]] = parts[3] if len(parts) == 4 else ""
    return values


def as_list(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value is not None else []


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (digest(p), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def photo_row(home: Path, photo: Path) -> Photo:
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        return session.scalar(select(Photo).where(Photo.path == str(photo)))


def copy_samples(folder: Path, names: list[str] | dict[str, str] = SAMPLES) -> Path:
    """Writable copies (../shared/photos is read-only)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(PHOTOS / "library" / SAMPLES[name], folder / name)
    return folder


@pytest.fixture(scope="module")
def template(tmp_path_factory, model_dir) -> Path:  # noqa: ANN001
    """The samples indexed once per module (indexing them costs seconds): ``lib/`` and ``home/catalog``."""
    root = tmp_path_factory.mktemp("indexed")
    copy_samples(root / "lib")
    return index_once(root, model_dir)


@pytest.fixture()
def indexed(home, template, tmp_path) -> Path:  # noqa: ANN001
    """A copy of the indexed samples (files with their mtimes, catalog with its paths moved), each with a
    person's tag 'keepsake'."""
    library = copy_indexed(template, home, tmp_path)
    for name in SAMPLES:
        tag(home, library / name, "keepsake")
    return library


def written(report: dict) -> list[str]:
    return [f["target"] for f in report["files"] if f["status"] == "written"]


# --- what gets written -------------------------------------------------------------------------


def test_dry_run_shows_the_keywords_and_changes_nothing(home, indexed, capsys) -> None:  # noqa: ANN001
    before = snapshot(indexed)
    report = run(capsys, "write-metadata", "--dry-run", "--mode", "both")
    assert report["dry_run"] and report["run"] is None
    files = {(Path(f["target"]).name, f["kind"]): f for f in report["files"]}
    assert {f["status"] for f in files.values()} == {"would_write"}
    assert files["canon_flower.jpg", "embedded"]["added"] == ["keepsake"]
    assert files["canon_flower.jpg.xmp", "sidecar"]["created"]
    assert ("flower.webp", "embedded") not in files and files["flower.webp.xmp", "sidecar"]["notes"]
    assert snapshot(indexed) == before
    assert not (home / "catalog" / journal.RUNS_FOLDER).exists()
    # The plain text lists each file with its changes.
    assert main(["write-metadata", "--mode", "sidecar", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "would write sidecar" in out.out and "+keepsake" in out.out and "nothing was changed" in out.err


def test_sidecars_for_every_format_read_back_in_exiftool_exiv2_and_phototag(home, indexed, capsys) -> None:  # noqa: ANN001
    photos_before = {name: digest(indexed / name) for name in SAMPLES}
    tag(home, indexed / "chelsea.png", "猫咪 & Café")
    report = run(capsys, "write-metadata", "--mode", "sidecar")
    assert len(written(report)) == len(SAMPLES) and report["counts"]["skipped"] == 0
    assert {name: digest(indexed / name) for name in SAMPLES} == photos_before  # photos untouched
    sidecars = [indexed / f"{name}.xmp" for name in SAMPLES]
    read = exiftool(*sidecars)
    for sidecar in sidecars:
        facts = read[sidecar.name]
        for field in ("Subject", "HierarchicalSubject", "TagsList", "LastKeywordXMP"):
            assert "keepsake" in as_list(facts.get(field)), (sidecar.name, field, facts)
        assert "keepsake" in read_photo_info(sidecar.with_suffix("")).keywords  # Phototag's own reader
    assert as_list(read["chelsea.png.xmp"]["Subject"])[-1] == "猫咪 & Café"
    xmp = exiv2(indexed / "chelsea.png.xmp")
    assert xmp["Xmp.dc.subject"].split(", ") == as_list(read["chelsea.png.xmp"]["Subject"])
    for key in ("Xmp.lr.hierarchicalSubject", "Xmp.digiKam.TagsList", "Xmp.MicrosoftPhoto.LastKeywordXMP"):
        assert "keepsake" in xmp[key] and "猫咪 & Café" in xmp[key]
    assert xmp["Xmp.phototag.Keywords[1]/phototag:name"] == "keepsake"
    assert xmp["Xmp.phototag.Keywords[1]/phototag:confirmed"] == "True"
    # A second run finds nothing to do.
    again = run(capsys, "write-metadata", "--mode", "sidecar")
    assert again["run"] is None and again["counts"]["unchanged"] == len(SAMPLES)


def test_embedding_into_jpegs_keeps_pixels_scan_data_and_exif(home, indexed, capsys) -> None:  # noqa: ANN001
    originals = {name: (indexed / name).read_bytes() for name in SAMPLES}
    tag(home, indexed / "canon_flower.jpg", "狗", name_zh="狗")
    report = run(capsys, "write-metadata", "--mode", "embed", "--keep-mtime")
    kinds = {Path(f["target"]).name: f["kind"] for f in report["files"] if f["status"] == "written"}
    assert {name for name, kind in kinds.items() if kind == "embedded"} == set(JPEGS)
    assert {name for name, kind in kinds.items() if kind == "sidecar"} == {f"{n}.xmp" for n in NOT_EMBEDDED}
    for name in NOT_EMBEDDED:
        assert (indexed / name).read_bytes() == originals[name]
    read = exiftool(*(indexed / name for name in JPEGS), options=("-EXIF:Orientation", "-Make", "-Model"))
    for name in JPEGS:
        path, before = indexed / name, originals[name]
        after = path.read_bytes()
        assert JpegFile.parse(after).scan == JpegFile.parse(before).scan  # SOS..EOI byte-identical
        assert embed.pixel_digest(after) == embed.pixel_digest(before)
        assert os.stat(path).st_mtime_ns == photo_row(home, path).mtime_ns  # --keep-mtime; catalog follows
        assert photo_row(home, path).content_hash == content_hash(str(path))
        facts = read[name]
        for field in ("Subject", "HierarchicalSubject", "TagsList", "LastKeywordXMP"):
            assert "keepsake" in as_list(facts.get(field)), (name, field)
        assert "keepsake" in read_photo_info(path).keywords
        xmp = exiv2(path)
        assert "keepsake" in xmp["Xmp.dc.subject"] and xmp["Xmp.phototag.Keywords[1]/phototag:name"]
    # XPKeywords where there is EXIF (the camera's, the orientation file's), none added where there is not.
    assert as_list(read["canon_flower.jpg"]["XPKeywords"]) == ["keepsake;狗"]
    assert read["canon_flower.jpg"]["Make"] == "Canon" and read["hopper_orientation_6.jpg"]["Orientation"]
    assert "XPKeywords" not in read["grace_hopper.jpg"]
    # The catalog row follows the rewritten file: no "changed since indexing", no model work again.
    assert run(capsys, "write-metadata", "--mode", "embed")["counts"]["skipped"] == 0
    summary = run(capsys, "index", indexed)
    assert summary["tagged"] == summary["embedded"] == summary["changed"] == 0


def test_existing_keywords_are_kept_and_only_phototags_own_are_removed(home, tmp_path, capsys) -> None:  # noqa: ANN001
    needs("exiftool")
    library = copy_samples(tmp_path / "lib", ["canon_flower.jpg", "flower.webp"])
    jpeg, heic = library / "canon_flower.jpg", library / "flower.webp"
    # Another tool's keywords: embedded in the JPEG, and in a sidecar next to the HEIC.
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=Holiday", "-XMP-dc:Subject=Family",
                    "-IPTC:Keywords=Holiday", str(jpeg)], check=True)
    subprocess.run(["exiftool", "-q", "-o", str(heic) + ".xmp", "-XMP-dc:Subject=Beach", str(heic)], check=True)
    run(capsys, "index", library)
    for photo in (jpeg, heic):
        tag(home, photo, "keepsake")
        tag(home, photo, "sunset")
    tag(home, jpeg, "Holiday", state=REJECTED)  # a keyword another tool wrote: not ours to remove
    run(capsys, "write-metadata", "--mode", "both")
    read = exiftool(jpeg, jpeg.with_name(jpeg.name + ".xmp"), heic.with_name(heic.name + ".xmp"))
    assert as_list(read["canon_flower.jpg"]["Subject"]) == ["Holiday", "Family", "keepsake", "sunset"]
    # The new sidecar of the JPEG starts with the photo's own keywords, so sidecar-first tools see them too.
    assert as_list(read["canon_flower.jpg.xmp"]["Subject"]) == ["Holiday", "Family", "keepsake", "sunset"]
    assert as_list(read["flower.webp.xmp"]["Subject"]) == ["Beach", "keepsake", "sunset"]

    tag(home, jpeg, "sunset", state=REJECTED)
    tag(home, heic, "sunset", state=REJECTED)
    report = run(capsys, "write-metadata", "--mode", "both")
    assert {tuple(f["removed"]) for f in report["files"] if f["status"] == "written"} == {("sunset",)}
    read = exiftool(jpeg, heic.with_name(heic.name + ".xmp"))
    assert as_list(read["canon_flower.jpg"]["Subject"]) == ["Holiday", "Family", "keepsake"]
    # A path list Phototag starts holds the photo's keywords too: darktable and Immich read only that list.
    assert as_list(read["canon_flower.jpg"]["HierarchicalSubject"]) == ["Holiday", "Family", "keepsake"]
    assert as_list(read["flower.webp.xmp"]["Subject"]) == ["Beach", "keepsake"]


def test_chinese_keywords_and_suggested_tags_with_their_model_record(home, indexed, capsys) -> None:  # noqa: ANN001
    photo = indexed / "hubble_deep_field.jpg"
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        model_tags = session.execute(
            select(Tag.name, Tag.name_zh, PhotoTag.score, PhotoTag.model_version).join(PhotoTag)
            .join(Photo).where(Photo.path == str(photo), PhotoTag.source == SOURCE_MODEL)).all()
    assert len(model_tags) >= 2, "the tiny tagger fires tags on this photo (see tests/indexer/conftest.py)"
    accepted, suggested = model_tags[0], model_tags[1]
    tag(home, photo, accepted.name, state=ACCEPTED)
    report = run(capsys, "write-metadata", "tag:keepsake", "--lang", "both", "--include", "suggested",
                 "--mode", "embed")
    record = {f["target"]: f for f in report["files"]}[str(photo)]
    assert {accepted.name, accepted.name_zh, suggested.name, suggested.name_zh, "keepsake"} <= set(record["added"])
    again = run(capsys, "write-metadata", "tag:keepsake", "--lang", "both", "--include", "suggested", "--mode", "embed")
    assert again["run"] is None  # scores, versions and names read back exactly: nothing to rewrite
    needs("exiftool")
    out = subprocess.run(["exiftool", "-j", "-struct", "-XMP-phototag:Keywords", "-XMP:Subject", "-EXIF:XPKeywords",
                          str(photo)], capture_output=True, text=True, check=True).stdout
    facts = json.loads(out)[0]
    claims = {claim["Name"]: claim for claim in facts["Keywords"]}
    assert claims[accepted.name_zh]["Confirmed"] is True and claims[suggested.name_zh]["Confirmed"] is False
    assert claims[suggested.name]["Model"] + "@" + claims[suggested.name]["ModelVersion"] == suggested.model_version
    assert abs(claims[suggested.name]["Score"] - suggested.score) < 1e-3
    assert "Model" not in claims["keepsake"] and claims["keepsake"]["Source"] == "user"
    assert accepted.name_zh in as_list(facts["Subject"])
    assert accepted.name_zh in str(facts.get("XPKeywords", ""))
    # The model's suggestion is gone from the catalog (a re-tag dropped it): its keyword goes too.
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        tag_id = session.scalar(select(Tag.id).where(Tag.name == suggested.name))
        photo_id = session.scalar(select(Photo.id).where(Photo.path == str(photo)))
        session.delete(session.get(PhotoTag, (photo_id, tag_id)))
    report = run(capsys, "write-metadata", "tag:keepsake", "--lang", "both", "--mode", "embed")
    record = {f["target"]: f for f in report["files"]}[str(photo)]
    assert set(record["removed"]) == {suggested.name, suggested.name_zh} and not record["added"]


# --- safety ------------------------------------------------------------------------------------


def test_undo_restores_every_file_byte_for_byte(home, indexed, capsys) -> None:  # noqa: ANN001
    before = snapshot(indexed)
    rows_before = {name: photo_row(home, indexed / name).content_hash for name in JPEGS}
    first = run(capsys, "write-metadata", "--mode", "both")
    tag(home, indexed / "canon_flower.jpg", "second run")
    second = run(capsys, "write-metadata", "--mode", "both")
    assert first["run"] != second["run"] and snapshot(indexed) != before
    runs = run(capsys, "undo-metadata", "--list")
    assert [r["run"] for r in runs] == [first["run"], second["run"]]
    # Undo the last run, then the one before: the default is the newest not yet undone.
    assert run(capsys, "undo-metadata")["run"] == second["run"]
    undone = run(capsys, "undo-metadata")
    assert undone["run"] == first["run"] and undone["complete"]
    assert snapshot(indexed) == before  # bytes and mtimes; the sidecars it created are gone
    assert {name: photo_row(home, indexed / name).content_hash for name in JPEGS} == rows_before
    assert main(["undo-metadata"]) == 2
    assert "every run is already undone" in capsys.readouterr().err
    assert run(capsys, "index", indexed)["changed"] == 0


def test_permissions_owner_and_mtime_are_kept_through_write_and_undo(home, indexed, capsys) -> None:  # noqa: ANN001
    photo = indexed / "canon_flower.jpg"
    photo.chmod(0o640)
    if os.getuid() == 0:
        os.chown(photo, 65534, 65534)  # someone else's photo, written by root: it stays theirs
    before = os.stat(photo)
    run(capsys, "write-metadata", "--mode", "embed")
    after = os.stat(photo)
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    assert after.st_mtime_ns != before.st_mtime_ns  # no --keep-mtime: tools see that the file changed
    run(capsys, "undo-metadata")
    undone = os.stat(photo)
    assert (undone.st_mode, undone.st_uid, undone.st_gid, undone.st_mtime_ns) == (
        before.st_mode, before.st_uid, before.st_gid, before.st_mtime_ns)


def test_undo_skips_a_file_changed_since_the_run_unless_forced(home, indexed, capsys) -> None:  # noqa: ANN001
    original = (indexed / "canon_flower.jpg").read_bytes()
    report = run(capsys, "write-metadata", "--mode", "embed")
    with open(indexed / "canon_flower.jpg", "ab") as handle:
        handle.write(b"edited elsewhere")
    (indexed / "flower.webp.xmp").write_text("edited elsewhere")
    undo = run(capsys, "undo-metadata", code=1)
    skipped = {Path(f["path"]).name for f in undo["files"] if f["status"] == "skipped"}
    assert skipped == {"canon_flower.jpg", "flower.webp.xmp"}
    assert (indexed / "flower.webp.xmp").read_text() == "edited elsewhere"
    assert run(capsys, "undo-metadata", report["run"], "--force")["complete"]
    assert (indexed / "canon_flower.jpg").read_bytes() == original and not (indexed / "flower.webp.xmp").exists()


def test_an_interrupted_write_leaves_the_original_intact(home, indexed, capsys, monkeypatch) -> None:  # noqa: ANN001
    before = snapshot(indexed)
    calls = []

    def crash(source: str, target: str, **_dir_fds: int) -> None:
        calls.append(target)
        raise OSError(errno.EIO, "simulated crash before the rename")

    with monkeypatch.context() as patch:
        patch.setattr(_files.os, "replace", crash)
        report = run(capsys, "write-metadata", "--mode", "both", code=1)
    assert calls and {f["status"] for f in report["files"]} == {"skipped"}
    assert snapshot(indexed) == before  # no temporary file left behind either
    # Undo of that run has nothing to do: the journal recorded the plans, the files never changed.
    assert {f["status"] for f in run(capsys, "undo-metadata")["files"]} == {"unchanged"}


def test_a_photo_is_written_completely_or_not_at_all(home, indexed, capsys, monkeypatch) -> None:  # noqa: ANN001
    """--mode both: the JPEG is replaced, then its sidecar fails — the JPEG is put back."""
    original = (indexed / "canon_flower.jpg").read_bytes()
    real_replace = os.replace

    def fail_on_sidecars(source: str, target: str, **dir_fds: int) -> None:
        if str(target).endswith(".xmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target, **dir_fds)

    monkeypatch.setattr(_files.os, "replace", fail_on_sidecars)
    report = run(capsys, "write-metadata", "--mode", "both", code=1)
    canon = [f for f in report["files"] if Path(f["photo"]).name == "canon_flower.jpg"]
    assert {(f["kind"], f["status"], f["reason"]) for f in canon} == {("embedded", "skipped", "disk_full"),
                                                                    ("sidecar", "skipped", "disk_full")}
    assert (indexed / "canon_flower.jpg").read_bytes() == original
    assert photo_row(home, indexed / "canon_flower.jpg").content_hash == content_hash(str(indexed / "canon_flower.jpg"))


def test_a_crash_between_journal_and_rename_is_undone_cleanly(home, indexed, capsys, monkeypatch) -> None:  # noqa: ANN001
    before = snapshot(indexed)

    def killed(self) -> None:  # noqa: ANN001
        raise KeyboardInterrupt  # the process dies here: backup and journal written, nothing renamed

    with monkeypatch.context() as patch:
        patch.setattr(_files.Staged, "commit", killed)
        assert main(["write-metadata", "--mode", "embed"]) == 130
    capsys.readouterr()
    assert snapshot(indexed) == before
    undo = run(capsys, "undo-metadata")
    assert {f["status"] for f in undo["files"]} == {"unchanged"}


def test_full_disk_read_only_files_and_folders_are_reported_and_skipped(home, indexed, capsys,  # noqa: ANN001
                                                                        monkeypatch) -> None:
    real_stage = _files.Folder.stage

    def full(self, name: str, data: bytes, **options) -> _files.Staged:  # noqa: ANN001, ANN003
        if name.startswith("hopper_orientation_6.jpg"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_stage(self, name, data, **options)

    monkeypatch.setattr(_files.Folder, "stage", full)
    locked = indexed / "grace_hopper.jpg"
    locked.chmod(0o444)
    folder = indexed / "readonly"
    folder.mkdir()
    moved = folder / "chelsea.png"
    os.rename(indexed / "chelsea.png", moved)  # a move the catalog knows about (as 'phototag index' records it)
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        session.execute(update(Photo).where(Photo.path == str(indexed / "chelsea.png")).values(path=str(moved)))
    folder.chmod(0o555)
    before = snapshot(indexed)
    try:
        report = run(capsys, "write-metadata", "--mode", "embed", code=1)
    finally:
        folder.chmod(0o755)
    skipped = {Path(f["photo"]).name: f["reason"] for f in report["files"] if f["status"] == "skipped"}
    assert skipped == {"grace_hopper.jpg": "read_only", "chelsea.png": "read_only",
                       "hopper_orientation_6.jpg": "disk_full"}
    after = snapshot(indexed)
    for name in ("grace_hopper.jpg", "hopper_orientation_6.jpg", "readonly/chelsea.png"):
        assert after[name] == before[name]
    assert not (folder / "chelsea.png.xmp").exists()
    assert len(written(report)) == len(SAMPLES) - 3  # the others were written
    messages = " ".join(f["message"] for f in report["files"] if f["status"] == "skipped")
    assert "read-only" in messages and "No space left" in messages


def test_a_file_changed_since_indexing_is_skipped(home, indexed, capsys) -> None:  # noqa: ANN001
    changed = indexed / "canon_flower.jpg"
    with Image.open(changed) as image:
        image.rotate(180).save(changed, quality=90)
    before = changed.read_bytes()
    report = run(capsys, "write-metadata", "--mode", "sidecar", code=1)
    skipped = [f for f in report["files"] if f["status"] == "skipped"]
    assert [(Path(f["photo"]).name, f["reason"]) for f in skipped] == [("canon_flower.jpg", "changed")]
    assert "phototag index" in skipped[0]["message"]
    assert changed.read_bytes() == before and not changed.with_name(changed.name + ".xmp").exists()


def written_pixels_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file the writer produces decodes to other pixels than its original (each second digest differs)."""
    real_digest = embed.pixel_digest
    seen: list[bytes] = []

    def different_pixels(data: bytes) -> tuple:
        seen.append(data)
        mode, size, value = real_digest(data)
        return (mode, size, value if len(seen) % 2 else "different")

    monkeypatch.setattr(embed, "pixel_digest", different_pixels)


def test_a_failed_verification_keeps_the_original(home, indexed, capsys, monkeypatch) -> None:  # noqa: ANN001
    written_pixels_differ(monkeypatch)
    before = snapshot(indexed)
    tag(home, indexed / "canon_flower.jpg", "flower")
    report = run(capsys, "write-metadata", "tag:flower", "--mode", "embed", code=1)
    assert {(f["status"], f["reason"]) for f in report["files"]} == {("skipped", "verify_failed")}
    assert snapshot(indexed) == before


def test_an_unreadable_sidecar_is_never_overwritten(home, indexed, capsys) -> None:  # noqa: ANN001
    sidecar = indexed / "chelsea.png.xmp"
    sidecar.write_bytes(b"<x:xmpmeta><not closed")
    report = run(capsys, "write-metadata", "--mode", "sidecar", code=1)
    skipped = [f for f in report["files"] if f["status"] == "skipped"]
    assert [(Path(f["photo"]).name, f["reason"]) for f in skipped] == [("chelsea.png", "unreadable_xmp")]
    assert sidecar.read_bytes() == b"<x:xmpmeta><not closed"


def test_sidecar_naming_replace_writes_img_xmp(home, indexed, capsys) -> None:  # noqa: ANN001
    report = run(capsys, "write-metadata", "--mode", "sidecar", "tag:keepsake", "--sidecar-naming", "replace")
    targets = {Path(f["target"]).name for f in report["files"]}
    assert "canon_flower.xmp" in targets and "canon_flower.jpg.xmp" not in targets
    assert "keepsake" in read_photo_info(indexed / "canon_flower.jpg").keywords


def test_a_file_report_reads_as_one_line_for_the_cli_and_the_app() -> None:
    from indexer.metadata.write import FileReport

    wrote = FileReport("/p/a.jpg", "/p/a.jpg.xmp", "sidecar", "written", added=("dog",), removed=("cat",), created=True)
    assert wrote.line() == "wrote sidecar /p/a.jpg.xmp (new): +dog  -cat"
    record = FileReport("/p/a.jpg", "/p/a.jpg", "embedded", "would_write")
    assert record.line() == "would write embedded /p/a.jpg: (only Phototag's record of its keywords changed)"
    skipped = FileReport("/p/a.jpg", None, None, "skipped", message="a.jpg: unreadable")
    assert skipped.line() == "skipped: a.jpg: unreadable"
    assert FileReport("/p/a.jpg", None, None, "unchanged").line() == "unchanged: /p/a.jpg"


def test_write_metadata_takes_its_defaults_from_the_settings(home, indexed, capsys, monkeypatch) -> None:  # noqa: ANN001
    """PHOTOTAG_METADATA_PROFILE / _MODE / _LANG / PHOTOTAG_SIDECAR_NAMING are settings like any other; flags win."""
    monkeypatch.setenv("PHOTOTAG_METADATA_PROFILE", "darktable")  # darktable: sidecars, IMG.jpg.xmp
    monkeypatch.setenv("PHOTOTAG_SIDECAR_NAMING", "replace")
    report = run(capsys, "write-metadata", "--dry-run", "tag:keepsake")
    targets = {Path(f["target"]).name for f in report["files"]}
    assert "canon_flower.xmp" in targets and not any(name.endswith(".jpg") for name in targets)
    monkeypatch.setenv("PHOTOTAG_METADATA_MODE", "embed")
    report = run(capsys, "write-metadata", "--dry-run", "tag:keepsake", "--mode", "sidecar")  # the flag wins
    assert not any(f["kind"] == "embedded" for f in report["files"])
    monkeypatch.setenv("PHOTOTAG_METADATA_PROFILE", "nonsense")
    assert main(["write-metadata", "--dry-run"]) == 2
    assert "PHOTOTAG_METADATA_PROFILE='nonsense'" in (err := capsys.readouterr().err) and "unknown profile" in err
