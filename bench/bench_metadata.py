"""Writing tags into photos (``write-metadata``): which JPEGs are embedded into, how fast a run writes and
undoes, and how many bytes it adds.

    .venv/bin/python bench/bench_metadata.py                   # every section, 10,000 photos (~25 min, 2 busy cores)
    .venv/bin/python bench/bench_metadata.py --quick           # a smoke run: 200 photos
    .venv/bin/python bench/bench_metadata.py --only share,tools

share    every JPEG and MPO of ../shared/photos (library and edge) plus odd JPEGs made here (XMP under a
         non-standard APP1 header, an empty ``<x:xmpmeta/>``, junk bytes between header segments, a packet
         near 64 KB and one already split into Extended XMP, IPTC with and without XMP, no EXIF, a Canon
         maker note, progressive, CMYK, grayscale, MPO as .mpo and as .jpg, ...), indexed by
         ``phototag index`` with tiny random models, three accepted tags each, then one
         ``MetadataWriter`` run with ``WriteOptions(mode="embed")``: per file, embedded, a sidecar
         instead or skipped (with the writer's reason), next to whether exiftool writes a keyword into
         a copy (``exiftool -overwrite_original -XMP-dc:Subject+=x``). exiftool then reads the three
         tags back from what was written, and compares every other tag, warning and (MPO) second frame
         with the original; the run is undone and every file compared byte for byte.
rate     ``--photos`` distinct 1280x960 JPEGs (1.2 MP, quality 90, camera-like EXIF, about 200 KB; made
         once under bench/.cache from eight photos of ../shared/photos, then copied with a serial in the
         EXIF), 250 to a folder, with three accepted tags each; their catalog rows are put in directly
         from the indexer's own identify stage (``indexer.pipeline.identify``: size, mtime, content hash,
         format), so no model runs. One write run and its undo per mode (embed, sidecar), through the
         public API in this process, timed; the undo is checked byte for byte.
size     from the same runs: bytes added per embedded JPEG and per sidecar, and the run's backups in
         the catalog's ``metadata-runs`` folder.
tools    which photo apps' command-line tools are here, and (darktable-cli) which tags darktable reads
         from a sidecar and from a JPEG Phototag wrote: darktable exports the photo with the tags it read.

Results: bench/results/metadata.md (``--only`` reruns some sections and keeps the others, and its
hand-written ``## notes`` section); every section is also printed, ready to paste.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from _machine import cpu_name  # noqa: E402
from bench_indexer import write_results as write_sections  # noqa: E402

OUT = HERE / "results" / "metadata.md"
CACHE = HERE / ".cache"
BASES = CACHE / "metadata_bases_v1"
PHOTOS = REPO.parent / "shared" / "photos"
TITLE = "# Writing metadata (`write-metadata`, CPU)"
SECTIONS = ("share", "rate", "size", "tools")
NOTES = "notes"  # a section written by hand in the results file, kept when the others are rewritten
TAGS = ("golden hour", "Phototag bench", "café crème")  # three accepted tags per photo: a space, non-ASCII
PHOTO_SIZE = (1280, 960)
JPEG_QUALITY = 90
PER_FOLDER = 250
SERIAL = b"PHOTOTAG-BENCH-SERIAL-0000000000"  # in each base's EXIF ImageUniqueID; every copy gets its own
BASE_SOURCES = ("animals/chelsea.png", "flowers/canon_flower.jpg", "flowers/dahlia.jpg", "food/coffee.png",
                "people/grace_hopper.jpg", "space/hubble_deep_field.jpg", "space/rocket.jpg", "travel/china.jpg")
STAMP = datetime(2024, 5, 1, 3, 0, 0)

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_NONSTANDARD = b"XMP\x00://ns.adobe.com/xap/1.0/\x00"
XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
EXIF_HEADER = b"Exif\x00\x00"
SOI, SOS = b"\xff\xd8", 0xDA
APP1, APP13, COM = 0xE1, 0xED, 0xFE


# --- helpers -----------------------------------------------------------------------------------------
def machine() -> str:
    import platform

    return f"{cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}"


def code_version() -> str:
    """The commit measured, and whether the writer's files differ from it (the code changes under a session)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "indexer", "main.py")
    return f"commit {commit}" + (" with uncommitted changes in indexer/ or main.py" if dirty else "")


def header(key: str, title: str) -> list[str]:
    command = " ".join(["bench/bench_metadata.py", *sys.argv[1:]])
    # Other work on the machine slows a run: the load average says how busy it was meanwhile.
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    return [f"## {key}: {title}", "",
            f"Machine: {machine()}. Code: {code_version()}. Command: `.venv/bin/python {command}` "
            f"({date.today().isoformat()}). Load average at the end: {load} (1/5/15 min).", ""]


def digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=32).hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): digest(path) for path in sorted(root.rglob("*")) if path.is_file()}


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def kib(size: float) -> str:
    return f"{size / 1024:,.1f} KiB"


def tool_version(*command: str) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


# --- JPEG bytes, made by hand (independent of indexer.metadata.embed, which is what is measured) ------
def segments(data: bytes) -> tuple[list[bytes], bytes]:
    """The header segments of a well-formed JPEG (marker and length included) and the rest from SOS on."""
    assert data[:2] == SOI
    found, at = [], 2
    while data[at + 1] != SOS:
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        found.append(data[at : at + 2 + length])
        at += 2 + length
    return found, data[at:]


def segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError(f"a segment of {len(payload)} bytes does not fit")
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def is_app(part: bytes, marker: int | None = None) -> bool:
    return part[1] == marker if marker is not None else 0xE0 <= part[1] <= 0xEF


def segment_bytes(data: bytes) -> dict[str, int]:
    """Bytes of a JPEG's header segments by kind (marker and length included)."""
    kinds = {EXIF_HEADER: "EXIF (APP1)", XMP_HEADER: "XMP (APP1)", XMP_EXTENSION: "Extended XMP (APP1)",
             b"Photoshop 3.0\x00": "IPTC, Photoshop IRB (APP13)"}
    sizes: dict[str, int] = {}
    for part in segments(data)[0]:
        kind = next((name for header, name in kinds.items() if part[4:].startswith(header)), f"0x{part[1]:02X}")
        sizes[kind] = sizes.get(kind, 0) + len(part)
    return sizes


