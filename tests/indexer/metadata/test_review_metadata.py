"""The writer finds a non-standard XMP segment by the reader's rule, and takes the same packet from it."""

from indexer.metadata.embed import Segment
from indexer.metadata.read import holds_xmp

_RDF = b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>'
_PACKET = b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>' + _RDF + b'<?xpacket end="w"?>'


def test_packet_without_xmpmeta_under_nonstandard_header_is_xmp_to_writer_as_to_reader() -> None:
    payload = b"XMP\x00://ns.adobe.com/xap/1.0/\x00" + _PACKET  # no <x:xmpmeta>: the old writer rule missed it
    segment = Segment(0xE1, payload)
    assert holds_xmp(payload)
    assert segment.looks_like_xmp
    assert segment.packet() == _PACKET


def test_exif_segment_is_not_xmp() -> None:
    payload = b"Exif\x00\x00<x:xmpmeta>"
    assert not holds_xmp(payload)
    assert not Segment(0xE1, payload).looks_like_xmp
