"""Keywords as each photo app writes them, read when indexing (issue 16, item 4).

Every fixture is made here by a real metadata tool — exiftool, and exiv2 where the app itself uses
exiv2 (digiKam) or spells a namespace as exiv2 does (Windows) — laid out as the app lays it out:
which fields, which separators, which sidecar name. Where the layout comes from:

- Lightroom Classic: keywords in ``dc:subject`` (with their parents when "Export Containing
  Keywords" is on, the default) and full paths in ``lr:hierarchicalSubject``, plus IPTC Keywords in
  a JPEG; proprietary RAW files get ``IMG.xmp`` (extension replaced), so a RAW+JPEG pair shares it.
- digiKam (its default tag namespaces, ``dmetadatasettingscontainer.cpp``): ``digiKam:TagsList``
  (``/``), ``MicrosoftPhoto:LastKeywordXMP`` (``/``), ``lr:hierarchicalSubject`` and
  ``mediapro:CatalogSets`` (``|``), ``acdsee:categories``, and leaves only in ``dc:subject`` and
  IPTC; its sidecar is ``IMG.jpg.xmp``.
- darktable (``src/common/tags.c``): ``lr:hierarchicalSubject`` with full paths and every path
  component in ``dc:subject``; sidecar ``IMG.ext.xmp`` for every file, RAW or not.
- Immich (docs.immich.app/features/xmp-sidecars): reads ``digiKam:TagsList``, then
  ``lr:HierarchicalSubject``, then IPTC Keywords; writes ``TagsList`` (``/`` paths) to
  ``IMG.jpg.xmp``, and reads ``IMG.xmp`` too.
- Capture One: ``IMG.xmp`` next to the RAW, flat entries in ``lr:hierarchicalSubject`` (immich
  issues #12403, #12164) as well as ``dc:subject``.
- Windows (the System.Keywords photo metadata policy, learn.microsoft.com): Explorer writes
  ``dc:subject``, IPTC Keywords, ``XPKeywords``, ``MicrosoftPhoto:LastKeywordXMP`` and
  ``LastKeywordIPTC``; Photo Gallery puts its tag paths (``People/Anna``) in ``LastKeywordXMP``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from indexer.catalog import Catalog
from indexer.metadata.read import _MAX_PATH_DEPTH, MAX_FILE_KEYWORDS, MAX_KEYWORD_CHARS, read_photo_info
from indexer.schema import SOURCE_FILE, Photo, PhotoTag, Tag
from main import main
from tests.conftest import PHOTOS
from tests.indexer.metadata.helpers import exiftool, exiv2, tags

EXIFTOOL = shutil.which("exiftool")
EXIV2 = shutil.which("exiv2")
pytestmark = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed (./dev test installs it)")
needs_exiv2 = pytest.mark.skipif(EXIV2 is None, reason="exiv2 is not installed (./dev test installs it)")

STANDARD_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
NONSTANDARD_XMP = b"XMP\x00://ns.adobe.com/xap/1.0/\x00"  # as in ../shared/photos: flowers/dahlia.jpg, travel/china.jpg
EMPTY_SIDECAR = b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>' \
                b'<?xpacket end="w"?>'

Layout = dict[Path, tuple[str, ...]]  # photo -> the keywords read_photo_info gives it


def noise(path: Path, seed: int) -> Path:
    """A small distinct JPEG (noise), so that no two share a content hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG")
    return path


