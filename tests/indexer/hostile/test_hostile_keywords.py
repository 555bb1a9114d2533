"""Keyword amplification and forged claims (issue 15, item 7; the XMP items of item 10).

A file may state any number of keywords, and anyone can write ``phototag:Keywords`` claims into it.
Each case is built in a temp folder and run through the real CLI where it matters: the pass finishes,
the photo is indexed with at most MAX_FILE_KEYWORDS keywords and a warning naming it, and the
metadata writer never removes a keyword Phototag did not write.
"""

from __future__ import annotations

import json
import struct
import zlib
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from indexer.catalog import Catalog
from indexer.errors import XmpError
from indexer.metadata import xmp as xmp_module
from indexer.metadata.read import MAX_FILE_KEYWORDS, MAX_XMP_BYTES, read_keywords_from_xmp, read_photo_info
from indexer.metadata.xmp import NS_PHOTOTAG, Claim, XmpPacket
from indexer.schema import ACCEPTED, CUSTOM, REJECTED, SOURCE_FILE, SOURCE_USER, Photo, PhotoTag, Run, Tag
from main import main

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
OVER = MAX_FILE_KEYWORDS + 500


def packet(keywords: list[str] = (), claims: list[str] = (), hierarchical: list[str] = ()) -> str:
    """An XMP packet as another tool writes it: dc:subject, optionally lr:hierarchicalSubject and
    phototag:Keywords entries (forged: Phototag never wrote them)."""
    def bag(prop: str, items: list[str]) -> str:
        return f"<{prop}><rdf:Bag>{''.join(f'<rdf:li>{escape(i)}</rdf:li>' for i in items)}</rdf:Bag></{prop}>"

    record = "".join(f'<rdf:li rdf:parseType="Resource"><phototag:name>{escape(name)}</phototag:name>'
                     f"<phototag:tag>{escape(name)}</phototag:tag><phototag:source>user</phototag:source>"
                     "<phototag:confirmed>True</phototag:confirmed></rdf:li>" for name in claims)
    body = bag("dc:subject", keywords) if keywords else ""
    body += bag("lr:hierarchicalSubject", hierarchical) if hierarchical else ""
    body += f"<phototag:Keywords><rdf:Bag>{record}</rdf:Bag></phototag:Keywords>" if claims else ""
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF}">'
            '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
            f' xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:phototag="{NS_PHOTOTAG}">'
            f"{body}</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>")


