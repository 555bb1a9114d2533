"""XMP merging and JPEG embedding at the byte level: no catalog, real photos from ../shared/photos."""

from __future__ import annotations

import json
import shutil
import subprocess

import piexif
import pytest

from indexer.errors import FileSkipped, XmpError
from indexer.metadata.embed import JpegFile, embeddable, pixel_digest, set_xp_keywords, verify
from indexer.metadata.read import read_keywords_from_xmp
from indexer.metadata.xmp import Claim, XmpPacket
from tests.conftest import PHOTOS

DOG = Claim("dog", "dog", "model", "ram_plus", "abc123", 0.8123, confirmed=False)
CAT = Claim("cat", "cat", "user", confirmed=True)
DOG_ZH = Claim("狗", "dog", "user", confirmed=True)


def packet(body: str = "", attributes: str = "", wrapper: bool = True) -> bytes:
    rdf = ('<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
           ' xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:my="http://example.com/my/"'
           f' {attributes}>{body}</rdf:Description></rdf:RDF>')
    if not wrapper:
        return rdf.encode()
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{rdf}</x:xmpmeta><?xpacket end="w"?>').encode()


def bag(prefix: str, name: str, items: list[str]) -> str:
    return f"<{prefix}:{name}><rdf:Bag>{''.join(f'<rdf:li>{i}</rdf:li>' for i in items)}</rdf:Bag></{prefix}:{name}>"


def test_a_new_packet_holds_every_list_and_the_record_of_what_phototag_wrote() -> None:
    xmp = XmpPacket.new()
    change = xmp.merge([DOG, CAT, DOG_ZH])
    assert change.added == ["dog", "cat", "狗"] and not change.removed
    data = xmp.to_bytes()
    assert data.startswith(b'<?xpacket begin="\xef\xbb\xbf"') and data.endswith(b'<?xpacket end="w"?>')
    again = XmpPacket.parse(data)
    assert again.subject() == again.hierarchical_subject() == again.tags_list() == ["dog", "cat", "狗"]
    assert again.last_keyword_xmp() == ["dog", "cat", "狗"]
    assert again.claims() == [DOG, CAT, DOG_ZH]
    assert read_keywords_from_xmp(data) == ["dog", "cat", "狗"]
    assert b"<digiKam:TagsList>\n" in data and b"<rdf:Seq>" in data  # digiKam's list is ordered


def test_other_tools_keywords_are_kept_never_claimed_and_never_removed() -> None:
    xmp = XmpPacket.parse(packet(bag("dc", "subject", ["Holiday", "Dog"]) + bag("lr", "hierarchicalSubject",
                                                                                 ["Places|Paris"])
                                 + '<my:rating>5</my:rating>'))
    change = xmp.merge([DOG, CAT, Claim("paris", "paris", "user", confirmed=True)])
    # "Dog" and "Paris" (a hierarchical leaf) are someone else's: not added twice, not claimed.
    assert change.added == ["cat"]
    assert [claim.name for claim in xmp.claims()] == ["cat"]
    assert xmp.subject() == ["Holiday", "Dog", "cat"]
    assert xmp.hierarchical_subject() == ["Places|Paris", "cat"]
    # Removing a keyword Phototag did not write does nothing; removing its own works.
    change = xmp.merge([], drop=["dog", "holiday", "cat"])
    assert change.removed == ["cat"]
    data = xmp.to_bytes()
    assert XmpPacket.parse(data).subject() == ["Holiday", "Dog"]
    assert b'xmlns:my="http://example.com/my/"' in data and b"<my:rating>5</my:rating>" in data


def test_a_merge_that_changes_nothing_says_so_and_updates_only_the_record() -> None:
    xmp = XmpPacket.new()
    precise = Claim("dog", "dog", "model", "ram_plus", "abc123", 0.81234567, confirmed=False)
    xmp.merge([precise])
    xmp = XmpPacket.parse(xmp.to_bytes())
    assert not xmp.merge([precise]).changed  # the score reads back rounded: still the same record
    assert not xmp.merge([DOG]).changed
    confirmed = Claim("dog", "dog", "model", "ram_plus", "abc123", 0.8123, confirmed=True)
    change = xmp.merge([confirmed])
    assert change.changed and change.claims_changed and not change.added
    assert xmp.claims() == [confirmed]


def test_a_new_subject_starts_with_the_photos_own_keywords_unclaimed() -> None:
    xmp = XmpPacket.new()
    change = xmp.merge([DOG, CAT], seed=["From IPTC", "cat"])
    # "cat" is the photo's own keyword already: seeded, not claimed.
    assert change.seeded == ["From IPTC", "cat"] and change.added == ["dog"]
    assert xmp.subject() == ["From IPTC", "cat", "dog"]
    assert [claim.name for claim in xmp.claims()] == ["dog"]
    assert not XmpPacket.new().merge([], seed=["x"]).changed  # nothing to add: nothing seeded either


def test_unusual_but_valid_packets_are_merged() -> None:
    # No xpacket wrapper and no x:xmpmeta; a keyword list in attribute form; a single value.
    xmp = XmpPacket.parse(packet(attributes='dc:subject="Solo"', wrapper=False))
    xmp.merge([CAT])
    assert XmpPacket.parse(xmp.to_bytes()).subject() == ["Solo", "cat"]
    xmp = XmpPacket.parse(packet("<dc:subject>Single</dc:subject>"))
    xmp.merge([CAT])
    assert XmpPacket.parse(xmp.to_bytes()).subject() == ["Single", "cat"]


