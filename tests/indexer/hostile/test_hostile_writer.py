"""Hostile archives against `write-metadata`, `undo-metadata` and the metadata reader (issue 15, items 2-4, 10).

Every case is built in a temp folder next to an "outside" folder the library must never reach: links
planted where a sidecar belongs (before or after a run), a FIFO or a device node where a sidecar
belongs, two photos sharing one sidecar, temporaries left by a kill, and model names that climb out of
the store. Each asserts that the run finishes, the good photos are written, the bad one is reported
with a reason, nothing outside changed and the catalog's lock is free again.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from indexer.catalog import Catalog
from indexer.metadata.read import read_photo_info
from indexer.metadata.xmp import XmpPacket
from indexer.schema import REJECTED, Photo, PhotoTag, Tag
from main import main
from tests.conftest import REPO
from tests.indexer.metadata.test_write import tag as give  # a person's tag on a photo
from tests.indexer.metadata.test_write import written_pixels_differ

OUTSIDE_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
               b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
               b"<rdf:li>secret</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>")
HUNG = 180  # seconds: a pass over three tiny photos takes a few; past this it is stuck, not slow


# --- building cases ----------------------------------------------------------------------------


def picture(path: Path, seed: int) -> Path:
    """A small distinct image (noise), in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def library(root: Path, *names: str) -> Path:
    folder = root / "lib"
    for seed, name in enumerate(names):
        picture(folder / name, seed)
    return folder


def index(capsys, folder: Path) -> None:  # noqa: ANN001
    assert main(["index", str(folder), "--json"]) == 0
    capsys.readouterr()


def tags_of(home: Path, photo: Path) -> set[str]:
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        return set(session.scalars(select(Tag.name).join(PhotoTag, PhotoTag.tag_id == Tag.id).join(
            Photo, Photo.id == PhotoTag.photo_id).where(Photo.path == str(photo))))


def run(capsys, *args: str, code: int = 0) -> dict:  # noqa: ANN001
    result = main([*map(str, args), "--json"])
    out = capsys.readouterr()
    assert result == code, out.err
    return json.loads(out.out)


