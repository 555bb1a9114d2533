"""What the catalog records about a photo, read from its headers without decoding a pixel.

``read_photo_info`` opens a file lazily with Pillow (plus pillow-heif for HEIF/AVIF) and reads
the stored size, EXIF orientation, capture time, camera, GPS position and the keywords already
in the file. Broken metadata never raises: what was ignored is listed in ``PhotoInfo.warnings``.
Only a file that is not an image at all raises :class:`~ram_model.errors.ImageError`, classified
as ``open_image`` classifies it (a camera RAW file Pillow cannot read is not one: LibRaw reads it
later, and its sidecars' keywords are still read).

Keywords are the union of every field a photo tool writes them to (:data:`_XMP_KEYWORD_FIELDS`),
from the embedded XMP, IPTC-IIM, EXIF and every XMP sidecar (``IMG.jpg.xmp``: digiKam, darktable,
Immich; ``IMG.xmp``: Lightroom, Capture One, Immich — a RAW+JPEG pair shares it):

- flat lists: XMP ``dc:subject``, IPTC Keywords (2:25), EXIF ``XPKeywords`` (``;``-separated);
- hierarchies, one path per entry: ``lr:hierarchicalSubject`` and ``mediapro:CatalogSets``
  (``Places|Europe|Paris``), ``digiKam:TagsList`` and ``MicrosoftPhoto:LastKeywordXMP``/``IPTC``
  (``Places/Europe/Paris``), and ACDSee's category tree (``acdsee:categories``, as digiKam writes it).

A path gives its leaf and each of its parents (``Paris``, ``Europe``, ``Places``): Lightroom and
darktable write the parents into ``dc:subject`` too, and a parent's word is as much worth finding.
Components are trimmed; empty ones (``Places||Paris``, a leading or trailing separator) are dropped;
a path deeper than :data:`_MAX_PATH_DEPTH` keeps its last levels. A path entry whose whole text is
also one of the flat keywords is that flat keyword, not a path (Capture One and Phototag copy flat
lists into the hierarchy fields: ``AC/DC`` stays ``AC/DC``). All of it is one union, de-duplicated
case-insensitively with the first spelling kept — a parent already in ``dc:subject`` counts once,
spelled as ``dc:subject`` spells it (it comes first). Two branches ending in the same word
(``Places|Paris``, ``People|Paris``) give one keyword ``Paris``: the catalog's tags are flat.

Where Pillow exposes each block, per format:

- EXIF: ``info["exif"]`` (JPEG/MPO APP1, WebP ``EXIF``, PNG ``eXIf``, HEIF/AVIF), the TIFF's own
  IFDs, or ImageMagick's ``Raw profile type exif`` PNG text chunk.
- XMP: ``info["xmp"]`` (WebP ``XMP `` chunk, PNG ``iTXt``, TIFF tag 700, HEIF/AVIF ``mime`` item),
  or PNG's ``XML:com.adobe.xmp`` ``tEXt``/``zTXt`` chunk. JPEG/MPO XMP is read by walking the
  header's segments (:func:`_jpeg_xmp`), because Pillow reads neither a packet under the non-standard
  ``XMP\\0://ns.adobe.com/xap/1.0/`` APP1 header nor Extended XMP (the ``xmp/extension`` segments
  a packet over 64 KB continues in).
- IPTC: JPEG/MPO Photoshop APP13 and TIFF tag 33723 only (``PIL.IptcImagePlugin.getiptcinfo``).

PNG text and ``eXIf`` chunks after the image data are read by walking the chunk headers (Pillow
would decode the pixels to reach them). HEIF is decoded upright by libheif (``irot``/``imir``), so
its stored size and orientation are read from the container's item properties.
"""

from __future__ import annotations

import math
import os
import re
import struct
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from xml.parsers import expat

from PIL import ExifTags, Image, ImageFile, IptcImagePlugin, PngImagePlugin

from indexer.errors import FileSkipped
from indexer.metadata._files import open_regular, read_regular
from ram_model.errors import ImageError
from ram_model.preprocess import (
    SKIPPED_PNG_TEXT,
    _first_line,
    _isobmff_overrun,
    open_lazily,
    register_formats,
)
from ram_model.raw import is_raw

__all__ = ["MAX_FILE_KEYWORDS", "MAX_KEYWORD_CHARS", "MAX_XMP_BYTES", "PhotoInfo", "parse_xmp",
           "read_keywords_from_xmp", "read_photo_info"]


@dataclass(frozen=True)
class PhotoInfo:
    """Facts about one photo file, as its metadata states them.

    ``width``/``height`` are the stored pixel size and ``orientation`` the EXIF-style turn (1..8)
    still to apply to it; for HEIF that turn is the container's ``irot``/``imir`` transform.
    ``taken_at`` is the camera's local wall time, with ``tzinfo`` only where the file states its
    offset. ``keywords`` are the file's own keywords — every field photo tools write them to, a
    hierarchical one as its leaf and its parents — cleaned and de-duplicated (case-insensitively,
    first spelling kept). ``warnings`` say what was broken and ignored.
    """

    format: str | None
    width: int | None
    height: int | None
    orientation: int | None
    taken_at: datetime | None
    camera_make: str | None
    camera_model: str | None
    gps_lat: float | None
    gps_lon: float | None
    keywords: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # The hierarchical keywords as paths of names, root first (``("Places", "Europe", "Paris")``), from
    # every path field: what a new hierarchical list (a sidecar's, another app's) starts with.
    paths: tuple[tuple[str, ...], ...] = ()


_FACTS = tuple(fact.name for fact in fields(PhotoInfo) if fact.name not in ("keywords", "warnings", "paths"))

_NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_NS_DC = "http://purl.org/dc/elements/1.1/"
_NS_LR = "http://ns.adobe.com/lightroom/1.0/"
_NS_DIGIKAM = "http://www.digikam.org/ns/1.0/"
_NS_TIFF = "http://ns.adobe.com/tiff/1.0/"
_NS_EXIF = "http://ns.adobe.com/exif/1.0/"
_NS_XMP = "http://ns.adobe.com/xap/1.0/"
_NS_PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
_NS_XMP_NOTE = "http://ns.adobe.com/xmp/note/"
_NS_MEDIAPRO = "http://ns.iview-multimedia.com/mediapro/1.0/"
_NS_ACDSEE = "http://ns.acdsee.com/iptc/1.0/"
# Windows and exiv2 spell it with the slash, exiftool without: both are read.
_NS_MICROSOFT = ("http://ns.microsoft.com/photo/1.0/", "http://ns.microsoft.com/photo/1.0")