def with_segments(data: bytes, added: Sequence[bytes], *, first: bool = False, junk: bytes = b"") -> bytes:
    """``data`` with ``added`` after its leading APPn segments (or right after SOI), then ``junk``."""
    parts, rest = segments(data)
    at = 0 if first else next((i for i, part in enumerate(parts) if not is_app(part)), len(parts))
    return SOI + b"".join(parts[:at]) + b"".join(added) + junk + b"".join(parts[at:]) + rest


def xmp_packet(properties: str = "", *, wrapper: bool = True, xmpmeta: bool = True, pad: int = 0) -> bytes:
    body = (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        ' <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '   xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" xmlns:xmpNote="http://ns.adobe.com/xmp/note/"\n'
        '   xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/">\n'
        f'  {properties}\n'
        ' </rdf:Description>\n'
        '</rdf:RDF>')
    if xmpmeta:
        body = f'<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="bench">\n{body}\n</x:xmpmeta>'
    if wrapper:
        body = (f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n{body}\n'
                + " " * pad + '<?xpacket end="w"?>')
    return body.encode("utf-8")


def subject(*keywords: str) -> str:
    return "<dc:subject><rdf:Bag>" + "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords) + "</rdf:Bag></dc:subject>"


TITLED = (subject("old keyword")
          + '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">kept title</rdf:li></rdf:Alt></dc:title>')


def extended_xmp(properties: str, extension: str) -> list[bytes]:
    """The XMP standard's part 3: a main packet naming the GUID, and the rest in APP1 extension chunks."""
    rest = xmp_packet(extension, wrapper=False)
    guid = hashlib.md5(rest).hexdigest().upper().encode()  # noqa: S324 - the standard's GUID is this MD5
    main = xmp_packet(f'{properties}\n  <xmpNote:HasExtendedXMP>{guid.decode()}</xmpNote:HasExtendedXMP>')
    chunk = 65_000
    parts = [segment(APP1, XMP_HEADER + main)]
    for offset in range(0, len(rest), chunk):
        parts.append(segment(APP1, XMP_EXTENSION + guid + len(rest).to_bytes(4, "big") + offset.to_bytes(4, "big")
                             + rest[offset : offset + chunk]))
    return parts


def iptc_app13(*keywords: str, digest: str | None = "current") -> bytes:
    """A Photoshop IRB with IPTC-IIM keywords (UTF-8 coded character set) and the IPTC digest: ``current``
    (the MD5 of the IPTC block, as Photoshop and Lightroom write it: XMP is in sync), ``stale`` (the IPTC
    was edited since by a tool that does not keep the digest) or None (no digest)."""
    def dataset(record: int, number: int, value: bytes) -> bytes:
        return bytes((0x1C, record, number)) + len(value).to_bytes(2, "big") + value

    iptc = dataset(1, 90, b"\x1b%G") + dataset(2, 0, b"\x00\x04")
    iptc += b"".join(dataset(2, 25, keyword.encode()) for keyword in keywords)

    def resource(number: int, data: bytes) -> bytes:
        return b"8BIM" + number.to_bytes(2, "big") + b"\x00\x00" + len(data).to_bytes(4, "big") + data + \
            b"\x00" * (len(data) % 2)

    irb = resource(0x0404, iptc)
    if digest is not None:
        stated = iptc if digest == "current" else iptc.replace(keywords[0].encode(), b"older")
        irb += resource(0x0425, hashlib.md5(stated).digest())  # noqa: S324 - the IPTC digest is MD5
    return segment(APP13, b"Photoshop 3.0\x00" + irb)


@dataclass(frozen=True)
class OddFile:
    name: str
    about: str
    data: bytes


