"""`phototag write-metadata --for APP` on files laid out as each app writes them (issue 16, items 3 and 5).

Every fixture is made here by exiftool, or exiv2 where the app itself writes through exiv2
(digiKam) — the same layouts as tests/indexer/metadata/test_read_apps.py: which fields, which
separators, which sidecar name, IPTC next to XMP, RAW+JPEG pairs. The RAW files are tiny DNGs
(an RGB preview and a Bayer SubIFD, built below) under each camera's extension, so LibRaw decodes
them and they are indexed like any RAW. After writing, exiftool and exiv2 must read our keywords
from exactly the fields of the profile (:data:`indexer.metadata.profiles.PROFILES`), in the file
the app reads, and nothing else may change; undo restores every byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from indexer.catalog import Catalog
from indexer.metadata.embed import pixel_digest
from indexer.metadata.read import read_photo_info
from indexer.schema import ACCEPTED, CUSTOM, SOURCE_USER, Photo, PhotoTag, Tag
from tests.conftest import write_dng
from tests.indexer.metadata.helpers import copy_indexed, exiftool, exiv2, index_once, run, tags

EXIFTOOL = shutil.which("exiftool")
EXIV2 = shutil.which("exiv2")
pytestmark = pytest.mark.skipif(EXIFTOOL is None or EXIV2 is None,
                                reason="exiftool and exiv2 are needed ('./dev test' installs both)")
pytest.importorskip("rawpy", reason="the RAW fixtures are indexed through LibRaw (pip install 'phototag[raw]')")

# The keyword fields, as exiftool names them (-G1) and as exiv2 does.
SUBJECT, HIERARCHICAL, TAGS_LIST, LAST_KEYWORD = ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject",
                                                  "XMP-digiKam:TagsList", "XMP-microsoft:LastKeywordXMP")
IPTC, XP = "IPTC:Keywords", "IFD0:XPKeywords"
XMP_FIELDS = (SUBJECT, HIERARCHICAL, TAGS_LIST, LAST_KEYWORD)
FIELDS = (*XMP_FIELDS, IPTC, XP)
EXIV2_KEYS = {SUBJECT: "Xmp.dc.subject", HIERARCHICAL: "Xmp.lr.hierarchicalSubject", TAGS_LIST: "Xmp.digiKam.TagsList",
              LAST_KEYWORD: "Xmp.MicrosoftPhoto.LastKeywordXMP", IPTC: "Iptc.Application2.Keywords",
              XP: "Exif.Image.XPKeywords"}
SEPARATORS = {HIERARCHICAL: "|", TAGS_LIST: "/", LAST_KEYWORD: "/", XP: ";"}
# What a person tagged every photo with: a keyword holding a field's separator stays out of that field.
OURS = ("keepsake", "AC/DC", "a|b", "x;y")
RAW_SUFFIXES = {".cr2", ".cr3", ".nef", ".orf", ".dng"}
EMPTY_SIDECAR = b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>' \
                b'<?xpacket end="w"?>'


# --- making files ------------------------------------------------------------------------------


def noise(path: Path, seed: int, *exif: str) -> Path:
    """A small distinct JPEG; ``exif``: exiftool assignments giving it a camera's EXIF block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG")
    if exif:
        exiftool("-overwrite_original", *exif, path)
    return path


def tiny_raw(path: Path, seed: int) -> Path:
    """A minimal 64x48 DNG (any RAW extension: LibRaw goes by content) whose embedded preview the indexer tags."""
    return write_dng(path, seed, preview=(64, 48), sensor=(64, 48))


CAMERA = ("-EXIF:Make=Canon", "-EXIF:Model=Canon EOS R6", "-EXIF:DateTimeOriginal=2024:05:01 10:00:00")


def lightroom(folder: Path) -> None:
    # Metadata saved into a JPEG: dc:subject with the parents, full paths in lr:hierarchicalSubject, IPTC Keywords
    # as dc:subject, develop settings; a RAW+JPEG pair whose RAW has Lightroom's sidecar, IMG.xmp.
    jpeg = noise(folder / "LR_0001.jpg", 1, *CAMERA)
    subject = ["Paris", "Europe", "Places", "Anna"]
    exiftool("-overwrite_original", "-IPTC:CodedCharacterSet=UTF8", *tags("XMP-dc", "Subject", *subject),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris", "People|Family|Anna"),
             *tags("IPTC", "Keywords", *subject), "-XMP-xmp:Rating=4", "-XMP-crs:Exposure2012=+0.50",
             "-XMP-xmp:CreatorTool=Adobe Photoshop Lightroom Classic 13.0 (Windows)", jpeg)
    # Its IPTC edited later by a tool that knows no XMP: a keyword only there, and no digest (MWG: not in step).
    edited = noise(folder / "LR_0003.jpg", 16, *CAMERA)
    exiftool("-overwrite_original", "-IPTC:CodedCharacterSet=UTF8", *tags("XMP-dc", "Subject", "Paris"),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris"),
             *tags("IPTC", "Keywords", "Paris", "kept-iptc"), edited)
    tiny_raw(folder / "LR_0002.CR2", 2)
    noise(folder / "LR_0002.JPG", 3, *CAMERA)
    exiftool("-o", folder / "LR_0002.xmp", *tags("XMP-dc", "Subject", "Lighthouse", "Coast", "Places"),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Coast|Lighthouse"), "-XMP-crs:Exposure2012=-0.30",
             "-XMP-xmp:Rating=2")


