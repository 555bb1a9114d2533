"""Embedding keywords in a JPEG (or MPO): its XMP packet and EXIF ``XPKeywords``, at the byte level.

A JPEG is a list of marker segments up to the first start-of-scan (SOS); from there on (the
entropy-coded scan data, further scans, EOI, an MPO's other images, any trailer) the bytes are kept
exactly as they are. When the header cannot be walked to its SOS — junk bytes between two segments,
which decoders skip — the walk stops there and everything from that point on is kept the same way,
byte for byte (exiftool does the same), unless metadata lies in it (:func:`embeddable`).

The segments that change:

- The XMP. The standard APP1 packet is replaced, or inserted after the JFIF/EXIF segments. A packet
  under a non-standard header (``XMP\\0://ns.adobe.com/xap/1.0/\\0``, ...) that is the file's only
  one is replaced, where it is, by a standard one holding all it held; next to a standard one it is
  left as it is (as exiftool does). A packet larger than a segment is split as XMP's Extended XMP
  (XMP specification part 3, 1.1.3.1): the standard packet names, in ``xmpNote:HasExtendedXMP``,
  the GUID of the rest, which follows in ``http://ns.adobe.com/xmp/extension/`` segments; old
  extended segments are replaced.
- The EXIF block, where ``XPKeywords`` (the keywords Windows shows) is set by writing a new IFD0 at
  the end of the TIFF data and pointing the header at it: every other byte of the block stays where
  it was, so maker notes, whose internal offsets break when a library re-serialises EXIF (piexif's
  ``dump`` does), stay intact.
- An MPO's MP index (APP2 ``MPF``): the offsets of the other images, which count from the index,
  and the first image's size follow the header's change in size. Nothing else in it changes.

Files this does not embed into (:func:`embeddable` says why) get sidecars: several standard XMP
packets, Extended XMP that does not match its packet, an MP index that cannot be read, and a damaged
header with metadata after the damage (metadata a rewrite would not see).

:func:`verify` checks a written file against its original: every other segment is byte-identical
and in order, the bytes from the scan data (or the damage) onwards are byte-identical, an MPO's
other images are byte-identical where the new index says they are, the decoded pixels are
identical, and the keywords read back — with Phototag's own reader, not exiftool.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import piexif
from PIL import Image, IptcImagePlugin

from indexer.errors import FileSkipped, XmpError
from indexer.metadata.iptc import PHOTOSHOP_HEADER, IptcBlock, keywords_left_out
from indexer.metadata.read import _iptc_keywords, holds_xmp
from indexer.metadata.xmp import (
    XmpPacket,
    extended_xmp_guid,
    join_extended_xmp,
    named_extended_xmp,
    split_extended_xmp,
    unique_keywords,
)

__all__ = ["JpegFile", "embeddable", "exif_readable", "pixel_digest", "set_xp_keywords", "split_packet", "verify"]

_SOI, _SOS, _EOI = 0xD8, 0xDA, 0xD9
_APP0, _APP1, _APP2, _APP13 = 0xE0, 0xE1, 0xE2, 0xED
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_EXTENDED_XMP_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
_EXIF_HEADER = b"Exif\x00\x00"
_MPF_HEADER = b"MPF\x00"
_MAX_SEGMENT = 0xFFFF - 2  # payload bytes one marker segment can hold
MAX_XMP_BYTES = _MAX_SEGMENT - len(_XMP_HEADER)  # the standard packet; beyond it, Extended XMP
XMP_PADDING = 2048  # spaces left in an embedded packet for in-place edits (the XMP spec's advice)
_GUID_BYTES = 32  # an Extended XMP segment: header, GUID, full length, offset, then its part of the packet
_EXTENDED_PART = _MAX_SEGMENT - len(_EXTENDED_XMP_HEADER) - _GUID_BYTES - 8
# Where metadata begins. In the bytes after a damaged header, up to the scan, one of these is metadata
# that decoders and readers see (they skip the damage) but a rewrite would not: such a file is not embedded into.
_METADATA_MARKS = (_EXIF_HEADER, b"http://ns.adobe.com/", b"<x:xmpmeta", b"Photoshop 3.0\x00", _MPF_HEADER)
_MP_ENTRY = 0xB002  # the MP index's entries: 16 bytes per image (attributes, size, offset, two dependents)
_MP_ENTRY_BYTES = 16

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
    def size(self) -> int:
        """Its bytes in the file: marker, length and payload."""
        return 4 + len(self.payload)

    @property
    def is_xmp(self) -> bool:
        return self.marker == _APP1 and self.payload.startswith(_XMP_HEADER)

    @property
    def is_extended_xmp(self) -> bool:
        return self.marker == _APP1 and self.payload.startswith(_EXTENDED_XMP_HEADER)

    @property
    def is_exif(self) -> bool:
        return self.marker == _APP1 and self.payload.startswith(_EXIF_HEADER)

    @property
    def is_mpf(self) -> bool:
        return self.marker == _APP2 and self.payload.startswith(_MPF_HEADER)

    @property
    def looks_like_xmp(self) -> bool:
        """An APP1 that holds an XMP packet under a non-standard header, by the reader's rule (:func:`holds_xmp`)."""
        return self.marker == _APP1 and not self.is_xmp and not self.is_extended_xmp and holds_xmp(self.payload)

    def packet(self) -> bytes:
        """The XMP packet of an XMP segment, standard or not: the payload from the packet on."""
        if self.is_xmp:
            return self.payload[len(_XMP_HEADER):]
        start = self.payload.find(b"<")
        return self.payload[start:] if start >= 0 else b""