def odd_files() -> list[OddFile]:
    """JPEGs (and MPOs) laid out as cameras, phones and other tools leave them, and some broken ones."""
    from PIL import ExifTags, Image, ImageCms

    base = Image.open(PHOTOS / "library" / "people" / "grace_hopper.jpg").convert("RGB").resize((640, 480))

    def jpeg(image: Image.Image = base, **options: Any) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=JPEG_QUALITY, **options)
        return out.getvalue()

    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Phototag", "Odd files"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2023:07:01 12:00:00"
    with_exif = jpeg(exif=exif.tobytes())
    canon = next(part for part in segments((PHOTOS / "library" / "flowers" / "canon_flower.jpg").read_bytes())[0]
                 if is_app(part, APP1) and part[4:10] == EXIF_HEADER)
    standard = segment(APP1, XMP_HEADER + xmp_packet(TITLED))
    exif_part = next(part for part in segments(with_exif)[0] if is_app(part, APP1))
    near = xmp_packet(TITLED + "<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">"
                      + "x" * 64_600 + "</rdf:li></rdf:Alt></dc:description>")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    mpo = io.BytesIO()
    base.save(mpo, "MPO", save_all=True, append_images=[base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)],
              quality=JPEG_QUALITY, exif=exif.tobytes())
    history = "<photoshop:History>" + "edit step; " * 15_000 + "</photoshop:History>"
    files = [
        OddFile("no_exif.jpg", "no EXIF, no XMP (JFIF only)", jpeg()),
        OddFile("exif.jpg", "EXIF (camera, date), no XMP", with_exif),
        OddFile("exif_makernote.jpg", "Canon EXIF with its maker note (copied byte for byte), no JFIF",
                with_segments(jpeg(), [canon], first=True)),
        OddFile("progressive.jpg", "progressive, EXIF", jpeg(exif=exif.tobytes(), progressive=True)),
        OddFile("cmyk.jpg", "CMYK (Adobe APP14), EXIF", jpeg(base.convert("CMYK"), exif=exif.tobytes())),
        OddFile("grayscale.jpg", "grayscale, EXIF", jpeg(base.convert("L"), exif=exif.tobytes())),
        OddFile("icc_comment.jpg", "EXIF, ICC profile (APP2) and a COM segment",
                with_segments(jpeg(exif=exif.tobytes(), icc_profile=srgb), [segment(COM, b"made by a scanner")])),
        OddFile("xmp_standard.jpg", "EXIF + standard XMP (dc:subject, dc:title)", with_segments(with_exif, [standard])),
        OddFile("xmp_nonstandard_header.jpg", "XMP under the APP1 header `XMP\\0://ns.adobe.com/xap/1.0/\\0`",
                with_segments(with_exif, [segment(APP1, XMP_NONSTANDARD + xmp_packet(TITLED))])),
        OddFile("xmp_empty_xmpmeta.jpg", "an empty `<x:xmpmeta/>` packet (no rdf:RDF)",
                with_segments(with_exif, [segment(APP1, XMP_HEADER + b'<?xpacket begin="\xef\xbb\xbf" id="W5M0Mp'
                                                  b'CehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>'
                                                  b'<?xpacket end="w"?>')])),
        OddFile("xmp_no_wrapper.jpg", "XMP without the `<?xpacket?>` wrapper",
                with_segments(with_exif, [segment(APP1, XMP_HEADER + xmp_packet(TITLED, wrapper=False))])),
        OddFile("xmp_rdf_only.jpg", "XMP as a bare `rdf:RDF` (no x:xmpmeta, no wrapper)",
                with_segments(with_exif, [segment(APP1, XMP_HEADER + xmp_packet(TITLED, wrapper=False,
                                                                                  xmpmeta=False))])),
        OddFile("xmp_before_exif.jpg", "the XMP APP1 before the EXIF APP1",
                with_segments(jpeg(), [standard, exif_part])),
        OddFile("junk_after_metadata.jpg", "EXIF + XMP, then 12 junk bytes before DQT (no marker there)",
                with_segments(with_exif, [standard], junk=b"\x00\x00junk\x00bytes")),
        OddFile("fill_bytes.jpg", "0xFF fill bytes before a marker after the metadata (allowed by the standard)",
                with_segments(with_exif, [standard], junk=b"\xff\xff\xff")),
        OddFile("xmp_near_64k.jpg", f"a standard XMP packet of {len(near):,} bytes: ours no longer fits one segment",
                with_segments(with_exif, [segment(APP1, XMP_HEADER + near)])),
        OddFile("xmp_extended.jpg", "XMP already split into a main packet and Extended XMP (~165 KB)",
                with_segments(with_exif, extended_xmp(TITLED, history))),
        *(OddFile(f"iptc_xmp_{digest or 'no'}_digest.jpg",
                  f"IPTC keywords (`kept-iptc`, {digest or 'no'} IPTC digest) + XMP dc:subject (`xmp-kw`)",
                  with_segments(with_exif, [iptc_app13("kept-iptc", digest=digest),
                                            segment(APP1, XMP_HEADER + xmp_packet(subject("xmp-kw")))]))
          for digest in ("current", "stale", None)),
        OddFile("iptc_only.jpg", "IPTC keywords (`kept-iptc`, no digest), no XMP",
                with_segments(with_exif, [iptc_app13("kept-iptc", digest=None)])),
        OddFile("two_frames.mpo", "MPO, two frames (Pillow)", mpo.getvalue()),
        OddFile("mpo_named.jpg", "the same MPO named .jpg", mpo.getvalue()),
    ]
    return files


# --- catalogs ----------------------------------------------------------------------------------------
def add_tags(catalog: Any, photo_ids: Sequence[int]) -> None:
    """TAGS on every photo, accepted by a person (a tag the model also suggested becomes accepted)."""
    from sqlalchemy import select
    from sqlalchemy.dialects.sqlite import insert

    from indexer.schema import ACCEPTED, CUSTOM, SOURCE_USER, PhotoTag, Tag

    with catalog.session() as session, session.begin():
        session.execute(insert(Tag).values([{"name": name, "kind": CUSTOM} for name in TAGS])
                        .on_conflict_do_nothing(index_elements=["name"]))
        tag_ids = list(session.scalars(select(Tag.id).where(Tag.name.in_(TAGS))))
        statement = insert(PhotoTag)
        for start in range(0, len(photo_ids), 5000):
            rows = [{"photo_id": photo_id, "tag_id": tag_id, "source": SOURCE_USER, "state": ACCEPTED,
                     "updated_at": STAMP} for photo_id in photo_ids[start : start + 5000] for tag_id in tag_ids]
            session.execute(statement.values(rows).on_conflict_do_update(
                index_elements=["photo_id", "tag_id"],
                set_={"source": SOURCE_USER, "state": ACCEPTED}))


def identified_catalog(directory: Path, paths: Sequence[Path]) -> Any:
    """A catalog whose rows are what a pass records for ``paths`` (the indexer's identify stage), indexed."""
    from sqlalchemy import select

    from indexer._paths import catalog_path
    from indexer.catalog import Catalog
    from indexer.pipeline import Identified, identify
    from indexer.schema import INDEXED, Photo

    rows = []
    for path in paths:
        found = identify(catalog_path(path))
        if not isinstance(found, Identified) or found.info is None:
            raise RuntimeError(f"{path}: the indexer would not index it ({found})")
        info = found.info
        rows.append({"path": found.path, "size": found.size, "mtime_ns": found.mtime_ns,
                     "content_hash": found.content_hash, "format": info.format, "width": info.width,
                     "height": info.height, "orientation": info.orientation, "camera_make": info.camera_make,
                     "camera_model": info.camera_model, "status": INDEXED, "attempts": 0, "first_seen": STAMP,
                     "last_seen": STAMP, "indexed_at": STAMP})
    catalog = Catalog.open(directory)
    with catalog.session() as session, session.begin():
        session.execute(Photo.__table__.insert(), rows)
    with catalog.session() as session:
        add_tags(catalog, list(session.scalars(select(Photo.id))))
    return catalog


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def indexed_catalog(home: Path, root: Path) -> Any:
    """``phototag index ROOT`` with tiny random models (under bench/.cache), as a user would run it."""
    from bench_indexer import TINY_EMBEDDER, TINY_TAGGER, ensure_models
    from sqlalchemy import select

    from indexer.catalog import Catalog
    from indexer.schema import INDEXED, Photo
    from main import main as phototag

    ensure_models(("ram_plus_tiny", TINY_TAGGER), ("clip_tiny", TINY_EMBEDDER))
    (home / "models").symlink_to(CACHE, target_is_directory=True)
    settings = {"PHOTOTAG_HOME": str(home), "PHOTOTAG_DEVICE": "cpu", "PHOTOTAG_TAGGER": TINY_TAGGER,
                "PHOTOTAG_EMBEDDER": TINY_EMBEDDER, "PHOTOTAG_WORKERS": "0", "PHOTOTAG_AUTO_DOWNLOAD": "false"}
    out, err = io.StringIO(), io.StringIO()
    with environment(settings), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = phototag(["index", str(root), "--json"])
    if code not in (0, 1):  # 1: some files failed (the edge files), each recorded
        raise RuntimeError(f"phototag index exited with {code}:\n{err.getvalue()[-3000:]}")
    catalog = Catalog.open(home / "catalog")
    with catalog.session() as session:
        add_tags(catalog, list(session.scalars(select(Photo.id).where(Photo.status == INDEXED))))
    return catalog