def digikam(folder: Path) -> None:
    photo = noise(folder / "DK_0001.jpg", 4)
    sidecar = folder / "DK_0001.jpg.xmp"
    sidecar.write_bytes(EMPTY_SIDECAR)  # digiKam writes through exiv2, which edits an existing sidecar
    exiv2(sidecar,
          "set Xmp.digiKam.TagsList XmpSeq Places/Europe/Paris", "set Xmp.digiKam.TagsList People/Anna",
          "set Xmp.MicrosoftPhoto.LastKeywordXMP XmpBag Places/Europe/Paris",
          "set Xmp.MicrosoftPhoto.LastKeywordXMP People/Anna",
          "set Xmp.lr.hierarchicalSubject XmpBag Places|Europe|Paris", "set Xmp.lr.hierarchicalSubject People|Anna",
          "set Xmp.dc.subject XmpBag Paris", "set Xmp.dc.subject Anna", "set Xmp.xmp.Rating 3")
    assert photo.exists()
    tiny_raw(folder / "DK_0002.NEF", 5)  # no sidecar yet: digiKam's is DK_0002.NEF.xmp


def darktable(folder: Path) -> None:
    # A sidecar for every image, named after the whole file name; dc:subject holds every level.
    tiny_raw(folder / "DT_0001.ORF", 6)
    exiftool("-o", folder / "DT_0001.ORF.xmp", "-XMP-xmp:CreatorTool=darktable 4.6.1", "-XMP-xmp:Rating=1",
             "-XMP-xmpMM:DerivedFrom=DT_0001.ORF", *tags("XMP-lr", "HierarchicalSubject", "unterwegs|föhr|2024"),
             *tags("XMP-dc", "Subject", "2024", "föhr", "unterwegs"))
    noise(folder / "DT_0002.jpg", 7)
    exiftool("-o", folder / "DT_0002.jpg.xmp", "-XMP-xmpMM:DerivedFrom=DT_0002.jpg",
             *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris"),
             *tags("XMP-dc", "Subject", "Europe", "Paris", "Places"))


def immich(folder: Path) -> None:
    # Immich writes digiKam:TagsList paths to IMG.jpg.xmp (with the description and rating); a photo Lightroom
    # tagged has IMG.xmp, which Immich reads but its profile does not write.
    noise(folder / "IM_0001.jpg", 8)
    exiftool("-o", folder / "IM_0001.jpg.xmp", *tags("XMP-digiKam", "TagsList", "Trips/Kyoto/Temple", "Family"),
             "-XMP-dc:Description=Temple garden", "-XMP-xmp:Rating=5")
    noise(folder / "IM_0002.jpg", 9)
    exiftool("-o", folder / "IM_0002.xmp", *tags("XMP-lr", "HierarchicalSubject", "Trips|Kyoto|Garden"))


def capture_one(folder: Path) -> None:
    # IMG.xmp next to the RAW, its keywords flat in lr:hierarchicalSubject as well as in dc:subject; an exported
    # JPEG with EXIF and a '|' hierarchy.
    tiny_raw(folder / "C1_0001.CR3", 10)
    flat = ["Conference", "München"]
    exiftool("-o", folder / "C1_0001.xmp", "-XMP-xmp:CreatorTool=Capture One 23 Macintosh", "-XMP-xmp:Rating=3",
             *tags("XMP-dc", "Subject", *flat), *tags("XMP-lr", "HierarchicalSubject", *flat))
    export = noise(folder / "C1_0002.jpg", 11, *CAMERA)
    exiftool("-overwrite_original", *tags("XMP-dc", "Subject", "Paris"),
             *tags("XMP-lr", "HierarchicalSubject", "Places|Europe|Paris"), export)