@dataclass(frozen=True)
class JpegFile:
    """A JPEG split into its header segments and the bytes after them, kept as they are: from the
    first SOS to the end or, when the header is damaged (``damage`` says how), from the damage on."""

    segments: tuple[Segment, ...]
    scan: bytes
    damage: str | None = None

    @classmethod
    def parse(cls, data: bytes) -> JpegFile:
        """Raises FileSkipped("unsupported") when the bytes are not a JPEG this can walk."""
        if data[:2] != b"\xff\xd8":
            raise FileSkipped("unsupported", "not a JPEG (no start-of-image marker)")
        position, segments = 2, list[Segment]()

        def damaged(what: str) -> JpegFile:
            return cls(tuple(segments), data[position:], f"{what} at byte {position}")

        while True:
            while position < len(data) and data[position] == 0xFF and position + 1 < len(data) \
                    and data[position + 1] == 0xFF:
                position += 1  # fill bytes
            if position + 2 > len(data) or data[position] != 0xFF:
                return damaged("no marker")
            marker = data[position + 1]
            if marker == _SOS:
                return cls(tuple(segments), data[position:])
            if marker == _EOI:
                raise FileSkipped("unsupported", "malformed JPEG: it ends before any image data")
            if marker in _STANDALONE:
                return damaged(f"marker 0x{marker:02X}")
            if position + 4 > len(data):
                return damaged("a truncated segment")
            (length,) = struct.unpack(">H", data[position + 2 : position + 4])
            end = position + 2 + length
            if length < 2 or end > len(data):
                return damaged(f"segment 0x{marker:02X} overrunning the file")
            segments.append(Segment(marker, data[position + 4 : end]))
            position = end

    # --- reading -------------------------------------------------------------------------------
    def _packet_index(self) -> int | None:
        """The segment holding the file's XMP: the standard one, else the only one under a non-standard header."""
        standard = [i for i, segment in enumerate(self.segments) if segment.is_xmp]
        if standard:
            return standard[0]
        other = [i for i, segment in enumerate(self.segments) if segment.looks_like_xmp]
        return other[0] if len(other) == 1 else None

    def _extended_parts(self) -> dict[bytes, list[tuple[int, int, bytes]]]:
        """The Extended XMP segments' parts, by GUID: (full length, offset, bytes)."""
        parts: dict[bytes, list[tuple[int, int, bytes]]] = {}
        head = len(_EXTENDED_XMP_HEADER)
        for segment in self.segments:
            if segment.is_extended_xmp:
                payload = segment.payload
                guid, numbers = payload[head : head + _GUID_BYTES], payload[head + _GUID_BYTES : head + _GUID_BYTES + 8]
                full, offset = struct.unpack(">II", numbers) if len(numbers) == 8 else (-1, -1)
                parts.setdefault(guid, []).append((full, offset, payload[head + _GUID_BYTES + 8 :]))
        return parts

    def _extended(self, packet: bytes) -> bytes | None:
        """The Extended XMP ``packet`` names, complete (None: it names none, or that is not all there)."""
        parts = self._extended_parts()
        guid = named_extended_xmp(packet) if parts else None
        found = parts.get(guid.encode("ascii", "replace")) if guid else None
        if not found or len({full for full, _offset, _part in found}) != 1:
            return None
        joined = bytearray()
        for _full, offset, part in sorted(found, key=lambda item: item[1]):
            if offset != len(joined):
                return None
            joined += part
        return bytes(joined) if len(joined) == found[0][0] else None

    def xmp(self) -> bytes | None:
        """The XMP packet the file states: its standard APP1 packet or, without one, its only packet
        under a non-standard header; with the properties of its Extended XMP merged in when that is
        complete and the one the packet names (a packet of its own then, without ``xmpNote:HasExtendedXMP``)."""
        index = self._packet_index()
        if index is None:
            return None
        packet = self.segments[index].packet()
        extended = self._extended(packet)
        if extended is None:
            return packet
        try:
            return join_extended_xmp(packet, extended)
        except XmpError:
            return packet  # an unreadable extension is ignored, as readers do (embeddable refuses the file)

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

    def _photoshop_at(self) -> list[int]:
        return [i for i, s in enumerate(self.segments) if s.marker == _APP13 and s.payload.startswith(PHOTOSHOP_HEADER)]

    def iptc(self) -> IptcBlock:
        """The IPTC-IIM block of the APP13 Photoshop segment (an empty one when there is none).

        Raises:
            FileSkipped("unsupported"): it cannot be read safely (malformed, several Photoshop segments,
                an IPTC block split over several).
        """
        found = self._photoshop_at()
        if len(found) > 1:
            raise FileSkipped("unsupported", "it has several APP13 Photoshop segments")
        return IptcBlock.parse(self.segments[found[0]].payload if found else None)

    def own_keywords(self, iptc: IptcBlock | None = None) -> list[str]:
        """The keywords the file states outside XMP (IPTC, XPKeywords): what a new dc:subject starts with.
        ``iptc``: this file's IPTC block, when the caller has parsed it already."""
        keywords = list(self.xp_keywords())
        try:
            return unique_keywords([*keywords, *(iptc or self.iptc()).keywords])
        except FileSkipped:
            pass  # Pillow's reading, which is more forgiving
        if any(segment.marker == _APP13 for segment in self.segments):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    with Image.open(io.BytesIO(self.to_bytes())) as image:
                        datasets = IptcImagePlugin.getiptcinfo(image)
                except Exception:  # noqa: BLE001 - unreadable IPTC: nothing to start from
                    datasets = None
            if datasets:
                keywords += _iptc_keywords(datasets, [])
        return unique_keywords(keywords)

    def to_bytes(self) -> bytes:
        return b"\xff\xd8" + b"".join(segment.to_bytes() for segment in self.segments) + self.scan

    def _offset(self, index: int) -> int:
        """Where segment ``index`` starts in the file (``len(segments)``: where the header ends)."""
        return 2 + sum(segment.size for segment in self.segments[:index])

    # --- changing ------------------------------------------------------------------------------
    def with_metadata(self, xmp: bytes, tiff: bytes | None, *, extended: bytes | None = None,
                      app13: bytes | None = None) -> JpegFile:
        """This file with its XMP packet replaced or inserted (``extended``: its Extended XMP, whose GUID
        the packet names), its EXIF TIFF data replaced when given, its APP13 Photoshop payload replaced
        (or inserted after the XMP) when ``app13`` is given, and its MP index following the moves.

        Raises:
            FileSkipped("unsupported"): a segment would exceed 64 KB, there is no EXIF block for
                ``tiff``, or the MP index cannot follow.
        """
        xmp_segments = [Segment(_APP1, _XMP_HEADER + xmp), *_extended_segments(extended)]
        if len(xmp_segments[0].payload) > _MAX_SEGMENT:
            raise FileSkipped("unsupported", "the XMP packet would exceed a JPEG segment (64 KB)")
        exif_at = next((i for i, segment in enumerate(self.segments) if segment.is_exif), None)
        if tiff is not None:
            if exif_at is None:
                raise FileSkipped("unsupported", "no EXIF block to set XPKeywords in")
            if len(_EXIF_HEADER) + len(tiff) > _MAX_SEGMENT:
                raise FileSkipped("unsupported", "the EXIF block would exceed a JPEG segment (64 KB)")
        replace = self._packet_index()
        insert = None
        if replace is None:  # XMP goes after the leading JFIF/EXIF segments
            insert = 0
            while insert < len(self.segments) and (self.segments[insert].marker == _APP0
                                                   or self.segments[insert].is_exif):
                insert += 1
        photoshop_at = self._photoshop_at()
        if app13 is not None:
            if len(photoshop_at) > 1:
                raise FileSkipped("unsupported", "it has several APP13 Photoshop segments")
            if len(app13) > _MAX_SEGMENT:
                raise FileSkipped("unsupported", "the IPTC block would exceed a JPEG segment (64 KB)")
            if not photoshop_at:  # a new APP13 goes right after the XMP
                xmp_segments.insert(1, Segment(_APP13, app13))
        segments: list[Segment] = []
        for index, segment in enumerate(self.segments):
            if index == insert:
                segments += xmp_segments
            if index == replace:
                segments += xmp_segments
            elif index == exif_at and tiff is not None:
                segments.append(Segment(_APP1, _EXIF_HEADER + tiff))
            elif app13 is not None and index in photoshop_at:
                segments.append(Segment(_APP13, app13))
            elif not segment.is_extended_xmp:
                segments.append(segment)
        if insert == len(self.segments):
            segments += xmp_segments
        return self._moving_images(JpegFile(tuple(segments), self.scan, self.damage))

    def _moving_images(self, new: JpegFile) -> JpegFile:
        """``new`` (this file with other header segments) with its MP index saying where the images now are."""
        old_at = next((i for i, segment in enumerate(self.segments) if segment.is_mpf), None)
        if old_at is None:
            return new
        new_at = next(i for i, segment in enumerate(new.segments) if segment is self.segments[old_at])
        try:
            index = _MpIndex.read(self.segments[old_at].payload)
        except ValueError as exc:
            raise FileSkipped("unsupported", f"its MP index (MPF) cannot be read ({exc})") from None
        entries = index.moved(self._offset(old_at), self._offset(len(self.segments)),
                              new._offset(new_at), new._offset(len(new.segments)))
        segments = list(new.segments)
        segments[new_at] = Segment(_APP2, index.with_entries(entries))
        return JpegFile(tuple(segments), new.scan, new.damage)

    # --- what cannot be embedded ---------------------------------------------------------------
    def _hidden_metadata(self) -> bytes | None:
        """After a damaged header: the first metadata mark between the damage and the scan (where
        decoders, skipping the damage, find it)."""
        if self.damage is None:
            return None
        region = self.scan[: _scan_start(self.scan)]
        return next((mark for mark in _METADATA_MARKS if mark in region), None)


