"""Reading photo metadata without decoding pixels: real photos (../shared/photos) and small files made here."""

from __future__ import annotations

import json
import struct
import zlib
from datetime import datetime, timedelta
from pathlib import Path

import piexif
import pillow_heif
import pytest
from PIL import Image, ImageFile, TiffImagePlugin

from indexer.metadata import PhotoInfo, read_keywords_from_xmp, read_photo_info
from ram_model.errors import ImageError
from ram_model.preprocess import register_formats
from tests.conftest import PHOTOS

MANIFEST = json.loads((PHOTOS / "manifest.json").read_text(encoding="utf-8"))
WITH_FACTS = [entry for entry in MANIFEST["library"] if "exif" in entry or "size" in entry]
EDGE_WITH_WARNINGS = ["edge/invalid-exif.jpg", "edge/hopper_bad_exif.jpg", "edge/exif_gps_typeerror.jpg"]
NOT_IMAGES = {
    "edge/zero_bytes.jpg": "empty",
    "edge/empty.heic": "empty",
    "edge/not_an_image.jpg": "not_an_image",
    "edge/corrupted.heic": "corrupt",
    "edge/decompression_bomb.gif": "decompression_bomb",
}


def xmp_packet(body: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:digiKam="http://www.digikam.org/ns/1.0/"'
        ' xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        f' {body}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def bag(prefix: str, name: str, items: list[str]) -> str:
    lis = "".join(f"<rdf:li>{item}</rdf:li>" for item in items)
    return f"<{prefix}:{name}><rdf:Bag>{lis}</rdf:Bag></{prefix}:{name}>"


def jpeg(path: Path, **save: object) -> Path:
    Image.new("RGB", (32, 16), "gray").save(path, "JPEG", **save)
    return path


def with_app13(path: Path, iptc: bytes) -> Path:
    """Insert a Photoshop APP13 segment holding an IPTC-NAA resource (0x0404) right after SOI."""
    data = iptc + b"\x00" * (len(iptc) % 2)
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iptc)) + data
    payload = b"Photoshop 3.0\x00" + resource
    segment = b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload
    original = path.read_bytes()
    path.write_bytes(original[:2] + segment + original[2:])
    return path


def iptc_dataset(record: int, number: int, value: bytes) -> bytes:
    return struct.pack(">BBBH", 0x1C, record, number, len(value)) + value


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- the shared test photos --------------------------------------------------------------------


@pytest.mark.parametrize("entry", WITH_FACTS, ids=[entry["path"] for entry in WITH_FACTS])
def test_manifest_facts(entry: dict) -> None:
    info = read_photo_info(PHOTOS / entry["path"])
    facts = entry.get("exif", {})
    if "make" in facts:
        assert info.camera_make == facts["make"].strip()
    if "model" in facts:
        assert info.camera_model == facts["model"].strip()
    if "taken" in facts:
        assert info.taken_at is not None
        naive = info.taken_at.replace(tzinfo=None, microsecond=0)
        assert naive == datetime.strptime(facts["taken"], "%Y:%m:%d %H:%M:%S")
    if "size" in entry:
        assert [info.width, info.height] == entry["size"]


def test_every_library_photo_reads_cleanly(library_photos: list[Path]) -> None:
    for path in library_photos:
        info = read_photo_info(path)
        assert info.format in {"jpeg", "png", "webp", "heif", "mpo"}, path
        assert info.width and info.height, path
        assert info.warnings == (), path