def windows(folder: Path) -> None:
    # Explorer's tags: dc:subject, IPTC, XPKeywords, LastKeywordIPTC; Photo Gallery's paths in LastKeywordXMP.
    # The XMP is written by exiv2, which spells the Microsoft namespace as Windows does.
    photo = noise(folder / "WIN_0001.jpg", 12, *CAMERA)
    exiftool("-overwrite_original", "-XPKeywords=Paris;Anna", "-IPTC:CodedCharacterSet=UTF8",
             *tags("IPTC", "Keywords", "Paris", "Anna"), photo)
    exiv2(photo, "set Xmp.dc.subject XmpBag Paris", "set Xmp.dc.subject Anna",
          "set Xmp.MicrosoftPhoto.LastKeywordXMP XmpBag Places/Europe/Paris",
          "set Xmp.MicrosoftPhoto.LastKeywordXMP People/Anna",
          "set Xmp.MicrosoftPhoto.LastKeywordIPTC XmpBag Paris", "set Xmp.MicrosoftPhoto.LastKeywordIPTC Anna")
    noise(folder / "WIN_0002.jpg", 13, "-XPKeywords=sunset;beach")  # Explorer only: no XMP, no IPTC


def pair(folder: Path) -> None:
    # A RAW+JPEG pair straight from the camera: no metadata of any app yet.
    tiny_raw(folder / "IMG_0001.CR2", 14)
    noise(folder / "IMG_0001.jpg", 15, *CAMERA)


LAYOUTS: dict[str, Callable[[Path], None]] = {
    "lightroom": lightroom, "digikam": digikam, "darktable": darktable, "immich": immich,
    "capture-one": capture_one, "windows": windows, "pair": pair,
}


# --- what each profile must write where ----------------------------------------------------------
# Per profile and folder: file -> the profile's keyword fields, which must hold our keywords afterwards (IPTC
# where the JPEG has IPTC keywords, XPKeywords where it has EXIF: see check_written). Every other file of the
# folder keeps its bytes, and no file appears but these.
ALL_XMP = set(XMP_FIELDS)
EXPECTED: dict[str, dict[str, dict[str, set[str]]]] = {
    "lightroom": {"lightroom": {"LR_0001.jpg": {SUBJECT, HIERARCHICAL, IPTC},
                                "LR_0002.JPG": {SUBJECT, HIERARCHICAL, IPTC},
                                "LR_0003.jpg": {SUBJECT, HIERARCHICAL, IPTC},
                                "LR_0002.xmp": {SUBJECT, HIERARCHICAL}},
                  "pair": {"IMG_0001.jpg": {SUBJECT, HIERARCHICAL, IPTC}, "IMG_0001.xmp": {SUBJECT, HIERARCHICAL}}},
    "digikam": {"digikam": {"DK_0001.jpg.xmp": ALL_XMP, "DK_0002.NEF.xmp": ALL_XMP},
                "pair": {"IMG_0001.jpg.xmp": ALL_XMP, "IMG_0001.CR2.xmp": ALL_XMP}},
    "darktable": {"darktable": {"DT_0001.ORF.xmp": {SUBJECT, HIERARCHICAL}, "DT_0002.jpg.xmp": {SUBJECT, HIERARCHICAL}},
                  "pair": {"IMG_0001.jpg.xmp": {SUBJECT, HIERARCHICAL}, "IMG_0001.CR2.xmp": {SUBJECT, HIERARCHICAL}}},
    "immich": {"immich": {"IM_0001.jpg.xmp": {TAGS_LIST, HIERARCHICAL, SUBJECT},
                          "IM_0002.jpg.xmp": {TAGS_LIST, HIERARCHICAL, SUBJECT}},
               "pair": {"IMG_0001.jpg.xmp": {TAGS_LIST, HIERARCHICAL, SUBJECT},
                        "IMG_0001.CR2.xmp": {TAGS_LIST, HIERARCHICAL, SUBJECT}}},
    "capture-one": {"capture-one": {"C1_0001.xmp": {SUBJECT, HIERARCHICAL},
                                    "C1_0002.jpg": {SUBJECT, HIERARCHICAL, IPTC}},
                    "pair": {"IMG_0001.jpg": {SUBJECT, HIERARCHICAL, IPTC},
                             "IMG_0001.xmp": {SUBJECT, HIERARCHICAL}}},
    "windows": {"windows": {"WIN_0001.jpg": {XP, SUBJECT, LAST_KEYWORD, IPTC},
                            "WIN_0002.jpg": {XP, SUBJECT, LAST_KEYWORD, IPTC}},
                # Windows reads no sidecar; a RAW still gets one (IMG.CR2.xmp), so its tags are not lost.
                "pair": {"IMG_0001.jpg": {XP, SUBJECT, LAST_KEYWORD, IPTC},
                         "IMG_0001.CR2.xmp": {SUBJECT, LAST_KEYWORD}}},
}