def _scan_start(data: bytes) -> int:
    """Where the scan starts, walked as decoders do (Pillow, libjpeg): bytes outside a segment skipped."""
    position = 0
    while position + 1 < len(data):
        if data[position] != 0xFF:
            position += 1
            continue
        marker = data[position + 1]
        if marker in (_SOS, _EOI):
            return position
        if marker in (0x00, 0xFF) or marker in _STANDALONE or marker == _SOI:
            position += 1 if marker == 0xFF else 2
            continue
        if position + 4 > len(data):
            break
        position += 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
    return len(data)


def _extended_segments(extended: bytes | None) -> list[Segment]:
    """Extended XMP as segments: header, GUID, full length, this part's offset, the part."""
    if not extended:
        return []
    head = _EXTENDED_XMP_HEADER + extended_xmp_guid(extended).encode("ascii") + struct.pack(">I", len(extended))
    return [Segment(_APP1, head + struct.pack(">I", at) + extended[at : at + _EXTENDED_PART])
            for at in range(0, len(extended), _EXTENDED_PART)]


@dataclass(frozen=True)
class _MpIndex:
    """The MP index of an MPO (APP2 ``MPF``): a TIFF structure whose entries say, per image, its
    size and its offset from the index's byte-order mark (0 for the first image, the file itself)."""

    payload: bytes
    order: str  # struct's byte order
    at: int  # where the entries start in the payload
    entries: tuple[tuple[int, int], ...]  # (size, offset) per image

    @classmethod
    def read(cls, payload: bytes) -> _MpIndex:
        """Raises ValueError: not an MP index this can walk."""
        tiff = payload[len(_MPF_HEADER):]
        order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(tiff[:4])
        if order is None:
            raise ValueError("no TIFF header")
        try:
            (ifd,) = struct.unpack(order + "I", tiff[4:8])
            (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
            for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
                tag, _kind, size, value = struct.unpack(order + "HHII", tiff[entry : entry + 12])
                if tag != _MP_ENTRY:
                    continue
                if size == 0 or size % _MP_ENTRY_BYTES or value + size > len(tiff):
                    raise ValueError("its entries lie outside it")
                entries = tuple(struct.unpack(order + "II", tiff[at + 4 : at + 12])
                                for at in range(value, value + size, _MP_ENTRY_BYTES))
                return cls(payload, order, len(_MPF_HEADER) + value, entries)
        except struct.error:
            raise ValueError("its directory is cut short") from None
        return cls(payload, order, 0, ())

    def moved(self, old_at: int, old_end: int, new_at: int, new_end: int) -> list[tuple[int, int]]:
        """The entries once the index segment moved from ``old_at`` to ``new_at`` and the header's end
        (where the rest of the file starts, unchanged) from ``old_end`` to ``new_end``.

        Raises:
            FileSkipped("unsupported"): an image lies in the header, or a value would not fit.
        """
        old_base, new_base = old_at + 4 + len(_MPF_HEADER), new_at + 4 + len(_MPF_HEADER)
        grow = new_end - old_end
        entries = []
        for number, (size, offset) in enumerate(self.entries):
            if offset == 0:  # the first image: the file from its start; its size covers the header
                size = size + grow if number == 0 and size else size
            elif old_base + offset < old_end:
                raise FileSkipped("unsupported", f"image {number + 1} of its MP index (MPF) lies inside the "
                                                 "header, which changes")
            else:
                offset = old_base + offset + grow - new_base
            if not (0 <= size <= 0xFFFFFFFF and 0 <= offset <= 0xFFFFFFFF):
                raise FileSkipped("unsupported", "its MP index (MPF) cannot hold the images' new places")
            entries.append((size, offset))
        return entries

    def with_entries(self, entries: Sequence[tuple[int, int]]) -> bytes:
        """The payload with these sizes and offsets, every other byte as it was."""
        payload = bytearray(self.payload)
        for number, (size, offset) in enumerate(entries):
            struct.pack_into(self.order + "II", payload, self.at + _MP_ENTRY_BYTES * number + 4, size, offset)
        return bytes(payload)


def split_packet(packet: XmpPacket) -> tuple[bytes, bytes | None]:
    """A packet as a JPEG holds it: the standard packet (padded for in-place edits where that fits) and,
    when it is larger than a segment, its Extended XMP (:func:`indexer.metadata.xmp.split_extended_xmp`).

    Raises:
        FileSkipped("unsupported"): even its smallest standard packet would exceed a segment.
    """
    try:
        return split_extended_xmp(packet, MAX_XMP_BYTES, XMP_PADDING)
    except XmpError as exc:
        raise FileSkipped("unsupported", f"its XMP cannot be split into Extended XMP ({exc})") from None


def embeddable(jpeg: JpegFile) -> str | None:
    """None when keywords can be embedded in this JPEG; else why not (the photo gets a sidecar)."""
    if sum(s.is_xmp for s in jpeg.segments) > 1:
        return "it has more than one XMP segment"
    if not any(s.is_xmp for s in jpeg.segments) and sum(s.looks_like_xmp for s in jpeg.segments) > 1:
        return "it has several XMP packets under non-standard headers"
    if parts := jpeg._extended_parts():
        index = jpeg._packet_index()
        packet = jpeg.segments[index].packet() if index is not None else b""
        extended = jpeg._extended(packet)
        if extended is None or len(parts) > 1:
            return "it has Extended XMP that its XMP packet does not name, or not all of it"
        try:
            join_extended_xmp(packet, extended)
        except XmpError as exc:
            return f"its Extended XMP cannot be read ({exc})"
    indexes = [s for s in jpeg.segments if s.is_mpf]
    if len(indexes) > 1:
        return "it has more than one MP index (MPF)"
    if indexes:
        try:
            _MpIndex.read(indexes[0].payload)
        except ValueError as exc:
            return f"its MP index (MPF) cannot be read ({exc}): embedding would lose its other images"
    if jpeg.damage is not None and not jpeg.segments:
        return f"its header is damaged before its first segment ({jpeg.damage})"
    if (mark := jpeg._hidden_metadata()) is not None:
        return (f"its header is damaged ({jpeg.damage}) and metadata follows the damage "
                f"({mark.decode('ascii', 'replace').strip(chr(0))!r}): a rewrite would not see it")
    return None


# --- XPKeywords --------------------------------------------------------------------------------


def exif_readable(tiff: bytes) -> bool:
    """Whether piexif reads this EXIF block: only then is XPKeywords changed (and verified through it)."""
    try:
        piexif.load(_EXIF_HEADER + tiff)
    except Exception:  # noqa: BLE001 - a malformed EXIF block raises anything
        return False
    return True


def _decode_xp(value: str | bytes | Iterable[int] | None) -> list[str]:
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
        FileSkipped("unsupported"): the existing EXIF cannot be walked safely, or the keywords would
            not fit in its segment (the XMP holds them all).
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
    written = (tiff[:4] + struct.pack(order + "I", start) + tiff[8:] + b"\x00" * (start - len(tiff))
               + directory + tail)
    if len(_EXIF_HEADER) + len(written) > _MAX_SEGMENT:
        raise FileSkipped("unsupported", "XPKeywords would make the EXIF block exceed a JPEG segment (64 KB)")
    return written


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
           original_pixels: tuple[str, tuple[int, int], str], extended: bytes | None = None,
           iptc_keywords: Sequence[str] | None = None) -> None:
    """Check a written JPEG against the one it was made from: ``xmp`` (and its ``extended`` XMP) in
    place of its XMP, ``xp_keywords`` in its EXIF block (None: that block unchanged), ``iptc_keywords``
    in its IPTC-IIM block (None: the APP13 segment unchanged; otherwise every other Photoshop resource
    byte-identical and the digest current unless it was stale before), and nothing else changed but
    the MP index's sizes and offsets.

    Raises:
        FileSkipped("verify_failed"): with what differs.
    """

    def fail(what: str) -> FileSkipped:
        return FileSkipped("verify_failed", f"verification failed, the original is kept: {what}")

    try:
        new = JpegFile.parse(written)
    except FileSkipped as exc:
        raise fail(f"the written JPEG cannot be walked ({exc})") from None
    if new.scan != original.scan or (new.damage is None) != (original.damage is None):
        raise fail("the scan data differs")
    replaced = original._packet_index()

    def rewritten(segment: Segment) -> bool:
        return _rewritten(segment) or (iptc_keywords is not None and segment.marker == _APP13
                                       and segment.payload.startswith(PHOTOSHOP_HEADER))

    if [s for s in new.segments if not rewritten(s)] != [
            s for i, s in enumerate(original.segments) if not (rewritten(s) or i == replaced)]:
        raise fail("a segment other than XMP, EXIF, IPTC and the MP index differs")
    if iptc_keywords is not None and (why := _iptc_written(original, new, iptc_keywords)) is not None:
        raise fail(why)
    if replaced is not None and not new.segments[replaced].is_xmp:
        raise fail("the XMP packet is not where it was")
    if [s.payload for s in new.segments if s.is_xmp] != [_XMP_HEADER + xmp]:
        raise fail("the XMP packet does not read back")
    if extended is None:
        if any(s.is_extended_xmp for s in new.segments):
            raise fail("Extended XMP is left")
    elif named_extended_xmp(xmp) != extended_xmp_guid(extended) or new._extended(xmp) != extended \
            or len(new._extended_parts()) != 1:
        raise fail("the Extended XMP does not read back")
    try:
        XmpPacket.parse(new.xmp() or b"")
    except XmpError as exc:
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
    if (why := _images_moved_whole(original, new, written)) is not None:
        raise fail(why)
    try:
        pixels = pixel_digest(written)
    except Exception as exc:  # noqa: BLE001 - a decoder error of any kind
        raise fail(f"the written JPEG does not decode ({exc})") from None
    if pixels != original_pixels:
        raise fail("the decoded pixels differ")