# The XMP keyword lists photo tools write: (namespaces, property, the separator of its paths; None: flat).
_XMP_KEYWORD_FIELDS = (
    ((_NS_DC,), "subject", None),  # everyone; Lightroom and darktable add each keyword's parents
    ((_NS_LR,), "hierarchicalSubject", "|"),  # Lightroom, darktable, digiKam, Immich; Capture One: flat entries
    ((_NS_DIGIKAM,), "TagsList", "/"),  # digiKam, Immich
    (_NS_MICROSOFT, "LastKeywordXMP", "/"),  # Windows Photo Gallery, digiKam
    (_NS_MICROSOFT, "LastKeywordIPTC", "/"),  # Windows
    ((_NS_MEDIAPRO,), "CatalogSets", "|"),  # digiKam, Media Pro
)
# A keyword as one field states it: its text, and the separator of the field's paths (None: a flat list).
_Stated = tuple[str, str | None]

_IPTC_KEYWORDS = (2, 25)
_IPTC_DATE_CREATED = (2, 55)
_IPTC_TIME_CREATED = (2, 60)
_IPTC_CODED_CHARSET = (1, 90)
_IPTC_UTF8 = b"\x1b%G"

_TIFF_IMAGE_WIDTH, _TIFF_IMAGE_LENGTH = 256, 257
_ORIENTATIONS = range(1, 9)
# A HEIF transform as (quarter turns counter-clockwise, mirrored left-right first) -> EXIF orientation.
_TRANSFORM_TO_ORIENTATION = {
    (0, False): 1, (0, True): 2, (2, False): 3, (2, True): 4,
    (1, True): 5, (3, False): 6, (3, True): 7, (1, False): 8,
}
_SIDEWAYS = frozenset({5, 6, 7, 8})

# HEIF metadata boxes are kilobytes; a larger 'meta' box is not read for the size/orientation.
_MAX_HEIF_META_BYTES = 16 << 20
# Caps on what one file may state, so that a hostile or broken file costs bounded time and catalog rows.
# Real libraries stay far below them: photo tools write a few dozen keywords, hundreds at most, and
# sidecars of kilobytes (a few megabytes with many local adjustments). Above a cap the photo is still
# indexed, and PhotoInfo.warnings says what was left out.
MAX_XMP_BYTES = 16 << 20  # one XMP packet or sidecar; a larger one is ignored (the writer leaves it untouched)
MAX_FILE_KEYWORDS = 2_000  # keywords per file, all sources together; the first ones are kept
MAX_KEYWORD_CHARS = 500  # a longer "keyword" is a text, not a keyword, and is ignored
_MAX_PATH_DEPTH = 50  # levels of one hierarchical keyword read (its last ones); tools nest a handful
_MAX_XMP_DEPTH = 200  # element nesting; XMP needs about 10 (structures in arrays in properties)
_SIDECAR_SUFFIXES = (".xmp", ".XMP")
_PNG_LATE_CHUNKS = frozenset({b"eXIf", b"iTXt", b"tEXt", b"zTXt"})
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_JPEG_SOS, _JPEG_EOI, _JPEG_APP1 = 0xDA, 0xD9, 0xE1
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_EXTENDED_XMP = b"http://ns.adobe.com/xmp/extension/\x00"  # then GUID (32), full length (4), offset (4)
_JPEG_EXIF = b"Exif\x00\x00"