def expected_for_all(files: Iterable[str]) -> dict[str, set[str]]:
    """The default profile, ``all``: JPEGs embedded (every field) plus IMG.jpg.xmp, RAW files IMG.CR2.xmp
    and IMG.xmp."""
    expected: dict[str, set[str]] = {}
    for name in files:
        suffix = Path(name).suffix.lower()
        if suffix == ".jpg":
            expected[name] = set(FIELDS)
            expected[f"{name}.xmp"] = ALL_XMP
        elif suffix in RAW_SUFFIXES:
            expected[f"{name}.xmp"] = ALL_XMP
            expected[f"{Path(name).stem}.xmp"] = ALL_XMP
    return expected


def carried_by(target: str, folder: Path) -> tuple[str, ...]:
    """The photos whose keywords ``target`` holds: a photo's own, or every IMG.* photo's for a shared IMG.xmp."""
    if target.endswith(".xmp") and "." not in Path(target).stem:
        return tuple(sorted(p.name for p in folder.iterdir() if p.stem == Path(target).stem and p.suffix != ".xmp"))
    return (target.removesuffix(".xmp"),)


def keywords_of(photo: str) -> list[str]:
    """What a person tagged ``photo`` with: OURS and one keyword naming the photo (so a shared sidecar shows whose)."""
    return [*OURS, f"photo {photo.lower()}"]


def fitting(field: str, keywords: Iterable[str]) -> set[str]:
    separator = SEPARATORS.get(field)
    return {keyword for keyword in keywords if not (separator and separator in keyword)}


# --- reading files back ------------------------------------------------------------------------


def facts(*paths: Path) -> dict[str, dict]:
    """exiftool's view of every tag of each file (-a -G1), by file name."""
    out = subprocess.run([EXIFTOOL, "-j", "-a", "-G1", "-charset", "filename=utf8", *map(str, paths)],
                         capture_output=True, text=True, check=True).stdout
    return {Path(entry["SourceFile"]).name: entry for entry in json.loads(out)}


def values(entry: dict, field: str) -> list[str]:
    value = entry.get(field)
    if field == XP:
        return [part for part in str(value).split(";") if part] if value is not None else []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value is not None else []