def test_never_decodes_pixels(library_photos: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    register_formats()

    def refuse(self: Image.Image) -> None:
        raise AssertionError(f"pixel data of {self.format} decoded")

    classes = {factory for factory, _ in Image.OPEN.values() if isinstance(factory, type)} | {ImageFile.ImageFile}
    for cls in classes:
        if "load" in vars(cls):
            monkeypatch.setattr(cls, "load", refuse)
    for path in [*library_photos, PHOTOS / "edge/truncated_jpeg.jpg", PHOTOS / "edge/pil_sample_cmyk.jpg"]:
        read_photo_info(path)


def test_pug_gps_and_offset() -> None:
    info = read_photo_info(PHOTOS / "library/animals/pug.heic")
    assert info.gps_lat == pytest.approx(44.850478, abs=1e-6)
    assert info.gps_lon == pytest.approx(34.976647, abs=1e-6)
    assert info.taken_at is not None and info.taken_at.utcoffset() == timedelta(hours=3)


def test_offset_time_original_becomes_tzinfo() -> None:
    info = read_photo_info(PHOTOS / "library/animals/cat.hif")
    assert info.taken_at is not None and info.taken_at.utcoffset() == timedelta(hours=-5)
    assert read_photo_info(PHOTOS / "library/flowers/canon_flower.jpg").taken_at.tzinfo is None


@pytest.mark.parametrize("n", range(1, 9))
def test_exif_orientation(n: int) -> None:
    info = read_photo_info(PHOTOS / f"library/orientation/hopper_orientation_{n}.jpg")
    assert info.orientation == (None if n == 1 else n)  # the orientation-1 file has no EXIF at all
    assert (info.width, info.height) == (128, 128)


def test_formats() -> None:
    assert read_photo_info(PHOTOS / "library/flowers/flower.webp").format == "webp"
    assert read_photo_info(PHOTOS / "library/travel/fujifilm.mpo").format == "mpo"
    assert read_photo_info(PHOTOS / "library/animals/chelsea.png").format == "png"
    assert read_photo_info(PHOTOS / "library/animals/pug.heic").format == "heif"


def test_heif_reports_stored_size_and_its_turn() -> None:
    # libheif decodes this one upright (4672x7008); it is stored 7008x4672 with irot = 90° anticlockwise.
    path = PHOTOS / "library/music/guitar_cw90.hif"
    info = read_photo_info(path)
    assert (info.width, info.height, info.orientation) == (7008, 4672, 8)
    register_formats()
    with Image.open(path) as image:
        assert image.size == (4672, 7008)


@pytest.mark.skipif(not pillow_heif.libheif_info().get("HEIF"), reason="no HEIF encoder in this libheif")
def test_heif_orientation_round_trip(tmp_path: Path) -> None:
    """pillow-heif turns EXIF orientation N into irot/imir when saving; reading gives N back."""
    register_formats()
    for n in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = n
        path = tmp_path / f"o{n}.heic"
        Image.new("RGB", (64, 32), "red").save(path, exif=exif.tobytes(), quality=10)
        info = read_photo_info(path)
        assert (info.width, info.height, info.orientation) == (64, 32, n)


def test_xmp_fallbacks_for_camera() -> None:
    # chelsea.png carries its camera only in XMP (tiff:Make, with a trailing space).
    info = read_photo_info(PHOTOS / "library/animals/chelsea.png")
    assert (info.camera_make, info.camera_model) == ("PENTAX Corporation", "PENTAX K100D Super")


def test_iptc_date_created() -> None:
    info = read_photo_info(PHOTOS / "library/flowers/dahlia.jpg")  # IPTC only, no EXIF
    assert info.taken_at == datetime(2011, 8, 15, 18, 24, 59)


# --- broken files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EDGE_WITH_WARNINGS)
def test_broken_metadata_gives_warnings(name: str) -> None:
    info = read_photo_info(PHOTOS / name)
    assert isinstance(info, PhotoInfo)
    assert info.warnings
    assert info.width and info.height


def test_malformed_gps_is_named() -> None:
    info = read_photo_info(PHOTOS / "edge/exif_gps_typeerror.jpg")
    assert (info.gps_lat, info.gps_lon) == (None, None)
    assert any(warning.startswith("malformed GPS ignored") for warning in info.warnings)


@pytest.mark.parametrize("name", ["edge/truncated_jpeg.jpg", "edge/pil_sample_cmyk.jpg", "edge/truncated.heic"])
def test_damaged_pixels_still_give_metadata(name: str) -> None:
    info = read_photo_info(PHOTOS / name)
    assert info.width and info.height
    if name.endswith(".heic"):
        assert any("damaged HEIF" in warning for warning in info.warnings)


@pytest.mark.parametrize(("name", "reason"), sorted(NOT_IMAGES.items()))
def test_not_an_image_raises(name: str, reason: str) -> None:
    with pytest.raises(ImageError) as caught:
        read_photo_info(PHOTOS / name)
    assert caught.value.reason == reason
    assert Path(name).name in str(caught.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as caught:
        read_photo_info(tmp_path / "gone.jpg")
    assert caught.value.reason == "unreadable"


def test_bad_exif_values_give_warnings(tmp_path: Path) -> None:
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Orientation: 9, piexif.ImageIFD.Make: b"Acme\x00\x00  "},
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"2021:13:45 10:20:30",
            piexif.ExifIFD.DateTimeDigitized: b"2021:06:01 10:20:30",
            piexif.ExifIFD.OffsetTimeDigitized: b"+99:00",
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((51, 1), (30, 0), (0, 1)),
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: ((0, 1), (7, 1), (30, 1)),
        },
    })
    info = read_photo_info(jpeg(tmp_path / "bad.jpg", exif=exif))
    assert info.camera_make == "Acme"
    assert info.orientation is None
    assert info.taken_at == datetime(2021, 6, 1, 10, 20, 30)  # the digitized time; its offset is invalid
    assert (info.gps_lat, info.gps_lon) == (None, None)
    text = " | ".join(info.warnings)
    for expected in ("orientation", "DateTimeOriginal", "OffsetTimeDigitized", "malformed GPS"):
        assert expected in text