_EXIF_DATE = re.compile(
    r"(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_OFFSET = re.compile(r"(Z)|([+-])(\d{2}):?(\d{2})")
_XMP_GPS = re.compile(r"(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?([NSEW])", re.IGNORECASE)
_XMP_PARTIAL_DATE = re.compile(r"\d{4}(-\d{2})?")
_IPTC_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_IPTC_TIME = re.compile(r"(\d{2})(\d{2})(\d{2})([+-]\d{4})?")

# catch_warnings() swaps process-wide state: keep our own readers from interleaving it.
_warnings_lock = threading.Lock()


def read_photo_info(path: str | os.PathLike[str]) -> PhotoInfo:
    """Read a photo's size, orientation, capture time, camera, GPS position and keywords.

    Only headers and metadata blocks are read (Pillow's lazy ``Image.open``); pixel data is never
    decoded. The keywords are those of every field photo tools write them to (see the module's
    docstring); each XMP sidecar next to the file (``IMG.jpg.xmp``, ``IMG.xmp``, either with
    ``.XMP``) adds its own. Malformed EXIF, XMP, IPTC or sidecars are ignored and listed in ``warnings``.

    The capture time is EXIF ``DateTimeOriginal``, then ``DateTimeDigitized`` (each with its
    ``OffsetTime…`` as ``tzinfo`` and ``SubsecTime…`` where valid), then XMP
    ``exif:DateTimeOriginal``/``photoshop:DateCreated``, IPTC date/time created, XMP
    ``xmp:CreateDate``, and last EXIF ``DateTime``. Camera, GPS and orientation come from EXIF,
    else from XMP (``tiff:Make``, ``exif:GPSLatitude``, ``tiff:Orientation``, ...).

    A camera RAW file whose headers Pillow cannot read (CR3, RAF, ORF, RW2, ...; LibRaw reads it when
    decoding) is no error here: its facts are unknown (None) and its sidecars' keywords are read.

    Raises:
        ImageError: the file cannot be opened as an image at all, with ``reason`` one of
            ``"unreadable"``, ``"empty"``, ``"not_an_image"``, ``"decompression_bomb"``, ``"corrupt"``.
    """
    path = Path(path)
    register_formats()
    notes: list[str] = []
    with _warnings_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = _open_lazily(path)
        except ImageError:
            if not is_raw(path):
                raise
            image = None
        if image is None:
            facts: dict[str, Any] = dict.fromkeys(_FACTS) | {"keywords": []}
        else:
            with image:
                facts = _read_facts(path, image, notes)
        notes.extend(_pillow_warnings(caught))
    for other in caught:  # not about this file's metadata: let them through as usual
        if not issubclass(other.category, UserWarning):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    stated: list[_Stated] = facts.pop("keywords")
    for sidecar in _sidecars(path):
        stated += _sidecar_keywords(sidecar, notes)
    keywords = _capped_keywords(_keywords(stated, notes), notes)
    return PhotoInfo(**facts, keywords=tuple(keywords), warnings=tuple(dict.fromkeys(notes)),
                     paths=_paths(stated, len(keywords)))


def read_keywords_from_xmp(xml_bytes: bytes) -> list[str]:
    """The keywords in an XMP packet or sidecar, cleaned and de-duplicated, in order.

    Reads every keyword field of :data:`_XMP_KEYWORD_FIELDS` and ACDSee's categories; a hierarchical
    entry gives its leaf and its parents, as :func:`read_photo_info` reads them.

    Raises:
        ValueError: the packet is not well-formed XML, or declares a DTD (never in XMP).
    """
    notes: list[str] = []
    return list(_clean_keywords(_keywords(_xmp_keywords(parse_xmp(xml_bytes)[0], notes), notes)))


# --- opening -----------------------------------------------------------------------------------


def _open_lazily(path: Path) -> Image.Image:
    """``Image.open`` with ``open_image``'s classification of failures; nothing is decoded."""
    return open_lazily(path)


def _pillow_warnings(caught: Iterable[warnings.WarningMessage]) -> Iterator[str]:
    for message in caught:
        if not issubclass(message.category, UserWarning):
            continue
        text = " ".join(str(message.message).split())
        if text.lower().startswith("corrupt exif"):
            yield f"corrupt EXIF data partly ignored ({text})"
        else:
            yield f"metadata problem ignored ({text})"


# --- the facts ---------------------------------------------------------------------------------


def _read_facts(path: Path, image: Image.Image, notes: list[str]) -> dict[str, Any]:
    info = dict(image.info)
    if image.format == "PNG":
        late = _png_late_info(path, notes)
        skipped = [*info.get(SKIPPED_PNG_TEXT, ()), *late.get(SKIPPED_PNG_TEXT, ())]
        info = late | info
        notes.extend(f"PNG text chunk {chunk} ignored; the photo is indexed without it" for chunk in skipped)
    exif = _Exif.read(image, info, notes)
    xmp = _embedded_xmp(path, image.format, info, notes)
    iptc = _read_iptc(image, notes)

    width, height = image.size
    tiff_tags = getattr(image, "tag_v2", None)
    if image.format == "TIFF" and tiff_tags is not None:
        # Pillow reports a TIFF's size already turned by its orientation; the tags hold it as stored.
        stored = tiff_tags.get(_TIFF_IMAGE_WIDTH), tiff_tags.get(_TIFF_IMAGE_LENGTH)
        if all(isinstance(side, int) for side in stored):
            width, height = stored
    orientation = exif.orientation(notes)
    if orientation is None and xmp is not None:
        orientation = _valid_orientation(_xmp_first(xmp, _NS_TIFF, "Orientation"), "XMP tiff:Orientation", notes)
    if image.format in {"HEIF", "AVIF"}:
        try:
            overrun = _isobmff_overrun(path, path.stat().st_size)
        except OSError as exc:
            overrun = exc.strerror or str(exc)
        if overrun is not None:
            notes.append(f"damaged {image.format} container, the image may not decode: {overrun}")
        if type(image).__module__.startswith("pillow_heif"):
            # libheif hands out the picture already turned; report it as stored plus the turn.
            layout = _heif_layout(path, image.size, notes)
            if layout is not None:
                (width, height), orientation = layout

    make = exif.text(ExifTags.Base.Make, notes) or _xmp_text(xmp, _NS_TIFF, "Make")
    model = exif.text(ExifTags.Base.Model, notes) or _xmp_text(xmp, _NS_TIFF, "Model")
    gps = exif.gps(notes)
    if gps is None and xmp is not None:
        gps = _xmp_gps(xmp, notes)

    keywords: list[_Stated] = []
    if xmp is not None:
        keywords += _xmp_keywords(xmp, notes)
    if iptc:
        keywords += _flat(_iptc_keywords(iptc, notes))
    keywords += _flat(exif.xp_keywords(notes))

    return {
        "format": image.format.lower() if image.format else None,
        "width": width,
        "height": height,
        "orientation": orientation,
        "taken_at": _taken_at(exif, xmp, iptc, notes),
        "camera_make": make,
        "camera_model": model,
        "gps_lat": gps[0] if gps else None,
        "gps_lon": gps[1] if gps else None,
        "keywords": keywords,
    }


def _taken_at(exif: _Exif, xmp: ElementTree.Element | None, iptc: dict | None, notes: list[str]) -> datetime | None:
    base = ExifTags.Base
    sources: list[Callable[[], datetime | None]] = [
        lambda: exif.datetime(base.DateTimeOriginal, base.OffsetTimeOriginal, base.SubsecTimeOriginal, notes),
        lambda: exif.datetime(base.DateTimeDigitized, base.OffsetTimeDigitized, base.SubsecTimeDigitized, notes),
        lambda: _xmp_datetime(xmp, _NS_EXIF, "DateTimeOriginal", notes),
        lambda: _xmp_datetime(xmp, _NS_PHOTOSHOP, "DateCreated", notes),
        lambda: _iptc_datetime(iptc, notes),
        lambda: _xmp_datetime(xmp, _NS_XMP, "CreateDate", notes),
        lambda: exif.datetime(base.DateTime, base.OffsetTime, base.SubsecTime, notes),
    ]
    for source in sources:
        if (taken := source()) is not None:
            return taken
    return None


# --- EXIF --------------------------------------------------------------------------------------


class _Exif:
    """IFD0, the Exif sub-IFD and the GPS sub-IFD of one file; empty where unreadable."""

    def __init__(self, ifd0: dict, sub: dict, gps: dict, gps_broken: bool) -> None:
        self.ifd0, self.sub, self.gps_ifd, self.gps_broken = ifd0, sub, gps, gps_broken

    @classmethod
    def read(cls, image: Image.Image, info: dict, notes: list[str]) -> _Exif:
        raw = info.get("exif")
        if raw is None and "Raw profile type exif" in info:
            try:
                raw = bytes.fromhex("".join(str(info["Raw profile type exif"]).split("\n")[3:]))
            except ValueError:
                notes.append("unreadable EXIF text chunk ignored")
        try:
            if image.format == "PNG" or raw is not None:
                # PngImageFile.getexif() decodes the whole image when it has no eXIf chunk.
                exif = Image.Exif()
                if raw:
                    exif.load(raw)
            else:
                exif = image.getexif()
            ifd0 = dict(exif)
        except Exception as exc:  # noqa: BLE001 - a malformed EXIF block raises anything
            notes.append(f"unreadable EXIF block ignored ({_first_line(exc)})")
            return cls({}, {}, {}, False)
        if raw and len(raw.removeprefix(b"Exif\x00\x00")) > 8 and not ifd0:
            notes.append("unreadable EXIF block ignored (no valid TIFF header or first directory)")
        sub = cls._sub_ifd(exif, ifd0, ExifTags.IFD.Exif, "EXIF sub-directory", notes)
        gps = cls._sub_ifd(exif, ifd0, ExifTags.IFD.GPSInfo, "GPS", notes)
        return cls(ifd0, sub or {}, gps or {}, gps is None)

    @staticmethod
    def _sub_ifd(exif: Image.Exif, ifd0: dict, tag: int, what: str, notes: list[str]) -> dict | None:
        """The sub-directory as a dict ({} when absent); None, with a warning, when it is malformed."""
        pointer = ifd0.get(tag)
        if pointer is None:
            return {}
        if not isinstance(pointer, int):
            notes.append(f"malformed {what} ignored (its pointer is not a number)")
            return None
        try:
            return dict(exif.get_ifd(tag))
        except Exception as exc:  # noqa: BLE001 - a bad offset raises anything
            notes.append(f"malformed {what} ignored ({_first_line(exc)})")
            return None

    def _get(self, tag: int) -> Any:
        # Some writers put the Exif sub-IFD's tags into IFD0.
        value = self.sub.get(tag)
        return self.ifd0.get(tag) if value is None else value

    def text(self, tag: int, notes: list[str]) -> str | None:
        value = self._get(tag)
        if value is None:
            return None
        text = _as_text(value)
        if text is None:
            notes.append(f"malformed EXIF {_tag_name(tag)} ignored")
        return text or None

    def orientation(self, notes: list[str]) -> int | None:
        return _valid_orientation(self.ifd0.get(ExifTags.Base.Orientation), "EXIF orientation", notes)

    def datetime(self, tag: int, offset_tag: int, subsec_tag: int, notes: list[str]) -> datetime | None:
        name = _tag_name(tag)
        value = self._get(tag)
        if value is None:
            return None
        text = _as_text(value)
        taken = _parse_exif_datetime(text) if text is not None else None
        if taken is None:
            if text is None or text.strip(" :0-T"):  # all blanks or zeros: the standard's "unknown"
                notes.append(f"unreadable EXIF {name} {_shown(value)} ignored")
            return None
        subsec = _as_text(self._get(subsec_tag))
        if subsec and subsec.isdigit() and taken.microsecond == 0:
            taken = taken.replace(microsecond=int(subsec[:6].ljust(6, "0")))
        offset = _as_text(self._get(offset_tag))
        if offset and offset.strip(" :") and taken.tzinfo is None:
            tz = _parse_offset(offset)
            if tz is None:
                notes.append(f"invalid EXIF {_tag_name(offset_tag)} {offset!r} ignored")
            else:
                taken = taken.replace(tzinfo=tz)
        return taken

    def gps(self, notes: list[str]) -> tuple[float, float] | None:
        if self.gps_broken:
            return None
        gps = ExifTags.GPS
        lat_value, lon_value = self.gps_ifd.get(gps.GPSLatitude), self.gps_ifd.get(gps.GPSLongitude)
        if lat_value is None and lon_value is None:
            return None
        try:
            lat = _gps_coordinate(lat_value, self.gps_ifd.get(gps.GPSLatitudeRef), "NS", 90.0)
            lon = _gps_coordinate(lon_value, self.gps_ifd.get(gps.GPSLongitudeRef), "EW", 180.0)
        except (TypeError, ValueError, ZeroDivisionError, IndexError) as exc:
            notes.append(f"malformed GPS ignored ({exc})")
            return None
        return lat, lon

    def xp_keywords(self, notes: list[str]) -> list[str]:
        value = self.ifd0.get(ExifTags.Base.XPKeywords)
        if value is None:
            return []
        try:
            raw = bytes(value) if not isinstance(value, str) else value.encode("latin-1")
            text = raw.decode("utf-16-le")
        except (TypeError, ValueError) as exc:
            notes.append(f"malformed EXIF XPKeywords ignored ({_first_line(exc)})")
            return []
        return text.replace("\x00", "").split(";")


def _tag_name(tag: int) -> str:
    try:
        return ExifTags.Base(tag).name
    except ValueError:
        return hex(tag)


def _as_text(value: Any) -> str | None:
    """An ASCII EXIF value as clean text; None when it is not text at all."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    return value.replace("\x00", " ").strip()


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _valid_orientation(value: Any, what: str, notes: list[str]) -> int | None:
    if value is None:
        return None
    try:
        orientation = int(value)
    except (TypeError, ValueError):
        orientation = None
    if orientation not in _ORIENTATIONS:
        notes.append(f"invalid {what} {_shown(value)} ignored")
        return None
    return orientation


def _parse_exif_datetime(text: str) -> datetime | None:
    """'YYYY:MM:DD HH:MM:SS' and the variants cameras and tools write; None when unreadable."""
    match = _EXIF_DATE.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        taken = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int(fraction[:6].ljust(6, "0")) if fraction else 0,
        )
    except ValueError:
        return None
    if offset:
        tz = _parse_offset(offset)
        if tz is None:
            return None
        taken = taken.replace(tzinfo=tz)
    return taken


def _parse_offset(text: str) -> timezone | None:
    """'+03:00', '-0500' or 'Z' as a timezone; None when it is not a real UTC offset."""
    match = _OFFSET.fullmatch(text.strip())
    if match is None:
        return None
    if match.group(1):
        return UTC
    sign, hours, minutes = match.group(2), int(match.group(3)), int(match.group(4))
    if hours > 14 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)


def _gps_coordinate(value: Any, ref: Any, refs: str, limit: float) -> float:
    """Degrees, minutes, seconds and N/S (E/W) as signed decimal degrees; ValueError when malformed."""
    if value is None:
        raise ValueError("latitude or longitude missing")
    parts = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(parts) <= 3 or isinstance(value, (str, bytes)):
        raise ValueError(f"not degrees, minutes, seconds: {_shown(value)}")
    numbers = [float(part) for part in parts]
    if not all(math.isfinite(number) and number >= 0 for number in numbers):
        raise ValueError(f"not degrees, minutes, seconds: {_shown(value)}")
    degrees = sum(number / 60**index for index, number in enumerate(numbers))
    if degrees > limit:
        raise ValueError(f"{degrees} degrees is out of range")
    hemisphere = _as_text(ref) if ref is not None else ""
    if hemisphere is None or hemisphere.upper() not in ("", *refs):
        raise ValueError(f"reference {_shown(ref)} is not {' or '.join(refs)}")
    return -degrees if hemisphere.upper() == refs[1] else degrees


# --- XMP ---------------------------------------------------------------------------------------


def parse_xmp(data: bytes | str) -> tuple[ElementTree.Element, dict[str, str]]:
    """Parse an XMP packet or sidecar: its root element and the prefix it declared for each namespace.

    UTF-8, UTF-16 and UTF-32 (with or without a byte order mark) are read; padding around the
    packet is ignored. Parsing takes time linear in the packet's size: a document type declaration
    (XMP never has one; entities could expand without bound) is refused by the parser itself, in
    whatever encoding, and so is nesting deeper than any metadata needs.

    Raises:
        ValueError: larger than :data:`MAX_XMP_BYTES`, not XML, not well-formed, a DTD, or too deep.
    """
    if len(data) > MAX_XMP_BYTES or (isinstance(data, str) and len(data.encode("utf-8", "surrogatepass"))
                                     > MAX_XMP_BYTES):  # text (a PNG chunk) counts in its bytes too
        raise ValueError(f"larger than {MAX_XMP_BYTES >> 20} MiB, more than any photo tool writes")
    markup = _xmp_markup(data)
    builder = ElementTree.TreeBuilder()
    prefixes: dict[str, str] = {}
    names: dict[str, str] = {}  # expat's 'uri}local' -> ElementTree's '{uri}local'
    depth = 0

    def qualified(name: str) -> str:
        if (tag := names.get(name)) is None:
            tag = names[name] = "{" + name if "}" in name else name
        return tag

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > _MAX_XMP_DEPTH:
            raise ValueError(f"elements nested more than {_MAX_XMP_DEPTH} deep")
        builder.start(qualified(name), {qualified(key): value for key, value in attributes.items()})

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(qualified(name))

    def namespace(prefix: str | None, uri: str | None) -> None:
        if prefix and uri and uri not in prefixes:
            prefixes[uri] = prefix

    def refuse(*_args: object) -> None:
        raise ValueError("declares a DTD, which XMP never does")

    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler, parser.StartNamespaceDeclHandler = builder.data, namespace
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = refuse
    try:
        parser.Parse(markup, True)
    except expat.ExpatError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    return builder.close(), prefixes


# Byte order marks, then the first four bytes of '<' in each encoding without one (XML 1.0, appendix F).
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\xef\xbb\xbf", "utf-8"),
         (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))
_UNIT_PATTERNS: dict[tuple[int, ...], str] = {(0, 0, 0, 1): "utf-32-be", (1, 0, 0, 0): "utf-32-le",
                                               (0, 1, 0, 1): "utf-16-be", (1, 0, 1, 0): "utf-16-le"}


def _xmp_markup(data: bytes | str) -> bytes | str:
    """A packet from its first ``<``, padding stripped: UTF-8 bytes as they are (expat honours their
    XML declaration), any other encoding decoded to text (expat then reads it as such)."""
    if not isinstance(data, str):
        data = bytes(data)
        codec, skip = next(((codec, len(bom)) for bom, codec in _BOMS if data.startswith(bom)), (None, 0))
        if codec is None:
            codec = _UNIT_PATTERNS.get(tuple(int(byte != 0) for byte in data[:4]), "utf-8")
        if codec == "utf-8":
            data = data[skip:].strip(b"\x00 \t\r\n")
            start = data.find(b"<")
            if start < 0:
                raise ValueError("not XML")
            return data[start:]
        try:
            data = data[skip:].decode(codec)
        except UnicodeDecodeError as exc:
            raise ValueError(f"not {codec.upper()} text ({exc.reason} at byte {exc.start})") from None
    data = data.strip("\x00 \t\r\n\ufeff")
    start = data.find("<")
    if start < 0:
        raise ValueError("not XML")
    return data[start:]


def _embedded_xmp(path: Path, image_format: str | None, info: dict, notes: list[str]) -> ElementTree.Element | None:
    """The file's own XMP as one tree: for a JPEG or MPO, its standard packet, a packet under a non-standard
    header, and the Extended XMP the standard one names (each added after the one before it, so that a fact is
    taken from the first that states it); for other formats, the packet Pillow found."""
    packets: Sequence[bytes | str] = []
    extended: dict[bytes, _ExtendedXmp] = {}
    if image_format in _JPEG_FORMATS:
        packets, extended = _jpeg_xmp(path)
    if not packets and (packet := info.get("xmp") or info.get("XML:com.adobe.xmp")):
        packets = [packet]
    roots = [root for packet in packets if (root := _parsed_xmp(packet, "XMP", notes)) is not None]
    if not roots:
        return None
    root = roots[0]
    for other in roots[1:]:
        root.append(other)
    guid = _xmp_first(root, _NS_XMP_NOTE, "HasExtendedXMP")
    if guid:
        extension = extended.get(guid.encode("ascii", "replace"))
        packet = extension.assembled() if extension is not None else None
        if packet is None:
            notes.append(f"Extended XMP {guid} missing or incomplete; the main packet read without it")
        elif (more := _parsed_xmp(packet, "Extended XMP", notes)) is not None:
            root.append(more)
    return root


def _parsed_xmp(packet: bytes | str, what: str, notes: list[str]) -> ElementTree.Element | None:
    if len(packet) > MAX_XMP_BYTES:
        notes.append(f"{what} packet ignored ({len(packet) / (1 << 20):.1f} MiB: larger than {MAX_XMP_BYTES >> 20} "
                     "MiB, more than any photo tool writes)")
        return None
    try:
        return parse_xmp(packet)[0]
    except ValueError as exc:
        notes.append(f"malformed {what} ignored ({exc})")
        return None


@dataclass
class _ExtendedXmp:
    """The chunks of one Extended XMP packet (XMP spec part 3, 1.1.3.1): its declared length, chunks by offset."""

    length: int
    chunks: dict[int, bytes] = field(default_factory=dict)

    def assembled(self) -> bytes | None:
        """The whole packet; None when a chunk is missing, overlaps or overruns the declared length."""
        packet, end = bytearray(), 0
        for offset, chunk in sorted(self.chunks.items()):
            if offset != end:
                return None
            packet += chunk
            end += len(chunk)
        return bytes(packet) if end == self.length else None


def _jpeg_xmp(path: Path) -> tuple[list[bytes], dict[bytes, _ExtendedXmp]]:
    """A JPEG's XMP packets (the first standard one, then those under a non-standard header, the way exiftool
    reads them: an APP1 starting ``XMP\\0``, or any unnamed APP1 holding a packet) and its Extended XMP chunks
    by GUID. Only the header is read: APP1 payloads (64 KB each at most), the other segments skipped. A header
    that cannot be walked to the end keeps what was found before the break (Pillow read the file, so
    ``info["xmp"]`` is the fallback)."""
    standard: list[bytes] = []
    other: list[bytes] = []
    extended: dict[bytes, _ExtendedXmp] = {}
    collected = 0
    try:
        for payload in _jpeg_app1_payloads(path):
            if payload.startswith(_JPEG_XMP):
                if not standard:
                    standard.append(payload[len(_JPEG_XMP):])
            elif payload.startswith(_JPEG_EXTENDED_XMP):
                head = len(_JPEG_EXTENDED_XMP)
                if len(payload) < head + 40:
                    continue
                guid, chunk = payload[head : head + 32], payload[head + 40 :]
                length, offset = struct.unpack(">II", payload[head + 32 : head + 40])
                collected += len(chunk)
                if length <= MAX_XMP_BYTES and collected <= MAX_XMP_BYTES:
                    extended.setdefault(guid, _ExtendedXmp(length)).chunks.setdefault(offset, chunk)
            elif holds_xmp(payload):
                other.append(payload[payload.find(b"<"):])
    except (OSError, ValueError, struct.error):
        pass
    return standard + other, extended


def holds_xmp(payload: bytes) -> bool:
    """An APP1 payload that is neither EXIF nor standard XMP but holds a packet (exiftool's reading of them); the
    writer (``embed.Segment.looks_like_xmp``) uses the same rule, so both see the same packets."""
    if payload.startswith(_JPEG_EXIF) or b"<" not in payload:
        return False
    return payload.startswith(b"XMP\x00") or any(mark in payload[:4096] for mark in (b"<?xpacket", b"<x:xmpmeta"))


def _jpeg_app1_payloads(path: Path) -> Iterator[bytes]:
    """The payload of each APP1 segment before the first scan (or EOI), in order, EXIF's left out (skipped
    after its first bytes: it is the large one, and Pillow has read it).

    Raises:
        OSError: the file cannot be read.
        ValueError: the header is malformed (no marker where one belongs, or a truncated segment).
    """
    with open_regular(path) as stream:
        if stream.read(2) != b"\xff\xd8":
            return
        while True:
            start = stream.tell()
            prefix = stream.read(2)
            while prefix[1:] == b"\xff":  # fill bytes before the marker
                prefix = prefix[1:] + stream.read(1)
            if len(prefix) < 2 or prefix[0] != 0xFF:
                raise ValueError(f"no marker at byte {start}")
            marker = prefix[1]
            if marker in (_JPEG_SOS, _JPEG_EOI):
                return
            if marker in _JPEG_STANDALONE:
                continue
            header = stream.read(2)
            if len(header) < 2 or (length := struct.unpack(">H", header)[0]) < 2:
                raise ValueError(f"truncated or malformed segment at byte {start}")
            if marker != _JPEG_APP1:
                stream.seek(length - 2, os.SEEK_CUR)
                continue
            payload = stream.read(min(len(_JPEG_EXIF), length - 2))
            if payload == _JPEG_EXIF:
                stream.seek(length - 2 - len(payload), os.SEEK_CUR)
                continue
            payload += stream.read(length - 2 - len(payload))
            if len(payload) < length - 2:
                raise ValueError(f"truncated segment at byte {start}")
            yield payload


def _xmp_values(root: ElementTree.Element, namespace: str, name: str) -> list[str]:
    """Every value of one property: attribute form, simple element, or rdf:Bag/Seq/Alt items."""
    tag = f"{{{namespace}}}{name}"
    values: list[str] = []
    for description in root.iter(f"{{{_NS_RDF}}}Description"):
        if (attribute := description.get(tag)) is not None:
            values.append(attribute)
        for prop in description.findall(tag):
            items = prop.findall(f"./*/{{{_NS_RDF}}}li")
            if items:
                values.extend(_li_text(item) for item in items)
            elif len(prop) == 0 and prop.text:
                values.append(prop.text)
    return [value for value in values if value]


def _li_text(item: ElementTree.Element) -> str:
    if item.text and item.text.strip():
        return item.text
    value = item.find(f".//{{{_NS_RDF}}}value")  # a qualified value
    return (value.text or "") if value is not None else ""


def _xmp_first(root: ElementTree.Element | None, namespace: str, name: str) -> str | None:
    if root is None:
        return None
    values = _xmp_values(root, namespace, name)
    return values[0].strip() if values else None


def _xmp_text(root: ElementTree.Element | None, namespace: str, name: str) -> str | None:
    value = _xmp_first(root, namespace, name)
    if value is None:
        return None
    return value.replace("\x00", "").strip() or None


def _xmp_keywords(root: ElementTree.Element, notes: list[str]) -> list[_Stated]:
    """Every keyword entry of the packet's keyword fields, as stated (paths not split yet: :func:`_keywords`)."""
    stated: list[_Stated] = []
    for namespaces, name, separator in _XMP_KEYWORD_FIELDS:
        for namespace in namespaces:
            stated += [(value, separator) for value in _xmp_values(root, namespace, name)]
    stated += _flat(_acdsee_categories(root, notes))
    return stated