@dataclass(frozen=True)
class Took:
    wall: float  # seconds
    cpu: float  # seconds of this process's CPU time: the rest is waiting (fsync, the disk)


def timed(function: Callable[[], Any], profile: Path | None = None) -> tuple[Any, Took]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = profiled(profile, function)
    return result, Took(time.perf_counter() - wall, time.process_time() - cpu)


def write_run(catalog: Any, mode: str, profile: Path | None = None) -> tuple[Any, Took]:
    """One ``write-metadata`` run over every indexed photo: its summary and time."""
    from indexer.metadata import MetadataWriter, WriteOptions, select_photos

    photo_ids = select_photos(catalog)
    writer = MetadataWriter(catalog, WriteOptions(mode=mode))
    with catalog.writer(task="write-metadata"):
        return timed(lambda: writer.run(photo_ids), profile)


def undo(catalog: Any, run_id: str, profile: Path | None = None) -> tuple[Any, Took]:
    from indexer.metadata import undo_run

    with catalog.writer(task="undo-metadata"):
        return timed(lambda: undo_run(catalog, run_id), profile)


def profiled(out: Path | None, function: Callable[[], Any]) -> Any:
    if out is None:
        return function()
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = cProfile.Profile()
    try:
        return profile.runcall(function)
    finally:
        profile.dump_stats(out)
        stats = io.StringIO()
        pstats.Stats(str(out), stream=stats).sort_stats("cumulative").print_stats(25)
        print(stats.getvalue(), file=sys.stderr)


# --- share -------------------------------------------------------------------------------------------
def exiftool_writes(path: Path) -> tuple[bool, str]:
    """Whether exiftool writes a keyword into a copy of ``path``, and what it said if not."""
    if shutil.which("exiftool") is None:
        return False, "exiftool is not installed"
    with tempfile.TemporaryDirectory(prefix="phototag-exiftool-") as name:
        copy = Path(name) / path.name
        shutil.copyfile(path, copy)
        done = subprocess.run(["exiftool", "-overwrite_original", "-XMP-dc:Subject+=x", str(copy)],
                              capture_output=True, text=True, check=False)
    if done.returncode == 0 and "1 image files updated" in done.stdout:
        return True, ""
    said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return False, said[0].split(" - ")[0] if said else f"exit {done.returncode}"


def exiftool_json(paths: Sequence[Path], *options: str) -> dict[str, dict[str, Any]]:
    """exiftool's JSON for each of ``paths`` (empty without exiftool)."""
    if shutil.which("exiftool") is None or not paths:
        return {}
    done = subprocess.run(["exiftool", "-j", "-charset", "filename=utf8", *options, *map(str, paths)],
                          capture_output=True, text=True, check=False)
    return {entry["SourceFile"]: entry for entry in json.loads(done.stdout or "[]")}


def as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [] if value is None else [str(value)]


def exiftool_keywords(paths: Sequence[Path]) -> dict[str, dict[str, list[str]]]:
    """Per file: the XMP dc:subject and IPTC keywords exiftool reads."""
    return {path: {key: as_list(entry.get(key)) for key in ("Subject", "Keywords")}
            for path, entry in exiftool_json(paths, "-XMP-dc:Subject", "-IPTC:Keywords").items()}


# What a keyword write may change besides fields holding the keywords: the file system's facts, Phototag's
# record of its keywords (XMP-phototag), the XMP toolkit, the GUID of Extended XMP, the IPTC digest and
# record header, and in an MPO the offsets of the frames after the first (which moves them).
_UNCOUNTED_GROUPS = ("System", "File", "ExifTool", "XMP-phototag")
_MAY_CHANGE = {"XMP-x:XMPToolkit", "XMP-xmpNote:HasExtendedXMP", "Photoshop:IPTCDigest", "IPTC:CodedCharacterSet",
               "IPTC:ApplicationRecordVersion", "IPTC:EnvelopeRecordVersion"}


def other_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The tags exiftool reads differently after the write, besides those now holding our keywords."""
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new or key.split(":")[0] in _UNCOUNTED_GROUPS or key in _MAY_CHANGE \
                or key.endswith((":MPImageStart", ":MPImageLength")):
            continue
        if new is not None and any(tag in as_list(new) or tag in str(new) for tag in TAGS):
            continue
        changes.append(f"{key} {'removed' if new is None else 'added' if old is None else 'changed'}")
    return changes


def exiftool_warnings(paths: Sequence[Path]) -> dict[str, set[str]]:
    """Every warning exiftool gives on each file (its JSON keeps only one of them)."""
    if shutil.which("exiftool") is None or not paths:
        return {}
    done = subprocess.run(["exiftool", "-a", "-s", "-charset", "filename=utf8", "-Warning", *map(str, paths)],
                          capture_output=True, text=True, check=False)
    found: dict[str, set[str]] = {str(path): set() for path in paths}
    current = str(paths[0])
    for line in done.stdout.splitlines():
        if line.startswith("======== "):
            current = line[len("======== "):]
        elif line.startswith("Warning") and ":" in line:
            found.setdefault(current, set()).add(line.split(":", 1)[1].strip())
    return found


def mp_frames(path: Path) -> str | None:
    """A digest of an MPO's second frame as exiftool extracts it (None: no second frame)."""
    done = subprocess.run(["exiftool", "-b", "-MPImage2", str(path)], capture_output=True, check=False)
    return hashlib.blake2b(done.stdout, digest_size=16).hexdigest() if done.stdout else None