def fake_raw(path: Path, seed: int) -> Path:
    """A camera RAW by name whose headers Pillow cannot read (as it cannot read CR3, RAF, ORF, RW2, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a RAW file Pillow knows" * 40 + seed.to_bytes(4, "big"))
    return path


def nonstandard_header(path: Path) -> Path:
    """Move the standard XMP APP1 segment under the non-standard header some tools wrote (same length)."""
    data = path.read_bytes()
    at = data.index(STANDARD_XMP)
    assert data[at - 4 : at - 2] == b"\xff\xe1"
    path.write_bytes(data[:at] + NONSTANDARD_XMP + data[at + len(STANDARD_XMP) :])
    return path


# --- each app's layout -------------------------------------------------------------------------


def lightroom(folder: Path, sidecar_suffix: str = ".xmp") -> Layout:
    # A JPEG with its metadata saved into it: dc:subject with the parents ("Export Containing Keywords" on for
    # Places, off for People), full paths in lr:hierarchicalSubject, IPTC Keywords as dc:subject.
    jpeg = noise(folder / "LR_0001.jpg", 1)
    subject = ["Paris", "Europe", "Places", "Anna"]
    exiftool("-overwrite_original", "-IPTC:CodedCharacterSet=UTF8", *tags("XMP-dc", "Subject", *subject),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris", "People|Family|Anna"),
             *tags("IPTC", "Keywords", *subject), jpeg)
    # A RAW+JPEG pair: Lightroom writes the RAW's sidecar, IMG.xmp; the JPEG shares its name.
    raw, pair = fake_raw(folder / "LR_0002.CR2", 2), noise(folder / "LR_0002.JPG", 3)
    exiftool("-o", folder / f"LR_0002{sidecar_suffix}", *tags("XMP-dc", "Subject", "Lighthouse", "Coast"),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Coast|Lighthouse"))
    pair_keywords = ("Lighthouse", "Coast", "Places")
    return {jpeg: ("Paris", "Europe", "Places", "Anna", "Family", "People"), raw: pair_keywords, pair: pair_keywords}


def digikam(folder: Path) -> Layout:
    photo = noise(folder / "DK_0001.jpg", 4)
    sidecar = folder / "DK_0001.jpg.xmp"
    sidecar.write_bytes(EMPTY_SIDECAR)  # digiKam writes through exiv2, which edits an existing sidecar
    exiv2(sidecar,
          "set Xmp.digiKam.TagsList XmpSeq Places/Europe/Paris", "set Xmp.digiKam.TagsList People/Anna",
          "set Xmp.MicrosoftPhoto.LastKeywordXMP XmpBag Places/Europe/Paris",
          "set Xmp.MicrosoftPhoto.LastKeywordXMP People/Anna",
          "set Xmp.lr.hierarchicalSubject XmpBag Places|Europe|Paris", "set Xmp.lr.hierarchicalSubject People|Anna",
          "set Xmp.mediapro.CatalogSets XmpBag Places|Europe|Paris", "set Xmp.mediapro.CatalogSets People|Anna",
          'set Xmp.acdsee.categories <Categories><Category Assigned="0">Places<Category Assigned="0">Europe'
          '<Category Assigned="1">Paris</Category></Category></Category><Category Assigned="0">People'
          '<Category Assigned="1">Anna</Category></Category></Categories>',
          "set Xmp.dc.subject XmpBag Paris", "set Xmp.dc.subject Anna")
    return {photo: ("Paris", "Anna", "Europe", "Places", "People")}


def darktable(folder: Path) -> Layout:
    # darktable keeps a sidecar for every image, named after the whole file name; dc:subject holds every level.
    raw = fake_raw(folder / "DT_0001.ORF", 5)
    exiftool("-o", folder / "DT_0001.ORF.xmp", "-XMP-xmp:CreatorTool=darktable 4.6.1",
             *tags("XMP-lr", "HierarchicalSubject", "unterwegs|föhr|2024"),
             *tags("XMP-dc", "Subject", "2024", "föhr", "unterwegs"))
    jpeg = noise(folder / "DT_0002.jpg", 6)
    exiftool("-o", folder / "DT_0002.jpg.xmp", *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris"),
             *tags("XMP-dc", "Subject", "Europe", "Paris", "Places"))
    return {raw: ("2024", "föhr", "unterwegs"), jpeg: ("Europe", "Paris", "Places")}


def immich(folder: Path) -> Layout:
    # Immich writes tags as digiKam:TagsList paths to IMG.jpg.xmp, and reads IMG.xmp and lr:HierarchicalSubject too.
    written = noise(folder / "IM_0001.jpg", 7)
    exiftool("-o", folder / "IM_0001.jpg.xmp", *tags("XMP-digiKam", "TagsList", "Trips/Kyoto/Temple", "Family"))
    lightroom_tagged = noise(folder / "IM_0002.jpg", 8)
    exiftool("-o", folder / "IM_0002.xmp", *tags("XMP-lr", "HierarchicalSubject", "Trips|Kyoto|Garden"))
    return {written: ("Temple", "Kyoto", "Trips", "Family"), lightroom_tagged: ("Garden", "Kyoto", "Trips")}


def capture_one(folder: Path) -> Layout:
    # Capture One: IMG.xmp next to the RAW, its keywords flat in lr:hierarchicalSubject as well as in dc:subject;
    # an exported JPEG carries a hierarchy with '|'.
    raw = fake_raw(folder / "C1_0001.CR3", 9)
    flat = ["Conference", "München", "Munich"]
    exiftool("-o", folder / "C1_0001.xmp", *tags("XMP-dc", "Subject", *flat),
             *tags("XMP-lr", "HierarchicalSubject", *flat))
    export = noise(folder / "C1_0002.jpg", 10)
    exiftool("-overwrite_original", *tags("XMP-dc", "Subject", "Paris"),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris"), export)
    return {raw: tuple(flat), export: ("Paris", "Europe", "Places")}


def windows(folder: Path) -> Layout:
    # Explorer's tags: dc:subject, IPTC, XPKeywords, LastKeywordIPTC; Photo Gallery's paths in LastKeywordXMP.
    # The XMP is written by exiv2, which spells the Microsoft namespace as Windows does (with the slash).
    photo = noise(folder / "WIN_0001.jpg", 11)
    exiftool("-overwrite_original", "-XPKeywords=Paris;Anna", "-IPTC:CodedCharacterSet=UTF8",
             *tags("IPTC", "Keywords", "Paris", "Anna"), photo)
    exiv2(photo, "set Xmp.dc.subject XmpBag Paris", "set Xmp.dc.subject Anna",
          "set Xmp.MicrosoftPhoto.LastKeywordXMP XmpBag Places/Europe/Paris",
          "set Xmp.MicrosoftPhoto.LastKeywordXMP People/Anna",
          "set Xmp.MicrosoftPhoto.LastKeywordIPTC XmpBag Paris", "set Xmp.MicrosoftPhoto.LastKeywordIPTC Anna")
    explorer_only = noise(folder / "WIN_0002.jpg", 12)
    exiftool("-overwrite_original", "-XPKeywords=sunset;beach", explorer_only)
    return {photo: ("Paris", "Anna", "Europe", "Places", "People"), explorer_only: ("sunset", "beach")}


def iptc_and_xmp(folder: Path) -> Layout:
    # The fields disagree: the union is read (XMP first, then IPTC).
    both = noise(folder / "IX_0001.jpg", 13)
    exiftool("-overwrite_original", *tags("IPTC", "Keywords", "kept-iptc", "shared"),
             *tags("XMP-dc", "Subject", "xmp-only", "Shared"), both)
    # IPTC holds the leaf (IPTC has no hierarchy), XMP the path.
    leaf = noise(folder / "IX_0002.jpg", 14)
    exiftool("-overwrite_original", *tags("IPTC", "Keywords", "Paris"),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris"), leaf)
    return {both: ("xmp-only", "Shared", "kept-iptc"), leaf: ("Paris", "Europe", "Places")}


def nonstandard(folder: Path) -> Layout:
    # exiftool adds a standard XMP segment to china.jpg (keeping its non-standard one); here that segment is moved
    # under the non-standard header too, as the tool that wrote china.jpg's would have written it.
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = folder / "china.jpg"
    exiftool("-o", jpeg, *tags("XMP-dc", "Subject", "Great Wall"),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Asia|China"), PHOTOS / "library/travel/china.jpg")
    # An MPO (a stereo pair, two JPEG frames and an MPF index): the header is the first frame's.
    mpo = folder / "fujifilm.mpo"
    exiftool("-o", mpo, *tags("XMP-dc", "Subject", "stereo"), PHOTOS / "library/travel/fujifilm.mpo")
    return {nonstandard_header(jpeg): ("Great Wall", "China", "Asia", "Places"), nonstandard_header(mpo): ("stereo",)}


def extended(folder: Path) -> Layout:
    # A packet over 64 KB: exiftool keeps lr:hierarchicalSubject in the main packet and moves dc:subject into
    # Extended XMP segments, named by xmpNote:HasExtendedXMP.
    jpeg = noise(folder / "EXT_0001.jpg", 15)
    many = [f"keyword number {i} with a longer description" for i in range(1200)]
    exiftool("-overwrite_original", *tags("XMP-dc", "Subject", *many),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris"), jpeg)
    return {jpeg: (*many, "Paris", "Europe", "Places")}


APPS: dict[str, Callable[[Path], Layout]] = {
    "lightroom": lightroom, "digikam": digikam, "darktable": darktable, "immich": immich,
    "capture-one": capture_one, "windows": windows, "iptc-and-xmp": iptc_and_xmp, "nonstandard-header": nonstandard,
    "extended-xmp": extended,
}
NEEDS_EXIV2 = {"digikam", "windows"}


def app_params() -> list:
    return [pytest.param(name, marks=needs_exiv2 if name in NEEDS_EXIV2 else ()) for name in APPS]


# --- reading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("app", app_params())
def test_each_apps_keywords_are_read(tmp_path: Path, app: str) -> None:
    for photo, expected in APPS[app](tmp_path).items():
        info = read_photo_info(photo)
        assert info.keywords == expected, photo.name
        assert info.warnings == (), photo.name


def test_the_extended_packet_really_is_extended(tmp_path: Path) -> None:
    # The fixture is what the test above says it is: dc:subject only in Extended XMP segments.
    [jpeg] = extended(tmp_path)
    data = jpeg.read_bytes()
    standard = data[data.index(STANDARD_XMP) :]
    standard = standard[: int.from_bytes(data[data.index(STANDARD_XMP) - 2 : data.index(STANDARD_XMP)], "big")]
    assert b"HasExtendedXMP" in standard and b"keyword number" not in standard
    assert data.count(b"http://ns.adobe.com/xmp/extension/\x00") >= 2


def test_the_library_photo_with_a_nonstandard_header_has_its_xmp_read(tmp_path: Path) -> None:
    # dahlia.jpg's only XMP packet (Lightroom 3's) is under the non-standard header. With its IPTC block removed
    # by exiftool (which leaves that segment as it is), the capture time can only come from that packet.
    dahlia = tmp_path / "dahlia.jpg"
    exiftool("-o", dahlia, "-IPTC:all=", "-Photoshop:all=", PHOTOS / "library/flowers/dahlia.jpg")
    assert NONSTANDARD_XMP in dahlia.read_bytes() and STANDARD_XMP not in dahlia.read_bytes()
    info = read_photo_info(dahlia)
    assert info.taken_at == datetime(2011, 8, 15, 18, 24, 59) and info.warnings == ()


@pytest.mark.parametrize("suffix", [".xmp", ".XMP"])
def test_a_raw_and_jpeg_pair_share_the_raw_sidecar(tmp_path: Path, suffix: str) -> None:
    layout = lightroom(tmp_path, sidecar_suffix=suffix)
    raw, pair = tmp_path / "LR_0002.CR2", tmp_path / "LR_0002.JPG"
    assert read_photo_info(raw).keywords == read_photo_info(pair).keywords == layout[raw] == layout[pair]
    info = read_photo_info(raw)  # Pillow read nothing of the RAW: its facts are unknown, not guessed
    assert (info.format, info.width, info.taken_at) == (None, None, None) and info.warnings == ()


def test_a_file_that_is_not_an_image_still_raises(tmp_path: Path) -> None:
    from ram_model.errors import ImageError

    fake = fake_raw(tmp_path / "notes.jpg", 0)  # not a RAW by name: no leniency
    with pytest.raises(ImageError):
        read_photo_info(fake)


@pytest.mark.parametrize(("group", "name", "path"), [
    ("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris"),
    ("XMP-digiKam", "TagsList", "Places/Europe/Paris"),
    ("XMP-microsoft", "LastKeywordXMP", "Places/Europe/Paris"),
    ("XMP-microsoft", "LastKeywordIPTC", "Places/Europe/Paris"),
    ("XMP-mediapro", "CatalogSets", "Places|Europe|Paris"),
    ("XMP-acdsee", "Categories", '<Categories><Category Assigned="0">Places<Category Assigned="0">Europe'
                                 '<Category Assigned="1">Paris</Category></Category></Category></Categories>'),
], ids=["lr-hierarchicalSubject", "digiKam-TagsList", "LastKeywordXMP", "LastKeywordIPTC", "mediapro-CatalogSets",
        "acdsee-categories"])
def test_each_hierarchical_field_alone_gives_the_leaf_and_its_parents(tmp_path: Path, group: str, name: str,
                                                                      path: str) -> None:
    photo = noise(tmp_path / "IMG_0001.jpg", 20)
    exiftool("-o", tmp_path / "IMG_0001.jpg.xmp", f"-{group}:{name}={path}")
    assert read_photo_info(photo).keywords == ("Paris", "Europe", "Places")


def test_a_flat_keyword_copied_into_the_path_fields_stays_whole(tmp_path: Path) -> None:
    # Phototag and Capture One write the same flat list into every field: "AC/DC" is one keyword, not DC under AC.
    photo = noise(tmp_path / "IMG_0002.jpg", 21)
    exiftool("-overwrite_original", *tags("XMP-dc", "Subject", "AC/DC", "rock|pop"),
             *tags("XMP-digiKam", "TagsList", "AC/DC", "rock|pop"), *tags("XMP-microsoft", "LastKeywordXMP", "AC/DC"),
             *tags("XMP-lr", "HierarchicalSubject", "AC/DC", "rock|pop"), photo)
    assert read_photo_info(photo).keywords == ("AC/DC", "rock|pop")


def test_odd_paths_are_read_by_their_real_levels(tmp_path: Path) -> None:
    photo = noise(tmp_path / "IMG_0003.jpg", 22)
    deep = "|".join(f"L{level}" for level in range(_MAX_PATH_DEPTH + 30))
    long_level = "x" * (MAX_KEYWORD_CHARS + 1)
    exiftool("-overwrite_original", *tags("XMP-lr", "HierarchicalSubject", "|Places||Europe |  Paris|", " | ",
                                          f"Things|{long_level}|Cup", deep), photo)
    info = read_photo_info(photo)
    levels = tuple(f"L{level}" for level in reversed(range(30, _MAX_PATH_DEPTH + 30)))
    assert info.keywords == ("Paris", "Europe", "Places", "Cup", "Things", *levels)
    assert any(f"deeper than {_MAX_PATH_DEPTH} levels" in warning for warning in info.warnings)
    assert any("longer than" in warning for warning in info.warnings)


def test_paths_count_towards_the_keyword_cap(tmp_path: Path) -> None:
    photo = noise(tmp_path / "IMG_0004.jpg", 23)
    paths = [f"Root{i}|Mid{i}|Leaf{i}" for i in range(MAX_FILE_KEYWORDS // 2)]  # 3 keywords each: over the cap
    exiftool("-o", tmp_path / "IMG_0004.jpg.xmp", *tags("XMP-lr", "HierarchicalSubject", *paths))
    info = read_photo_info(photo)
    assert len(info.keywords) == MAX_FILE_KEYWORDS
    assert info.keywords[:3] == ("Leaf0", "Mid0", "Root0")
    assert any(f"more than {MAX_FILE_KEYWORDS:,} keywords" in warning for warning in info.warnings)


def test_an_incomplete_extended_packet_is_left_out_with_a_warning(tmp_path: Path) -> None:
    [jpeg] = extended(tmp_path)
    data = jpeg.read_bytes()
    at = data.rindex(b"http://ns.adobe.com/xmp/extension/\x00") - 4  # the last chunk's segment, marker first
    length = int.from_bytes(data[at + 2 : at + 4], "big")
    jpeg.write_bytes(data[:at] + data[at + 2 + length :])
    info = read_photo_info(jpeg)
    assert info.keywords == ("Paris", "Europe", "Places")  # the main packet
    assert any("Extended XMP" in warning and "incomplete" in warning for warning in info.warnings)


# --- end to end: `phototag index` stores them as the photo's file tags ---------------------------


def file_tags(home: Path, photo: Path) -> set[str]:
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        return set(session.scalars(
            select(Tag.name).join(PhotoTag, PhotoTag.tag_id == Tag.id).join(Photo, Photo.id == PhotoTag.photo_id)
            .where(Photo.path == str(photo), PhotoTag.source == SOURCE_FILE)))


def test_index_stores_every_apps_keywords_as_file_tags(home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "library"
    usable = [name for name in APPS if name not in NEEDS_EXIV2 or EXIV2 is not None]
    layouts = {name: APPS[name](library / name) for name in usable}

    code = main(["index", str(library), "--json"])
    out = capsys.readouterr()
    summary = json.loads(out.out)
    # The fake RAW files fail to decode (recorded, the run goes on); nothing else does.
    raws = {str(photo) for layout in layouts.values() for photo in layout if photo.suffix.upper() in
            {".CR2", ".CR3", ".ORF"}}
    assert {failure["path"] for failure in summary["failures"]} == raws, out.err
    assert code in (0, 1), out.err
    for name, layout in layouts.items():
        for photo, expected in layout.items():
            assert file_tags(home, photo) == set(expected), (name, photo.name)
