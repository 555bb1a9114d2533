"""Embedding keywords in a JPEG: its XMP packet and EXIF ``XPKeywords``, at the byte level.

A JPEG is a list of marker segments up to the first start-of-scan (SOS); from there on (the
entropy-coded scan data, further scans, EOI and anything after it) the bytes are kept exactly as
they are. Only two segments are ever touched: the APP1 XMP packet (replaced, or inserted after
the JFIF/EXIF segments) and the APP1 EXIF block, where ``XPKeywords`` (the keywords Windows
shows) is set by writing a new IFD0 at the end of the TIFF data and pointing the header at it —
every other byte of the EXIF block stays where it was, so maker notes, whose internal offsets
break when a library re-serialises EXIF (piexif's ``dump`` does), stay intact.

Files this does not embed into (:func:`embeddable` says why): MPO and other JPEGs with an MPF
index (frame offsets would shift), JPEGs whose XMP would need Extended XMP (over 64 KB), and
JPEGs with several or non-standard XMP segments. They get sidecars instead.

:func:`verify` checks a written file against its original: every segment but the two is
byte-identical and in order, the scan data onwards is byte-identical, the decoded pixels are
identical, and the keywords read back — with Phototag's own reader, not exiftool.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import piexif
from PIL import Image, IptcImagePlugin

from indexer.errors import FileSkipped
from indexer.metadata.read import _iptc_keywords
from indexer.metadata.xmp import XmpPacket, unique_keywords

__all__ = ["JpegFile", "embeddable", "exif_readable", "pixel_digest", "set_xp_keywords", "verify"]

_SOI, _SOS, _EOI = 0xD8, 0xDA, 0xD9
_APP0, _APP1, _APP2, _APP13 = 0xE0, 0xE1, 0xE2, 0xED
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_EXTENDED_XMP_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
_EXIF_HEADER = b"Exif\x00\x00"
_MPF_HEADER = b"MPF\x00"
_MAX_SEGMENT = 0xFFFF - 2  # payload bytes one marker segment can hold
MAX_XMP_BYTES = _MAX_SEGMENT - len(_XMP_HEADER)  # beyond this a packet needs Extended XMP: not written
XMP_PADDING = 2048  # spaces left in an embedded packet for in-place edits (the XMP spec's advice)

_XP_KEYWORDS = piexif.ImageIFD.XPKeywords  # 0x9C9E, BYTE[]: UTF-16LE, ';'-separated, NUL-terminated
_TIFF_BYTE = 1
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


@dataclass(frozen=True)
class Segment:
    marker: int
    payload: bytes  # without the marker and length

    def to_bytes(self) -> bytes:
        return bytes((0xFF, self.marker)) + struct.pack(">H", len(self.payload) + 2) + self.payload

    @property
    def is_xmp(self) -> bool:
        return self.marker == _APP1 and self.payload.startswith(_XMP_HEADER)

    @property
    def is_exif(self) -> bool:
        return self.marker == _APP1 and self.payload.startswith(_EXIF_HEADER)

    @property
    def looks_like_xmp(self) -> bool:
        """An APP1 that holds an XMP packet under a non-standard header (readers differ on those)."""
        return (self.marker == _APP1 and not self.is_exif and not self.is_xmp
                and not self.payload.startswith(_EXTENDED_XMP_HEADER) and b"<x:xmpmeta" in self.payload[:4096])


@dataclass(frozen=True)
class JpegFile:
    """A JPEG split into its header segments and the bytes from the first SOS to the end."""

    segments: tuple[Segment, ...]
    scan: bytes  # the first SOS marker onwards: scan data, EOI, any trailer

    @classmethod
    def parse(cls, data: bytes) -> JpegFile:
        """Raises FileSkipped("unsupported") when the bytes are not a JPEG this can walk."""
        if data[:2] != b"\xff\xd8":
            raise FileSkipped("unsupported", "not a JPEG (no start-of-image marker)")
        position, segments = 2, []
        while True:
            while position < len(data) and data[position] == 0xFF and position + 1 < len(data) \
                    and data[position + 1] == 0xFF:
                position += 1  # fill bytes
            if position + 2 > len(data) or data[position] != 0xFF:
                raise FileSkipped("unsupported", f"malformed JPEG: no marker at byte {position}")
            marker = data[position + 1]
            if marker == _SOS:
                return cls(tuple(segments), data[position:])
            if marker == _EOI:
                raise FileSkipped("unsupported", "malformed JPEG: it ends before any image data")
            if marker in _STANDALONE:
                raise FileSkipped("unsupported", f"unusual JPEG: marker 0x{marker:02X} in the header")
            if position + 4 > len(data):
                raise FileSkipped("unsupported", "truncated JPEG header")
            (length,) = struct.unpack(">H", data[position + 2 : position + 4])
            end = position + 2 + length
            if length < 2 or end > len(data):
                raise FileSkipped("unsupported", f"malformed JPEG: segment 0x{marker:02X} overruns the file")
            segments.append(Segment(marker, data[position + 4 : end]))
            position = end

    # --- reading -------------------------------------------------------------------------------
    def xmp(self) -> bytes | None:
        for segment in self.segments:
            if segment.is_xmp:
                return segment.payload[len(_XMP_HEADER):]
        return None

    def exif(self) -> bytes | None:
        """The TIFF data of the EXIF block (after ``Exif\\0\\0``)."""
        for segment in self.segments:
            if segment.is_exif:
                return segment.payload[len(_EXIF_HEADER):]
        return None

    def xp_keywords(self) -> list[str]:
        tiff = self.exif()
        if not tiff:
            return []
        try:
            value = piexif.load(_EXIF_HEADER + tiff)["0th"].get(_XP_KEYWORDS)
        except Exception:  # noqa: BLE001 - a malformed EXIF block raises anything
            return []
        return _decode_xp(value)

    def own_keywords(self) -> list[str]:
        """The keywords the file states outside XMP (IPTC, XPKeywords): what a new dc:subject starts with."""
        keywords = list(self.xp_keywords())
        if any(segment.marker == _APP13 for segment in self.segments):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    with Image.open(io.BytesIO(self.to_bytes())) as image:
                        iptc = IptcImagePlugin.getiptcinfo(image)
                except Exception:  # noqa: BLE001 - unreadable IPTC: nothing to start from
                    iptc = None
            if iptc:
                keywords += _iptc_keywords(iptc, [])
        return unique_keywords(keywords)

    def to_bytes(self) -> bytes:
        return b"\xff\xd8" + b"".join(segment.to_bytes() for segment in self.segments) + self.scan

    # --- changing ------------------------------------------------------------------------------
    def with_metadata(self, xmp: bytes, tiff: bytes | None) -> JpegFile:
        """This file with its XMP packet replaced or inserted, and its EXIF TIFF data replaced when given."""
        xmp_segment = Segment(_APP1, _XMP_HEADER + xmp)
        if len(xmp_segment.payload) > _MAX_SEGMENT:
            raise FileSkipped("unsupported", "the XMP packet would exceed a JPEG segment (64 KB); use a sidecar")
        exif_segment = None
        if tiff is not None:
            exif_segment = Segment(_APP1, _EXIF_HEADER + tiff)
            if len(exif_segment.payload) > _MAX_SEGMENT:
                raise FileSkipped("unsupported", "the EXIF block would exceed a JPEG segment (64 KB)")
        segments = list(self.segments)
        if exif_segment is not None:
            index = next((i for i, s in enumerate(segments) if s.is_exif), None)
            if index is None:
                raise FileSkipped("unsupported", "no EXIF block to set XPKeywords in")
            segments[index] = exif_segment
        index = next((i for i, s in enumerate(segments) if s.is_xmp), None)
        if index is None:  # XMP goes after the leading JFIF/EXIF segments
            index = 0
            while index < len(segments) and (segments[index].marker == _APP0 or segments[index].is_exif):
                index += 1
            segments.insert(index, xmp_segment)
        else:
            segments[index] = xmp_segment
        return JpegFile(tuple(segments), self.scan)


def embeddable(jpeg: JpegFile) -> str | None:
    """None when keywords can be embedded in this JPEG; else why not (the photo gets a sidecar)."""
    if any(s.marker == _APP2 and s.payload.startswith(_MPF_HEADER) for s in jpeg.segments):
        return "it holds several images (MPF index): embedding would shift their offsets"
    if sum(s.is_xmp for s in jpeg.segments) > 1:
        return "it has more than one XMP segment"
    if any(s.looks_like_xmp for s in jpeg.segments):
        return "it has an XMP packet under a non-standard header"
    return None


# --- XPKeywords --------------------------------------------------------------------------------


def exif_readable(tiff: bytes) -> bool:
    """Whether piexif reads this EXIF block: only then is XPKeywords changed (and verified through it)."""
    try:
        piexif.load(_EXIF_HEADER + tiff)
    except Exception:  # noqa: BLE001 - a malformed EXIF block raises anything
        return False
    return True


def _decode_xp(value: object) -> list[str]:
    if value is None:
        return []
    try:
        raw = bytes(value) if not isinstance(value, str) else value.encode("latin-1")
        text = raw.decode("utf-16-le", "replace")
    except (TypeError, ValueError):
        return []
    return unique_keywords(text.replace("\x00", "").split(";"))


def _encode_xp(keywords: Sequence[str]) -> bytes:
    return ";".join(keywords).encode("utf-16-le") + b"\x00\x00"


def set_xp_keywords(tiff: bytes, keywords: Sequence[str]) -> bytes:
    """EXIF TIFF data whose IFD0 says ``XPKeywords = keywords`` (the entry removed when empty).

    A new IFD0 (the old entries, plus or minus XPKeywords, in tag order) is appended at the end and
    the header points to it: no other byte moves (the old directory stays behind, unreferenced).

    Raises:
        FileSkipped("unsupported"): the existing EXIF cannot be walked safely.
    """
    value = _encode_xp(keywords) if keywords else None
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        raise FileSkipped("unsupported", "the EXIF block has no valid TIFF header")
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd0,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[ifd0 : ifd0 + 2])
        entries_end = ifd0 + 2 + 12 * count
        if ifd0 < 8 or entries_end + 4 > len(tiff):
            raise ValueError("IFD0 out of range")
        entries = [tiff[ifd0 + 2 + 12 * i : ifd0 + 14 + 12 * i] for i in range(count)]
        next_ifd = tiff[entries_end : entries_end + 4]
    except (struct.error, ValueError) as exc:
        raise FileSkipped("unsupported", f"the EXIF block's first directory is unreadable ({exc})") from None
    kept = [entry for entry in entries if struct.unpack(order + "H", entry[:2])[0] != _XP_KEYWORDS]
    start = len(tiff) + (len(tiff) % 2)
    size = 2 + 12 * (len(kept) + (value is not None)) + 4
    tail = b""
    if value is not None:
        value_at = start + size
        field = value.ljust(4, b"\x00") if len(value) <= 4 else struct.pack(order + "I", value_at)
        kept.append(struct.pack(order + "HHI", _XP_KEYWORDS, _TIFF_BYTE, len(value)) + field)
        tail = value if len(value) > 4 else b""
    kept.sort(key=lambda entry: struct.unpack(order + "H", entry[:2])[0])
    directory = struct.pack(order + "H", len(kept)) + b"".join(kept) + next_ifd
    return (tiff[:4] + struct.pack(order + "I", start) + tiff[8:] + b"\x00" * (start - len(tiff))
            + directory + tail)


# --- verifying ---------------------------------------------------------------------------------


def pixel_digest(data: bytes) -> tuple[str, tuple[int, int], str]:
    """(mode, size, blake2b of the decoded pixels) of an image's bytes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            digest = hashlib.blake2b(image.tobytes(), digest_size=32).hexdigest()
            return image.mode, image.size, digest


