"""Properties of the XMP merge, through the metadata writer and its journal (hypothesis).

For any keywords (XML-special characters, control characters, other scripts, case variants), any
other tool's keywords already in a sidecar, the JPEG's own XMP or its Windows XPKeywords, and forged
``phototag:Keywords`` entries: writing then undoing gives back every file byte for byte, and writing
a second time changes nothing.
"""

from __future__ import annotations

import io
import itertools
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import piexif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from indexer.catalog import Catalog
from indexer.metadata import MetadataWriter, WriteOptions, undo_run
from indexer.metadata.read import read_photo_info
from indexer.metadata.xmp import NS_PHOTOTAG, unique_keywords
from indexer.pipeline import bytes_hash
from indexer.schema import ACCEPTED, CUSTOM, INDEXED, SOURCE_USER, Photo, PhotoTag, Tag

# Keywords a person may type: anything, XML's special characters and control characters included.
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
TRICKY = st.sampled_from(["&", "<b>", '"quoted"', "it's", "a]]>b", "&amp;", "Ünïcødé", "Cafe\u0301", "狗", " padded ",
                          "x|y", "a/b", "dog", "Dog", "DOG", "\t", "tab\there", "line\nbreak", "\x00nul", "\ufffe"])
KEYWORD = st.one_of(ANY_TEXT, TRICKY)
# What another tool can have written: any text XML 1.0 can hold.
XML_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"),
                   min_size=1, max_size=12)
THEIRS = st.lists(st.one_of(XML_TEXT, TRICKY.filter(lambda k: k.isprintable())), max_size=6)

_cases = itertools.count()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:  # noqa: ANN001
    with Catalog.open(tmp_path_factory.mktemp("catalog")) as catalog:
        yield catalog


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.mktemp("photos")


def sidecar_packet(keywords: list[str], hierarchical: list[str], forged: list[str]) -> bytes:
    def bag(prop: str, items: list[str]) -> str:
        return f"<{prop}><rdf:Bag>{''.join(f'<rdf:li>{escape(i)}</rdf:li>' for i in items)}</rdf:Bag></{prop}>"

    record = "".join(f'<rdf:li rdf:parseType="Resource"><phototag:name>{escape(name)}</phototag:name>'
                     f"<phototag:tag>{escape(name)}</phototag:tag></rdf:li>" for name in forged)
    body = (bag("dc:subject", keywords) if keywords else "") + (
        bag("lr:hierarchicalSubject", [f"Other|{k}" for k in hierarchical]) if hierarchical else "") + (
        f"<phototag:Keywords><rdf:Bag>{record}</rdf:Bag></phototag:Keywords>" if forged else "")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/" '
            'x:xmptk="Other Tool 1.0">\n <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
            '  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            f'xmlns:phototag="{NS_PHOTOTAG}" xmp:Rating="3">{body}</rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n'
            '<?xpacket end="w"?>').encode()


def jpeg(xmp: bytes | None, xp_keywords: list[str] | None) -> bytes:
    pixels = np.random.default_rng(next(_cases)).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    options: dict = {"quality": 90}
    if xmp is not None:
        options["xmp"] = xmp
    if xp_keywords is not None:
        options["exif"] = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Other",
                                               piexif.ImageIFD.XPKeywords: list(";".join(xp_keywords)
                                                                                .encode("utf-16-le") + b"\0\0")}})
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", **options)
    return out.getvalue()


def add_photo(catalog: Catalog, path: Path, tags: list[str]) -> int:
    stat, stamp = path.stat(), datetime.now()
    with catalog.session() as session, session.begin():
        photo = Photo(path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                      content_hash=bytes_hash(path.read_bytes()), format="jpeg", status=INDEXED, attempts=0,
                      first_seen=stamp, last_seen=stamp)
        session.add(photo)
        session.flush()
        for name in dict.fromkeys(tags):
            tag = session.query(Tag).filter(Tag.name == name).one_or_none()
            if tag is None:
                tag = Tag(name=name, kind=CUSTOM)
                session.add(tag)
                session.flush()
            session.add(PhotoTag(photo_id=photo.id, tag_id=tag.id, source=SOURCE_USER, state=ACCEPTED,
                                 updated_at=stamp))
        return photo.id


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@settings(max_examples=50, deadline=None)
@given(wanted=st.lists(KEYWORD, max_size=6), theirs=THEIRS, hierarchical=THEIRS, forged=THEIRS,
       xp_keywords=st.one_of(st.none(), st.lists(XML_TEXT.filter(lambda k: ";" not in k), max_size=4)),
       existing=st.sampled_from(["nothing", "sidecar", "embedded", "both"]),
       mode=st.sampled_from(["sidecar", "embed", "both"]))
def test_writing_then_undoing_restores_every_byte_and_writing_twice_changes_nothing(
        catalog: Catalog, folders: Path, wanted: list[str], theirs: list[str], hierarchical: list[str],
        forged: list[str], xp_keywords: list[str] | None, existing: str, mode: str) -> None:
    folder = folders / f"case{next(_cases)}"
    folder.mkdir()
    packet = sidecar_packet(theirs, hierarchical, forged)
    photo = folder / "photo.jpg"
    photo.write_bytes(jpeg(packet if existing in ("embedded", "both") else None, xp_keywords))
    if existing in ("sidecar", "both"):
        (folder / "photo.jpg.xmp").write_bytes(packet)
    photo_id = add_photo(catalog, photo, wanted)
    before = snapshot(folder)

    first = MetadataWriter(catalog, WriteOptions(mode=mode)).run([photo_id])
    assert {report.status for report in first.files} <= {"written", "unchanged"}, first.files
    stated = {keyword.casefold() for keyword in read_photo_info(photo).keywords}
    assert {keyword.casefold() for keyword in unique_keywords(wanted)} <= stated  # the file now says them
    written = snapshot(folder)

    second = MetadataWriter(catalog, WriteOptions(mode=mode)).run([photo_id])
    assert {report.status for report in second.files} == {"unchanged"}, second.files
    assert second.run_id is None and snapshot(folder) == written

    if first.run_id is not None:
        undone = undo_run(catalog, first.run_id)
        assert undone.complete, undone.files
    assert snapshot(folder) == before