def _acdsee_categories(root: ElementTree.Element, notes: list[str]) -> list[str]:
    """The assigned categories of ``acdsee:categories`` (escaped XML as text, written by ACDSee and digiKam:
    ``<Categories><Category Assigned="0">Places<Category Assigned="1">Paris</Category></Category></Categories>``),
    each as its name and its parents' names, nearest first. Anything else there is ignored, with a note."""
    names: list[str] = []

    def visit(category: ElementTree.Element, parents: list[str]) -> None:
        path = [*parents, (category.text or "").strip()]
        if category.get("Assigned") == "1":
            names.extend(reversed(path))
        for child in category.findall("Category"):
            visit(child, path)

    for text in _xmp_values(root, _NS_ACDSEE, "categories"):
        try:
            tree = parse_xmp(text)[0]
        except ValueError as exc:
            notes.append(f"unreadable acdsee:categories ignored ({exc})")
            continue
        if tree.tag != "Categories":
            notes.append(f"acdsee:categories ignored (a <{tree.tag}> where <Categories> belongs)")
            continue
        for category in tree.findall("Category"):
            visit(category, [])
    return names


def _flat(keywords: Iterable[str]) -> list[_Stated]:
    return [(keyword, None) for keyword in keywords]


def _keywords(stated: Iterable[_Stated], notes: list[str]) -> Iterator[str]:
    """The keywords of the entries, in order: a flat one as it is, a path as its leaf then its parents (nearest
    first). A path entry whose text is also stated flat is that flat keyword (a flat list copied into a path
    field). Not cleaned yet: :func:`_clean_keywords` trims, drops the empty and de-duplicates."""
    stated = list(stated)
    flat = {_clean_keyword(text).casefold() for text, separator in stated if separator is None}
    for text, separator in stated:
        if separator is None or separator not in text or _clean_keyword(text).casefold() in flat:
            yield text
        else:
            yield from _path_names(text, separator, notes)


