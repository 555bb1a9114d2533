"""Embedding into every JPEG and MPO exiftool writes (issue 16, item 1), end to end through
``phototag write-metadata --mode embed`` and ``undo-metadata`` on copies of ../shared/photos and files
made here: a non-standard XMP header, an empty ``x:xmpmeta``, junk bytes after the metadata, Extended
XMP (exiftool's, and ours when the keywords outgrow a segment), and MPOs whose MP index must follow.

Each is read back by exiftool and exiv2 (skipped where not installed: ``./dev test`` installs both)
and by Phototag's reader; undo restores every byte; a second run changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update

from indexer.catalog import Catalog
from indexer.metadata import embed
from indexer.metadata.read import read_photo_info
from indexer.metadata.xmp import XmpPacket
from indexer.pipeline import content_hash
from indexer.schema import INDEXED, Photo
from tests.conftest import PHOTOS
from tests.indexer.metadata.helpers import copy_indexed, index_once, needs, run, tag

LIBRARY = PHOTOS / "library"
XMP = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
NON_STANDARD = b"XMP\x00://ns.adobe.com/xap/1.0/\x00"
EMPTY_PACKET = (b"<?xpacket begin='\xef\xbb\xbf' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
                b"<x:xmpmeta xmlns:x='adobe:ns:meta/' x:xmptk='Image::ExifTool 12.57'/>\n<?xpacket end='w'?>")
THEIRS_PACKET = (b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
                 b"<rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:subject><rdf:Bag>"
                 b"<rdf:li>theirs</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>")
LONG_TEXT = "lorem ipsum dolor sit amet " * 4000  # 108 KB: exiftool writes it as Extended XMP


# --- files made for these tests ----------------------------------------------------------------


def segments(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, marker, payload) of each header segment up to SOS or the first byte that is not a marker."""
    found, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] not in (0xDA, 0xD9):
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        found.append((at, data[at + 1], data[at + 4 : at + 2 + length]))
        at += 2 + length
    return found


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def mp_index(data: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """The MP index of an MPO: where its offsets count from, where its entries are in the file, and
    (size, offset) per image."""
    at, _marker, payload = next(s for s in segments(data) if s[1] == 0xE2 and s[2].startswith(b"MPF\x00"))
    base, tiff = at + 8, payload[4:]
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag_id, _kind, size, value = struct.unpack(order + "HHII", tiff[entry : entry + 12])
        if tag_id == 0xB002:
            images = [struct.unpack(order + "II", tiff[value + i + 4 : value + i + 12]) for i in range(0, size, 16)]
            return base, base + value, images
    raise AssertionError("no MP entries")


def with_segment_after_mp_index(data: bytes, insert_at: int, inserted: bytes) -> bytes:
    """``data`` with ``inserted`` put at ``insert_at`` (after the MP index), the index following it."""
    base, entries, images = mp_index(data)
    assert base < insert_at
    order = "<" if data[base : base + 2] == b"II" else ">"
    out = bytearray(data[:insert_at] + inserted + data[insert_at:])
    for number, (size, offset) in enumerate(images):
        moved = (size + len(inserted), 0) if number == 0 else (size, offset + len(inserted))
        struct.pack_into(order + "II", out, entries + 16 * number + 4, *moved)
    return bytes(out)


def made_files(folder: Path) -> None:
    """The odd JPEGs: each a copy of a shared photo with one thing changed."""
    hopper = (LIBRARY / "people/grace_hopper.jpg").read_bytes()
    canon = (LIBRARY / "flowers/canon_flower.jpg").read_bytes()
    china = (LIBRARY / "travel/china.jpg").read_bytes()
    sugarshack = (LIBRARY / "travel/sugarshack.mpo").read_bytes()
    for name in ("flowers/dahlia.jpg", "travel/china.jpg", "travel/sugarshack.mpo", "travel/fujifilm.mpo"):
        shutil.copyfile(LIBRARY / name, folder / Path(name).name)
    shutil.copyfile(LIBRARY / "flowers/canon_flower.jpg", folder / "many.jpg")
    # A standard packet (another tool's) before china.jpg's non-standard one.
    at = next(offset for offset, _marker, payload in segments(china) if payload.startswith(NON_STANDARD))
    (folder / "china_both.jpg").write_bytes(china[:at] + segment(0xE1, XMP + THEIRS_PACKET) + china[at:])
    # An empty <x:xmpmeta/> packet after the JFIF segment.
    (folder / "empty_xmpmeta.jpg").write_bytes(hopper[:20] + segment(0xE1, XMP + EMPTY_PACKET) + hopper[20:])
    # Junk bytes between two segments after the metadata: before the DQT, before the first DHT.
    dqt, dht = hopper.index(b"\xff\xdb"), hopper.index(b"\xff\xc4")
    (folder / "junk_dqt.jpg").write_bytes(hopper[:dqt] + b"JUNKJUNK" + hopper[dqt:])
    (folder / "junk_dht.jpg").write_bytes(hopper[:dht] + b"\x00\x01\x02" + hopper[dht:])
    # Junk before the EXIF block: metadata after the damage, which a rewrite would not see.
    (folder / "junk_exif.jpg").write_bytes(canon[:20] + b"JUNK" + canon[20:])
    # Junk after the metadata, and the scan data cut short: the pixels do not decode, so could not be verified.
    dqt = hopper.index(b"\xff\xdb")
    (folder / "junk_undecodable.jpg").write_bytes(hopper[:dqt] + b"JUNKJUNK" + hopper[dqt:-5000])
    # An MPO whose XMP comes after its MP index: a bigger packet moves the second image.
    sof = next(offset for offset, marker, _payload in segments(sugarshack) if marker == 0xC0)
    shifted = with_segment_after_mp_index(sugarshack, sof, segment(0xE1, XMP + THEIRS_PACKET))
    (folder / "shifted.mpo").write_bytes(shifted)
    if shutil.which("exiftool"):  # exiftool's own Extended XMP: a 108 KB description
        shutil.copyfile(LIBRARY / "people/grace_hopper.jpg", folder / "extended.jpg")
        (folder / "long.txt").write_text(LONG_TEXT)
        subprocess.run(["exiftool", "-q", "-overwrite_original", f"-XMP-dc:Description<={folder / 'long.txt'}",
                        "-XMP-dc:Subject=theirs", str(folder / "extended.jpg")], check=True)
        (folder / "long.txt").unlink()


@pytest.fixture(scope="module")
def template(tmp_path_factory, model_dir) -> Path:  # noqa: ANN001
    """The files, indexed once per module: ``lib/`` and ``home/catalog``."""
    root = tmp_path_factory.mktemp("embed_jpegs")
    (root / "lib").mkdir()
    made_files(root / "lib")
    return index_once(root, model_dir, codes=(0, 1))  # junk_undecodable.jpg may not decode


@pytest.fixture()
def library(home, template, tmp_path) -> Path:  # noqa: ANN001
    """A copy of the indexed files (mtimes kept, catalog paths moved)."""
    return copy_indexed(template, home, tmp_path)


# --- helpers -----------------------------------------------------------------------------------


def exiftool_json(path: Path, *options: str) -> dict:
    needs("exiftool")
    out = subprocess.run(["exiftool", "-j", "-m", *options, str(path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)[0]


def exiftool_subject(path: Path) -> list[str]:
    value = exiftool_json(path, "-XMP-dc:Subject").get("Subject")
    return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value is not None else []


def exiv2_subject(path: Path) -> list[str]:
    needs("exiv2")
    out = subprocess.run(["exiv2", "-px", "-K", "Xmp.dc.subject", str(path)], capture_output=True, text=True).stdout
    line = next((line for line in out.splitlines() if line.startswith("Xmp.dc.subject")), "")
    parts = line.split(None, 3)
    return parts[3].split(", ") if len(parts) == 4 else []


def xmp_segments(data: bytes) -> list[bytes]:
    return [payload for _at, marker, payload in segments(data) if marker == 0xE1 and payload.startswith(XMP)]


def write_and_undo(capsys, library: Path, names: list[str]) -> dict[str, bytes]:  # noqa: ANN001
    """Write the photos tagged ``keepsake``: ``names`` are embedded into, a second run changes nothing,
    and undo restores every byte. Returns the written files' bytes (before the undo), by name."""
    before = {path.name: path.read_bytes() for path in library.iterdir()}
    report = run(capsys, "write-metadata", "tag:keepsake", "--mode", "embed")
    kinds = {Path(f["photo"]).name: (f["kind"], f["status"]) for f in report["files"]}
    for name in names:
        assert kinds[name] == ("embedded", "written"), (name, report["files"])
    written = {name: (library / name).read_bytes() for name in names}
    for name in names:
        assert written[name] != before[name]
        assert "keepsake" in read_photo_info(library / name).keywords  # Phototag's own reader
    again = run(capsys, "write-metadata", "tag:keepsake", "--mode", "embed")
    assert again["run"] is None and {f["status"] for f in again["files"]} == {"unchanged"}
    assert run(capsys, "undo-metadata")["complete"]
    assert {path.name: path.read_bytes() for path in library.iterdir()} == before  # sidecars gone too
    return written


def others(data: bytes) -> list[tuple[int, bytes]]:
    """The header segments embedding leaves alone: all but XMP (standard, non-standard, extended), EXIF,
    the MP index and IPTC's APP13 (written from the same keywords: tests/indexer/metadata/test_iptc.py)."""
    changed = (XMP, EXTENSION, b"Exif\x00\x00", b"MPF\x00", NON_STANDARD)
    return [(marker, payload) for _at, marker, payload in segments(data)
            if marker != 0xED and not (marker in (0xE1, 0xE2) and payload.startswith(changed))]


# --- a non-standard XMP header, an empty packet ------------------------------------------------


@pytest.mark.parametrize("name", ["dahlia.jpg", "china.jpg"])
def test_a_non_standard_xmp_header_becomes_a_standard_packet_in_its_place(home, library, capsys,  # noqa: ANN001
                                                                          name: str) -> None:
    photo = library / name
    original = photo.read_bytes()
    where = [i for i, (_at, _marker, payload) in enumerate(segments(original)) if payload.startswith(NON_STANDARD)]
    old = exiftool_json(photo, "-a", "-G1", "-XMP:all")  # exiftool reads the non-standard header too
    tag(home, photo, "keepsake")
    after = write_and_undo(capsys, library, [name])[name]
    photo.write_bytes(after)
    assert len(where) == 1 and segments(after)[where[0]][2].startswith(XMP)  # where the old one was
    assert not any(payload.startswith(NON_STANDARD) for _at, _marker, payload in segments(after))
    assert others(after) == others(original)
    assert after.endswith(original[segments(original)[-1][0]:])  # the last header segment onwards
    new = exiftool_json(photo, "-a", "-G1", "-XMP:all")
    kept = {key: value for key, value in old.items() if key.startswith("XMP-") and key != "XMP-x:XMPToolkit"}
    assert len(kept) >= 5 and {key: new.get(key) for key in kept} == kept  # every old property, as it was
    assert "keepsake" in exiftool_subject(photo) and "keepsake" in exiv2_subject(photo)


def test_a_non_standard_packet_next_to_a_standard_one_is_left_as_it_is(home, library, capsys) -> None:  # noqa: ANN001
    photo = library / "china_both.jpg"
    original = photo.read_bytes()
    tag(home, photo, "keepsake")
    after = write_and_undo(capsys, library, ["china_both.jpg"])["china_both.jpg"]
    non_standard = [(at, payload) for at, _m, payload in segments(original) if payload.startswith(NON_STANDARD)]
    assert [payload for _at, _m, payload in segments(after) if payload.startswith(NON_STANDARD)] \
        == [payload for _at, payload in non_standard]  # byte-identical, as exiftool leaves it
    photo.write_bytes(after)
    assert exiftool_subject(photo) == ["theirs", "keepsake"] and exiv2_subject(photo) == ["theirs", "keepsake"]


def test_an_empty_xmpmeta_gets_an_rdf_rdf(home, library, capsys) -> None:  # noqa: ANN001
    packet = XmpPacket.parse(EMPTY_PACKET)
    assert packet.subject() == [] and b"rdf:RDF" in packet.to_bytes()
    photo = library / "empty_xmpmeta.jpg"
    original = photo.read_bytes()
    tag(home, photo, "keepsake")
    after = write_and_undo(capsys, library, [photo.name])[photo.name]
    assert len(xmp_segments(after)) == 1 and b'x:xmptk="Image::ExifTool 12.57"' in xmp_segments(after)[0]
    assert others(after) == others(original)
    photo.write_bytes(after)
    assert exiftool_subject(photo) == ["keepsake"] and exiv2_subject(photo) == ["keepsake"]


# --- a damaged header --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "junk"), [("junk_dqt.jpg", b"JUNKJUNK"), ("junk_dht.jpg", b"\x00\x01\x02")])
def test_junk_after_the_metadata_is_copied_byte_for_byte(home, library, capsys, name: str, junk: bytes) -> None:  # noqa: ANN001
    photo = library / name
    original = photo.read_bytes()
    damage = original.index(junk)
    tag(home, photo, "keepsake")
    after = write_and_undo(capsys, library, [name])[name]
    assert after.endswith(original[damage:])  # from the damage on, every byte as it was (exiftool does the same)
    assert after.startswith(original[:20])  # SOI and JFIF; the XMP goes after them
    assert embed.pixel_digest(after) == embed.pixel_digest(original)
    photo.write_bytes(after)
    assert exiftool_subject(photo) == ["keepsake"] and exiv2_subject(photo) == ["keepsake"]


def test_damage_hiding_metadata_or_undecodable_pixels_gets_a_sidecar(home, library, capsys) -> None:  # noqa: ANN001
    names = ["junk_exif.jpg", "junk_undecodable.jpg"]
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        # As if indexed by a decoder that reads it (Pillow does not: the indexer recorded a failure).
        undecodable = str(library / "junk_undecodable.jpg")
        info = os.stat(undecodable)
        session.execute(update(Photo).where(Photo.path == undecodable).values(
            status=INDEXED, size=info.st_size, mtime_ns=info.st_mtime_ns, content_hash=content_hash(undecodable),
            format="jpeg"))
    before = {name: (library / name).read_bytes() for name in names}
    for name in names:
        tag(home, library / name, "keepsake")
    report = run(capsys, "write-metadata", "tag:keepsake", "--mode", "embed")
    notes = {Path(f["photo"]).name: " ".join(f["notes"]) for f in report["files"]}
    assert "metadata follows the damage ('Exif')" in notes["junk_exif.jpg"]
    assert "does not decode" in notes["junk_undecodable.jpg"]
    for name in names:
        assert [(f["kind"], f["status"]) for f in report["files"] if Path(f["photo"]).name == name] \
            == [("sidecar", "written")]
        assert (library / name).read_bytes() == before[name]
    assert run(capsys, "undo-metadata")["complete"]


# --- Extended XMP ------------------------------------------------------------------------------


def extension(data: bytes) -> tuple[str, bytes]:
    """The GUID and bytes of a file's Extended XMP, put together by offset."""
    parts = {}
    for _at, _marker, payload in segments(data):
        if payload.startswith(EXTENSION):
            body = payload[len(EXTENSION):]
            guid, (full, offset) = body[:32].decode(), struct.unpack(">II", body[32:40])
            parts[offset] = (guid, full, body[40:])
    assert len({guid for guid, _full, _part in parts.values()}) == 1
    joined = b"".join(parts[offset][2] for offset in sorted(parts))
    assert len(joined) == next(iter(parts.values()))[1]
    return next(iter(parts.values()))[0], joined


def test_exiftools_extended_xmp_is_read_and_written_anew(home, library, capsys) -> None:  # noqa: ANN001
    needs("exiftool")
    photo = library / "extended.jpg"
    original = photo.read_bytes()
    old_guid, _old = extension(original)
    description = exiftool_json(photo, "-XMP-dc:Description")["Description"]
    assert description.startswith(LONG_TEXT[:100]) and len(description) > 100_000
    tag(home, photo, "keepsake")
    after = write_and_undo(capsys, library, [photo.name])[photo.name]
    guid, extended = extension(after)
    assert guid != old_guid and guid == hashlib.md5(extended).hexdigest().upper()
    main_packet = xmp_segments(after)[0]
    assert f'HasExtendedXMP="{guid}"'.encode() in main_packet and len(main_packet) <= 65533
    assert others(after) == others(original)
    photo.write_bytes(after)
    facts = exiftool_json(photo, "-XMP-dc:all")
    assert facts["Subject"] == ["theirs", "keepsake"] and facts["Description"] == description
    assert exiv2_subject(photo) == ["theirs", "keepsake"]  # the keywords stay in the standard packet


def test_keywords_beyond_one_segment_go_to_extended_xmp(home, library, capsys) -> None:  # noqa: ANN001
    photo = library / "many.jpg"
    original = photo.read_bytes()
    names = [f"keyword {number:04d} of a library tagged in great detail, one by one" for number in range(900)]
    for name in ("keepsake", *names):
        tag(home, photo, name)
    after = write_and_undo(capsys, library, [photo.name])[photo.name]
    guid, extended = extension(after)
    assert guid == hashlib.md5(extended).hexdigest().upper() and len(extended) > 65533
    assert others(after) == others(original) and embed.pixel_digest(after) == embed.pixel_digest(original)
    # XPKeywords would not fit in the EXIF segment: the EXIF block is left as it was (the XMP has them all).
    exif = [payload for _at, _marker, payload in segments(original) if payload.startswith(b"Exif\x00\x00")]
    assert exif and [payload for _at, _marker, payload in segments(after) if payload.startswith(b"Exif\x00\x00")] \
        == exif
    photo.write_bytes(after)
    assert set(read_photo_info(photo).keywords) >= {"keepsake", *names}
    facts = exiftool_json(photo, "-XMP-dc:Subject", "-EXIF:XPKeywords", "-EXIF:Make")
    assert set(facts["Subject"]) == {"keepsake", *names}  # exiftool joins the Extended XMP
    assert "XPKeywords" not in facts and facts["Make"] == "Canon"


# --- MPO ---------------------------------------------------------------------------------------


def frames(data: bytes) -> list[tuple[str, tuple[int, int], str]]:
    """Each frame's decoded pixels (Pillow finds the frames through the MP index)."""
    found = []
    with Image.open(io.BytesIO(data)) as image:
        for number in range(getattr(image, "n_frames", 1)):
            image.seek(number)
            found.append((image.mode, image.size, hashlib.sha256(image.tobytes()).hexdigest()))
    return found


def second_image(path: Path) -> bytes:
    needs("exiftool")
    return subprocess.run(["exiftool", "-b", "-MPImage2", str(path)], capture_output=True, check=True).stdout


@pytest.mark.parametrize("name", ["sugarshack.mpo", "fujifilm.mpo", "shifted.mpo"])
def test_an_mpos_other_images_stay_where_its_index_says(home, library, capsys, name: str) -> None:  # noqa: ANN001
    photo = library / name
    original = photo.read_bytes()
    tag(home, photo, "keepsake")
    after = write_and_undo(capsys, library, [name])[name]
    (base, _entries, old), (new_base, _new_entries, new) = mp_index(original), mp_index(after)
    grow = len(after) - len(original)
    assert new[0] == (old[0][0] + grow, 0)  # the first image, SOI to its end, grew with the header
    for (size, offset), (new_size, new_offset) in zip(old[1:], new[1:], strict=True):
        assert new_size == size and after[new_base + new_offset : new_base + new_offset + size] \
            == original[base + offset : base + offset + size]
    if name == "shifted.mpo":  # its XMP, after the index, grew: the offsets follow
        assert new[1][1] != old[1][1]
    assert frames(after) == frames(original) and len(frames(original)) == 2
    assert others(after) == others(original)
    extracted = second_image(library / name)
    photo.write_bytes(after)
    assert second_image(photo) == extracted and extracted.startswith(b"\xff\xd8")
    assert "keepsake" in exiftool_subject(photo) and "keepsake" in exiv2_subject(photo)


def test_an_mp_index_that_does_not_follow_fails_verification(home, library, capsys, monkeypatch) -> None:  # noqa: ANN001
    photo = library / "shifted.mpo"
    original = photo.read_bytes()
    tag(home, photo, "keepsake")
    monkeypatch.setattr(embed._MpIndex, "moved", lambda index, *_places: list(index.entries))  # offsets left behind
    report = run(capsys, "write-metadata", "tag:keepsake", "--mode", "embed", code=1)
    [record] = [f for f in report["files"] if Path(f["photo"]).name == "shifted.mpo"]
    assert record["reason"] == "verify_failed" and "MP index" in record["message"]
    assert photo.read_bytes() == original