def exiv2_values(path: Path) -> dict[str, list[str]]:
    """exiv2's view of the keyword fields: XMP lists (-px), IPTC datasets (-pi), XPKeywords (-pt, decoded)."""
    found: dict[str, list[str]] = {}
    for option in ("-px", "-pi", "-pt"):
        out = subprocess.run([EXIV2, "-q", option, str(path)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[0] in EXIV2_KEYS.values():
                if parts[0].startswith("Xmp."):
                    found[parts[0]] = parts[3].split(", ")
                elif parts[0].startswith("Iptc."):
                    found.setdefault(parts[0], []).append(parts[3])
                else:
                    found[parts[0]] = [part for part in parts[3].split(";") if part]
    return found


# Writing IPTC: the UTF-8 marker, the records' versions (a new block) and the digest saying XMP and IPTC agree.
IPTC_BOOKKEEPING = {"IPTC:CodedCharacterSet", "IPTC:EnvelopeRecordVersion", "IPTC:ApplicationRecordVersion",
                    "Photoshop:IPTCDigest", "File:CurrentIPTCDigest"}
IGNORED_GROUPS = ("System:", "ExifTool:", "XMP-phototag:")


def others(entry: dict) -> dict:
    """Every tag but the keyword fields, Phototag's record and the file system's facts."""
    return {key: value for key, value in entry.items()
            if key not in FIELDS and key != "SourceFile" and not key.startswith(IGNORED_GROUPS)}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).digest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the catalog -------------------------------------------------------------------------------


def tag_all(catalog_dir: Path) -> None:
    """Each photo gets ``keywords_of`` it, as a person adds tags."""
    with Catalog.open(catalog_dir) as catalog, catalog.session() as session, session.begin():
        ids: dict[str, int] = {}
        for photo_id, path in session.execute(select(Photo.id, Photo.path)):
            for name in keywords_of(Path(path).name):
                if name not in ids:
                    row = Tag(name=name, kind=CUSTOM)
                    session.add(row)
                    session.flush()
                    ids[name] = row.id
                session.add(PhotoTag(photo_id=photo_id, tag_id=ids[name], source=SOURCE_USER, state=ACCEPTED,
                                     updated_at=datetime.now()))


@pytest.fixture(scope="module")
def template(tmp_path_factory, model_dir) -> Path:  # noqa: ANN001
    """Every layout made and indexed once per module (indexing costs seconds), each photo tagged:
    ``lib/<layout>/`` and ``home/catalog``."""
    root = tmp_path_factory.mktemp("apps")
    for name, make in LAYOUTS.items():
        make(root / "lib" / name)
    index_once(root, model_dir)
    tag_all(root / "home" / "catalog")
    return root


@pytest.fixture()
def library(home, template, tmp_path) -> Path:  # noqa: ANN001
    """A copy of the indexed, tagged layouts (mtimes kept, as the catalog recorded them)."""
    return copy_indexed(template, home, tmp_path)


# --- the checks --------------------------------------------------------------------------------


Own = dict[str, tuple[set[str], set[tuple[str, ...]]]]  # photo -> its keywords, and its paths (root first)


def own_keywords(folder: Path, before: dict[str, dict]) -> Own:
    """What each photo of ``folder`` carries before writing, in any file of its own: its keywords (as Phototag
    reads them: leaves and parents) and the paths of its path fields."""
    own: Own = {}
    for photo in (p for p in folder.iterdir() if p.suffix.lower() != ".xmp"):
        paths = set()
        for name in (photo.name, f"{photo.name}.xmp", f"{photo.stem}.xmp"):
            for field in (HIERARCHICAL, TAGS_LIST, LAST_KEYWORD):
                paths |= {tuple(value.split(SEPARATORS[field])) for value in values(before.get(name, {}), field)
                          if SEPARATORS[field] in value}
        own[photo.name] = set(read_photo_info(photo).keywords), paths
    return own


def seeds(field: str, photos: Iterable[str], own: Own) -> set[str]:
    """What a list made new may start with besides ours: the photos' own keywords (paths in a path field)."""
    photos = list(photos)
    flat = {keyword for photo in photos for keyword in own[photo][0]}
    if field not in (HIERARCHICAL, TAGS_LIST, LAST_KEYWORD):
        return flat
    return fitting(field, flat) | {SEPARATORS[field].join(path) for photo in photos for path in own[photo][1]}


def check_written(folder: Path, expected: dict[str, set[str]], before: dict[str, dict], own: Own,
                  originals: dict[str, bytes]) -> None:
    """Our keywords are in exactly the expected fields of exactly the expected files (exiftool and exiv2
    agree), the app's own keywords are kept, and nothing else changed."""
    names = sorted(p.name for p in folder.iterdir())
    assert set(names) == set(originals) | set(expected), "files created: exactly the profile's sidecars"
    after = facts(*(folder / name for name in names))
    for name in names:
        path, old, new = folder / name, before.get(name, {}), after[name]
        fields = expected.get(name, set())
        if not fields:
            assert path.read_bytes() == originals[name], f"{name}: not the profile's file, changed"
            continue
        keywords = [k for photo in carried_by(name, folder) for k in keywords_of(photo)]
        # Blocks a JPEG lacks are not made for the keywords (every app reads the XMP too): XPKeywords need an
        # EXIF block; IPTC keywords are kept in step where there is an IIM block, never created (MWG).
        if not any(key.startswith("IFD0:") for key in old):
            fields = fields - {XP}
        if not values(old, IPTC):
            fields = fields - {IPTC}
        for field in FIELDS:
            was, now = values(old, field), values(new, field)
            where = f"{name} {field}"
            if field not in fields:
                assert now == was, f"{where}: outside the profile, changed"
                continue
            if field == IPTC:  # the IIM follows dc:subject's order
                assert set(was) <= set(now), f"{where}: the app's keywords are kept"
            else:
                assert now[: len(was)] == was, f"{where}: the app's keywords are kept, in their order"
            added = set(now) - set(was)
            wanted = fitting(field, keywords)
            assert wanted <= added | set(was), f"{where}: our keywords are missing"
            extra = added - wanted
            if not was:  # a new list starts with the photo's own keywords, so apps reading only it see them
                assert extra <= seeds(field, carried_by(name, folder), own), f"{where}: not the photo's: {extra}"
            elif field == SUBJECT:  # IPTC keywords not in step with it join it (MWG), nobody else's
                assert extra <= set(values(old, IPTC)), f"{where}: keywords that are not ours: {extra}"
            elif field == IPTC:  # IPTC follows dc:subject (MWG): it may gain the XMP's keywords
                assert extra <= set(values(new, SUBJECT)), where
            else:
                assert not extra, f"{where}: keywords that are not ours: {extra}"
            if field in SEPARATORS:
                holding = {k for k in keywords if SEPARATORS[field] in k}
                assert not holding & set(now), f"{where}: a keyword holding the separator"
        seen = exiv2_values(path)
        for field in FIELDS:
            if values(new, field):
                assert seen.get(EXIV2_KEYS[field]) == values(new, field), f"{name} {field}: exiv2 reads otherwise"
        if name in originals:
            changed = {key: (old.get(key), new.get(key)) for key in others(old).keys() | others(new).keys()
                       if old.get(key) != new.get(key)}
            if IPTC in fields:
                assert new["Photoshop:IPTCDigest"] == new["File:CurrentIPTCDigest"], name
                changed = {key: change for key, change in changed.items() if key not in IPTC_BOOKKEEPING}
            if not any(key.startswith("XMP-") for key in old):  # a new packet names its toolkit
                changed.pop("XMP-x:XMPToolkit", None)
            assert not changed, f"{name}: tags other than keywords changed: {changed}"
            if path.suffix.lower() == ".jpg":
                assert pixel_digest(path.read_bytes()) == pixel_digest(originals[name]), f"{name}: pixels changed"
        else:  # a new sidecar: only keyword lists, Phototag's record and the packet's toolkit
            made = {key for key in others(new) if not key.startswith("File:")}
            assert made <= {"XMP-x:XMPToolkit"}, f"{name}: {made}"


def write_and_check(capsys, home: Path, library: Path, folders: dict[str, dict[str, set[str]]],  # noqa: ANN001
                    *args: str) -> None:
    """Write, check every folder, write again (nothing to do), undo (every byte back, new sidecars gone)."""
    before_all = snapshot(library)
    originals = {name: {p.name: p.read_bytes() for p in (library / name).iterdir()} for name in folders}
    before = {name: facts(*(library / name).iterdir()) for name in folders}
    own = {photo: kept for name in folders for photo, kept in own_keywords(library / name, before[name]).items()}
    report = run(capsys, "write-metadata", *args)
    assert report["run"] and report["counts"]["skipped"] == 0, report
    for name, expected in folders.items():
        check_written(library / name, expected, before[name], own, originals[name])
    again = run(capsys, "write-metadata", *args)
    assert again["run"] is None and again["counts"]["written"] == 0, again
    undone = run(capsys, "undo-metadata")
    assert undone["run"] == report["run"] and undone["complete"]
    assert snapshot(library) == before_all  # bytes and mtimes; the sidecars it created are gone


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_each_profile_writes_where_its_app_reads(profile: str, home: Path, library: Path, capsys) -> None:  # noqa: ANN001
    """``--for APP`` on the app's own layout and on a fresh RAW+JPEG pair."""
    folders = EXPECTED[profile]
    query = [f"folder:{library / name}" for name in folders]
    write_and_check(capsys, home, library, folders, " OR ".join(query), "--for", profile)


def test_the_default_profile_writes_for_every_app(home: Path, library: Path, capsys) -> None:  # noqa: ANN001
    """No ``--for``: every app's layout gets every field, JPEGs embedded plus IMG.jpg.xmp, RAW files
    IMG.CR2.xmp and IMG.xmp (the pair's holding both photos' keywords)."""
    folders = {name: expected_for_all(p.name for p in (library / name).iterdir()) for name in LAYOUTS}
    write_and_check(capsys, home, library, folders)


def test_iptc_keywords_a_jpeg_has_are_kept_in_step_whatever_the_profile(home: Path, library: Path, capsys) -> None:  # noqa: ANN001
    """darktable's profile names no IPTC and no XPKeywords: embedding for it updates the IPTC keywords a
    JPEG already has (so MWG readers do not see XMP and IPTC disagree) and adds none where there are none;
    XPKeywords and LastKeywordXMP stay as they are."""
    folders = {"lightroom": {"LR_0001.jpg": {SUBJECT, HIERARCHICAL, IPTC}, "LR_0003.jpg": {SUBJECT, HIERARCHICAL, IPTC},
                             "LR_0002.JPG": {SUBJECT, HIERARCHICAL},
                             "LR_0002.CR2.xmp": {SUBJECT, HIERARCHICAL}},
               "windows": {"WIN_0001.jpg": {SUBJECT, HIERARCHICAL, IPTC}, "WIN_0002.jpg": {SUBJECT, HIERARCHICAL}}}
    query = " OR ".join(f"folder:{library / name}" for name in folders)
    write_and_check(capsys, home, library, folders, query, "--for", "darktable", "--mode", "embed")


# Each app's keyword fields in the fixtures before writing (a field not named: absent), so the checks above
# compare against what the app wrote, not against an empty file.
LAID_OUT: dict[str, dict[str, dict[str, list[str]]]] = {
    "lightroom": {
        "LR_0001.jpg": {SUBJECT: ["Paris", "Europe", "Places", "Anna"], IPTC: ["Paris", "Europe", "Places", "Anna"],
                        HIERARCHICAL: ["Places|Europe|Paris", "People|Family|Anna"]},
        "LR_0002.xmp": {SUBJECT: ["Lighthouse", "Coast", "Places"], HIERARCHICAL: ["Places|Coast|Lighthouse"]},
        "LR_0003.jpg": {SUBJECT: ["Paris"], HIERARCHICAL: ["Places|Europe|Paris"], IPTC: ["Paris", "kept-iptc"]},
        "LR_0002.CR2": {}, "LR_0002.JPG": {}},
    "digikam": {
        "DK_0001.jpg.xmp": {TAGS_LIST: ["Places/Europe/Paris", "People/Anna"],
                            LAST_KEYWORD: ["Places/Europe/Paris", "People/Anna"],
                            HIERARCHICAL: ["Places|Europe|Paris", "People|Anna"], SUBJECT: ["Paris", "Anna"]},
        "DK_0001.jpg": {}, "DK_0002.NEF": {}},
    "darktable": {
        "DT_0001.ORF.xmp": {HIERARCHICAL: ["unterwegs|föhr|2024"], SUBJECT: ["2024", "föhr", "unterwegs"]},
        "DT_0002.jpg.xmp": {HIERARCHICAL: ["Places|Europe|Paris"], SUBJECT: ["Europe", "Paris", "Places"]},
        "DT_0001.ORF": {}, "DT_0002.jpg": {}},
    "immich": {
        "IM_0001.jpg.xmp": {TAGS_LIST: ["Trips/Kyoto/Temple", "Family"]},
        "IM_0002.xmp": {HIERARCHICAL: ["Trips|Kyoto|Garden"]}, "IM_0001.jpg": {}, "IM_0002.jpg": {}},
    "capture-one": {
        "C1_0001.xmp": {SUBJECT: ["Conference", "München"], HIERARCHICAL: ["Conference", "München"]},
        "C1_0002.jpg": {SUBJECT: ["Paris"], HIERARCHICAL: ["Places|Europe|Paris"]}, "C1_0001.CR3": {}},
    "windows": {
        "WIN_0001.jpg": {XP: ["Paris", "Anna"], IPTC: ["Paris", "Anna"], SUBJECT: ["Paris", "Anna"],
                         LAST_KEYWORD: ["Places/Europe/Paris", "People/Anna"]},
        "WIN_0002.jpg": {XP: ["sunset", "beach"]}},
    "pair": {"IMG_0001.CR2": {}, "IMG_0001.jpg": {}},
}


def test_the_fixtures_are_laid_out_as_the_apps_write_them(template: Path) -> None:
    for layout, files in LAID_OUT.items():
        folder = template / "lib" / layout
        assert sorted(p.name for p in folder.iterdir()) == sorted(files), layout
        read = facts(*(folder / name for name in files))
        for name, fields in files.items():
            assert {field: values(read[name], field) for field in FIELDS if values(read[name], field)} == fields, name
            if Path(name).suffix.lower() in RAW_SUFFIXES:  # a DNG LibRaw reads, with the preview the indexer tags
                assert read[name]["File:FileType"] == "DNG" and read[name]["IFD0:UniqueCameraModel"], name


@pytest.mark.skipif(shutil.which("darktable-cli") is None, reason="darktable-cli is not installed (apt: darktable)")
def test_darktable_imports_the_keywords_its_profile_wrote(home: Path, library: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """darktable itself: ``darktable-cli photo sidecar out.jpg`` imports the sidecar's tags and exports them
    (each level of a path into the export's dc:subject), for a RAW and a JPEG. darktable takes
    lr:hierarchicalSubject and reads dc:subject only when that is absent, so a keyword holding '|' (kept out of
    the hierarchy, where it would read as a path) is not among them: the one keyword darktable cannot show."""
    folder = library / "darktable"
    run(capsys, "write-metadata", f"folder:{folder}", "--for", "darktable")
    for photo, app_keywords in (("DT_0001.ORF", {"unterwegs", "föhr", "2024"}), ("DT_0002.jpg", {"Places", "Europe",
                                                                                              "Paris"})):
        out = tmp_path / f"export-{photo}.jpg"
        subprocess.run(["darktable-cli", str(folder / photo), str(folder / f"{photo}.xmp"), str(out), "--core",
                        "--configdir", str(tmp_path / f"darktable-{photo}"), "--library", ":memory:"],
                       capture_output=True, text=True, timeout=300, check=False)
        assert out.exists(), f"darktable-cli exported no {photo}"
        imported = set(values(facts(out)[out.name], SUBJECT))
        assert imported == fitting(HIERARCHICAL, keywords_of(photo)) | app_keywords, photo


# --- what the apps show after writing: a photo's own keywords must stay visible ----------------------------


def exiftool_plain(path: Path, *names: str) -> dict:
    """exiftool's tags by plain name (no group), as exiftool-vendored hands them to Immich."""
    out = subprocess.run([EXIFTOOL, "-j", *(f"-{name}" for name in names), str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)[0]


def immich_tags(photo: Path) -> set[str]:
    """The tags Immich imports for ``photo``, by its server's rule (server/src/services/metadata.service.ts:
    the sidecar's tags override the file's, name by name — ``{...mediaTags, ...sidecarTags}`` — then
    ``getTagList``: TagsList, else HierarchicalSubject with its levels joined by '/', else Keywords; the
    sidecar is ``photo.ext.xmp``, else ``photo.xmp``, as docs.immich.app/features/xmp-sidecars says)."""
    names = ("TagsList", "HierarchicalSubject", "Keywords")
    merged = exiftool_plain(photo, *names)
    for sidecar in (photo.with_name(f"{photo.name}.xmp"), photo.with_suffix(".xmp")):
        if sidecar.exists():
            merged |= exiftool_plain(sidecar, *names)
            break

    def listed(name: str) -> list[str]:
        value = merged.get(name)
        return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value is not None else []

    if tags_list := listed("TagsList"):
        return set(tags_list)
    if hierarchical := listed("HierarchicalSubject"):
        return {"/".join(level.replace("/", "|") for level in path.split("|")) for path in hierarchical}
    return set(listed("Keywords"))


def test_immich_still_shows_a_photos_own_tags_after_writing_for_it(home: Path, library: Path, capsys) -> None:  # noqa: ANN001
    """Photos tagged by Lightroom (embedded, and IMG.xmp of a RAW+JPEG pair), Capture One (IMG.xmp) and
    Immich itself: after ``--for immich`` Immich shows their tags and ours."""
    folders = ("immich", "lightroom", "capture-one")
    photos = [p for name in folders for p in sorted((library / name).iterdir()) if p.suffix.lower() != ".xmp"]
    before = {p.name: immich_tags(p) for p in photos}
    assert before["LR_0001.jpg"] == {"Places/Europe/Paris", "People/Family/Anna"}  # Immich reads them today
    assert before["IM_0002.jpg"] == {"Trips/Kyoto/Garden"}
    run(capsys, "write-metadata", " OR ".join(f"folder:{library / name}" for name in folders), "--for", "immich")
    lost = {p.name: before[p.name] - immich_tags(p) for p in photos if before[p.name] - immich_tags(p)}
    assert not lost, f"tags Immich no longer shows: {lost}"
    for p in photos:
        assert fitting(TAGS_LIST, keywords_of(p.name)) <= immich_tags(p), p.name


@pytest.mark.skipif(shutil.which("darktable-cli") is None, reason="darktable-cli is not installed (apt: darktable)")
def test_darktable_still_shows_a_jpegs_own_keywords_after_a_new_sidecar(home: Path, library: Path, tmp_path: Path,  # noqa: ANN001
                                                                        capsys) -> None:  # noqa: ANN001
    """A JPEG Lightroom saved its keywords into, not yet in darktable: after ``--for darktable`` (a new
    ``IMG.jpg.xmp``) darktable imports Lightroom's keywords and ours."""
    photo = library / "lightroom" / "LR_0001.jpg"

    def darktable_tags(label: str) -> set[str]:
        out = tmp_path / f"export-{label}.jpg"
        subprocess.run(["darktable-cli", str(photo), str(out), "--core", "--configdir", str(tmp_path / label),
                        "--library", ":memory:"], capture_output=True, text=True, timeout=300, check=False)
        assert out.exists(), f"darktable-cli exported nothing ({label})"
        return set(values(facts(out)[out.name], SUBJECT))

    before = darktable_tags("before")
    assert before == {"Places", "Europe", "Paris", "People", "Family", "Anna"}  # darktable reads them today
    run(capsys, "write-metadata", f"folder:{photo.parent}", "--for", "darktable")
    assert photo.with_name("LR_0001.jpg.xmp").exists()
    after = darktable_tags("after")
    assert before <= after, f"keywords darktable no longer shows: {before - after}"
    assert fitting(HIERARCHICAL, keywords_of(photo.name)) <= after