def test_exif_gps_south_west_and_subseconds(tmp_path: Path) -> None:
    exif = piexif.dump({
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"2021:06:01 10:20:30",
            piexif.ExifIFD.SubSecTimeOriginal: b"25",
            piexif.ExifIFD.OffsetTimeOriginal: b"+05:30",
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"S",
            piexif.GPSIFD.GPSLatitude: ((33, 1), (51, 1), (3600, 100)),
            piexif.GPSIFD.GPSLongitudeRef: b"W",
            piexif.GPSIFD.GPSLongitude: ((70, 1), (30, 1), (0, 1)),
        },
    })
    info = read_photo_info(jpeg(tmp_path / "gps.jpg", exif=exif))
    assert info.gps_lat == pytest.approx(-(33 + 51 / 60 + 36 / 3600))
    assert info.gps_lon == pytest.approx(-70.5)
    assert info.taken_at == datetime(2021, 6, 1, 10, 20, 30, 250000).replace(tzinfo=info.taken_at.tzinfo)
    assert info.taken_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert info.warnings == ()


def test_malformed_xmp_gives_a_warning(tmp_path: Path) -> None:
    info = read_photo_info(jpeg(tmp_path / "bad_xmp.jpg", xmp=b"<x:xmpmeta><rdf:RDF>not closed"))
    assert info.keywords == ()
    assert any("malformed XMP" in warning for warning in info.warnings)


# --- keywords ----------------------------------------------------------------------------------


def test_xmp_keywords_in_a_jpeg(tmp_path: Path) -> None:
    body = ">" + (
        bag("dc", "subject", ["Dog", "café", "长城", " dog ", "Cafe\u0301"])
        + bag("lr", "hierarchicalSubject", ["Animals|Mammals|Dog", "Places|China|北京"])
        + bag("digiKam", "TagsList", ["People/Grace Hopper"])
    )
    info = read_photo_info(jpeg(tmp_path / "tagged.jpg", xmp=xmp_packet(body)))
    # A path gives its leaf, then its parents (nearest first); one already stated counts once.
    assert info.keywords == ("Dog", "café", "长城", "Mammals", "Animals", "北京", "China", "Places", "Grace Hopper",
                             "People")
    assert info.warnings == ()


def test_xmp_facts_when_exif_has_none(tmp_path: Path) -> None:
    body = (
        'tiff:Make="Acme " tiff:Model="Box 1" tiff:Orientation="6" exif:DateTimeOriginal="2020-02-03T04:05:06+01:00"'
        ' exif:GPSLatitude="51,30.5N" exif:GPSLongitude="0,7,30W">'
    )
    info = read_photo_info(jpeg(tmp_path / "xmp_only.jpg", xmp=xmp_packet(body)))
    assert (info.camera_make, info.camera_model, info.orientation) == ("Acme", "Box 1", 6)
    assert info.taken_at == datetime.fromisoformat("2020-02-03T04:05:06+01:00")
    assert info.gps_lat == pytest.approx(51 + 30.5 / 60)
    assert info.gps_lon == pytest.approx(-0.125)


def test_exif_xp_keywords(tmp_path: Path) -> None:
    exif = piexif.dump({"0th": {piexif.ImageIFD.XPKeywords: "sunset;海滩;Beach; ".encode("utf-16-le") + b"\x00\x00"}})
    info = read_photo_info(jpeg(tmp_path / "xp.jpg", exif=exif))
    assert info.keywords == ("sunset", "海滩", "Beach")