@pytest.mark.parametrize("data", [b"", b"not xml", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>",
                                  b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', b"<root/>"])
def test_packets_that_cannot_be_read_are_refused(data: bytes) -> None:
    with pytest.raises(XmpError):
        XmpPacket.parse(data)


def test_special_characters_and_chinese_survive_a_round_trip() -> None:
    names = ["a&b <c> \"d\"", "Café ☕ naïve", "长城", "tab\there"]
    xmp = XmpPacket.new()
    xmp.merge([Claim(name, name, "user", confirmed=True) for name in names])
    assert XmpPacket.parse(xmp.to_bytes()).subject() == names


# --- JPEG --------------------------------------------------------------------------------------


def canon() -> bytes:
    return (PHOTOS / "library/flowers/canon_flower.jpg").read_bytes()


def test_embedding_keeps_every_other_segment_and_the_scan_data() -> None:
    data = canon()
    jpeg = JpegFile.parse(data)
    assert embeddable(jpeg) is None
    xmp = XmpPacket.new()
    xmp.merge([DOG, DOG_ZH])
    packet_bytes = xmp.to_bytes(padding=2048)
    tiff = set_xp_keywords(jpeg.exif(), ["dog", "狗"])
    written = jpeg.with_metadata(packet_bytes, tiff).to_bytes()
    verify(jpeg, written, xmp=packet_bytes, xp_keywords=["dog", "狗"], original_pixels=pixel_digest(data))
    again = JpegFile.parse(written)
    assert again.scan == jpeg.scan and again.xmp() == packet_bytes
    assert again.xp_keywords() == ["dog", "狗"]
    # Only IFD0 moved: every other byte of the EXIF block is where it was (maker notes keep their offsets).
    assert again.exif()[8 : len(jpeg.exif())] == jpeg.exif()[8:]
    before, after = piexif.load(data), piexif.load(written)
    assert after["0th"].pop(piexif.ImageIFD.XPKeywords) and before == after


def test_xp_keywords_can_be_replaced_and_removed() -> None:
    tiff = JpegFile.parse(canon()).exif()
    once = set_xp_keywords(tiff, ["a", "b"])
    twice = set_xp_keywords(once, ["b"])
    assert piexif.load(b"Exif\x00\x00" + once)["0th"][piexif.ImageIFD.XPKeywords] == tuple("a;b".encode("utf-16-le")
                                                                                         + b"\x00\x00")
    assert piexif.load(b"Exif\x00\x00" + twice)["0th"][piexif.ImageIFD.XPKeywords] == tuple("b".encode("utf-16-le")
                                                                                          + b"\x00\x00")
    assert piexif.ImageIFD.XPKeywords not in piexif.load(b"Exif\x00\x00" + set_xp_keywords(twice, []))["0th"]


def test_verify_notices_a_changed_pixel_or_segment() -> None:
    data = canon()
    jpeg = JpegFile.parse(data)
    xmp = XmpPacket.new().to_bytes()
    written = bytearray(jpeg.with_metadata(xmp, None).to_bytes())
    written[-100] ^= 0xFF  # one bit of the scan data
    with pytest.raises(FileSkipped, match="scan data"):
        verify(jpeg, bytes(written), xmp=xmp, xp_keywords=None, original_pixels=pixel_digest(data))
    with pytest.raises(FileSkipped, match="pixels"):
        verify(jpeg, jpeg.with_metadata(xmp, None).to_bytes(), xmp=xmp, xp_keywords=None,
               original_pixels=("RGB", (1, 1), "0"))


def test_two_xmp_packets_and_non_jpegs_are_not_embedded_into() -> None:
    # MPOs and non-standard XMP headers are embedded into: tests/indexer/metadata/test_embed_jpegs.py
    once = JpegFile.parse(canon()).with_metadata(XmpPacket.new().to_bytes(), None)
    twice = JpegFile(once.segments + tuple(s for s in once.segments if s.is_xmp), once.scan)
    assert "more than one XMP segment" in embeddable(twice)
    with pytest.raises(FileSkipped):
        JpegFile.parse(b"\x89PNG\r\n")


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (./dev test installs it)")
def test_exiftool_finds_the_canon_maker_note_intact(tmp_path) -> None:  # noqa: ANN001
    data = canon()
    jpeg = JpegFile.parse(data)
    xmp = XmpPacket.new()
    xmp.merge([DOG])
    (tmp_path / "out.jpg").write_bytes(jpeg.with_metadata(xmp.to_bytes(2048), set_xp_keywords(jpeg.exif(),
                                                                                            ["dog"])).to_bytes())
    (tmp_path / "in.jpg").write_bytes(data)

    def facts(name: str) -> dict:
        out = subprocess.run(["exiftool", "-j", "-a", "-G1", "-validate", "-warning", "-MakerNotes:all",
                              str(tmp_path / name)], capture_output=True, text=True, check=True).stdout
        return json.loads(out)[0]

    before, after = facts("in.jpg"), facts("out.jpg")
    canon_tags = {k: v for k, v in before.items() if k.startswith("Canon")}
    assert len(canon_tags) > 40 and {k: after.get(k) for k in canon_tags} == canon_tags
    # Only one minor warning: exiftool's URI for the Microsoft namespace lacks the slash Windows and exiv2 use.
    assert after.get("ExifTool:Warning", "").endswith("MicrosoftPhoto") or "ExifTool:Warning" not in after


def test_keywords_the_file_states_elsewhere_are_someone_elses() -> None:
    xmp = XmpPacket.parse(packet(bag("dc", "subject", ["Holiday"])))
    change = xmp.merge([DOG, CAT], elsewhere=["Dog"])  # e.g. XPKeywords written by Windows
    assert change.added == ["cat"] and [claim.name for claim in xmp.claims()] == ["cat"]