def short(message: str, path: str) -> str:
    """A writer message without the path it starts with, on one table line."""
    for prefix in (f"{path}: ", f"not embedded: {path}: "):
        if message.startswith(prefix):
            message = ("not embedded: " if prefix.startswith("not") else "") + message[len(prefix):]
    return message.replace("|", "\\|").replace("\n", " ")


def bench_share(tmp: Path) -> list[str]:
    from sqlalchemy import select

    from indexer.schema import INDEXED, Photo

    root = tmp / "share"
    odd = odd_files()
    about: dict[str, str] = {}
    for source in sorted(PHOTOS.rglob("*")):
        if source.suffix.lower() in (".jpg", ".jpeg", ".mpo") and source.is_file():
            relative = source.relative_to(PHOTOS)
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / relative)
            (root / relative).chmod(0o644)  # ../shared/photos is read-only
            about[str(relative)] = "../shared/photos"
    for made in odd:
        (root / "odd").mkdir(parents=True, exist_ok=True)
        (root / "odd" / made.name).write_bytes(made.data)
        about[f"odd/{made.name}"] = made.about
    before = snapshot(root)
    writable = {name: exiftool_writes(root / name) for name in about}
    facts = exiftool_json([root / name for name in about], "-G1", "-a", "-u")
    warned = exiftool_warnings([root / name for name in about])
    frames = {name: mp_frames(root / name) for name in about
              if "MPImage2:MPImageStart" in facts.get(str(root / name), {})}
    home = tmp / "share-home"
    home.mkdir()
    catalog = indexed_catalog(home, root)
    real = root.resolve()
    with catalog:
        with catalog.session() as session:
            status = {str(Path(row.path).relative_to(real)): (row.status, row.format, row.error_reason)
                      for row in session.execute(select(Photo.path, Photo.status, Photo.format, Photo.error_reason))}
        summary, _seconds = write_run(catalog, "embed")
        outcome: dict[str, tuple[str, str]] = {}
        read_from: dict[str, Path] = {}
        for report in summary.files:
            name = str(Path(report.photo).relative_to(real))
            if report.status == "skipped":
                outcome[name] = ("skipped", f"{report.reason}: {short(report.message or '', report.photo)}")
            elif report.kind == "embedded":
                outcome[name] = ("embedded", "")
                read_from[name] = Path(report.target)
            elif name not in outcome or outcome[name][0] != "skipped":
                why = next((note for note in report.notes if note.startswith("not embedded")), "")
                outcome[name] = ("sidecar", short(why, report.photo) if why else "mode embed wrote a sidecar")
                read_from[name] = Path(report.target)
        keywords = exiftool_keywords(list(read_from.values()))
        embedded = [name for name, (what, _why) in outcome.items() if what == "embedded"]
        facts_after = exiftool_json([root / name for name in embedded], "-G1", "-a", "-u")
        warned_after = exiftool_warnings([root / name for name in embedded])
        frames_after = {name: mp_frames(root / name) for name in frames if name in embedded}
        if summary.run_id is not None:
            undone, _seconds = undo(catalog, summary.run_id)
            undo_counts = undone.counts()
        else:
            undo_counts = {}
    after = snapshot(root)
    changed = sorted(name for name in before if before[name] != after.get(name))
    left = sorted(set(after) - set(before))

    said: dict[str, int] = {}  # warnings exiftool gives on written files only, numbered

    def kept(name: str) -> str:
        """The keywords the file had (XMP dc:subject, IPTC Keywords) that exiftool no longer reads in it."""
        old = facts.get(str(root / name), {})
        had = [*as_list(old.get("XMP-dc:Subject")), *as_list(old.get("IPTC:Keywords"))]
        if not had or name not in embedded:
            return ""
        new = facts_after.get(str(root / name), {})
        now = {*as_list(new.get("XMP-dc:Subject")), *as_list(new.get("IPTC:Keywords"))}
        lost = [keyword for keyword in dict.fromkeys(had) if keyword not in now]
        return f"lost: {', '.join(lost)}" if lost else "yes"

    def checked(name: str) -> str:
        if name not in embedded:
            return ""
        old, new = facts.get(str(root / name), {}), facts_after.get(str(root / name), {})
        notes = other_changes(old, new)
        if name in frames:
            notes.append("second frame identical" if frames_after.get(name) == frames[name] else
                         "**second frame differs**")
        path = str(root / name)
        for warning in sorted(warned_after.get(path, set()) - warned.get(path, set())):
            notes.append(f"warning w{said.setdefault(warning, len(said) + 1)}")
        return "; ".join(notes) or "none"

    lines = header("share", "which JPEGs `--mode embed` embeds into, next to exiftool 12.57")
    lines += [f"Every JPEG and MPO of ../shared/photos (library and edge) and {len(odd)} odd files made by the script "
              "(`odd/`), indexed by `phototag index` (tiny random models), three accepted tags each "
              f"({', '.join(TAGS)}), then `MetadataWriter(catalog, WriteOptions(mode=\"embed\"))` over all of them. "
              "*exiftool writes it*: `exiftool -overwrite_original -XMP-dc:Subject+=x` on a copy. *Read back*: "
              "exiftool reads the three tags from what was written (the JPEG, or the sidecar) in XMP dc:subject, "
              "and in IPTC Keywords where the file has IPTC. *Its own keywords kept*: every keyword exiftool "
              "read in the file's XMP dc:subject or IPTC Keywords before is still in one of them. *Else changed*: "
              "every tag exiftool reads "
              "(`-G1 -a -u`) before and after, besides those now holding the keywords, the file system's, Phototag's "
              "record of its keywords (`XMP-phototag`), the "
              "XMP toolkit, the Extended XMP GUID, the IPTC digest and, in an MPO, the frames' offsets; for an "
              "MPO, whether exiftool extracts the second frame identical; and warnings exiftool gives only after "
              "the write (listed below the table).", "",
              "| file | what it is | indexed as | `--mode embed` | why not embedded | exiftool writes it | "
              "read back (XMP / IPTC) | its own keywords kept | else changed (exiftool) |",
              "|---|---|---|---|---|---|---|---|---|"]
    counted = embedded_count = exiftool_ok = embedded_of_ok = 0
    for name in about:
        state, file_format, error = status.get(name, ("not seen", None, None))
        what, why = outcome.get(name, ("not written", ""))
        if state != INDEXED:
            what, why = "not indexed", f"the indexer recorded it {state}" + (f" ({error})" if error else "")
        ok, exiftool_said = writable[name]
        if state == INDEXED:
            counted += 1
            embedded_count += what == "embedded"
            exiftool_ok += ok
            embedded_of_ok += ok and what == "embedded"
        target = read_from.get(name)
        read = keywords.get(str(target), {}) if target is not None else {}
        xmp = "yes" if read and all(tag in read["Subject"] for tag in TAGS) else "no" if target else ""
        iptc = "yes" if read and all(tag in read["Keywords"] for tag in TAGS) else "no" if read.get("Keywords") else ""
        back = f"{xmp} / {iptc}" if iptc else xmp
        exiftool_column = "yes" if ok else "no: " + exiftool_said.replace("|", "/")
        lines.append(f"| `{name}` | {about[name]} | {state}, {file_format or '-'} | **{what}** | {why} | "
                     f"{exiftool_column} | {back} | {kept(name)} | {checked(name)} |")
    share = embedded_of_ok / exiftool_ok if exiftool_ok else 0.0
    lines += ["", *(f"- w{number}: exiftool says \"{warning}\"" for warning, number in said.items())]
    lines += ["", f"**Embedded share: {embedded_of_ok} of the {exiftool_ok} indexed files exiftool writes "
              f"({share:.0%})**; {embedded_count} of all {counted} indexed JPEG/MPO files "
              f"({embedded_count / counted if counted else 0:.0%}). Files the indexer records as failed are "
              "never written (`write-metadata` writes indexed photos only) and are left out of both shares.",
              f"Undo of the run: {', '.join(f'{v} {k}' for k, v in undo_counts.items()) or 'nothing to undo'}; "
              + (f"files not back byte for byte: {', '.join(changed)}; " if changed else
                 "every file back byte for byte; ")
              + (f"left behind: {', '.join(left)}." if left else "nothing left behind.")]
    return lines