def _iptc_written(original: JpegFile, new: JpegFile, keywords: Sequence[str]) -> str | None:
    """Why the IPTC block of ``new`` is not ``original``'s with ``keywords`` (None: it is)."""
    try:
        before, after = original.iptc(), new.iptc()
    except FileSkipped as exc:
        return f"the IPTC block does not read back ({exc})"
    left_out = set(keywords_left_out(keywords))
    if after.keywords != list(dict.fromkeys(k for k in keywords if k and k not in left_out)):
        return "the IPTC keywords do not read back"
    others = [(r.id, r.raw) for r in before.resources if r.id not in (0x0404, 0x0425)]
    if others != [(r.id, r.raw) for r in after.resources if r.id not in (0x0404, 0x0425)]:
        return "a Photoshop resource other than IPTC and its digest changed"
    if after.digest_state != ("changed" if before.digest_state == "changed" else "current"):
        return "the IPTC digest is not what it should be"
    return None


def _rewritten(segment: Segment) -> bool:
    """A segment embedding may replace: the XMP, its extension, the EXIF block, the MP index."""
    return segment.is_xmp or segment.is_extended_xmp or segment.is_exif or segment.is_mpf


def _images_moved_whole(original: JpegFile, new: JpegFile, written: bytes) -> str | None:
    """Why the MP index of ``new`` does not describe the images of ``original`` (None: it does). Only
    its sizes and offsets may differ, the first image's size by the header's change, and each other
    image's bytes must be where it now says."""
    old_at = [i for i, segment in enumerate(original.segments) if segment.is_mpf]
    new_at = [i for i, segment in enumerate(new.segments) if segment.is_mpf]
    if len(old_at) != len(new_at):
        return "the MP index appeared or went"
    if not old_at:
        return None
    try:
        old, now = _MpIndex.read(original.segments[old_at[0]].payload), _MpIndex.read(new.segments[new_at[0]].payload)
    except ValueError as exc:
        return f"the MP index does not read back ({exc})"
    if len(old.entries) != len(now.entries) or old.with_entries(now.entries) != now.payload:
        return "the MP index changed beyond its images' sizes and offsets"
    data = original.to_bytes()
    old_base = original._offset(old_at[0]) + 4 + len(_MPF_HEADER)
    new_base = new._offset(new_at[0]) + 4 + len(_MPF_HEADER)
    grow = len(written) - len(data)
    for number, ((size, offset), (new_size, new_offset)) in enumerate(zip(old.entries, now.entries, strict=True)):
        if offset == 0:
            if new_offset != 0 or new_size != (size + grow if number == 0 and size else size):
                return "the MP index's first image does not cover the new file"
        elif new_size != size or written[new_base + new_offset : new_base + new_offset + size] \
                != data[old_base + offset : old_base + offset + size]:
            return f"image {number + 1} of the MP index is not where the index says"
    return None