def _paths(stated: Iterable[_Stated], limit: int) -> tuple[tuple[str, ...], ...]:
    """The entries that are paths (two levels or more; not a flat keyword copied into a path field), as their
    cleaned names root first, de-duplicated case-insensitively; no more than ``limit`` (the keyword cap)."""
    stated = list(stated)
    flat = {_clean_keyword(text).casefold() for text, separator in stated if separator is None}
    found: dict[tuple[str, ...], tuple[str, ...]] = {}
    for text, separator in stated:
        if separator is None or separator not in text or _clean_keyword(text).casefold() in flat:
            continue
        names = tuple(name for name in (_clean_keyword(part) for part in text.split(separator)) if name)
        if len(names) > 1 and len(found) < limit:
            found.setdefault(tuple(name.casefold() for name in names), names)
    return tuple(found.values())


def _path_names(path: str, separator: str, notes: list[str]) -> list[str]:
    """A path's names, leaf first: its last :data:`_MAX_PATH_DEPTH` levels (the rest is left out, with a note)."""
    names = path.rsplit(separator, _MAX_PATH_DEPTH)
    if len(names) > _MAX_PATH_DEPTH:
        notes.append(f"keyword path deeper than {_MAX_PATH_DEPTH} levels: only its last {_MAX_PATH_DEPTH} read")
        names = names[1:]
    names.reverse()
    return names


