"""IPTC-IIM keywords in the APP13 Photoshop block: written byte-safely, read back by exiftool and exiv2
(skipped, with the reason, where they are not installed), and reconciled with XMP the MWG way on
files exiftool itself wrote."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from indexer.errors import FileSkipped
from indexer.metadata.embed import JpegFile, Segment
from indexer.metadata.iptc import (
    MAX_KEYWORD_BYTES,
    PHOTOSHOP_HEADER,
    IptcBlock,
    keywords_left_out,
    mwg_keywords,
    mwg_reading,
)
from indexer.metadata.read import read_photo_info
from tests.conftest import PHOTOS

DAHLIA = PHOTOS / "library" / "flowers" / "dahlia.jpg"
APP13 = 0xED
UTF8 = b"\x1b%G"


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed: './dev test' installs it (Debian: libimage-exiftool-perl, exiv2)")


def exiftool_write(path: Path, *arguments: str) -> None:
    needs("exiftool")
    subprocess.run(["exiftool", "-q", "-overwrite_original", *arguments, str(path)], check=True)


def exiftool_read(path: Path, *tags: str) -> dict:
    """exiftool -j -a -G1: 'Group:Tag' -> value; every warning under 'warnings'."""
    needs("exiftool")
    out = subprocess.run(["exiftool", "-j", "-a", "-G1", "-Warning", *tags, str(path)], capture_output=True,
                         check=True).stdout
    pairs = json.loads(out, object_pairs_hook=list)[0]
    entry = dict(pairs)
    entry["warnings"] = [value for key, value in pairs if key.endswith(":Warning")]
    return entry


def listed(value: object) -> list[str]:
    """An exiftool -j list (a single item comes as a plain value)."""
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def exiv2_iptc(path: Path) -> list[tuple[str, str]]:
    """exiv2 -pi: (key, value) in file order."""
    needs("exiv2")
    out = subprocess.run(["exiv2", "-pi", str(path)], capture_output=True).stdout.decode("utf-8", "replace")
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3:
            rows.append((parts[0], parts[3] if len(parts) == 4 else ""))
    return rows


def blank_jpeg(path: Path) -> Path:
    Image.new("RGB", (16, 12), (200, 120, 40)).save(path, quality=90)
    return path


def app13(path: Path) -> bytes | None:
    jpeg = JpegFile.parse(path.read_bytes())
    return next((s.payload for s in jpeg.segments if s.marker == APP13 and s.payload.startswith(PHOTOSHOP_HEADER)),
                None)


def put_app13(path: Path, payload: bytes) -> None:
    """Replace the Photoshop APP13 segment (or insert one after the APP0/APP1 segments); nothing else moves."""
    jpeg = JpegFile.parse(path.read_bytes())
    segments = list(jpeg.segments)
    index = next((i for i, s in enumerate(segments) if s.marker == APP13 and s.payload.startswith(PHOTOSHOP_HEADER)),
                 None)
    if index is None:
        index = 0
        while index < len(segments) and segments[index].marker in (0xE0, 0xE1):
            index += 1
        segments.insert(index, Segment(APP13, payload))
    else:
        segments[index] = Segment(APP13, payload)
    path.write_bytes(JpegFile(tuple(segments), jpeg.scan).to_bytes())


def dataset(record: int, number: int, value: bytes) -> bytes:
    return bytes((0x1C, record, number)) + struct.pack(">H", len(value)) + value


def resource(resource_id: int, data: bytes, name: bytes = b"", kind: bytes = b"8BIM") -> bytes:
    pascal = bytes([len(name)]) + name
    pascal += b"\x00" * (len(pascal) % 2)
    padded = data + b"\x00" * (len(data) % 2)
    return kind + struct.pack(">H", resource_id) + pascal + struct.pack(">I", len(data)) + padded


def block(*resources: bytes) -> bytes:
    return PHOTOSHOP_HEADER + b"".join(resources)


# --- writing, read back by the real tools -----------------------------------------------------------


def test_keywords_written_into_a_jpeg_without_app13_are_read_by_exiftool_exiv2_and_phototag(tmp_path: Path) -> None:
    photo = blank_jpeg(tmp_path / "new.jpg")
    empty = IptcBlock.parse(app13(photo))
    assert not empty.has_iptc and empty.keywords == [] and empty.digest_state == "absent"
    payload = empty.with_keywords(["dog", "狗", "café", "dog", ""])
    assert payload is not None
    put_app13(photo, payload)

    again = IptcBlock.parse(app13(photo))
    assert again.keywords == ["dog", "狗", "café"] and again.charset == "utf-8" and again.digest_state == "current"
    assert again.digest == hashlib.md5(again.iptc_data).digest()
    # records in order, each with its version: 1:00, 1:90 = UTF-8, 2:00, then the keywords
    assert [d.key for d in again.datasets] == [(1, 0), (1, 90), (2, 0), (2, 25), (2, 25), (2, 25)]

    tags = exiftool_read(photo, "-IPTC:all", "-IPTCDigest", "-CurrentIPTCDigest")
    assert listed(tags["IPTC:Keywords"]) == ["dog", "狗", "café"]
    assert tags["IPTC:CodedCharacterSet"] == "UTF8"
    assert tags["IPTC:EnvelopeRecordVersion"] == tags["IPTC:ApplicationRecordVersion"] == 4
    assert tags["Photoshop:IPTCDigest"] == tags["File:CurrentIPTCDigest"]
    assert tags["warnings"] == []

    rows = exiv2_iptc(photo)
    assert [value for key, value in rows if key == "Iptc.Application2.Keywords"] == ["dog", "狗", "café"]
    assert any(key == "Iptc.Envelope.CharacterSet" for key, _ in rows)

    assert {"dog", "狗", "café"} <= set(read_photo_info(photo).keywords)


def test_dahlia_keeps_every_other_resource_and_dataset_byte_for_byte(tmp_path: Path) -> None:
    photo = tmp_path / "dahlia.jpg"
    shutil.copyfile(DAHLIA, photo)
    before = IptcBlock.parse(app13(photo))
    assert [r.id for r in before.resources] == [0x03ED, 0x0404, 0x040A, 0x040C, 0x0425]
    assert before.digest_state == "current" and before.keywords == []
    payload = before.with_keywords(["flower", "大丽花"])
    after = IptcBlock.parse(payload)

    assert [r.id for r in after.resources] == [r.id for r in before.resources]
    untouched = lambda b: [r.raw for r in b.resources if r.id not in (0x0404, 0x0425)]  # noqa: E731
    assert untouched(after) == untouched(before)  # resolution, copyright flag, the 11 KB thumbnail
    assert [d.raw for d in after.datasets if d.key != (2, 25)] == [d.raw for d in before.datasets]
    # the keywords sit in record order: after 2:00, before 2:55 (the first dataset after 2:25)
    assert [d.key for d in after.datasets][:5] == [(1, 90), (2, 0), (2, 25), (2, 25), (2, 55)]
    assert after.keywords == ["flower", "大丽花"] and after.digest_state == "current"

    other_iptc = exiftool_read(photo, "-IPTC:all", "-Photoshop:all")
    original = photo.read_bytes()
    put_app13(photo, payload)
    jpeg_before, jpeg_after = JpegFile.parse(original), JpegFile.parse(photo.read_bytes())
    others = lambda jpeg: [s for s in jpeg.segments if s.marker != APP13]  # noqa: E731
    assert others(jpeg_after) == others(jpeg_before)
    assert jpeg_after.scan == jpeg_before.scan

    tags = exiftool_read(photo, "-IPTC:all", "-Photoshop:all", "-CurrentIPTCDigest")
    assert listed(tags.pop("IPTC:Keywords")) == ["flower", "大丽花"]
    assert tags["Photoshop:IPTCDigest"] == tags["File:CurrentIPTCDigest"] != other_iptc["Photoshop:IPTCDigest"]
    assert not any("IPTC" in warning for warning in tags["warnings"])
    for key, value in other_iptc.items():
        if key not in ("Photoshop:IPTCDigest", "SourceFile"):
            assert tags[key] == value, key
    exiv2_keywords = [value for key, value in exiv2_iptc(photo) if key == "Iptc.Application2.Keywords"]
    assert exiv2_keywords == ["flower", "大丽花"]


def test_writing_the_same_keywords_again_gives_the_same_bytes() -> None:
    first = IptcBlock.parse(app13(DAHLIA)).with_keywords(["a", "b"])
    assert first is not None
    assert IptcBlock.parse(first).with_keywords(["a", "b"]) == first
    assert IptcBlock.parse(first).with_keywords(["b", "a"]) != first  # the order is the caller's


def test_keywords_over_64_bytes_are_left_out_and_listed(tmp_path: Path) -> None:
    keywords = ["ok", "x" * 64, "y" * 65, "狗" * 21, "狗" * 22]  # 狗 is 3 bytes: 63 and 66
    assert keywords_left_out(keywords) == ["y" * 65, "狗" * 22]
    photo = blank_jpeg(tmp_path / "long.jpg")
    payload = IptcBlock.parse(None).with_keywords(keywords)
    assert payload is not None
    put_app13(photo, payload)
    assert IptcBlock.parse(payload).keywords == ["ok", "x" * 64, "狗" * 21]
    tags = exiftool_read(photo, "-IPTC:Keywords", "-validate")
    assert listed(tags["IPTC:Keywords"]) == ["ok", "x" * MAX_KEYWORD_BYTES, "狗" * 21]
    assert not any("Keywords" in warning for warning in tags["warnings"])  # -validate checks the IIM limits


def test_latin_iptc_written_by_exiftool_is_reencoded_to_utf8(tmp_path: Path) -> None:
    photo = blank_jpeg(tmp_path / "latin.jpg")
    # exiftool writes IIM without a coded character set in its default "Latin" (cp1252)
    exiftool_write(photo, "-IPTC:Caption-Abstract=Café € 5", "-IPTC:Keywords=Müller", "-IPTC:Keywords=plain",
                   "-IPTC:City=Zürich")
    before = IptcBlock.parse(app13(photo))
    assert before.charset == "latin" and before.keywords == ["Müller", "plain"]
    caption = next(d for d in before.datasets if d.key == (2, 120))
    assert caption.value == "Café € 5".encode("cp1252")

    payload = before.with_keywords(["Müller", "plain", "Straße"])
    after = IptcBlock.parse(payload)
    assert after.charset == "utf-8"
    assert next(d for d in after.datasets if d.key == (2, 120)).value == "Café € 5".encode()
    assert next(d for d in after.datasets if d.key == (2, 90)).value == "Zürich".encode()
    put_app13(photo, payload)
    tags = exiftool_read(photo, "-IPTC:all")
    assert tags["IPTC:CodedCharacterSet"] == "UTF8"
    assert listed(tags["IPTC:Keywords"]) == ["Müller", "plain", "Straße"]
    assert tags["IPTC:Caption-Abstract"] == "Café € 5" and tags["IPTC:City"] == "Zürich"
    rows = exiv2_iptc(photo)
    assert ("Iptc.Application2.City", "Zürich") in rows
    assert [value for key, value in rows if key == "Iptc.Application2.Keywords"] == ["Müller", "plain", "Straße"]


def test_latin_bytes_cp1252_leaves_undefined_read_as_exiftool_reads_them(tmp_path: Path) -> None:
    raw = b"a\x81\x80\xe9"  # 0x81 has no cp1252 character: exiftool keeps it as U+0081
    payload = block(resource(0x0404, dataset(2, 0, b"\x00\x04") + dataset(2, 25, raw)))
    photo = blank_jpeg(tmp_path / "undefined.jpg")
    put_app13(photo, payload)
    ours = IptcBlock.parse(payload).keywords
    assert ours == ["a\x81€é"]
    assert listed(exiftool_read(photo, "-IPTC:Keywords")["IPTC:Keywords"]) == ours


def test_text_in_a_character_set_that_cannot_be_converted_is_refused() -> None:
    other = dataset(1, 90, b"\x1b%/I")  # an ISO 2022 designation other than UTF-8
    refused = IptcBlock.parse(block(resource(0x0404, other + dataset(2, 120, b"caf\xe9"))))
    assert refused.charset == "unconvertible"
    with pytest.raises(FileSkipped) as caught:
        refused.with_keywords(["x"])
    assert caught.value.reason == "unsupported" and "2:120" in str(caught.value)
    shifted = IptcBlock.parse(block(resource(0x0404, dataset(2, 120, b"\x1b$B\xa4\xa2"))))  # ISO 2022 inside
    with pytest.raises(FileSkipped):
        shifted.with_keywords(["x"])
    # ASCII text reads the same in any of them: the block is written, as UTF-8
    ascii_only = IptcBlock.parse(block(resource(0x0404, other + dataset(2, 120, b"cafe"))))
    written = IptcBlock.parse(ascii_only.with_keywords(["x"]))
    assert written.charset == "utf-8" and written.keywords == ["x"]
    assert [d.raw for d in written.datasets if d.key == (2, 120)] == [dataset(2, 120, b"cafe")]


def test_an_empty_keyword_list_removes_every_keyword_and_keeps_the_rest(tmp_path: Path) -> None:
    photo = blank_jpeg(tmp_path / "remove.jpg")
    exiftool_write(photo, "-IPTC:CodedCharacterSet=UTF8", "-IPTC:Keywords=a", "-IPTC:City=Köln",
                   "-IPTC:Keywords=b")
    before = IptcBlock.parse(app13(photo))
    payload = before.with_keywords([])
    after = IptcBlock.parse(payload)
    assert after.keywords == [] and [d.raw for d in after.datasets] == [d.raw for d in before.datasets
                                                                          if d.key != (2, 25)]
    put_app13(photo, payload)
    tags = exiftool_read(photo, "-IPTC:all")
    assert "IPTC:Keywords" not in tags and tags["IPTC:City"] == "Köln"
    # nothing to write where there is no IPTC: the payload (or its absence) is returned as it was
    assert IptcBlock.parse(None).with_keywords([]) is None
    only_resolution = block(resource(0x03ED, bytes(16)))
    assert IptcBlock.parse(only_resolution).with_keywords(["", "z" * 65]) == only_resolution


def test_an_extended_dataset_odd_resources_and_padding_survive(tmp_path: Path) -> None:
    preview = bytes(range(256)) * 160  # 40960 bytes: needs IIM's extended length
    extended = bytes((0x1C, 2, 202)) + struct.pack(">HI", 0x8004, len(preview)) + preview
    iptc = dataset(1, 90, UTF8) + dataset(2, 0, b"\x00\x04") + dataset(2, 25, b"old") + extended + b"\x00\x00\x00"
    payload = block(resource(0x0BB7, b"odd", name=b"ab"), resource(0x0404, iptc, name=b"IPTC"),
                    resource(0x0FA0, b"\x01\x02\x03", kind=b"MeSa"))
    before = IptcBlock.parse(payload)
    assert before.keywords == ["old"] and before.iptc_padding == b"\x00\x00\x00"
    written = before.with_keywords(["new"])
    after = IptcBlock.parse(written)
    not_iptc = lambda resources: [r.raw for r in resources if r.id != 0x0404]  # noqa: E731
    assert not_iptc(after.resources[:-1]) == not_iptc(before.resources)
    assert after.resources[-1].id == 0x0425 and after.digest_state == "current"  # no digest before: appended
    assert after.resources[1].name == before.resources[1].name  # the IPTC resource keeps its name
    assert [d.raw for d in after.datasets] == [dataset(1, 90, UTF8), dataset(2, 0, b"\x00\x04"),
                                               dataset(2, 25, b"new"), extended]
    assert after.iptc_padding == b"\x00\x00\x00" and after.keywords == ["new"]
    photo = blank_jpeg(tmp_path / "extended.jpg")
    put_app13(photo, written)
    assert listed(exiftool_read(photo, "-IPTC:Keywords")["IPTC:Keywords"]) == ["new"]
    out = subprocess.run(["exiftool", "-b", "-IPTC:ObjectPreviewData", str(photo)], capture_output=True, check=True)
    assert out.stdout == preview


# --- the digest ---------------------------------------------------------------------------------


def test_digest_states_of_blocks_exiftool_wrote(tmp_path: Path) -> None:
    photo = blank_jpeg(tmp_path / "digest.jpg")
    exiftool_write(photo, "-IPTC:Keywords=alpha")
    assert IptcBlock.parse(app13(photo)).digest_state == "absent"
    exiftool_write(photo, "-IPTCDigest=new")
    assert IptcBlock.parse(app13(photo)).digest_state == "current"
    exiftool_write(photo, "-IPTC:Keywords+=legacy")  # a plain IPTC edit leaves the digest behind
    assert IptcBlock.parse(app13(photo)).digest_state == "changed"
    assert any("IPTCDigest is not current" in w for w in exiftool_read(photo)["warnings"])


def test_a_current_digest_is_updated_and_a_stale_one_kept(tmp_path: Path) -> None:
    photo = blank_jpeg(tmp_path / "current.jpg")
    exiftool_write(photo, "-XMP:Subject=alpha", "-IPTC:Keywords=alpha", "-IPTC:Caption-Abstract=kept",
                   "-IPTCDigest=new")
    put_app13(photo, IptcBlock.parse(app13(photo)).with_keywords(["alpha", "ours"]))
    tags = exiftool_read(photo, "-IPTCDigest", "-CurrentIPTCDigest")
    assert tags["Photoshop:IPTCDigest"] == tags["File:CurrentIPTCDigest"] and tags["warnings"] == []

    # A legacy tool changes the caption and a keyword: the stale digest says "believe the IIM".
    exiftool_write(photo, "-IPTC:Caption-Abstract=legacy caption", "-IPTC:Keywords+=legacy")
    stale = IptcBlock.parse(app13(photo))
    assert stale.digest_state == "changed"
    payload = stale.with_keywords(["alpha", "ours", "legacy", "more"])
    assert IptcBlock.parse(payload).digest == stale.digest  # kept: the caption edit stays visible to MWG readers
    put_app13(photo, payload)
    tags = exiftool_read(photo, "-MWG:Keywords", "-MWG:Description")
    assert listed(tags["MWG:Keywords"]) == ["alpha", "ours", "legacy", "more"]
    assert tags["MWG:Description"] == "legacy caption"


# --- MWG reconciliation, on files exiftool wrote ---------------------------------------------------

LONG = "a keyword longer than the sixty-four bytes IPTC-IIM allows in 2:25"  # 66 bytes
MWG_CASES = {
    # name: (exiftool writes, in turn), the MWG keywords, the side they come from
    "in sync: XMP": ([["-XMP:Subject=alpha", "-XMP:Subject=beta", "-IPTC:Keywords=alpha", "-IPTC:Keywords=beta",
                       "-IPTCDigest=new"], ["-XMP:Subject+=gamma"]], ["alpha", "beta", "gamma"], "xmp"),
    "stale digest: IIM": ([["-XMP:Subject=alpha", "-XMP:Subject=beta", "-IPTC:Keywords=alpha", "-IPTC:Keywords=beta",
                            "-IPTCDigest=new"], ["-IPTC:Keywords-=beta", "-IPTC:Keywords+=legacy"]],
                          ["alpha", "legacy"], "iptc"),
    "no digest: XMP": ([["-XMP:Subject=from-xmp", "-IPTC:Keywords=from-iim"]], ["from-xmp"], "xmp"),
    "no XMP: IIM": ([["-IPTC:Keywords=from-iim", "-IPTCDigest=new"]], ["from-iim"], "iptc"),
    "no IIM: XMP": ([["-XMP:Subject=from-xmp"]], ["from-xmp"], "xmp"),
    "stale, truncated: XMP's full keyword": (
        [[f"-XMP:Subject={LONG}", f"-IPTC:Keywords={LONG[:64]}", "-IPTCDigest=new"], ["-IPTC:Keywords+=legacy"]],
        [LONG, "legacy"], "iptc"),
}


@pytest.mark.parametrize("case", MWG_CASES)
def test_mwg_keywords_agree_with_exiftools_mwg_module(tmp_path: Path, case: str) -> None:
    writes, expected, source = MWG_CASES[case]
    photo = blank_jpeg(tmp_path / "mwg.jpg")
    for arguments in writes:
        exiftool_write(photo, *arguments)
    tags = exiftool_read(photo, "-XMP-dc:Subject", "-MWG:Keywords")
    xmp = listed(tags.get("XMP-dc:Subject")) or None
    reading = mwg_reading(xmp, IptcBlock.parse(app13(photo)))
    assert reading.keywords == listed(tags["MWG:Keywords"]) == expected
    assert reading.source == source and reading.reason
    assert mwg_keywords(xmp, IptcBlock.parse(app13(photo))) == expected


def test_mwg_reading_without_exiftool() -> None:
    iim = dataset(2, 25, b"iim")
    current = block(resource(0x0404, iim), resource(0x0425, hashlib.md5(iim).digest()))
    stale = block(resource(0x0404, iim), resource(0x0425, bytes(16)))
    absent = block(resource(0x0404, iim))
    assert mwg_keywords(["xmp", "xmp"], IptcBlock.parse(current)) == ["xmp"]
    assert mwg_keywords(["xmp"], IptcBlock.parse(absent)) == ["xmp"]
    assert mwg_keywords(["xmp"], IptcBlock.parse(stale)) == ["iim"]
    assert mwg_keywords(None, IptcBlock.parse(current)) == mwg_keywords([], IptcBlock.parse(absent)) == ["iim"]
    assert mwg_keywords(None, IptcBlock.parse(None)) == []
    cut = block(resource(0x0404, dataset(2, 25, LONG.encode()[:64])), resource(0x0425, bytes(16)))
    assert mwg_keywords([LONG], IptcBlock.parse(cut)) == [LONG]
    assert mwg_keywords(["something else"], IptcBlock.parse(cut)) == [LONG[:64]]


# --- malformed blocks ----------------------------------------------------------------------------

MALFORMED = {
    "another header": b"Adobe_Photoshop2.5:" + resource(0x0404, dataset(2, 25, b"a")),
    "a resource cut short": block(b"8BIM\x04\x04\x00\x00\x00\x00"),
    "a resource overrunning": block(b"8BIM\x04\x04\x00\x00\x00\x00\x01\x00" + dataset(2, 25, b"a")),
    "not a resource": block(resource(0x03ED, bytes(16)), b"JUNKJUNKJUNKJUNK"),
    "a dataset overrunning": block(resource(0x0404, b"\x1c\x02\x19\x00\x09abc")),
    "a dataset cut short": block(resource(0x0404, dataset(2, 25, b"a") + b"\x1c\x02")),
    "an extended length of 0 bytes": block(resource(0x0404, b"\x1c\x02\xca\x80\x00abc")),
    "an extended length of 9 bytes": block(resource(0x0404, b"\x1c\x02\xca\x80\x09" + bytes(9) + b"ab")),
    "junk after the datasets": block(resource(0x0404, dataset(2, 25, b"a") + b"\x1b\x00\x01")),
    "two IPTC resources": block(resource(0x0404, dataset(2, 25, b"a")), resource(0x0404, dataset(2, 25, b"b"))),
    "two digests": block(resource(0x0425, bytes(16)), resource(0x0425, bytes(16))),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_blocks_raise_file_skipped(name: str) -> None:
    with pytest.raises(FileSkipped) as caught:
        IptcBlock.parse(MALFORMED[name])
    assert caught.value.reason == "unsupported"


def test_a_block_that_would_not_fit_one_segment_is_refused() -> None:
    big = block(resource(0x040C, bytes(65_400)))
    with pytest.raises(FileSkipped, match="64 KB"):
        IptcBlock.parse(big).with_keywords(["k" * 60, "l" * 60, "m" * 60])


def _check(payload: bytes) -> None:
    """Any payload: parsed or refused with FileSkipped; written or refused; what is written reads back,
    with every resource and dataset it does not own unchanged (text re-encoded where the block was not UTF-8)."""
    try:
        before = IptcBlock.parse(payload)
        _ = before.keywords, before.digest_state
        written = before.with_keywords(["kw", "狗"])
    except FileSkipped:
        return
    assert written is not None
    after = IptcBlock.parse(written)
    assert after.keywords == ["kw", "狗"] and after.charset == "utf-8"
    kept = lambda b: [r.raw for r in b.resources if not (r.kind == b"8BIM" and r.id in (0x0404, 0x0425))]  # noqa: E731
    assert kept(after) == kept(before)
    owned = ((2, 25), (1, 90))
    others = [d for d in after.datasets if d.key not in owned]
    for record in (1, 2):  # a record that is new gets its version dataset
        if not any(d.record == record for d in before.datasets):
            others.remove(next(d for d in others if d.key == (record, 0)))
    old = [d for d in before.datasets if d.key not in owned]
    assert [d.key for d in others] == [d.key for d in old]
    for new, was in zip(others, old, strict=True):
        assert new.raw == was.raw or (before.charset == "latin" and max(was.value) >= 0x80)


@given(st.binary(max_size=400))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_bytes_never_crash(data: bytes) -> None:
    _check(data)
    _check(PHOTOSHOP_HEADER + data)


_datasets = st.lists(st.tuples(st.sampled_from([1, 2, 3, 7]), st.sampled_from([0, 25, 90, 120, 200]),
                               st.binary(max_size=70)), max_size=6)
_resource_ids = st.sampled_from([0x0404, 0x0425, 0x03ED, 0x040C])


@st.composite
def _payloads(draw: st.DrawFn) -> bytes:
    parts = []
    for resource_id in draw(st.lists(_resource_ids, max_size=4)):
        if resource_id == 0x0404:
            data = b"".join(dataset(*d) for d in draw(_datasets))
        elif resource_id == 0x0425:
            data = draw(st.binary(min_size=16, max_size=16))
        else:
            data = draw(st.binary(max_size=30))
        parts.append(resource(resource_id, data, name=draw(st.binary(max_size=3))))
    payload = block(*parts)
    cut = draw(st.none() | st.integers(0, len(payload)))  # sometimes cut short, sometimes a byte flipped
    if cut is not None and cut < len(payload) and draw(st.booleans()):
        payload = payload[:cut] + bytes([payload[cut] ^ draw(st.integers(1, 255))]) + payload[cut + 1:]
    elif cut is not None:
        payload = payload[:cut]
    return payload


@given(_payloads())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_structured_blocks_never_crash_and_keep_what_they_do_not_touch(payload: bytes) -> None:
    _check(payload)