def tree(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` as it is, links and special files included (nothing followed)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            found[str(path.relative_to(folder))] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            found[str(path.relative_to(folder))] = ("file", path.read_bytes(), info.st_mtime_ns)
        else:
            found[str(path.relative_to(folder))] = (stat.S_IFMT(info.st_mode),)
    return found


def by_photo(report: dict) -> dict[str, list[tuple[str, str | None]]]:
    """Photo name -> [(status, reason)] of its files."""
    found: dict[str, list] = {}
    for entry in report["files"]:
        found.setdefault(Path(entry["photo"]).name, []).append((entry["status"], entry["reason"]))
    return found


def lock_is_free(home: Path) -> bool:
    with Catalog.open(home / "catalog", create=False) as catalog, catalog.writer(0, task="test"):
        return True


def cli(*args: str, timeout: float = HUNG) -> subprocess.CompletedProcess:
    """The real CLI in its own process. If it has not finished in ``timeout`` seconds it is stuck: it gets
    SIGTERM, as a job manager would send, and the test fails — saying whether SIGTERM ended it."""
    process = subprocess.Popen([sys.executable, str(REPO / "main.py"), *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
            ended = "SIGTERM ended it"
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            ended = "and SIGTERM did not end it either"
        pytest.fail(f"phototag {' '.join(args)} hung for {timeout} s ({ended})")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


# --- item 2: links -----------------------------------------------------------------------------


def test_a_sidecar_link_pointing_outside_is_neither_read_nor_written_through(home, tmp_path, capsys) -> None:  # noqa: ANN001
    lib = library(tmp_path, "a.jpg", "b.jpg", "c.jpg")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs.xmp").write_bytes(OUTSIDE_XMP)
    os.symlink(outside / "theirs.xmp", lib / "a.jpg.xmp")  # a link to someone else's file
    os.symlink(outside / "new.xmp", lib / "b.jpg.xmp")  # a dangling link: writing would create the file there
    before = tree(outside)
    index(capsys, lib)
    assert "secret" not in tags_of(home, lib / "a.jpg")  # not read through the link either
    assert any("link" in note for note in read_photo_info(lib / "a.jpg").warnings)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        give(home, lib / name, "keepsake")

    report = run(capsys, "write-metadata", "--mode", "sidecar", code=1)
    assert by_photo(report) == {"a.jpg": [("skipped", "link")], "b.jpg": [("skipped", "link")],
                                "c.jpg": [("written", None)]}
    assert all(str(lib / name) in entry["message"] for name in ("a.jpg.xmp", "b.jpg.xmp")
               for entry in report["files"] if entry["target"] == str(lib / name))
    assert tree(outside) == before
    assert os.readlink(lib / "a.jpg.xmp") == str(outside / "theirs.xmp")
    assert "keepsake" in read_photo_info(lib / "c.jpg").keywords
    assert lock_is_free(home)


def test_embedding_never_writes_through_a_photo_replaced_by_a_link(home, tmp_path, capsys) -> None:  # noqa: ANN001
    """A photo moved out and replaced by a link to it (same size and mtime, as the catalog knows them):
    embedding would rewrite the file outside the library; it gets a sidecar next to the link instead."""
    lib = library(tmp_path, "a.jpg", "b.jpg")
    index(capsys, lib)
    for name in ("a.jpg", "b.jpg"):
        give(home, lib / name, "keepsake")
    outside = tmp_path / "outside"
    outside.mkdir()
    (lib / "a.jpg").rename(outside / "theirs.jpg")
    os.symlink(outside / "theirs.jpg", lib / "a.jpg")
    before = tree(outside)
    report = run(capsys, "write-metadata", "--mode", "embed")
    [linked] = [entry for entry in report["files"] if entry["photo"] == str(lib / "a.jpg")]
    assert (linked["kind"], linked["status"], linked["target"]) == ("sidecar", "written", str(lib / "a.jpg.xmp"))
    assert any("link" in note for note in linked["notes"])
    assert by_photo(report)["b.jpg"] == [("written", None)]
    assert tree(outside) == before and (lib / "a.jpg").is_symlink()


def test_a_photo_folder_swapped_for_a_link_after_indexing_is_never_written_into(home, tmp_path, capsys) -> None:  # noqa: ANN001
    """The folder moved away and a link to it put in its place: the photo still has its size and mtime
    there, but writing would follow the link out of the library."""
    lib = library(tmp_path, "sub/a.jpg", "b.jpg")
    index(capsys, lib)
    for name in ("sub/a.jpg", "b.jpg"):
        give(home, lib / name, "keepsake")
    outside = tmp_path / "outside"
    (lib / "sub").rename(outside)
    os.symlink(outside, lib / "sub")
    before = tree(outside)
    report = run(capsys, "write-metadata", "--mode", "sidecar", code=1)
    assert by_photo(report) == {"a.jpg": [("skipped", "link")], "b.jpg": [("written", None)]}
    assert tree(outside) == before


def test_a_sidecar_hard_linked_to_a_file_outside_gets_its_own_copy(home, tmp_path, capsys) -> None:  # noqa: ANN001
    """A hard link cannot be told from the file: writing replaces the name (a rename), never the shared
    bytes, so the file outside keeps them; so does undo."""
    lib = library(tmp_path, "a.jpg")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs.xmp").write_bytes(OUTSIDE_XMP)
    os.link(outside / "theirs.xmp", lib / "a.jpg.xmp")
    index(capsys, lib)
    give(home, lib / "a.jpg", "keepsake")
    before = tree(outside)
    [entry] = run(capsys, "write-metadata", "--mode", "sidecar")["files"]
    assert entry["status"] == "written" and any("hard links" in note for note in entry["notes"])
    assert tree(outside) == before and (lib / "a.jpg.xmp").stat().st_nlink == 1
    assert run(capsys, "undo-metadata")["complete"]
    assert tree(outside) == before and (lib / "a.jpg.xmp").read_bytes() == OUTSIDE_XMP


def test_undo_force_never_acts_through_a_link_planted_after_the_run(home, tmp_path, capsys) -> None:  # noqa: ANN001
    lib = library(tmp_path, "a.jpg", "b.jpg")
    (lib / "b.jpg.xmp").write_bytes(OUTSIDE_XMP.replace(b"secret", b"theirs"))  # an existing sidecar, merged
    index(capsys, lib)
    for name in ("a.jpg", "b.jpg"):
        give(home, lib / name, "keepsake")
    report = run(capsys, "write-metadata", "--mode", "sidecar")
    assert by_photo(report) == {"a.jpg": [("written", None)], "b.jpg": [("written", None)]}

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.xmp").write_bytes(b"precious")
    (outside / "victim2.xmp").write_bytes(b"precious too")
    for sidecar, victim in (("a.jpg.xmp", "victim.xmp"), ("b.jpg.xmp", "victim2.xmp")):
        (lib / sidecar).unlink()
        os.symlink(outside / victim, lib / sidecar)
    before = tree(outside)
    undo = run(capsys, "undo-metadata", "--force", code=1)
    assert {(Path(f["path"]).name, f["status"], f["reason"]) for f in undo["files"]} == {
        ("a.jpg.xmp", "skipped", "link"), ("b.jpg.xmp", "skipped", "link")}
    assert tree(outside) == before
    assert (lib / "a.jpg.xmp").is_symlink() and (lib / "b.jpg.xmp").is_symlink()
    assert lock_is_free(home)


def test_undo_force_never_acts_in_a_folder_swapped_for_a_link_after_the_run(home, tmp_path, capsys) -> None:  # noqa: ANN001
    lib = library(tmp_path, "sub/a.jpg")
    index(capsys, lib)
    give(home, lib / "sub" / "a.jpg", "keepsake")
    run(capsys, "write-metadata", "--mode", "sidecar")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.jpg.xmp").write_bytes(b"precious")
    (lib / "sub").rename(tmp_path / "moved")
    os.symlink(outside, lib / "sub")  # the photo's folder is now a link to somewhere else
    before = tree(outside)
    undo = run(capsys, "undo-metadata", "--force", code=1)
    [entry] = undo["files"]
    assert (entry["status"], entry["reason"]) == ("skipped", "link") and "folder" in entry["message"]
    assert tree(outside) == before

def test_the_reader_never_reads_a_sidecar_through_a_folder_swapped_for_a_link(tmp_path) -> None:  # noqa: ANN001
    """Between the scan and the read of a photo's metadata its folder becomes a link to one outside the library,
    holding a sidecar of its own: the photo may still be read (the same bytes), its sidecar is not."""
    lib = library(tmp_path, "sub/a.jpg")
    (lib / "sub" / "a.jpg.xmp").write_bytes(OUTSIDE_XMP.replace(b"secret", b"mine"))
    assert read_photo_info(lib / "sub" / "a.jpg").keywords == ("mine",)
    outside = tmp_path / "outside"
    (lib / "sub").rename(outside)
    (outside / "a.jpg.xmp").write_bytes(OUTSIDE_XMP)
    os.symlink(outside, lib / "sub")
    info = read_photo_info(lib / "sub" / "a.jpg")
    assert "secret" not in info.keywords
    assert any("a.jpg.xmp ignored (a symbolic link" in note for note in info.warnings)


# --- item 3: FIFOs, devices, SIGTERM -----------------------------------------------------------


def test_a_fifo_or_device_where_a_sidecar_belongs_never_blocks(home, tmp_path) -> None:  # noqa: ANN001
    lib = library(tmp_path, "a.jpg", "b.jpg", "c.jpg", "d.jpg")
    os.mkfifo(lib / "a.jpg.xmp")
    os.symlink("/dev/zero", lib / "b.jpg.xmp")  # a link to a character device
    try:
        os.mknod(lib / "d.jpg.xmp", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of its own
        device = True
    except PermissionError:  # not root: the link above is the device case
        device = False
    done = cli("index", str(lib), "--json")
    assert done.returncode == 0, done.stderr
    assert any("not a regular file" in note for note in read_photo_info(lib / "a.jpg").warnings)
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        give(home, lib / name, "keepsake")

    done = cli("write-metadata", "--mode", "sidecar", "--json")
    assert done.returncode == 1, done.stderr
    expected = {"a.jpg": [("skipped", "not_a_file")], "b.jpg": [("skipped", "link")], "c.jpg": [("written", None)],
                "d.jpg": [("skipped", "not_a_file")] if device else [("written", None)]}
    assert by_photo(json.loads(done.stdout)) == expected
    assert stat.S_ISFIFO((lib / "a.jpg.xmp").lstat().st_mode) and (lib / "b.jpg.xmp").is_symlink()
    assert lock_is_free(home)


def test_sigterm_ends_write_metadata_after_the_current_photo(home, tmp_path, capsys) -> None:  # noqa: ANN001
    """SIGTERM arrives while the first photo is being written (right after its journal record): that
    photo is finished, the others are left alone, the exit code says interrupted, and the run undoes."""
    lib = library(tmp_path, "a.jpg", "b.jpg", "c.jpg")
    index(capsys, lib)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        give(home, lib / name, "keepsake")
    script = ("import os, signal, sys\n"
              "from indexer.metadata.journal import Journal\n"
              "record = Journal.record_change\n"
              "def terminated(*args, **kwargs):\n"
              "    record(*args, **kwargs)\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "Journal.record_change = terminated\n"
              "from main import main\n"
              "sys.exit(main(['write-metadata', '--mode', 'sidecar', '--json']))\n")
    process = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                             timeout=HUNG)
    assert process.returncode == 130, process.stderr
    report = json.loads(process.stdout)
    assert report["interrupted"] and by_photo(report) == {"a.jpg": [("written", None)]}
    assert (lib / "a.jpg.xmp").is_file() and not (lib / "b.jpg.xmp").exists()
    assert not [p for p in lib.iterdir() if p.name.startswith(".")]  # no temporary left
    assert lock_is_free(home)
    assert main(["undo-metadata"]) == 0 and not (lib / "a.jpg.xmp").exists()


# --- item 4: photos sharing a sidecar ----------------------------------------------------------


def sidecar_keywords(path: Path) -> set[str]:
    return {keyword.casefold() for keyword in XmpPacket.parse(path.read_bytes()).subject()}


def test_photos_sharing_a_sidecar_get_the_union_and_a_second_run_changes_nothing(home, tmp_path, capsys) -> None:  # noqa: ANN001
    lib = library(tmp_path, "IMG.jpg", "IMG.png", "other.jpg")
    index(capsys, lib)
    give(home, lib / "IMG.jpg", "dog")
    give(home, lib / "IMG.png", "cat")
    give(home, lib / "IMG.png", "sunset")
    give(home, lib / "IMG.jpg", "sunset")
    give(home, lib / "other.jpg", "tree")
    shared = lib / "IMG.xmp"

    first = run(capsys, "write-metadata", "--mode", "sidecar", "--sidecar-naming", "replace")
    sidecars = [entry for entry in first["files"] if entry["target"] == str(shared)]
    assert len(sidecars) == 1 and sidecars[0]["status"] == "written"  # one write for the shared file
    assert sidecar_keywords(shared) == {"dog", "cat", "sunset"}
    written = shared.read_bytes()
    second = run(capsys, "write-metadata", "--mode", "sidecar", "--sidecar-naming", "replace")
    assert {entry["status"] for entry in second["files"]} == {"unchanged"} and second["run"] is None
    assert shared.read_bytes() == written

    # A query that selects one of them writes the shared file with both photos' keywords still.
    give(home, lib / "IMG.png", "boat")
    run(capsys, "write-metadata", "--mode", "sidecar", "--sidecar-naming", "replace", "tag:dog")
    assert sidecar_keywords(shared) == {"dog", "cat", "sunset", "boat"}

    # A keyword goes only when no photo sharing the file still has it.
    give(home, lib / "IMG.jpg", "sunset", state=REJECTED)
    give(home, lib / "IMG.jpg", "dog", state=REJECTED)
    report = run(capsys, "write-metadata", "--mode", "sidecar", "--sidecar-naming", "replace")
    [entry] = [entry for entry in report["files"] if entry["target"] == str(shared)]
    assert entry["removed"] == ["dog"]
    assert sidecar_keywords(shared) == {"cat", "sunset", "boat"}
    assert run(capsys, "write-metadata", "--mode", "sidecar", "--sidecar-naming", "replace")["run"] is None  # settled


def test_photos_sharing_sidecars_are_read_once_a_folder_not_once_a_photo(home, tmp_path, capsys) -> None:  # noqa: ANN001
    """Finding who shares ``IMG.xmp`` costs the same few queries for a folder of 2 pairs as of 6."""
    def queries(pairs: int) -> int:
        lib = library(tmp_path / str(pairs), *(f"IMG{i}.{suffix}" for i in range(pairs) for suffix in ("jpg", "png")))
        index(capsys, lib)
        for i in range(pairs):
            give(home, lib / f"IMG{i}.png", "cat")
        statements: list[str] = []

        def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001
            if "photo_tags" in statement:
                statements.append(statement)
        event.listen(Engine, "before_cursor_execute", count)
        try:
            report = run(capsys, "write-metadata", "--mode", "sidecar", "--sidecar-naming", "replace", f"folder:{lib}")
        finally:
            event.remove(Engine, "before_cursor_execute", count)
        assert sorted(Path(entry["target"]).name for entry in report["files"] if entry["status"] == "written") \
            == [f"IMG{i}.xmp" for i in range(pairs)]
        return len(statements)

    assert queries(6) == queries(2)


# --- item 10: embed verification messages, leftover temporaries --------------------------------


def test_a_failed_embed_verification_names_the_file(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    lib = library(tmp_path, "a.jpg")
    index(capsys, lib)
    give(home, lib / "a.jpg", "keepsake")
    written_pixels_differ(monkeypatch)  # the written file decodes differently
    report = run(capsys, "write-metadata", "--mode", "embed", code=1)
    [entry] = report["files"]
    assert entry["reason"] == "verify_failed"
    assert entry["message"].startswith(f"{lib / 'a.jpg'}: ") and "pixels differ" in entry["message"]


def test_temporaries_left_by_a_kill_are_cleaned_and_never_indexed(home, tmp_path, capsys) -> None:  # noqa: ANN001
    lib = library(tmp_path, "a.jpg", "b.jpg")
    stale = [lib / ".a.jpg.xmp.phototag-0123abcd.tmp", lib / ".b.jpg.phototag-deadbeef.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    kept = [lib / ".a.jpg.xmp.phototag-xyz.tmp", lib / ".notes.phototag-0123abcd.tmp.bak",
            lib / "a.jpg.phototag-0123abcd.tmp"]  # not our exact pattern
    for path in kept:
        path.write_bytes(b"someone else's")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"precious")
    os.symlink(outside / "victim", lib / ".c.jpg.xmp.phototag-00000000.tmp")  # our pattern, but a link
    os.mkdir(lib / ".d.jpg.xmp.phototag-11111111.tmp")  # our pattern, but a folder
    time.sleep(0.05)  # the leftovers predate the run (their ctime, which nothing can set back)

    summary = run(capsys, "index", str(lib))
    assert summary["new"] == 2 and not summary["failures"]  # the temporaries are not photos
    give(home, lib / "a.jpg", "keepsake")
    run(capsys, "write-metadata", "--mode", "sidecar")
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"someone else's" for path in kept)
    assert (lib / ".c.jpg.xmp.phototag-00000000.tmp").is_symlink() and (outside / "victim").read_bytes() == b"precious"
    assert (lib / ".d.jpg.xmp.phototag-11111111.tmp").is_dir()


def test_a_photo_with_a_250_byte_name_is_written_and_undone(home, tmp_path, capsys) -> None:  # noqa: ANN001
    """The temporary next to its 254-byte sidecar would be 277 bytes, the photo's backup 257: both are cut
    to fit 255."""
    name = "é" * 100 + "x" * 46 + ".jpg"  # 250 bytes in UTF-8
    assert len(os.fsencode(name)) == 250
    lib = library(tmp_path, name)
    index(capsys, lib)
    give(home, lib / name, "keepsake")
    report = run(capsys, "write-metadata", "--mode", "sidecar")
    assert by_photo(report) == {name: [("written", None)]}
    assert "keepsake" in read_photo_info(lib / name).keywords
    assert sorted(p.name for p in lib.iterdir()) == sorted([name, name + ".xmp"])  # no temporary left
    assert run(capsys, "undo-metadata")["complete"] and not (lib / (name + ".xmp")).exists()
    original = (lib / name).read_bytes()  # embedding backs the photo up under a name that must fit too
    assert by_photo(run(capsys, "write-metadata", "--mode", "embed")) == {name: [("written", None)]}
    assert (lib / name).read_bytes() != original
    assert run(capsys, "undo-metadata")["complete"] and (lib / name).read_bytes() == original


# --- item 2 and 10: model names ----------------------------------------------------------------


@pytest.fixture()
def store_home(tmp_path, monkeypatch) -> Path:  # noqa: ANN001
    """A home with a model store of its own (the shared tiny models must not be touched)."""
    home = tmp_path / "store_home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("PHOTOTAG_HOME", str(home))
    return home


def test_models_remove_never_deletes_outside_the_store(store_home, tmp_path, capsys) -> None:  # noqa: ANN001
    outside = tmp_path / "dir"
    outside.mkdir()
    (outside / "bundle.json").write_text('{"name": "x", "kind": "tagger", "arch": null}', encoding="utf-8")
    (outside / "weights.safetensors").write_bytes(b"precious")
    before = tree(outside)
    relative = os.path.relpath(outside, store_home / "models")
    assert main(["models", "remove", relative]) == 2
    assert main(["models", "remove", str(outside)]) == 2
    os.symlink(outside, store_home / "models" / "linked")  # a bundle folder that is a link
    assert main(["models", "remove", "linked"]) == 2
    err = capsys.readouterr().err
    assert "invalid model name" in err and "link" in err
    assert tree(outside) == before and (store_home / "models" / "linked").is_symlink()


@pytest.mark.parametrize("name", ["my model", "bad\nname", "back\\slash", "name\n", "-dash", "..", ".", ".hidden",
                                  "a/b", "ü"])
def test_models_as_names_outside_the_stated_rule_are_refused(store_home, capsys, name) -> None:  # noqa: ANN001
    assert main(["models", "random", "clip_tiny", f"--as={name}"]) == 2
    assert "letters, digits, '.', '-' and '_'" in capsys.readouterr().err
    assert list((store_home / "models").iterdir()) == []


@pytest.mark.parametrize("name", ["My_clip-2", "ram-v1.2"])  # dots inside: names an older Phototag took
def test_models_as_names_inside_the_rule_are_taken(store_home, capsys, name) -> None:  # noqa: ANN001
    assert main(["models", "random", "clip_tiny", "--as", name]) == 0
    assert main(["models", "list", "--json"]) == 0
    assert name in capsys.readouterr().out
    assert main(["models", "remove", name]) == 0
    assert list((store_home / "models").iterdir()) == []