def _xmp_datetime(root: ElementTree.Element | None, namespace: str, name: str, notes: list[str]) -> datetime | None:
    value = _xmp_first(root, namespace, name)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        if not _XMP_PARTIAL_DATE.fullmatch(value):  # a year or month alone is valid XMP, too vague to keep
            notes.append(f"unreadable XMP {name} {value!r} ignored")
        return None


def _xmp_gps(root: ElementTree.Element, notes: list[str]) -> tuple[float, float] | None:
    lat, lon = _xmp_first(root, _NS_EXIF, "GPSLatitude"), _xmp_first(root, _NS_EXIF, "GPSLongitude")
    if lat is None and lon is None:
        return None
    try:
        return _xmp_coordinate(lat, "NS", 90.0), _xmp_coordinate(lon, "EW", 180.0)
    except ValueError as exc:
        notes.append(f"malformed XMP GPS ignored ({exc})")
        return None


def _xmp_coordinate(text: str | None, refs: str, limit: float) -> float:
    """XMP's 'DDD,MM,SSk' or 'DDD,MM.mmk' as signed decimal degrees."""
    match = _XMP_GPS.fullmatch(text.strip()) if text else None
    if match is None:
        raise ValueError(f"{text!r} is not 'degrees,minutes[,seconds]{refs[0]}'")
    degrees, minutes, seconds, ref = match.groups()
    value = float(degrees) + float(minutes) / 60 + float(seconds or 0) / 3600
    if ref.upper() not in refs or value > limit:
        raise ValueError(f"{text!r} is out of range")
    return -value if ref.upper() == refs[1] else value