def test_iptc_keywords(tmp_path: Path) -> None:
    iptc = (
        iptc_dataset(1, 90, b"\x1b%G")
        + iptc_dataset(2, 25, "Zürich".encode())
        + iptc_dataset(2, 25, "猫".encode())
        + iptc_dataset(2, 55, b"20190704")
        + iptc_dataset(2, 60, b"120000+0200")
    )
    info = read_photo_info(with_app13(jpeg(tmp_path / "iptc.jpg"), iptc))
    assert info.keywords == ("Zürich", "猫")
    assert info.taken_at == datetime.fromisoformat("2019-07-04T12:00:00+02:00")


def test_iptc_latin1_keywords(tmp_path: Path) -> None:
    iptc = iptc_dataset(2, 25, "Café".encode("latin-1"))
    assert read_photo_info(with_app13(jpeg(tmp_path / "latin1.jpg"), iptc)).keywords == ("Café",)


def test_sources_are_merged_in_order(tmp_path: Path) -> None:
    exif = piexif.dump({"0th": {piexif.ImageIFD.XPKeywords: "xp;Shared".encode("utf-16-le")}})
    path = jpeg(tmp_path / "all.jpg", exif=exif, xmp=xmp_packet(">" + bag("dc", "subject", ["xmp", "shared"])))
    with_app13(path, iptc_dataset(2, 25, b"iptc"))
    (tmp_path / "all.jpg.xmp").write_bytes(xmp_packet(">" + bag("dc", "subject", ["sidecar", "XMP"])))
    assert read_photo_info(path).keywords == ("xmp", "shared", "iptc", "xp", "sidecar")


@pytest.mark.parametrize("sidecar", ["IMG_1.jpg.xmp", "IMG_1.xmp"])
def test_sidecar_keywords(tmp_path: Path, sidecar: str) -> None:
    path = jpeg(tmp_path / "IMG_1.jpg")
    (tmp_path / sidecar).write_bytes(xmp_packet(">" + bag("lr", "hierarchicalSubject", ["Trips|Kyoto|寺"])))
    info = read_photo_info(path)
    assert info.keywords == ("寺", "Kyoto", "Trips")
    assert info.warnings == ()


def test_malformed_sidecar_gives_a_warning(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "IMG_2.jpg")
    (tmp_path / "IMG_2.xmp").write_bytes(b"<x:xmpmeta>")
    info = read_photo_info(path)
    assert info.keywords == ()
    assert any("IMG_2.xmp" in warning for warning in info.warnings)


def test_png_xmp_and_exif_after_the_image_data(tmp_path: Path) -> None:
    path = tmp_path / "late.png"
    Image.new("RGB", (8, 8), "blue").save(path)
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"LateCam", piexif.ImageIFD.Orientation: 3}})
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp_packet(">" + bag("dc", "subject", ["late"]))
    data = path.read_bytes()
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + png_chunk(b"eXIf", exif[6:]) + png_chunk(b"iTXt", itxt) + data[iend:])
    info = read_photo_info(path)
    assert (info.camera_make, info.orientation, info.keywords) == ("LateCam", 3, ("late",))


def test_tiff_stored_size_xmp_and_iptc(tmp_path: Path) -> None:
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x0112] = 6  # Orientation: Pillow itself reports this TIFF's size already turned
    tags[700] = xmp_packet(">" + bag("dc", "subject", ["from xmp"]))
    tags[33723] = iptc_dataset(2, 25, b"from iptc")
    path = tmp_path / "turned.tif"
    Image.new("RGB", (40, 20), "green").save(path, tiffinfo=tags)
    info = read_photo_info(path)
    assert (info.format, info.width, info.height, info.orientation) == ("tiff", 40, 20, 6)
    assert info.keywords == ("from xmp", "from iptc")


def test_read_keywords_from_xmp() -> None:
    packet = xmp_packet(">" + bag("dc", "subject", ["a", "A", "b"]) + bag("digiKam", "TagsList", ["x/y/c"]))
    assert read_keywords_from_xmp(packet) == ["a", "b", "c", "y", "x"]
    attribute_form = xmp_packet('dc:subject="solo">')
    assert read_keywords_from_xmp(attribute_form) == ["solo"]
    with pytest.raises(ValueError):
        read_keywords_from_xmp(b"not xml at all")
    with pytest.raises(ValueError, match="DTD"):
        read_keywords_from_xmp(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