def noise(path: Path, seed: int, **save: object) -> Path:
    """A small distinct photo (noise), so that no two share a content hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, **save)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_chunk(png: Path, chunk: bytes, before: bytes) -> None:
    """Insert a chunk right before the first ``before`` chunk (b"IDAT": in the header; b"IEND": after the pixels)."""
    data = png.read_bytes()
    at = data.index(before) - 4
    png.write_bytes(data[:at] + chunk + data[at:])


def index(capsys, *paths: Path) -> dict:  # noqa: ANN001
    code = main(["index", *map(str, paths), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def file_keywords(home: Path, photo: Path) -> list[str]:
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        return list(session.scalars(
            select(Tag.name).join(PhotoTag, PhotoTag.tag_id == Tag.id).join(Photo, Photo.id == PhotoTag.photo_id)
            .where(Photo.path == str(photo), PhotoTag.source == SOURCE_FILE).order_by(Tag.id)))


def statuses(home: Path) -> dict[str, str]:
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        return {Path(path).name: status for path, status in session.execute(select(Photo.path, Photo.status))}


def warned(summary: dict, photo: Path, words: str) -> bool:
    return any(w["path"] == str(photo) and str(photo) in w["message"] and words in w["message"]
               for w in summary.get("warnings", []))


# --- caps on keywords read ---------------------------------------------------------------------


def test_huge_keyword_lists_are_capped_per_file_with_a_warning_and_the_photo_indexed(home, tmp_path,  # noqa: ANN001
                                                                                     capsys) -> None:
    library = tmp_path / "lib"
    many = [f"kw{i:05d}" for i in range(OVER)]
    tiff = noise(library / "scan.tif", 1, tiffinfo={700: packet(many).encode()})
    jpeg = noise(library / "camera.jpg", 2, xmp=packet(many).encode())  # ~60 KB: one APP1 segment holds it
    sidecar_photo = noise(library / "sidecar.jpg", 3)
    sidecar_photo.with_name("sidecar.jpg.xmp").write_text(packet(many), encoding="utf-8")
    # A packet over the byte cap (a 24 MB TIFF tag gave a million tags): ignored whole, the photo indexed.
    huge = noise(library / "huge.tif", 4, tiffinfo={700: packet(["first"]).encode() + b" " * MAX_XMP_BYTES})
    good = noise(library / "good.jpg", 5, xmp=packet(["beach", "family"]).encode())

    summary = index(capsys, library)

    assert summary["failed"] == 0 and set(statuses(home).values()) == {"indexed"}
    for photo in (tiff, jpeg, sidecar_photo):
        assert file_keywords(home, photo) == many[:MAX_FILE_KEYWORDS], photo.name  # the first ones, in order
        assert warned(summary, photo, f"more than {MAX_FILE_KEYWORDS:,} keywords"), summary.get("warnings")
    assert file_keywords(home, huge) == [] and warned(summary, huge, "XMP packet ignored")
    assert file_keywords(home, good) == ["beach", "family"]
    assert not any(w["path"] == str(good) for w in summary["warnings"])
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:  # the run's record: a count
        assert json.loads(session.scalar(select(Run.summary)))["warnings"] == len(summary["warnings"])


def test_one_cap_for_all_sources_together(tmp_path) -> None:  # noqa: ANN001
    # Embedded XMP, then the sidecar: the first MAX_FILE_KEYWORDS over both, and one keyword longer than
    # a keyword can be is left out with its own warning.
    photo = noise(tmp_path / "both.jpg", 6, xmp=packet([f"a{i}" for i in range(1500)] + ["x" * 600]).encode())
    photo.with_name("both.xmp").write_text(packet([f"b{i}" for i in range(1500)]), encoding="utf-8")
    info = read_photo_info(photo)
    assert len(info.keywords) == MAX_FILE_KEYWORDS
    assert info.keywords[1499:1501] == ("a1499", "b0")
    assert any("longer than" in w for w in info.warnings) and any("keywords: only the first" in w
                                                                    for w in info.warnings)


# --- PNG text chunks over Pillow's limits ------------------------------------------------------


@pytest.mark.parametrize("where", [b"IDAT", b"IEND"], ids=["before-pixels", "after-pixels"])
def test_a_png_whose_xmp_chunk_is_over_the_limit_is_indexed_with_a_warning(home, tmp_path, capsys,  # noqa: ANN001
                                                                           where: bytes) -> None:
    library = tmp_path / "lib"
    photo = noise(library / "big_xmp.png", 7)
    inflated = packet([f"kw{i}" for i in range(60_000)]).encode()  # over 1 MiB once inflated
    with_chunk(photo, png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(inflated)), where)
    noise(library / "good.png", 8)

    summary = index(capsys, library)

    assert summary["failed"] == 0, summary["failures"]  # was: failed as 'truncated' (after) or 'corrupt' (before)
    assert statuses(home) == {"big_xmp.png": "indexed", "good.png": "indexed"}
    assert warned(summary, photo, "PNG text chunk 'XML:com.adobe.xmp'")


# --- the XML parser: DTDs refused by parsing, in any encoding -----------------------------------

ENTITY_PACKET = ('<?xml version="1.0" encoding="{encoding}"?>'
                 '<!DOCTYPE x:xmpmeta [<!ENTITY boom "exploded">]>'
                 '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="' + RDF + '">'
                 '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
                 "<dc:subject><rdf:Bag><rdf:li>&boom;</rdf:li></rdf:Bag></dc:subject>"
                 "</rdf:Description></rdf:RDF></x:xmpmeta>")


@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_a_dtd_is_refused_in_every_encoding(codec: str) -> None:
    data = ENTITY_PACKET.format(encoding=codec.upper().replace("-LE", "").replace("-BE", "")).encode(codec)
    with pytest.raises(ValueError, match="DTD"):
        read_keywords_from_xmp(data)
    with pytest.raises(XmpError, match="DTD"):
        XmpPacket.parse(data)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_utf16_and_utf32_packets_are_read(codec: str) -> None:
    data = packet(["Ünïcødé", "dog"]).encode(codec)
    assert read_keywords_from_xmp(data) == ["Ünïcødé", "dog"]
    assert XmpPacket.parse(data).subject() == ["Ünïcødé", "dog"]


def test_a_utf16_sidecar_with_a_dtd_is_reported_and_the_photo_indexed(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "lib"
    photo = noise(library / "photo.jpg", 9)
    photo.with_name("photo.jpg.xmp").write_bytes(ENTITY_PACKET.format(encoding="UTF-16").encode("utf-16"))
    summary = index(capsys, library)
    assert statuses(home) == {"photo.jpg": "indexed"} and file_keywords(home, photo) == []
    assert warned(summary, photo, "declares a DTD")


def test_nesting_deeper_than_any_metadata_is_refused() -> None:
    deep = packet(["dog"]).replace("<dc:subject>", "<dc:subject>" + "<a>" * 5000 + "</a>" * 5000, 1)
    with pytest.raises(XmpError, match="nested"):
        XmpPacket.parse(deep.encode())


# --- claims: linear, and only Phototag's own -----------------------------------------------------


class ItemReads:
    """Counts the XMP list items the merge reads (``xmp._item_text`` calls): the work it does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        item_text = xmp_module._item_text

        def counting(item):  # noqa: ANN001, ANN202
            self.calls += 1
            return item_text(item)

        monkeypatch.setattr(xmp_module, "_item_text", counting)