# --- IPTC --------------------------------------------------------------------------------------


def _read_iptc(image: Image.Image, notes: list[str]) -> dict | None:
    if not isinstance(image, ImageFile.ImageFile):  # decoded elsewhere (a RAW's preview): no IPTC block
        return None
    try:
        return IptcImagePlugin.getiptcinfo(image)
    except Exception as exc:  # noqa: BLE001 - a malformed IPTC block raises anything
        notes.append(f"malformed IPTC block ignored ({_first_line(exc)})")
        return None


def _iptc_strings(iptc: dict, key: tuple[int, int]) -> list[str]:
    values = iptc.get(key)
    if values is None:
        return []
    utf8 = iptc.get(_IPTC_CODED_CHARSET) == _IPTC_UTF8
    strings = []
    for value in values if isinstance(values, list) else [values]:
        try:
            strings.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            # Without the UTF-8 marker, IPTC text is usually Latin-1 (or its Windows cousin).
            strings.append(value.decode("utf-8" if utf8 else "latin-1", "replace"))
    return strings


def _iptc_keywords(iptc: dict, notes: list[str]) -> list[str]:
    try:
        return _iptc_strings(iptc, _IPTC_KEYWORDS)
    except (AttributeError, TypeError) as exc:
        notes.append(f"malformed IPTC keywords ignored ({_first_line(exc)})")
        return []


def _iptc_datetime(iptc: dict | None, notes: list[str]) -> datetime | None:
    """IPTC Date Created (2:55, 'YYYYMMDD') with Time Created (2:60, 'HHMMSS±HHMM') where present."""
    if not iptc:
        return None
    try:
        dates, times = _iptc_strings(iptc, _IPTC_DATE_CREATED), _iptc_strings(iptc, _IPTC_TIME_CREATED)
    except (AttributeError, TypeError) as exc:
        notes.append(f"malformed IPTC date created ignored ({_first_line(exc)})")
        return None
    if not dates:
        return None
    date, time = dates[0].strip(), (times[0].strip() if times else "")
    date_match = _IPTC_DATE.fullmatch(date)
    time_match = _IPTC_TIME.fullmatch(time or "000000")
    tz = _parse_offset(time_match.group(4)) if time_match and time_match.group(4) else None
    try:
        if date_match is None or time_match is None or (time_match.group(4) and tz is None):
            raise ValueError
        year, month, day = map(int, date_match.groups())
        hour, minute, second = map(int, time_match.group(1, 2, 3))
        taken = datetime(year, month, day, hour, minute, second)
    except ValueError:
        notes.append(f"unreadable IPTC date created {date!r} {time!r} ignored")
        return None
    return taken.replace(tzinfo=tz) if tz else taken


# --- PNG chunks after the image data ----------------------------------------------------------


def _png_late_info(path: Path, notes: list[str]) -> dict:
    """The text and eXIf chunks that follow the image data, read without decoding it."""
    try:
        with open_regular(path) as stream:
            stream.seek(8)  # the signature
            png = PngImagePlugin.PngStream(stream)
            after_image = False
            while True:
                chunk, position, length = png.read()
                if chunk == b"IEND":
                    break
                if after_image and chunk in _PNG_LATE_CHUNKS:
                    png.call(chunk, position, length)
                    stream.seek(4, os.SEEK_CUR)  # CRC
                    continue
                after_image = after_image or chunk in (b"IDAT", b"fdAT")
                stream.seek(length + 4, os.SEEK_CUR)
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        notes.append(f"PNG chunks after the image data unreadable ({_first_line(exc)})")
        return {}
    return dict(png.im_info)


# --- HEIF item properties ----------------------------------------------------------------------


def _heif_layout(path: Path, decoded_size: tuple[int, int], notes: list[str]) -> tuple[tuple[int, int], int] | None:
    """The primary item's stored size (``ispe``, cropped by ``clap``) and its ``irot``/``imir`` as an
    EXIF orientation, in the order the item lists them (libheif's reading of ``imir``).

    None (the decoded, upright size is then reported with no turn) when the boxes cannot be read
    or do not explain the size libheif decoded.
    """
    try:
        meta = _heif_meta(path)
        if meta is None:
            return None
        properties, associations, primary = _heif_properties(meta)
        size, quarter_turns, mirrored = None, 0, False
        for index in associations.get(primary, []):
            if not 1 <= index <= len(properties):
                raise ValueError(f"property index {index} out of range")
            kind, payload = properties[index - 1]
            if kind == b"ispe":
                size = struct.unpack(">II", payload[4:12])
            elif kind == b"clap" and size is not None:
                # The coded size is padded to whole blocks; the clean aperture crops it (before any turn).
                width_n, width_d, height_n, height_d = struct.unpack(">IIII", payload[:16])
                size = (round(width_n / width_d), round(height_n / height_d))
            elif kind == b"irot":
                quarter_turns = (quarter_turns + (payload[0] & 3)) % 4
            elif kind == b"imir":
                # libheif: axis 0 flips top-bottom, 1 flips left-right.
                flip_top_bottom = (payload[0] & 1) == 0
                quarter_turns = ((2 if flip_top_bottom else 0) - quarter_turns) % 4
                mirrored = not mirrored
    except (OSError, ValueError, IndexError, ZeroDivisionError, struct.error) as exc:
        notes.append(f"HEIF item properties unreadable, size reported as decoded ({_first_line(exc)})")
        return None
    if size is None:
        return None
    orientation = _TRANSFORM_TO_ORIENTATION[quarter_turns, mirrored]
    upright = (size[1], size[0]) if orientation in _SIDEWAYS else size
    return (size, orientation) if upright == tuple(decoded_size) else None


