"""`write-metadata --mode embed` keeps IPTC-IIM keywords (APP13) and XMP dc:subject in step, the MWG way.

Files are made by exiftool as other tools leave them (IPTC only, IPTC and XMP without a digest, a
stale digest after a legacy edit), indexed, written, then read back by exiftool (its MWG module
too) and exiv2; undo puts every byte back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from indexer.metadata.embed import JpegFile
from main import main
from tests.conftest import PHOTOS
from tests.indexer.metadata.helpers import needs, run, tag

SOURCE = PHOTOS / "library" / "people" / "grace_hopper.jpg"  # no IPTC, no XMP


def exiftool_tags(path: Path, *tags: str) -> dict:
    needs("exiftool")
    out = subprocess.run(["exiftool", "-j", "-G1", "-a", "-struct", *tags, str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)[0]


def exiftool_write(path: Path, *assignments: str) -> None:
    needs("exiftool")
    subprocess.run(["exiftool", "-q", "-overwrite_original", *assignments, str(path)], check=True)


def iptc_keywords(path: Path) -> list[str]:
    value = exiftool_tags(path, "-IPTC:Keywords").get("IPTC:Keywords", [])
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def xmp_subject(path: Path) -> list[str]:
    value = exiftool_tags(path, "-XMP-dc:Subject").get("XMP-dc:Subject", [])
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def digest_warning(path: Path) -> bool:
    out = subprocess.run(["exiftool", "-validate", "-warning", "-a", str(path)], capture_output=True,
                         text=True).stdout
    return "IPTCDigest is not current" in out


@pytest.fixture()
def library(home, tmp_path) -> Path:  # noqa: ANN001
    """A folder of JPEGs laid out by exiftool as other tools leave them, indexed."""
    needs("exiftool")
    folder = tmp_path / "lib"
    folder.mkdir()
    for name in ("iptc_and_xmp.jpg", "stale_digest.jpg", "current_digest.jpg", "plain.jpg"):
        shutil.copyfile(SOURCE, folder / name)
    # The photo: IPTC Keywords and an XMP dc:subject, no digest (a tool that knows no MWG).
    exiftool_write(folder / "iptc_and_xmp.jpg", "-IPTC:Keywords=kept-iptc", "-XMP-dc:Subject=xmp-only")
    # In step with a digest, then a legacy tool adds an IPTC keyword and leaves the digest stale.
    exiftool_write(folder / "stale_digest.jpg", "-IPTC:Keywords=shared", "-XMP-dc:Subject=shared",
                   "-IPTCDigest=new")
    exiftool_write(folder / "stale_digest.jpg", "-IPTC:Keywords+=legacy")
    # In step with a current digest, then an XMP-only tool removed 'gone' from dc:subject: XMP is newer.
    exiftool_write(folder / "current_digest.jpg", "-IPTC:Keywords=gone", "-IPTC:Keywords+=stays",
                   "-XMP-dc:Subject=stays", "-IPTCDigest=new")
    assert main(["index", str(folder), "--json"]) == 0
    return folder


def test_iptc_and_dc_subject_end_in_step(home, library, capsys) -> None:  # noqa: ANN001
    photo = library / "iptc_and_xmp.jpg"
    original = photo.read_bytes()
    tag(home, photo, "keepsake")
    tag(home, photo, "猫咪")
    report = run(capsys, "write-metadata", "--mode", "embed", f"folder:{library}")
    assert {f["kind"] for f in report["files"] if Path(f["photo"]).name == photo.name} == {"embedded"}
    both = {"xmp-only", "kept-iptc", "keepsake", "猫咪"}
    assert set(iptc_keywords(photo)) == both and set(xmp_subject(photo)) == both
    assert not digest_warning(photo)  # the digest now matches: MWG readers take the XMP
    mwg = exiftool_tags(photo, "-MWG:Keywords")["MWG:Keywords"]
    assert set(mwg) == both
    needs("exiv2")
    iim = subprocess.run(["exiv2", "-pi", str(photo)], capture_output=True, text=True).stdout
    assert "Keywords                   String      6  猫咪" in iim and "kept-iptc" in iim  # 6 UTF-8 bytes
    assert exiftool_tags(photo, "-IPTC:CodedCharacterSet")["IPTC:CodedCharacterSet"] == "UTF8"
    assert run(capsys, "write-metadata", "--mode", "embed", f"folder:{library}")["run"] is None  # settled
    assert run(capsys, "undo-metadata")["complete"]
    assert photo.read_bytes() == original


def test_a_stale_digest_brings_the_legacy_keyword_into_xmp(home, library, capsys) -> None:  # noqa: ANN001
    photo = library / "stale_digest.jpg"
    assert digest_warning(photo)
    tag(home, photo, "keepsake")
    run(capsys, "write-metadata", "--mode", "embed", f"folder:{library}")
    assert set(xmp_subject(photo)) == {"shared", "legacy", "keepsake"} == set(iptc_keywords(photo))
    # A stale digest stays stale (exiftool's MWG writing rule): readers still believe the IIM, which agrees.
    assert set(exiftool_tags(photo, "-MWG:Keywords")["MWG:Keywords"]) == {"shared", "legacy", "keepsake"}


def test_a_current_digest_lets_xmp_win(home, library, capsys) -> None:  # noqa: ANN001
    photo = library / "current_digest.jpg"
    assert not digest_warning(photo)
    tag(home, photo, "keepsake")
    run(capsys, "write-metadata", "--mode", "embed", f"folder:{library}")
    assert iptc_keywords(photo) == ["stays", "keepsake"] == xmp_subject(photo)
    assert not digest_warning(photo)


def test_an_iptc_block_is_kept_in_step_never_created(home, library, capsys) -> None:  # noqa: ANN001
    photo = library / "plain.jpg"
    tag(home, photo, "keepsake")
    run(capsys, "write-metadata", "--for", "windows", f"folder:{library}")  # windows: embed, it reads IPTC too
    assert not any(s.marker == 0xED for s in JpegFile.parse(photo.read_bytes()).segments)  # MWG: not created
    assert xmp_subject(photo) == ["keepsake"]


def test_removal_and_long_keywords(home, library, capsys) -> None:  # noqa: ANN001
    from indexer.schema import REJECTED

    photo = library / "iptc_and_xmp.jpg"
    long_name = "a keyword far longer than the sixty-four bytes an IPTC keyword can hold, kept in XMP"
    tag(home, photo, "keepsake")
    tag(home, photo, long_name)
    report = run(capsys, "write-metadata", "--mode", "embed", f"folder:{library}")
    notes = [n for f in report["files"] if Path(f["photo"]).name == photo.name for n in f["notes"]]
    assert any("not in IPTC" in note and long_name in note for note in notes)
    assert set(iptc_keywords(photo)) == {"xmp-only", "kept-iptc", "keepsake"}
    assert set(xmp_subject(photo)) == {"xmp-only", "kept-iptc", "keepsake", long_name}
    tag(home, photo, "keepsake", state=REJECTED)
    run(capsys, "write-metadata", "--mode", "embed", f"folder:{library}")
    assert set(iptc_keywords(photo)) == {"xmp-only", "kept-iptc"}
    assert set(xmp_subject(photo)) == {"xmp-only", "kept-iptc", long_name}