# --- rate and size -----------------------------------------------------------------------------------
def base_photos(size: tuple[int, int]) -> list[bytes]:
    """Eight camera-like JPEGs of ``size`` (made once), each with SERIAL in its EXIF ImageUniqueID."""
    from PIL import ExifTags, Image

    from ram_model.preprocess import open_image

    folder = BASES / f"{size[0]}x{size[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for number, source in enumerate(BASE_SOURCES):
        path = folder / f"base_{number}.jpg"
        if not path.exists():
            image = open_image(PHOTOS / "library" / source)
            width, height = image.size
            side = min(width, height * 4 // 3)
            image = image.crop(((width - side) // 2, (height - side * 3 // 4) // 2,
                                (width - side) // 2 + side, (height - side * 3 // 4) // 2 + side * 3 // 4))
            exif = Image.Exif()
            exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Phototag", "Bench"
            exif[ExifTags.Base.Orientation] = 1
            ifd = exif.get_ifd(ExifTags.IFD.Exif)
            ifd[ExifTags.Base.DateTimeOriginal] = f"2023:07:{1 + number:02d} 12:00:00"
            ifd[ExifTags.Base.ImageUniqueID] = SERIAL.decode()
            temporary = path.with_suffix(".tmp")
            image.resize(size, Image.Resampling.BICUBIC).save(temporary, "JPEG", quality=JPEG_QUALITY,
                                                                    exif=exif.tobytes())
            os.replace(temporary, path)
        data = path.read_bytes()
        if data.count(SERIAL) != 1:
            raise RuntimeError(f"{path}: the serial is not in its EXIF once")
        made.append(data)
    return made


def make_library(root: Path, count: int, size: tuple[int, int]) -> list[Path]:
    bases = base_photos(size)
    paths = []
    for number in range(count):
        folder = root / f"{number // PER_FOLDER:03d} event"
        if number % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        serial = f"PHOTOTAG-BENCH-SERIAL-{number:010d}".encode()
        path = folder / f"IMG_{number:06d}.jpg"
        path.write_bytes(bases[number % len(bases)].replace(SERIAL, serial))
        paths.append(path)
    return paths


@dataclass
class ModeRun:
    mode: str
    photos: int
    size: tuple[int, int]
    mean_bytes: float  # of a photo
    write: Took
    undo: Took
    counts: dict[str, int]
    undo_counts: dict[str, int]
    added: list[int]  # bytes added per embedded photo
    sidecars: list[int]  # bytes per sidecar written
    backups: int  # bytes in the run's folder
    exact: bool  # every file back byte for byte after the undo, nothing left
    reasons: dict[str, int]
    grown: dict[str, int]  # embed: bytes added to the first photo, by segment kind


def bench_mode(tmp: Path, paths: list[Path], root: Path, mode: str, size: tuple[int, int],
               profile: Path | None) -> ModeRun:
    from indexer.metadata.journal import RUNS_FOLDER

    before = {path: path.stat().st_size for path in paths}
    first = segment_bytes(paths[0].read_bytes())
    hashes = snapshot(root)
    catalog_dir = tmp / f"catalog-{mode}"
    start = time.perf_counter()
    catalog = identified_catalog(catalog_dir, paths)
    print(f"{mode}: catalog rows for {len(paths):,} photos in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    with catalog:
        summary, write = write_run(catalog, mode, profile and profile.with_suffix(f".{mode}.write.prof"))
        print(f"{mode}: wrote in {write.wall:.1f} s: {summary.counts()}", file=sys.stderr)
        added, sidecars, reasons = [], [], {}
        for report in summary.files:
            if report.status == "skipped":
                reasons[report.reason] = reasons.get(report.reason, 0) + 1
            elif report.status == "written" and report.kind == "embedded":
                added.append(Path(report.target).stat().st_size - before[Path(report.photo)])
            elif report.status == "written":
                sidecars.append(Path(report.target).stat().st_size)
        backups = tree_bytes(catalog_dir / RUNS_FOLDER / summary.run_id) if summary.run_id else 0
        now = segment_bytes(paths[0].read_bytes())
        grown = {kind: now.get(kind, 0) - first.get(kind, 0) for kind in {**first, **now}
                 if now.get(kind, 0) != first.get(kind, 0)}
        undone, took = undo(catalog, summary.run_id, profile and profile.with_suffix(f".{mode}.undo.prof")) \
            if summary.run_id else (None, Took(0.0, 0.0))
        print(f"{mode}: undone in {took.wall:.1f} s", file=sys.stderr)
    exact = snapshot(root) == hashes
    return ModeRun(mode, len(paths), size, statistics.mean(before.values()), write, took, summary.counts(),
                   undone.counts() if undone else {}, added, sidecars, backups, exact, reasons, grown)


def bench_rate(tmp: Path, count: int, size: tuple[int, int], profile: Path | None) -> list[ModeRun]:
    root = tmp / "rate"
    start = time.perf_counter()
    paths = make_library(root, count, size)
    print(f"{count:,} JPEGs made in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return [bench_mode(tmp, paths, root, mode, size, profile) for mode in ("embed", "sidecar")]


def rate(photos: int, took: Took) -> str:
    per_second = photos / took.wall if took.wall else 0.0
    return f"{took.wall:.1f} | {took.cpu:.1f} | {per_second:.1f}" if per_second < 10 else \
        f"{took.wall:.1f} | {took.cpu:.1f} | {per_second:.0f}"


def rate_table(runs: list[ModeRun]) -> list[str]:
    count = runs[0].photos
    width, height = runs[0].size
    lines = header("rate", f"write and undo, {count:,} JPEGs of {width * height / 1e6:.1f} MP")
    lines += [f"{count:,} distinct {width}x{height} JPEGs ({width * height / 1e6:.1f} MP, "
              f"quality {JPEG_QUALITY}, {kib(runs[0].mean_bytes)} on average, EXIF with camera and date), "
              f"{PER_FOLDER} to a folder, three accepted tags each, files in the page cache. One run "
              "each, through the public API in this process (`MetadataWriter.run`, `undo_run`) under the "
              "catalog's writer lock; the catalog rows come from the indexer's identify stage (no model). "
              "*CPU s*: this process's CPU time; the rest of the wall time is waiting, mostly for fsync.", "",
              "| mode | photos | write s | CPU s | write photos/s | undo s | CPU s | undo photos/s | "
              "written / skipped | undo | byte-exact after undo |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        restored = ", ".join(f"{v} {k}" for k, v in run.undo_counts.items()) or "-"
        skipped = f"{run.counts.get('skipped', 0)}" + (
            f" ({', '.join(f'{k}: {v}' for k, v in run.reasons.items())})" if run.reasons else "")
        lines.append(f"| {run.mode} | {run.photos:,} | {rate(run.photos, run.write)} | {rate(run.photos, run.undo)} | "
                     f"{run.counts.get('written', 0):,} / {skipped} | {restored} | {'yes' if run.exact else 'NO'} |")
    return lines


def size_table(runs: list[ModeRun]) -> list[str]:
    lines = header("size", "what a run adds")
    lines += ["From the runs of the rate section. Embedded: size after minus size before of each rewritten JPEG "
              "(the XMP packet with its padding, XPKeywords in EXIF, IPTC, whatever the writer adds). Backups: "
              "everything in the run's folder `metadata-runs/RUN/` (the journal and a copy of each file "
              "as it was; a new sidecar has nothing to back up).", "",
              "| mode | files written | bytes added per file: mean | median | min–max | backups per run | "
              "backups per photo |",
              "|---|---|---|---|---|---|---|"]
    for run in runs:
        sizes = run.added if run.mode == "embed" else run.sidecars
        what = "embedded JPEGs" if run.mode == "embed" else "new sidecars"
        if sizes:
            lines.append(f"| {run.mode} | {len(sizes):,} {what} | {statistics.mean(sizes):,.0f} B | "
                         f"{statistics.median(sizes):,.0f} B | {min(sizes):,}–{max(sizes):,} B | "
                         f"{run.backups / 2**20:,.1f} MiB | {kib(run.backups / run.photos)} |")
        else:
            lines.append(f"| {run.mode} | 0 | | | | {run.backups / 2**20:,.1f} MiB | |")
    embed = next((run for run in runs if run.mode == "embed" and run.grown), None)
    if embed is not None:
        lines += ["", "Where an embedded photo's bytes go (the first photo, by segment): "
                  + ", ".join(f"{kind} {change:+,} B" for kind, change in sorted(embed.grown.items())) + "."]
    return lines


# --- tools -------------------------------------------------------------------------------------------
def darktable_export(tmp: Path, photo: Path, sidecar: Path | None) -> list[str] | None:
    """The tags darktable imports for ``photo`` (and ``sidecar``): its export carries them in dc:subject, each
    level of a hierarchical one. None: darktable did not export."""
    out = photo.with_name(f"export-{photo.name}")
    command = ["darktable-cli", str(photo), *([str(sidecar)] if sidecar else []), str(out), "--core",
               "--configdir", str(tmp / f"darktable-config-{photo.stem}"), "--library", ":memory:"]
    subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    return exiftool_keywords([out]).get(str(out), {}).get("Subject", []) if out.exists() else None


def darktable_reads(tmp: Path) -> list[str]:
    """Table rows: which keywords darktable takes from what Phototag wrote (a sidecar, an embedded JPEG), and
    from files laid out by hand, which show the fields darktable prefers."""
    from sqlalchemy import select

    from indexer.metadata import MetadataWriter, WriteOptions
    from indexer.schema import Photo

    if shutil.which("darktable-cli") is None or shutil.which("exiftool") is None:
        return []
    root = tmp / "darktable"
    root.mkdir()
    names = ("phototag_sidecar.jpg", "phototag_embedded.jpg", "both_fields.jpg", "subject_only.jpg",
             "exiftool_embedded.jpg")
    for name in names:
        shutil.copyfile(PHOTOS / "library" / "people" / "grace_hopper.jpg", root / name)  # writable copies
    catalog = identified_catalog(tmp / "darktable-catalog", [root / name for name in names[:2]])
    written: dict[str, str] = {}
    with catalog, catalog.writer(task="write-metadata"):
        with catalog.session() as session:
            ids = {Path(path).name: photo_id for photo_id, path in session.execute(select(Photo.id, Photo.path))}
        for name, mode in (("phototag_sidecar.jpg", "sidecar"), ("phototag_embedded.jpg", "embed")):
            report = MetadataWriter(catalog, WriteOptions(mode=mode)).run([ids[name]]).files[0]
            written[name] = "" if report.status == "written" else f" (not written: {report.message})"
    hierarchical = ("<lr:hierarchicalSubject><rdf:Bag><rdf:li>Places|Europe|Paris</rdf:li></rdf:Bag>"
                    "</lr:hierarchicalSubject>")
    (root / "both_fields.jpg.xmp").write_bytes(xmp_packet(subject("flatkw") + hierarchical))
    (root / "subject_only.jpg.xmp").write_bytes(xmp_packet(subject("flatkw")))
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Subject=embkw", "-IPTC:Keywords=iptckw",
                    "-XMP-lr:HierarchicalSubject=A|embhier", str(root / "exiftool_embedded.jpg")], check=False)
    cases = [
        ("phototag_sidecar.jpg", True, f"Phototag, `--mode sidecar`: `photo.jpg.xmp`{written['phototag_sidecar.jpg']}"),
        ("phototag_embedded.jpg", False,
         f"Phototag, `--mode embed`: XMP in the JPEG, no sidecar{written['phototag_embedded.jpg']}"),
        ("both_fields.jpg", True, "by hand: sidecar with dc:subject `flatkw` and lr:hierarchicalSubject "
                                  "`Places\\|Europe\\|Paris`"),
        ("subject_only.jpg", True, "by hand: sidecar with dc:subject `flatkw` only"),
        ("exiftool_embedded.jpg", False, "exiftool: in the JPEG, XMP dc:subject `embkw`, lr:hierarchicalSubject "
                                         "`A\\|embhier`, IPTC Keywords `iptckw`"),
    ]
    rows = []
    for name, with_sidecar, what in cases:
        read = darktable_export(tmp, root / name, root / f"{name}.xmp" if with_sidecar else None)
        ours = f" | {'yes' if read is not None and all(tag in read for tag in TAGS) else 'no'}" \
            if name.startswith("phototag") else " | "
        rows.append(f"| {what} | {', '.join(read) if read is not None else 'export failed'}{ours} |")
    return rows


def bench_tools(tmp: Path) -> list[str]:
    lines = header("tools", "photo apps' command-line tools here")
    exiftool, exiv2 = tool_version("exiftool", "-ver"), tool_version("exiv2", "--version")
    darktable = tool_version("darktable-cli", "--version")
    digikam = [name for name in ("digikam", "showfoto", "digitaglinktree") if shutil.which(name)]
    lines += [f"- exiftool: {exiftool or 'not installed'}; exiv2: {exiv2 or 'not installed'}.",
              f"- darktable-cli: {darktable or 'not installed'} "
              "(`apt-get install -y darktable` installed darktable 4.2.1 from Debian bookworm on this machine "
              "in about a minute: it reached the Debian mirror; darktable-cli runs headless with `--core "
              "--configdir DIR --library :memory:`, about 1 s a photo).",
              "- digiKam: " + (f"installed ({', '.join(digikam)})" if digikam else "not installed")
              + ". Debian's `digikam` 7.9.0 is installable (about 500 packages with KDE/Qt 5) but has no "
              "command-line tool that reads or writes metadata (`digikam` and `showfoto` are GUI apps; "
              "`digitaglinktree` reads digiKam's database, not files); digiKam reads and writes metadata "
              "through Exiv2, which the tests run directly."]
    if rows := darktable_reads(tmp):
        lines += ["", f"darktable {darktable.split()[-1] if darktable else ''}: which tags it imports. "
                  "`darktable-cli photo.jpg [photo.jpg.xmp] out.jpg` (default settings), then exiftool reads "
                  "XMP dc:subject of the export, where darktable puts the tags it imported (each level of a "
                  f"hierarchical one). Phototag's rows: three tags, {', '.join(TAGS)}.", "",
                  "| what the photo carries | tags in darktable's export | Phototag's three |", "|---|---|---|",
                  *rows]
    return lines


# --- results file ------------------------------------------------------------------------------------
def write_results(out: Path, sections: dict[str, list[str]]) -> None:
    """Replace these sections of ``out``, keep its others (bench_indexer's writer); print them."""
    write_sections(out, sections, title=TITLE, order=(*SECTIONS, NOTES),
                   intro="Written by `bench/bench_metadata.py` (what each section measures: its docstring); "
                         "`--only` reruns some sections and keeps the others. Issue 16's numbers.")
    for key in sections:
        print("\n".join(sections[key]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({','.join(SECTIONS)})")
    parser.add_argument("--photos", type=int, default=10_000, help="JPEGs of the rate and size sections")
    parser.add_argument("--size", default=f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}", metavar="WxH",
                        help="pixel size of those JPEGs (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 photos")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="cProfile the write and undo runs of the rate section into FILE.MODE.{write,undo}.prof "
                             "(and print the top of each)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := sorted(set(only) - set(SECTIONS)):
        parser.error(f"unknown section {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    count = 200 if args.quick else args.photos
    try:
        size = tuple(int(part) for part in args.size.lower().split("x"))
        assert len(size) == 2
    except (ValueError, AssertionError):
        parser.error(f"--size {args.size}: give it as WIDTHxHEIGHT, e.g. 1280x960")
    with tempfile.TemporaryDirectory(prefix="phototag-bench-metadata-") as name:
        tmp = Path(name).resolve()  # the paths the catalog records
        if "share" in only:
            write_results(args.out, {"share": bench_share(tmp)})
        if "rate" in only or "size" in only:
            runs = bench_rate(tmp, count, size, args.profile)
            sections = {}
            if "rate" in only:
                sections["rate"] = rate_table(runs)
            if "size" in only:
                sections["size"] = size_table(runs)
            write_results(args.out, sections)
        if "tools" in only:
            write_results(args.out, {"tools": bench_tools(tmp)})


if __name__ == "__main__":
    main()