def verify(original: JpegFile, written: bytes, *, xmp: bytes, xp_keywords: Sequence[str] | None,
           original_pixels: tuple[str, tuple[int, int], str]) -> None:
    """Check a written JPEG against the one it was made from.

    Raises:
        FileSkipped("verify_failed"): with what differs.
    """

    def fail(what: str) -> FileSkipped:
        return FileSkipped("verify_failed", f"verification failed, the original is kept: {what}")

    try:
        new = JpegFile.parse(written)
    except FileSkipped as exc:
        raise fail(f"the written JPEG cannot be walked ({exc})") from None
    if new.scan != original.scan:
        raise fail("the scan data differs")
    others = [s for s in original.segments if not (s.is_xmp or s.is_exif)]
    if [s for s in new.segments if not (s.is_xmp or s.is_exif)] != others:
        raise fail("a segment other than XMP and EXIF differs")
    if new.xmp() != xmp:
        raise fail("the XMP packet does not read back")
    try:
        XmpPacket.parse(xmp)
    except Exception as exc:  # noqa: BLE001
        raise fail(f"the XMP packet does not parse ({exc})") from None
    if xp_keywords is not None:
        before, after = original.exif(), new.exif()
        if after is None or (before and (after[8 : len(before)] != before[8:] or after[:4] != before[:4])):
            raise fail("the EXIF block changed beyond its first directory")
        try:
            old_tags = piexif.load(_EXIF_HEADER + before) if before else None
            new_tags = piexif.load(_EXIF_HEADER + after)
        except Exception as exc:  # noqa: BLE001 - whatever piexif raises on a bad block
            raise fail(f"the EXIF block does not read back ({exc})") from None
        if _decode_xp(new_tags["0th"].pop(_XP_KEYWORDS, None)) != unique_keywords(xp_keywords):
            raise fail("XPKeywords do not read back")
        if old_tags is not None:
            old_tags["0th"].pop(_XP_KEYWORDS, None)
            if old_tags != new_tags:
                raise fail("an EXIF tag other than XPKeywords changed")
    elif new.exif() != original.exif():
        raise fail("the EXIF block changed")
    try:
        pixels = pixel_digest(written)
    except Exception as exc:  # noqa: BLE001 - a decoder error of any kind
        raise fail(f"the written JPEG does not decode ({exc})") from None
    if pixels != original_pixels:
        raise fail("the decoded pixels differ")
