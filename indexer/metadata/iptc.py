"""IPTC-IIM keywords in a JPEG's APP13 Photoshop block, at the byte level.

An APP13 payload is ``Photoshop 3.0\\0`` followed by image resources (``8BIM``, a 16-bit id, a
Pascal name padded to an even length, a 32-bit size, the data padded to an even length). Two of
them matter here: 0x0404 holds the IPTC-IIM datasets (``0x1C``, record, dataset, a 16-bit length
or an extended length, the value) and 0x0425 the IPTC digest, the MD5 of the 0x0404 data, which
tells Metadata Working Group readers whether the XMP is in sync with the IIM (:func:`mwg_reading`).

:meth:`IptcBlock.with_keywords` changes only what it must: every other resource keeps its bytes and
its place, and so does every dataset other than the keywords (2:25) and the coded character set
(1:90, set to UTF-8). Text datasets of a block that was not UTF-8 are re-encoded to UTF-8 from the
character set they were read with; a block in a character set that cannot be converted
(an ISO 2022 designation other than UTF-8, or shift sequences inside values) is refused.

How text is decoded follows exiftool, which most tools and tests compare with: ``ESC % G`` in 1:90
is UTF-8; any other value, or none, means exiftool's default IPTC character set "Latin" (its
``CharsetIPTC`` option: Windows cp1252, the five bytes cp1252 leaves undefined read as Latin-1);
another ``ESC %`` designation is left unconverted (read here as UTF-8, with replacement characters).
Only the string datasets of records 2 and 3 are text (``_TEXT_DATASETS``, exiftool's IPTC tables).

Files this does not handle (``FileSkipped("unsupported")``): the old ``Adobe_Photoshop2.5:`` header,
an IPTC block split over several APP13 segments (its resource overruns the first one), and several
IPTC or digest resources in one block.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from indexer.errors import FileSkipped

__all__ = [
    "MAX_KEYWORD_BYTES", "PHOTOSHOP_HEADER", "DataSet", "IptcBlock", "MwgReading", "Resource", "keywords_left_out",
    "mwg_keywords", "mwg_reading",
]

PHOTOSHOP_HEADER = b"Photoshop 3.0\x00"
IPTC_RESOURCE = 0x0404
DIGEST_RESOURCE = 0x0425
MAX_KEYWORD_BYTES = 64  # IIM 4.2: Keywords (2:25) hold at most 64 octets
_MAX_PAYLOAD = 0xFFFF - 2  # what one JPEG marker segment can hold
_RESOURCE_TYPES = frozenset({b"8BIM", b"PHUT", b"DCSR", b"AgHg", b"MeSa"})  # as exiftool accepts them
_DATASET_TAG = 0x1C
_KEYWORDS = (2, 25)
_CODED_CHARSET = (1, 90)
_UTF8 = b"\x1b%G"
_RECORD_VERSION = b"\x00\x04"  # 1:00 and 2:00 (IIM version 4), written only when a record is created
_ISO2022_CONTROLS = frozenset(b"\x14\x15\x1b")  # exiftool leaves values holding these unconverted
# The string datasets exiftool's IPTC tables declare (the ones a coded character set applies to).
_TEXT_DATASETS = frozenset(
    [(2, n) for n in (3, 4, 5, 7, 12, 15, 20, 22, 25, 26, 27, 35, 38, 40, 45, 60, 63, 65, 70, 75, 80, 85, 90, 92,
                      95, 100, 101, 103, 105, 110, 115, 116, 118, 120, 121, 122, 130, 131, 135, 150, 154, 184, 185,
                      186, 187, 188, 221, 225, 228, 230, 231, 232, 255)]
    + [(3, 10)])

Charset = Literal["utf-8", "latin", "unconvertible"]
DigestState = Literal["absent", "current", "changed"]


def _unsupported(what: str) -> FileSkipped:
    return FileSkipped("unsupported", f"{what}; the photo's IPTC block is left as it is")


@dataclass(frozen=True)
class Resource:
    """One Photoshop image resource, with its bytes exactly as they were (name and padding included)."""

    kind: bytes  # 8BIM, or one of the rare PHUT, DCSR, AgHg, MeSa
    id: int
    name: bytes  # the Pascal string: length byte, name, padding to an even length
    data: bytes
    raw: bytes

    @classmethod
    def new(cls, id: int, data: bytes, like: Resource | None = None) -> Resource:
        """An ``8BIM`` resource holding ``data`` (keeping ``like``'s name when replacing it)."""
        name = like.name if like is not None else b"\x00\x00"
        kind = like.kind if like is not None else b"8BIM"
        raw = kind + struct.pack(">H", id) + name + struct.pack(">I", len(data)) + data + b"\x00" * (len(data) % 2)
        return cls(kind, id, name, data, raw)


@dataclass(frozen=True)
class DataSet:
    """One IIM dataset, with its bytes exactly as they were (header, extended length and all)."""

    record: int
    number: int
    value: bytes
    raw: bytes

    @classmethod
    def new(cls, record: int, number: int, value: bytes) -> DataSet:
        if len(value) < 0x8000:
            length = struct.pack(">H", len(value))
        else:  # extended dataset: 0x8000 | the size of the length that follows
            length = struct.pack(">HI", 0x8004, len(value))
        return cls(record, number, value, bytes((_DATASET_TAG, record, number)) + length + value)

    @property
    def key(self) -> tuple[int, int]:
        return (self.record, self.number)


def keywords_left_out(keywords: Sequence[str]) -> list[str]:
    """The keywords IIM cannot hold (over 64 bytes in UTF-8): :meth:`IptcBlock.with_keywords` leaves
    them out, XMP keeps them."""
    return [keyword for keyword in keywords if len(keyword.encode("utf-8")) > MAX_KEYWORD_BYTES]


@dataclass(frozen=True)
class IptcBlock:
    """A JPEG APP13 Photoshop payload: its resources and the IIM datasets of its IPTC resource."""

    payload: bytes | None  # as given (None: the JPEG has no APP13 block)
    resources: tuple[Resource, ...] = ()
    tail: bytes = b""  # bytes after the last resource that are not one (zero padding, a few stray bytes)
    datasets: tuple[DataSet, ...] = ()
    iptc_padding: bytes = b""  # zero bytes after the last dataset (some writers pad the IIM)
    _iptc_index: int | None = field(default=None, repr=False)
    _digest_index: int | None = field(default=None, repr=False)

    # --- reading -------------------------------------------------------------------------------
    @classmethod
    def parse(cls, payload: bytes | None) -> IptcBlock:
        """Split an APP13 payload (None: no APP13 block, an empty one).

        Raises:
            FileSkipped("unsupported"): not a ``Photoshop 3.0`` block, or one whose resources or
                IIM datasets overrun, are cut short or are not where they should be.
        """
        if payload is None:
            return cls(None)
        if not payload.startswith(PHOTOSHOP_HEADER):
            raise _unsupported("the APP13 segment is not a 'Photoshop 3.0' resource block")
        resources, tail = _parse_resources(payload, len(PHOTOSHOP_HEADER))
        iptc_index = _only(resources, IPTC_RESOURCE, "IPTC")
        digest_index = _only(resources, DIGEST_RESOURCE, "IPTC digest")
        datasets, padding = _parse_datasets(resources[iptc_index].data) if iptc_index is not None else ((), b"")
        return cls(payload, resources, tail, datasets, padding, iptc_index, digest_index)

    @property
    def has_iptc(self) -> bool:
        return self._iptc_index is not None

    @property
    def iptc_data(self) -> bytes | None:
        """The IPTC resource's data (what the digest is the MD5 of); None without one."""
        return self.resources[self._iptc_index].data if self._iptc_index is not None else None

    @property
    def digest(self) -> bytes | None:
        return self.resources[self._digest_index].data if self._digest_index is not None else None

    @property
    def digest_state(self) -> DigestState:
        """``absent`` (no digest resource), ``current`` (the MD5 of the IIM data: the XMP was in sync
        with it when last written) or ``changed`` (the IIM was edited since, by a tool that does not
        keep the digest, or there is a digest without IIM)."""
        if self.digest is None:
            return "absent"
        data = self.iptc_data
        return "current" if data is not None and hashlib.md5(data).digest() == self.digest else "changed"

    @property
    def charset(self) -> Charset:
        """How text datasets are decoded (module docstring): from the first 1:90 dataset."""
        marker = next((d.value.rstrip(b"\x00") for d in self.datasets if d.key == _CODED_CHARSET), None)
        if marker == _UTF8:
            return "utf-8"
        if marker is not None and marker.startswith(b"\x1b%"):
            return "unconvertible"
        return "latin"

    @property
    def keywords(self) -> list[str]:
        """The Keywords datasets (2:25) as text, trailing NULs dropped (exiftool does), empty ones skipped."""
        charset = self.charset
        values = (d.value.rstrip(b"\x00") for d in self.datasets if d.key == _KEYWORDS)
        return [_decode(value, charset) for value in values if value]

    # --- changing ------------------------------------------------------------------------------
    def with_keywords(self, keywords: Sequence[str]) -> bytes | None:
        """The APP13 payload with Keywords (2:25) set to ``keywords``, in their order, duplicates once.

        - Keywords over 64 bytes in UTF-8, and empty ones, are left out (:func:`keywords_left_out`).
          An empty list removes every Keywords dataset.
        - Every other resource and every other dataset keeps its bytes and its order. New keywords go
          where the first old one was, else before the first dataset after 2:25 in record order (with
          2:00, the record version, when record 2 is new).
        - 1:90 is set to UTF-8 (added, with 1:00, when missing); text datasets of a block in another
          character set are re-encoded to UTF-8.
        - The digest (0x0425) is set to the MD5 of the new IIM data when it was absent or current. A
          digest that was already stale is kept: the IIM stays the side MWG readers believe, so an
          edit a legacy tool made to another field (a caption, a byline) is not hidden behind older XMP.
          This is exiftool's MWG writing rule ("the IPTCDigest tag is updated automatically when the
          IPTC is changed if either the IPTCDigest tag didn't exist beforehand or its value agreed
          with the original IPTC digest", https://exiftool.org/TagNames/MWG.html).
        - Without an IPTC block and with nothing to write, the payload is returned as it was (None
          when the JPEG had no APP13 block: none is needed).

        Raises:
            FileSkipped("unsupported"): the block's text is in a character set that cannot be converted
                to UTF-8, or the new block would not fit in one JPEG segment (64 KB).
        """
        wanted = _keyword_values(keywords)
        if not self.has_iptc and not wanted:
            return self.payload
        datasets = self._converted_datasets()
        datasets = _replace_keywords(datasets, [DataSet.new(*_KEYWORDS, value) for value in wanted])
        datasets = _with_utf8_marker(datasets)
        iptc = b"".join(d.raw for d in datasets) + self.iptc_padding
        resources = list(self.resources)
        _put(resources, self._iptc_index, IPTC_RESOURCE, iptc)
        if self.digest_state != "changed":
            _put(resources, self._digest_index, DIGEST_RESOURCE, hashlib.md5(iptc).digest())
        payload = PHOTOSHOP_HEADER + b"".join(r.raw for r in resources) + self.tail
        if len(payload) > _MAX_PAYLOAD:
            raise _unsupported("the IPTC block would exceed one JPEG segment (64 KB)")
        return payload

    def _converted_datasets(self) -> list[DataSet]:
        """The datasets with every text value in UTF-8 (the block's own when it is UTF-8 already)."""
        charset = self.charset
        if charset == "utf-8":
            return list(self.datasets)
        converted = []
        for dataset in self.datasets:
            if dataset.key in _TEXT_DATASETS and dataset.key != _KEYWORDS and max(dataset.value, default=0) >= 0x80:
                if charset == "unconvertible" or _ISO2022_CONTROLS.intersection(dataset.value):
                    raise _unsupported(f"IPTC dataset {dataset.record}:{dataset.number} is text in a character set "
                                       "that cannot be converted to UTF-8")
                dataset = DataSet.new(dataset.record, dataset.number, _decode(dataset.value, charset).encode("utf-8"))
            converted.append(dataset)
        return converted


def _cp1252(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D: exiftool's table keeps them as Latin-1
        return chr(byte)


# exiftool's "Latin" is cp1252, which differs from Latin-1 only in 0x80-0x9F.
_LATIN = str.maketrans({chr(byte): _cp1252(byte) for byte in range(0x80, 0xA0)})


def _decode(value: bytes, charset: Charset) -> str:
    if charset == "latin":
        return value.decode("latin-1").translate(_LATIN)
    return value.decode("utf-8", "replace")


def _put(resources: list[Resource], index: int | None, resource_id: int, data: bytes) -> None:
    """Replace the resource at ``index`` (keeping its name and place), or append one."""
    if index is None:
        resources.append(Resource.new(resource_id, data))
    else:
        resources[index] = Resource.new(resource_id, data, like=resources[index])


def _keyword_values(keywords: Sequence[str]) -> list[bytes]:
    values: list[bytes] = []
    for keyword in keywords:
        value = keyword.encode("utf-8")
        if value and len(value) <= MAX_KEYWORD_BYTES and value not in values:
            values.append(value)
    return values


def _replace_keywords(datasets: list[DataSet], keywords: list[DataSet]) -> list[DataSet]:
    first = next((i for i, d in enumerate(datasets) if d.key == _KEYWORDS), None)
    if first is not None:
        return datasets[:first] + keywords + [d for d in datasets[first:] if d.key != _KEYWORDS]
    if not keywords:
        return datasets
    at = _insertion_point(datasets, _KEYWORDS)
    version = [] if any(d.record == 2 for d in datasets) else [DataSet.new(2, 0, _RECORD_VERSION)]
    return datasets[:at] + version + keywords + datasets[at:]


def _with_utf8_marker(datasets: list[DataSet]) -> list[DataSet]:
    marker = DataSet.new(*_CODED_CHARSET, _UTF8)
    first = next((i for i, d in enumerate(datasets) if d.key == _CODED_CHARSET), None)
    if first is not None:
        kept = datasets[first] if datasets[first].value == _UTF8 else marker
        return datasets[:first] + [kept] + [d for d in datasets[first + 1:] if d.key != _CODED_CHARSET]
    at = _insertion_point(datasets, _CODED_CHARSET)
    version = [] if any(d.record == 1 for d in datasets) else [DataSet.new(1, 0, _RECORD_VERSION)]
    return datasets[:at] + version + [marker] + datasets[at:]


def _insertion_point(datasets: list[DataSet], key: tuple[int, int]) -> int:
    """Before the first dataset that comes after ``key`` in record order (IIM orders records, not datasets)."""
    record, number = key
    return next((i for i, d in enumerate(datasets) if d.record > record or (d.record == record and d.number > number)),
                len(datasets))


# --- walking the bytes ---------------------------------------------------------------------------


def _parse_resources(payload: bytes, position: int) -> tuple[tuple[Resource, ...], bytes]:
    resources: list[Resource] = []
    end = len(payload)
    while position < end:
        rest = payload[position:]
        if len(rest) <= 8 or not rest.strip(b"\x00"):  # exiftool ignores up to 8 stray bytes; padding
            return tuple(resources), rest
        start = position
        kind = payload[position : position + 4]
        if kind not in _RESOURCE_TYPES:
            raise _unsupported(f"malformed Photoshop block: no resource at byte {position}")
        (resource_id, name_length) = struct.unpack(">HB", payload[position + 4 : position + 7])
        name_end = position + 6 + 1 + name_length + (1 - name_length % 2)  # length byte + name, padded to even
        if name_end + 4 > end:
            raise _unsupported(f"malformed Photoshop block: resource 0x{resource_id:04X} is cut short")
        (size,) = struct.unpack(">I", payload[name_end : name_end + 4])
        data_start = name_end + 4
        position = data_start + size
        if position > end:
            raise _unsupported(f"malformed Photoshop block: resource 0x{resource_id:04X} overruns the segment")
        if size % 2 and position < end and payload[position : position + 4] not in _RESOURCE_TYPES:
            position += 1  # the padding byte (a writer that skipped it leaves the next type right here)
        name, data = payload[start + 6 : name_end], payload[data_start : data_start + size]
        resources.append(Resource(kind, resource_id, name, data, payload[start:position]))
    return tuple(resources), b""


def _only(resources: tuple[Resource, ...], resource_id: int, what: str) -> int | None:
    found = [i for i, r in enumerate(resources) if r.kind == b"8BIM" and r.id == resource_id]
    if len(found) > 1:
        raise _unsupported(f"the Photoshop block holds {len(found)} {what} resources")
    return found[0] if found else None


def _parse_datasets(data: bytes) -> tuple[tuple[DataSet, ...], bytes]:
    datasets: list[DataSet] = []
    position, end = 0, len(data)
    while position < end:
        if data[position] != _DATASET_TAG:
            if not data[position:].strip(b"\x00"):
                return tuple(datasets), data[position:]
            raise _unsupported(f"malformed IPTC block: no dataset at byte {position}")
        if position + 5 > end:
            raise _unsupported("malformed IPTC block: the last dataset is cut short")
        record, number, length = struct.unpack(">BBH", data[position + 1 : position + 5])
        value_start = position + 5
        if length & 0x8000:  # extended dataset: the low bits say how many bytes hold the length
            size = length & 0x7FFF
            if not 0 < size <= 8 or value_start + size > end:
                raise _unsupported(f"malformed IPTC block: dataset {record}:{number} has an invalid extended length")
            length = int.from_bytes(data[value_start : value_start + size], "big")
            value_start += size
        value_end = value_start + length
        if value_end > end:
            raise _unsupported(f"malformed IPTC block: dataset {record}:{number} overruns the block")
        datasets.append(DataSet(record, number, data[value_start:value_end], data[position:value_end]))
        position = value_end
    return tuple(datasets), b""


# --- Metadata Working Group reconciliation -------------------------------------------------------


@dataclass(frozen=True)
class MwgReading:
    """The keywords a file states by the MWG reading rules, which side they come from, and why."""

    keywords: list[str]
    source: Literal["xmp", "iptc"]
    reason: str


def mwg_reading(xmp_subject: Sequence[str] | None, iptc: IptcBlock) -> MwgReading:
    """The current keywords of a file whose XMP ``dc:subject`` is ``xmp_subject`` (None or empty: no
    such property) and whose APP13 block is ``iptc``, by the Metadata Working Group's rule.

    The rule is the MWG's ("Guidelines for Handling Image Metadata" 2.0, November 2010, section
    4.2.3 "Metadata reconciliation guidance"), taken here as exiftool's MWG module implements it
    for ``MWG:Keywords`` (Image/ExifTool/MWG.pm, the ``Keywords`` RawConv; described at
    https://exiftool.org/TagNames/MWG.html; the tests compare with ``exiftool -MWG:Keywords``).
    Adobe's XMP Toolkit imports the IIM the same way (XMPFiles ``ReconcileLegacy.cpp``,
    ``ImportJTPtoXMP``: digest matches, no import; differs, the IIM replaces the XMP; missing, the
    IIM only fills what the XMP lacks):

    - no IIM block: XMP;
    - IIM and XMP, digest current (the XMP was written in sync with this IIM): XMP;
    - IIM and XMP, no digest (a writer that does not know the digest): XMP;
    - digest stale (the IIM was edited by a tool that does not update the digest), or no XMP: the
      IIM keywords win outright, not merged — except that an IIM keyword of exactly 64 bytes that
      is the start of the XMP keyword at the same position is taken as that keyword cut to the IIM
      limit, and the XMP one is read (exiftool's ``RecoverTruncatedIPTC``).

    Duplicates are kept once, in order.
    """
    xmp = list(xmp_subject or [])
    if not iptc.has_iptc:
        return MwgReading(_unique(xmp), "xmp", "no IPTC-IIM block: XMP dc:subject is read")
    state = iptc.digest_state
    if xmp and state == "current":
        return MwgReading(_unique(xmp), "xmp", "the IPTC digest matches the IIM: XMP is in sync and is read")
    if xmp and state == "absent":
        return MwgReading(_unique(xmp), "xmp", "no IPTC digest: XMP is preferred to the IIM")
    keywords = iptc.keywords
    recovered = [_untruncated(keyword, xmp[i] if i < len(xmp) else None) for i, keyword in enumerate(keywords)]
    reason = ("the IPTC digest does not match the IIM: it was edited by a tool that does not update XMP, "
              "so the IIM keywords are read") if xmp else "no XMP dc:subject: the IIM keywords are read"
    return MwgReading(_unique(recovered), "iptc", reason)


def mwg_keywords(xmp_subject: Sequence[str] | None, iptc: IptcBlock) -> list[str]:
    """The current keyword list by the MWG reading rules (:func:`mwg_reading` says why)."""
    return mwg_reading(xmp_subject, iptc).keywords


def _untruncated(keyword: str, xmp: str | None) -> str:
    value = keyword.encode("utf-8")
    if xmp is not None and len(value) == MAX_KEYWORD_BYTES:
        full = xmp.encode("utf-8")
        if len(full) > MAX_KEYWORD_BYTES and full.startswith(value):
            return xmp
    return keyword


def _unique(keywords: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(keywords))