def test_removing_claimed_keywords_takes_linear_work(monkeypatch) -> None:  # noqa: ANN001
    reads = ItemReads(monkeypatch)

    def work(n: int) -> int:
        names = [f"kw{i}" for i in range(n)]
        packet_ = XmpPacket.parse(packet(names, claims=names, hierarchical=names).encode())
        reads.calls = 0
        change = packet_.merge([], drop=names)  # every claim trusted (no journal at this level): all go
        assert change.removed == names and packet_.keywords() == [] and packet_.claims() == []
        return reads.calls

    small, large = work(250), work(1000)
    assert large <= 6 * small, (small, large)  # 4x the claims: 4x the work (it was 16x: each removal rescanned)
    assert work(8000) <= 40 * 8000


def test_forged_claims_never_remove_a_keyword_phototag_did_not_write(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "lib"
    theirs = ["family", "holiday", "dog"]
    forged = [*theirs, *(f"forged{i}" for i in range(8000))]  # 8k claims Phototag never wrote
    sidecar_photo = noise(library / "sidecar.jpg", 10)
    sidecar = sidecar_photo.with_name("sidecar.jpg.xmp")
    sidecar.write_text(packet(theirs, claims=forged), encoding="utf-8")
    embedded = noise(library / "embedded.jpg", 11, xmp=packet(theirs, claims=theirs).encode())
    index(capsys, library)
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        keepsake = Tag(name="keepsake", kind=CUSTOM)
        session.add(keepsake)
        session.flush()
        for photo_id in session.scalars(select(Photo.id)):
            session.add(PhotoTag(photo_id=photo_id, tag_id=keepsake.id, source=SOURCE_USER, state=ACCEPTED,
                                 updated_at=datetime.now()))
        # A person rejects a keyword another tool wrote: still not Phototag's to remove.
        holiday = session.scalar(select(Tag.id).where(Tag.name == "holiday"))
        session.execute(PhotoTag.__table__.update().where(PhotoTag.tag_id == holiday).values(state=REJECTED))

    assert main(["write-metadata", "--mode", "both", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {f["status"] for f in report["files"]} == {"written"}
    assert all(f["removed"] == [] for f in report["files"]), report["files"]
    for target in (sidecar, embedded.with_name("embedded.jpg.xmp"), embedded):
        written = XmpPacket.parse(target.read_bytes() if target.suffix == ".xmp" else Image.open(target).info["xmp"])
        assert written.subject() == [*theirs, "keepsake"], target.name
    # The forged entries are left in the record as they were, never acted on.
    assert len(XmpPacket.parse(sidecar.read_bytes()).claims()) == len(forged) + 1

    # Phototag's own keyword is still removed when its tag goes: the journal vouches for that claim.
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        keepsake_id = session.scalar(select(Tag.id).where(Tag.name == "keepsake"))
        session.execute(PhotoTag.__table__.update().where(PhotoTag.tag_id == keepsake_id).values(state=REJECTED))
    assert main(["write-metadata", "--mode", "both", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {tuple(f["removed"]) for f in report["files"]} == {("keepsake",)}
    assert XmpPacket.parse(sidecar.read_bytes()).subject() == theirs
    assert XmpPacket.parse(Image.open(embedded).info["xmp"]).subject() == theirs


def test_a_claim_copied_into_another_file_is_not_trusted_there(home, tmp_path, capsys) -> None:  # noqa: ANN001
    # Phototag wrote "keepsake" to a.jpg's sidecar; someone copies that record into b.jpg's sidecar, where
    # the user's own tool had written "keepsake". Only a.jpg's is Phototag's to remove.
    library = tmp_path / "lib"
    a, b = noise(library / "a.jpg", 12), noise(library / "b.jpg", 13)
    index(capsys, library)
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        tag = Tag(name="keepsake", kind=CUSTOM)
        session.add(tag)
        session.flush()
        a_id = session.scalar(select(Photo.id).where(Photo.path == str(a)))
        session.add(PhotoTag(photo_id=a_id, tag_id=tag.id, source=SOURCE_USER, state=ACCEPTED,
                             updated_at=datetime.now()))
    assert main(["write-metadata", "--mode", "sidecar", "--json"]) == 0
    capsys.readouterr()
    copied = XmpPacket.parse(a.with_name("a.jpg.xmp").read_bytes())
    assert [claim.name for claim in copied.claims()] == ["keepsake"]
    b_sidecar = b.with_name("b.jpg.xmp")
    b_sidecar.write_bytes(a.with_name("a.jpg.xmp").read_bytes())
    before = b_sidecar.read_bytes()

    # b has no tag "keepsake": its claim would drop it
    assert main(["write-metadata", "--mode", "sidecar", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert all(f["removed"] == [] for f in report["files"])
    assert b_sidecar.read_bytes() == before


def test_claims_read_are_linear_in_the_writer(home, tmp_path, capsys, monkeypatch) -> None:  # noqa: ANN001
    # 8k forged claims with the same names as the file's keywords: the writer reads each once.
    library = tmp_path / "lib"
    names = [f"kw{i}" for i in range(8000)]
    photo = noise(library / "many.jpg", 14)
    photo.with_name("many.jpg.xmp").write_text(packet(names, claims=names), encoding="utf-8")
    index(capsys, library)
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(PhotoTag).where(
            PhotoTag.source == SOURCE_FILE)) == MAX_FILE_KEYWORDS
    reads = ItemReads(monkeypatch)
    assert main(["write-metadata", "--mode", "sidecar", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["removed"] for f in report["files"]] == [[]]  # was: all 8,000 of the user's keywords removed
    assert reads.calls <= 20 * len(names), reads.calls
    assert XmpPacket.parse(photo.with_name("many.jpg.xmp").read_bytes()).subject() == names


def test_claims_are_parsed_from_any_valid_form() -> None:
    # A claim as attributes, or in a nested rdf:Description, is still a claim (trusted or not).
    data = packet(["dog"]).replace(
        "</rdf:Description>",
        '<phototag:Keywords><rdf:Bag><rdf:li><rdf:Description phototag:name="dog" phototag:tag="dog"/></rdf:li>'
        "</rdf:Bag></phototag:Keywords></rdf:Description>")
    xmp = XmpPacket.parse(data.encode())
    assert xmp.claims() == [Claim("dog", "dog", "model")]
    assert xmp.merge([], drop=["dog"], trusted=frozenset()).removed == []
    assert xmp.merge([], drop=["dog"], trusted={"dog"}).removed == ["dog"]


def _tag_all(home: Path, name: str, state: str = ACCEPTED) -> None:
    with Catalog.open(home / "catalog") as catalog, catalog.session() as session, session.begin():
        tag_id = session.scalar(select(Tag.id).where(Tag.name == name))
        if tag_id is None:
            tag = Tag(name=name, kind=CUSTOM)
            session.add(tag)
            session.flush()
            tag_id = tag.id
            for photo_id in session.scalars(select(Photo.id)):
                session.add(PhotoTag(photo_id=photo_id, tag_id=tag_id, source=SOURCE_USER, state=state,
                                     updated_at=datetime.now()))
        session.execute(PhotoTag.__table__.update().where(PhotoTag.tag_id == tag_id).values(state=state))


def write_metadata(capsys) -> dict:  # noqa: ANN001
    assert main(["write-metadata", "--mode", "sidecar", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_claims_of_an_older_version_are_trusted_while_the_file_is_as_it_left_it(home, tmp_path,  # noqa: ANN001
                                                                                capsys) -> None:
    library = tmp_path / "lib"
    a, b = noise(library / "a.jpg", 15), noise(library / "b.jpg", 16)
    index(capsys, library)
    _tag_all(home, "keepsake")
    write_metadata(capsys)
    # The journal as a version before the ledger wrote it: no "claims" in its change records.
    for journal in (home / "catalog" / "metadata-runs").glob("*/journal.jsonl"):
        records = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
        assert all("claims" in record for record in records)
        journal.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "claims"}) + "\n"
                                   for r in records), encoding="utf-8")
    b_sidecar = b.with_name("b.jpg.xmp")  # another tool adds a keyword to b's sidecar, keeping the record
    b_sidecar.write_bytes(b_sidecar.read_bytes().replace(b"<rdf:li>keepsake</rdf:li>",
                                                         b"<rdf:li>keepsake</rdf:li><rdf:li>other</rdf:li>", 1))
    _tag_all(home, "keepsake", REJECTED)

    report = write_metadata(capsys)

    removed = {Path(f["target"]).name: f["removed"] for f in report["files"]}
    assert removed == {"a.jpg.xmp": ["keepsake"], "b.jpg.xmp": []}
    assert XmpPacket.parse(a.with_name("a.jpg.xmp").read_bytes()).subject() == []
    assert XmpPacket.parse(b_sidecar.read_bytes()).subject() == ["keepsake", "other"]


def test_the_claims_of_an_undone_run_are_not_trusted(home, tmp_path, capsys) -> None:  # noqa: ANN001
    library = tmp_path / "lib"
    photo = noise(library / "a.jpg", 17)
    index(capsys, library)
    _tag_all(home, "keepsake")
    run_id = write_metadata(capsys)["run"]
    sidecar = photo.with_name("a.jpg.xmp")
    copy = sidecar.read_bytes()
    assert main(["undo-metadata", run_id, "--json"]) == 0 and not sidecar.exists()
    capsys.readouterr()
    sidecar.write_bytes(copy)  # the same bytes, put back by someone: that run no longer vouches for them
    _tag_all(home, "keepsake", REJECTED)
    assert [f["removed"] for f in write_metadata(capsys)["files"]] == [[]]
    assert sidecar.read_bytes() == copy


def test_the_packet_cap_counts_bytes_for_text_too() -> None:
    # A packet handed over as text (PNG chunks are) of fewer characters than the cap but more bytes.
    from indexer.metadata.read import MAX_XMP_BYTES, parse_xmp

    text = packet(["海" * (MAX_XMP_BYTES // 3 // 3 + 1)] * 3)
    assert len(text) < MAX_XMP_BYTES < len(text.encode())
    with pytest.raises(ValueError, match="MiB"):
        parse_xmp(text)