def _heif_meta(path: Path) -> bytes | None:
    """The payload of the top-level 'meta' box."""
    with open_regular(path) as stream:
        file_size = os.fstat(stream.fileno()).st_size
        offset = 0
        while offset + 8 <= file_size:
            stream.seek(offset)
            header = stream.read(16)
            size, kind = struct.unpack(">I4s", header[:8])
            header_size = 8
            if size == 1:
                size, header_size = struct.unpack(">Q", header[8:16])[0], 16
            elif size == 0:
                size = file_size - offset
            if size < header_size:
                raise ValueError(f"box {kind!r} declares {size} bytes")
            if kind == b"meta":
                if size > _MAX_HEIF_META_BYTES:
                    return None
                stream.seek(offset + header_size)
                return stream.read(size - header_size)
            offset += size
    return None


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[start + 8 : start + 16])[0], 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise ValueError(f"box {kind!r} at {start} does not fit")
        yield kind, data[start + header : start + size]
        start += size


def _heif_properties(meta: bytes) -> tuple[list[tuple[bytes, bytes]], dict[int, list[int]], int]:
    """(ipco's properties in order, item id -> 1-based property indexes, primary item id)."""
    properties: list[tuple[bytes, bytes]] = []
    associations: dict[int, list[int]] = {}
    primary = None
    for kind, payload in _boxes(meta, 4):  # 'meta' is a full box: version and flags first
        if kind == b"pitm":
            id_format = ">H" if payload[0] == 0 else ">I"
            (primary,) = struct.unpack(id_format, payload[4 : 4 + struct.calcsize(id_format)])
        elif kind == b"iprp":
            for child, body in _boxes(payload):
                if child == b"ipco":
                    properties.extend(_boxes(body))
                elif child == b"ipma":
                    _read_ipma(body, associations)
    if primary is None:
        raise ValueError("no primary item")
    return properties, associations, primary


def _read_ipma(body: bytes, associations: dict[int, list[int]]) -> None:
    version, flags = body[0], int.from_bytes(body[1:4], "big")
    (count,) = struct.unpack(">I", body[4:8])
    position = 8
    for _ in range(count):
        id_format = ">H" if version < 1 else ">I"
        (item,) = struct.unpack(id_format, body[position : position + struct.calcsize(id_format)])
        position += struct.calcsize(id_format)
        n = body[position]
        position += 1
        indexes = associations.setdefault(item, [])
        for _ in range(n):
            if flags & 1:
                (value,) = struct.unpack(">H", body[position : position + 2])
                indexes.append(value & 0x7FFF)
                position += 2
            else:
                indexes.append(body[position] & 0x7F)
                position += 1


# --- sidecars and keywords ---------------------------------------------------------------------


def _sidecars(path: Path) -> list[Path]:
    """'IMG.jpg.xmp' and 'IMG.xmp' (darktable's and Lightroom's naming), those that exist (whatever they
    are: :func:`_sidecar_keywords` says why a link, FIFO or device is not read)."""
    names = [path.name + suffix for suffix in _SIDECAR_SUFFIXES]
    names += [path.stem + suffix for suffix in _SIDECAR_SUFFIXES if path.suffix.lower() != ".xmp"]
    found: dict[tuple[int, int], Path] = {}
    for name in dict.fromkeys(names):
        candidate = path.with_name(name)
        try:
            info = candidate.lstat()
        except OSError:
            continue
        found.setdefault((info.st_dev, info.st_ino), candidate)  # one entry under two spellings: read once
    return list(found.values())


def _sidecar_keywords(sidecar: Path, notes: list[str]) -> list[_Stated]:
    try:
        data = read_regular(sidecar, limit=MAX_XMP_BYTES)
    except FileSkipped as exc:
        why = {"link": "a symbolic link on its path, never followed", "not_a_file": "not a regular file",
               "too_large": f"larger than {MAX_XMP_BYTES >> 20} MiB"}.get(exc.reason, str(exc))
        notes.append(f"XMP sidecar {sidecar.name} ignored ({why})")
        return []
    except OSError as exc:
        notes.append(f"XMP sidecar {sidecar.name} unreadable ({exc.strerror or exc})")
        return []
    if data is None:
        return []
    try:
        root = parse_xmp(data)[0]
    except ValueError as exc:
        notes.append(f"malformed XMP sidecar {sidecar.name} ignored ({exc})")
        return []
    return _xmp_keywords(root, notes)


def _capped_keywords(keywords: Iterable[str], notes: list[str]) -> list[str]:
    """The file's keywords as the catalog takes them (:func:`_clean_keywords`), at most :data:`MAX_FILE_KEYWORDS`
    of them (the first ones), none longer than :data:`MAX_KEYWORD_CHARS`. What is left out is said in ``notes``."""
    kept: list[str] = []
    too_long = 0
    for text in _clean_keywords(keywords):
        if len(text) > MAX_KEYWORD_CHARS:
            too_long += 1
        elif len(kept) < MAX_FILE_KEYWORDS:
            kept.append(text)
        else:
            notes.append(f"more than {MAX_FILE_KEYWORDS:,} keywords: only the first {MAX_FILE_KEYWORDS:,} kept "
                         "(the most a file may state)")
            break
    if too_long:
        notes.append(f"{too_long:,} keyword(s) longer than {MAX_KEYWORD_CHARS} characters ignored")
    return kept


def _clean_keywords(keywords: Iterable[str]) -> Iterator[str]:
    """Trimmed, NFC-normalised, empty ones dropped, de-duplicated case-insensitively in order (lazily: a
    caller that stops early cleans no more)."""
    seen: set[str] = set()
    for keyword in keywords:
        text = _clean_keyword(keyword)
        if text and (key := text.casefold()) not in seen:
            seen.add(key)
            yield text


def _clean_keyword(keyword: str) -> str:
    return unicodedata.normalize("NFC", keyword.replace("\x00", "")).strip()
