"""XMP packets: merging Phototag's keywords into an existing packet without clobbering anything.

A packet (a sidecar's text or a JPEG's own XMP) is parsed with ``xml.etree``, keeping every
property it holds, and written back with the namespace prefixes it used. Keywords go into the four
lists other tools read — ``dc:subject`` (everyone), ``lr:hierarchicalSubject`` (Lightroom),
``digiKam:TagsList`` (digiKam) and ``MicrosoftPhoto:LastKeywordXMP`` (Windows) — and Phototag's
own namespace records which keywords it added, with the model, its version, the score and
whether a person confirmed the tag (:class:`Claim`). That record is what makes removal safe: a
keyword is only ever removed if the packet says Phototag added it.

Rules of :meth:`XmpPacket.merge`:

- A wanted keyword already present in any of the four lists (case-insensitively; a hierarchical
  path counts by its leaf) and not claimed is someone else's: it is left alone and never claimed.
- A wanted keyword present nowhere is added to all four lists and claimed.
- A claimed keyword is removed (from all four lists, and from the record) only when asked to.
- When ``dc:subject`` does not exist yet, it starts with the photo's own keywords (``seed``:
  from IPTC, ``XPKeywords``, an embedded packet), unclaimed: tools that prefer XMP, or a sidecar,
  then still see them.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from xml.etree import ElementTree

from indexer.errors import XmpError
from indexer.metadata.read import parse_xmp

__all__ = ["NS_PHOTOTAG", "Claim", "KeywordChange", "XmpPacket", "clean_keyword", "unique_keywords"]

NS_PHOTOTAG = "https://phototag.dev/ns/1.0/"
_NS_X = "adobe:ns:meta/"
_NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_NS_DC = "http://purl.org/dc/elements/1.1/"
_NS_LR = "http://ns.adobe.com/lightroom/1.0/"
_NS_DIGIKAM = "http://www.digikam.org/ns/1.0/"
# With the slash, as Windows and exiv2 spell it; exiftool reads it too (with a minor warning: it spells
# it without one), while exiv2 would not know the slash-less form.
_NS_MICROSOFT = "http://ns.microsoft.com/photo/1.0/"
_NS_XML = "http://www.w3.org/XML/1998/namespace"

# The prefixes other tools write; a packet's own declarations win over these.
_PREFERRED_PREFIXES = {
    _NS_X: "x", _NS_RDF: "rdf", _NS_DC: "dc", _NS_LR: "lr", _NS_DIGIKAM: "digiKam",
    _NS_MICROSOFT: "MicrosoftPhoto", NS_PHOTOTAG: "phototag", _NS_XML: "xml",
}
# The keyword lists: (namespace, property, array type, how a value names its keyword).
_SUBJECT = (_NS_DC, "subject", "Bag")
_KEYWORD_LISTS = (
    _SUBJECT,
    (_NS_LR, "hierarchicalSubject", "Bag"),  # "Animals|Dogs|pug": the leaf is the keyword
    (_NS_DIGIKAM, "TagsList", "Seq"),        # "Animals/Dogs/pug"
    (_NS_MICROSOFT, "LastKeywordXMP", "Bag"),
)
_LEAF_SEPARATORS = {"hierarchicalSubject": "|", "TagsList": "/", "LastKeywordXMP": "/"}
_CLAIMS = "Keywords"  # phototag:Keywords, a bag of structures, one per keyword Phototag added
_CLAIM_FIELDS = ("name", "tag", "source", "model", "modelVersion", "score", "confirmed")
_SCORE_DIGITS = 4

_PACKET_ID = "W5M0MpCehiHzreSzNTczkc9d"  # the fixed id every XMP packet carries
_HEADER = f'<?xpacket begin="\ufeff" id="{_PACKET_ID}"?>\n'
_TRAILER = '<?xpacket end="w"?>'
_TOOLKIT = "Phototag"
_INDENT = " "
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # XML 1.0 cannot hold them
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")  # ... nor \x7f mean anything


def clean_keyword(keyword: str) -> str:
    """A keyword as it is written: NFC, control characters dropped, outer spaces trimmed."""
    return unicodedata.normalize("NFC", _CONTROL.sub("", keyword)).strip()


def unique_keywords(keywords: Iterable[str]) -> list[str]:
    """Cleaned keywords, empty ones dropped, de-duplicated case-insensitively (first spelling kept)."""
    kept: dict[str, str] = {}
    for keyword in keywords:
        if name := clean_keyword(keyword):
            kept.setdefault(name.casefold(), name)
    return list(kept.values())


def _lists(fields: Collection[str] | None) -> tuple[tuple[str, str, str], ...]:
    """The keyword lists named by ``fields`` ("dc:subject", "lr:hierarchicalSubject", ...), dc:subject always."""
    if fields is None:
        return _KEYWORD_LISTS
    named = {f"{_PREFERRED_PREFIXES[namespace]}:{name}": (namespace, name, kind)
             for namespace, name, kind in _KEYWORD_LISTS}
    return tuple(entry for key, entry in named.items() if key in fields or entry == _SUBJECT)


def _key(keyword: str) -> str:
    return clean_keyword(keyword).casefold()


@dataclass(frozen=True)
class Claim:
    """A keyword Phototag wrote, as its namespace records it.

    ``name`` is the keyword as written (English or Chinese); ``tag`` the catalog tag it stands for;
    ``source`` ``model`` or ``user``; ``model``/``model_version`` the tagger and its weights (None
    for a person's own tag); ``score`` the model's probability; ``confirmed`` whether a person
    accepted or added it.
    """

    name: str
    tag: str
    source: str
    model: str | None = None
    model_version: str | None = None
    score: float | None = None
    confirmed: bool = False

    @property
    def key(self) -> str:
        return _key(self.name)


@dataclass
class KeywordChange:
    """What a merge did: keywords added and removed, and whether Phototag's record changed."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    seeded: list[str] = field(default_factory=list)  # the photo's own keywords copied into a new dc:subject
    completed: list[str] = field(default_factory=list)  # Phototag's kept keywords added to lists that lacked them
    claims_changed: bool = False
    # Keys (casefolded names) of the claims Phototag stands by: before the merge (those trusted) and after
    # it (those kept, and its new ones). The journal records them: they are what a later run may trust.
    trusted: tuple[str, ...] = ()
    claimed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.seeded or self.completed or self.claims_changed)


class XmpPacket:
    """One parsed XMP packet (or a new, empty one). Not thread-safe; cheap to create."""

    def __init__(self, root: ElementTree.Element, prefixes: dict[str, str]) -> None:
        self._root = root  # x:xmpmeta
        self._prefixes = prefixes  # namespace URI -> prefix, as declared in the source

    # --- making one ----------------------------------------------------------------------------
    @classmethod
    def new(cls) -> XmpPacket:
        root = ElementTree.Element(f"{{{_NS_X}}}xmpmeta", {f"{{{_NS_X}}}xmptk": _TOOLKIT})
        rdf = ElementTree.SubElement(root, f"{{{_NS_RDF}}}RDF")
        ElementTree.SubElement(rdf, f"{{{_NS_RDF}}}Description", {f"{{{_NS_RDF}}}about": ""})
        return cls(root, {})

    @classmethod
    def parse(cls, data: bytes) -> XmpPacket:
        """Parse a packet: with or without the ``<?xpacket?>`` wrapper, ``x:xmpmeta`` or a bare ``rdf:RDF``.

        Raises:
            XmpError: not well-formed XML, a DTD (never in XMP), or no ``rdf:RDF`` in it.
        """
        try:
            root, prefixes = parse_xmp(data)
        except ValueError as exc:
            raise XmpError(str(exc)) from None
        if root.tag == f"{{{_NS_RDF}}}RDF":
            wrapper = ElementTree.Element(f"{{{_NS_X}}}xmpmeta")
            wrapper.append(root)
            root = wrapper
        if root.find(f"{{{_NS_RDF}}}RDF") is None:
            if root.tag != f"{{{_NS_X}}}xmpmeta":
                raise XmpError(f"no rdf:RDF element under <{root.tag}>: not an XMP packet")
            ElementTree.SubElement(root, f"{{{_NS_RDF}}}RDF")  # an empty <x:xmpmeta/>: an empty packet
        return cls(root, prefixes)

    # --- reading -------------------------------------------------------------------------------
    @property
    def _rdf(self) -> ElementTree.Element:
        rdf = self._root.find(f"{{{_NS_RDF}}}RDF")
        assert rdf is not None
        return rdf

    def _descriptions(self) -> list[ElementTree.Element]:
        return self._rdf.findall(f"{{{_NS_RDF}}}Description")

    def values(self, namespace: str, name: str) -> list[str]:
        """The items of one array property (or its value, for a simple one), in order."""
        values = []
        for description in self._descriptions():
            if (attribute := description.get(f"{{{namespace}}}{name}")) is not None:
                values.append(attribute)
            for prop in description.findall(f"{{{namespace}}}{name}"):
                container = _container(prop)
                if container is None:
                    values.append(prop.text or "")
                else:
                    values.extend(_item_text(item) for item in container.findall(f"{{{_NS_RDF}}}li"))
        return [value for value in values if value.strip()]

    def subject(self) -> list[str]:
        return self.values(_NS_DC, "subject")

    def hierarchical_subject(self) -> list[str]:
        return self.values(_NS_LR, "hierarchicalSubject")

    def tags_list(self) -> list[str]:
        return self.values(_NS_DIGIKAM, "TagsList")

    def last_keyword_xmp(self) -> list[str]:
        return self.values(_NS_MICROSOFT, "LastKeywordXMP")

    def keywords(self) -> list[str]:
        """Every keyword the packet states (list leaves included), cleaned, de-duplicated, in order."""
        found: dict[str, str] = {}
        for namespace, name, _kind in _KEYWORD_LISTS:
            separator = _LEAF_SEPARATORS.get(name)
            for value in self.values(namespace, name):
                keyword = clean_keyword(value.rsplit(separator, 1)[-1] if separator else value)
                if keyword:
                    found.setdefault(keyword.casefold(), keyword)
        return list(found.values())

    def claims(self) -> list[Claim]:
        """The keywords Phototag's namespace says it added (malformed entries are skipped)."""
        claims = []
        for description in self._descriptions():
            for prop in description.findall(f"{{{NS_PHOTOTAG}}}{_CLAIMS}"):
                container = _container(prop)
                for item in container.findall(f"{{{_NS_RDF}}}li") if container is not None else []:
                    claim = _read_claim(item)
                    if claim is not None:
                        claims.append(claim)
        return claims

    # --- changing ------------------------------------------------------------------------------
    def merge(self, wanted: Sequence[Claim], drop: Iterable[str] = (), seed: Iterable[str] = (),
              elsewhere: Iterable[str] = (), trusted: Collection[str] | None = None,
              fields: Collection[str] | None = None, seed_paths: Iterable[Sequence[str]] = ()) -> KeywordChange:
        """Add the ``wanted`` keywords, remove the claimed ones whose key (casefolded name) is in
        ``drop``, and rewrite Phototag's record. ``fields`` are the lists new keywords go into
        (``dc:subject``, ``lr:hierarchicalSubject``, ``digiKam:TagsList``, ``MicrosoftPhoto:LastKeywordXMP``;
        None: all four; a write profile's choice); a keyword Phototag keeps is also added to any of them
        that lacks it (``change.completed``), and one holding a list's path separator stays out of that
        list. Removal is from every list. A path list (``lr:hierarchicalSubject``, ``digiKam:TagsList``,
        ``MicrosoftPhoto:LastKeywordXMP``) created here starts with the keywords the photo has already — the
        paths of the packet's other path lists and ``seed_paths`` (the photo's own, root first), in its
        separator, and the flat keywords no path names — since apps that read such a list first (darktable,
        Immich) read nothing else. ``seed`` starts a ``dc:subject`` that does not exist;
        ``elsewhere`` are keywords the same file states outside this packet (IPTC, XPKeywords): like
        the seed, they are someone else's and never claimed. Returns what changed.

        ``trusted`` are the keys of the claims to believe: what Phototag knows it wrote to this file
        (its journal). Anyone can write a ``phototag:Keywords`` entry, so a claim outside ``trusted``
        is never acted on: its keyword counts as someone else's, and the entry stays in the record
        as it is. None believes every claim (a packet Phototag made itself).

        Linear in the packet's size and the number of keywords, whatever the record holds."""
        seeded = [] if self.subject() else unique_keywords(seed)
        present = {keyword.casefold() for keyword in [*self.keywords(), *seeded, *unique_keywords(elsewhere)]}
        record = self.claims()
        old = {claim.key: claim for claim in record if trusted is None or claim.key in trusted}
        ours: dict[str, Claim] = {}
        for claim in wanted:
            name = clean_keyword(claim.name)
            if not name or (claim.key in present and claim.key not in old):
                continue  # someone else's keyword: leave it alone, never claim it
            ours.setdefault(claim.key, _as_written(claim, name))
        dropped = {key: old[key].name for key in dict.fromkeys(_key(name) for name in drop)
                   if key in old and key not in ours}
        change = KeywordChange(removed=list(dropped.values()), trusted=tuple(old))
        self._remove_everywhere(dropped.keys())
        change.added = [claim.name for key, claim in ours.items() if key not in present]
        if change.added and seeded:
            change.seeded = seeded
            self._add_everywhere(seeded, only=_SUBJECT)
        lists = _lists(fields)
        if change.added:
            change.seeded = unique_keywords([*change.seeded, *self._start_path_lists(lists, seed_paths)])
        self._add_everywhere(change.added, lists)
        kept = [claim.name for key, claim in ours.items() if key in old and key not in dropped]
        change.completed = self._add_everywhere(kept, lists)
        claims = {claim.key: claim for claim in record if claim.key not in dropped} | ours
        change.claimed = tuple(key for key in claims if key in old or key in ours)
        if list(claims.values()) != record:
            self._write_claims(list(claims.values()))
            change.claims_changed = True
        return change

    def _start_path_lists(self, lists: Sequence[tuple[str, str, str]],
                          seed_paths: Iterable[Sequence[str]]) -> list[str]:
        """Start each path list of ``lists`` that is empty with the keywords the photo has (see :meth:`merge`)."""
        empty = [entry for entry in lists if entry[1] in _LEAF_SEPARATORS and not self.values(*entry[:2])]
        if not empty:
            return []
        paths: dict[tuple[str, ...], tuple[str, ...]] = {}
        for namespace, name, _kind in _KEYWORD_LISTS:
            separator = _LEAF_SEPARATORS.get(name)
            for value in self.values(namespace, name) if separator else ():
                names = tuple(part for part in (clean_keyword(piece) for piece in value.split(separator)) if part)
                if len(names) > 1:
                    paths.setdefault(tuple(part.casefold() for part in names), names)
        for path in seed_paths:
            names = tuple(part for part in (clean_keyword(piece) for piece in path) if part)
            if len(names) > 1:
                paths.setdefault(tuple(part.casefold() for part in names), names)
        named = {part for key in paths for part in key}
        flat = [keyword for keyword in unique_keywords(self.subject()) if keyword.casefold() not in named]
        started: dict[str, str] = {}
        for namespace, name, kind in empty:
            separator = _LEAF_SEPARATORS[name]
            entries = [separator.join(names) for names in paths.values() if not any(separator in n for n in names)]
            entries += [keyword for keyword in flat if separator not in keyword]
            if entries:
                container = self._array(namespace, name, kind)
                for entry in entries:
                    ElementTree.SubElement(container, f"{{{_NS_RDF}}}li").text = entry
                    started.setdefault(entry.casefold(), entry)
        return list(started.values())

    def add_to_subject(self, keywords: Iterable[str]) -> list[str]:
        """Add keywords to ``dc:subject`` only (unclaimed: someone else's), those it lacks; returns them."""
        return self._add_everywhere(unique_keywords(keywords), only=_SUBJECT)

    def _home(self) -> ElementTree.Element:
        """The rdf:Description new properties go into: the one holding dc:subject, else the first."""
        descriptions = self._descriptions()
        for description in descriptions:
            if description.find(f"{{{_NS_DC}}}subject") is not None:
                return description
        if descriptions:
            return descriptions[0]
        return ElementTree.SubElement(self._rdf, f"{{{_NS_RDF}}}Description", {f"{{{_NS_RDF}}}about": ""})

    def _array(self, namespace: str, name: str, kind: str) -> ElementTree.Element:
        """The array (rdf:Bag/Seq/Alt) of a property, created where it does not exist yet."""
        tag = f"{{{namespace}}}{name}"
        for description in self._descriptions():
            for prop in description.findall(tag):
                container = _container(prop)
                if container is not None:
                    return container
                # A single value where an array belongs: turn it into a one-item array.
                value = prop.text or ""
                prop.text = None
                container = ElementTree.SubElement(prop, f"{{{_NS_RDF}}}{kind}")
                if value.strip():
                    ElementTree.SubElement(container, f"{{{_NS_RDF}}}li").text = value
                return container
            if (attribute := description.attrib.pop(tag, None)) is not None:
                prop = ElementTree.SubElement(description, tag)
                container = ElementTree.SubElement(prop, f"{{{_NS_RDF}}}{kind}")
                if attribute.strip():
                    ElementTree.SubElement(container, f"{{{_NS_RDF}}}li").text = attribute
                return container
        prop = ElementTree.SubElement(self._home(), tag)
        return ElementTree.SubElement(prop, f"{{{_NS_RDF}}}{kind}")

    def _add_everywhere(self, names: Sequence[str], lists: Sequence[tuple[str, str, str]] = _KEYWORD_LISTS,
                        *, only: tuple[str, str, str] | None = None) -> list[str]:
        """Add each keyword to each list lacking it (a list's separator keeps a keyword out of it);
        returns the keywords added somewhere."""
        added: dict[str, str] = {}
        if not names:
            return []
        for namespace, name, kind in (only,) if only else lists:
            separator = _LEAF_SEPARATORS.get(name)
            fitting = [keyword for keyword in names if not (separator and separator in keyword)]
            if not fitting:
                continue
            container = self._array(namespace, name, kind)
            there = {_key(_item_text(item)) for item in container.findall(f"{{{_NS_RDF}}}li")}
            for keyword in fitting:
                if keyword.casefold() not in there:
                    ElementTree.SubElement(container, f"{{{_NS_RDF}}}li").text = keyword
                    there.add(keyword.casefold())
                    added.setdefault(keyword.casefold(), keyword)
        return list(added.values())

    def _remove_everywhere(self, keys: Collection[str]) -> None:
        """Remove the items whose key is in ``keys`` (top-level entries: exactly what Phototag writes) from
        every keyword list, in one pass over the packet."""
        if not keys:
            return
        lists = {f"{{{namespace}}}{name}" for namespace, name, _kind in _KEYWORD_LISTS}
        item_tag = f"{{{_NS_RDF}}}li"
        for description in self._descriptions():
            for tag in lists.intersection(description.keys()):
                if _key(description.attrib[tag]) in keys:
                    del description.attrib[tag]
            emptied: set[int] = set()
            for prop in description:
                if prop.tag not in lists:
                    continue
                container = _container(prop)
                if container is None:
                    if _key(prop.text or "") in keys:
                        emptied.add(id(prop))
                    continue
                kept = [item for item in container if item.tag != item_tag or _key(_item_text(item)) not in keys]
                if len(kept) == len(container):
                    continue
                container[:] = kept
                if not any(item.tag == item_tag for item in kept):
                    emptied.add(id(prop))  # we emptied it: leave no empty list behind
            _remove_children(description, emptied)

    def _write_claims(self, claims: list[Claim]) -> None:
        tag = f"{{{NS_PHOTOTAG}}}{_CLAIMS}"
        for description in self._descriptions():
            _remove_children(description, {id(prop) for prop in description.findall(tag)})
        if not claims:
            return
        bag = ElementTree.SubElement(ElementTree.SubElement(self._home(), tag), f"{{{_NS_RDF}}}Bag")
        for claim in claims:
            item = ElementTree.SubElement(bag, f"{{{_NS_RDF}}}li", {f"{{{_NS_RDF}}}parseType": "Resource"})
            values = {
                "name": claim.name, "tag": claim.tag, "source": claim.source, "model": claim.model,
                "modelVersion": claim.model_version,
                "score": None if claim.score is None else f"{claim.score:.{_SCORE_DIGITS}f}",
                "confirmed": "True" if claim.confirmed else "False",
            }
            for name in _CLAIM_FIELDS:
                if values[name] is not None:
                    ElementTree.SubElement(item, f"{{{NS_PHOTOTAG}}}{name}").text = values[name]

    # --- writing -------------------------------------------------------------------------------
    def to_bytes(self, padding: int = 0) -> bytes:
        """The packet, UTF-8, in its ``<?xpacket?>`` wrapper, with ``padding`` bytes of spaces for
        in-place edits (XMP's convention inside files; sidecars need none)."""
        prefixes = _prefix_map(self._root, self._prefixes)
        out = io.StringIO()
        out.write(_HEADER)
        _serialize(self._root, prefixes, set(), out, 0)
        out.write("\n")
        body = out.getvalue().encode("utf-8")
        pad = b""
        if padding > 0:
            line = b" " * 99 + b"\n"
            pad = (line * (padding // 100 + 1))[:padding]
        return body + pad + _TRAILER.encode("ascii")


# --- helpers -----------------------------------------------------------------------------------


def _remove_children(parent: ElementTree.Element, ids: set[int]) -> None:
    """Remove the children whose id() is in ``ids``, in one pass (``remove`` searches: n of them is n²)."""
    if ids:
        parent[:] = [child for child in parent if id(child) not in ids]


def _container(prop: ElementTree.Element) -> ElementTree.Element | None:
    for kind in ("Bag", "Seq", "Alt"):
        container = prop.find(f"{{{_NS_RDF}}}{kind}")
        if container is not None:
            return container
    return None


def _item_text(item: ElementTree.Element) -> str:
    if item.text and item.text.strip():
        return item.text
    value = item.find(f".//{{{_NS_RDF}}}value")  # a qualified value
    return (value.text or "") if value is not None else ""


def _as_written(claim: Claim, name: str) -> Claim:
    """A claim as it reads back once written: text XML can hold, the score rounded (so an unchanged claim
    compares equal to its record)."""
    return replace(claim, name=name, tag=_NOT_XML.sub("", claim.tag) or name,
                   model=_NOT_XML.sub("", claim.model or "") or None,
                   model_version=_NOT_XML.sub("", claim.model_version or "") or None,
                   score=None if claim.score is None else round(claim.score, _SCORE_DIGITS))


def _read_claim(item: ElementTree.Element) -> Claim | None:
    """One rdf:li of phototag:Keywords: parseType="Resource", a nested rdf:Description, or attributes."""
    fields: dict[str, str] = {}
    holders = [item, *item.findall(f"{{{_NS_RDF}}}Description")]
    for holder in holders:
        for name in _CLAIM_FIELDS:
            tag = f"{{{NS_PHOTOTAG}}}{name}"
            if (attribute := holder.get(tag)) is not None:
                fields.setdefault(name, attribute)
            child = holder.find(tag)
            if child is not None and child.text is not None:
                fields.setdefault(name, child.text)
    name = clean_keyword(fields.get("name", ""))
    if not name:
        return None
    try:
        score = float(fields["score"]) if fields.get("score") else None
    except ValueError:
        score = None
    return Claim(
        name=name, tag=fields.get("tag") or name, source=fields.get("source") or "model",
        model=fields.get("model"), model_version=fields.get("modelVersion"), score=score,
        confirmed=fields.get("confirmed", "").strip().lower() == "true",
    )


def _namespaces_in(element: ElementTree.Element) -> Iterable[str]:
    for node in element.iter():
        if node.tag.startswith("{"):
            yield node.tag[1:].split("}", 1)[0]
        for attribute in node.attrib:
            if attribute.startswith("{"):
                yield attribute[1:].split("}", 1)[0]


def _prefix_map(root: ElementTree.Element, declared: dict[str, str]) -> dict[str, str]:
    """A prefix per namespace used: the packet's own, then the usual one, then ns1, ns2, ..."""
    prefixes: dict[str, str] = {}
    taken: set[str] = set()
    for uri in dict.fromkeys(_namespaces_in(root)):
        for candidate in (declared.get(uri), _PREFERRED_PREFIXES.get(uri)):
            if candidate and candidate not in taken and candidate != "xmlns":
                break
        else:
            number = 1
            while f"ns{number}" in taken:
                number += 1
            candidate = f"ns{number}"
        prefixes[uri] = candidate
        taken.add(candidate)
    prefixes[_NS_XML] = "xml"
    return prefixes


def _qname(name: str, prefixes: dict[str, str]) -> tuple[str, str | None]:
    if name.startswith("{"):
        uri, local = name[1:].split("}", 1)
        return f"{prefixes[uri]}:{local}", uri
    return name, None


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _escape_attribute(text: str) -> str:
    return (_escape_text(text).replace('"', "&quot;").replace("\n", "&#xA;").replace("\t", "&#x9;"))


def _serialize(element: ElementTree.Element, prefixes: dict[str, str], in_scope: set[str],
               out: io.StringIO, depth: int) -> None:
    """Write one element. Namespaces are declared where first needed (on an rdf:Description: all
    those its properties use, XMP's habit); whitespace between elements is re-indented, values are
    written exactly as they are."""
    tag, uri = _qname(element.tag, prefixes)
    needed = list(dict.fromkeys(
        _namespaces_in(element) if element.tag == f"{{{_NS_RDF}}}Description"
        else [u for u in [uri, *(_qname(a, prefixes)[1] for a in element.attrib)] if u]))
    declare = [u for u in needed if u not in in_scope and u != _NS_XML]
    scope = in_scope | set(declare)
    attributes = [f'xmlns:{prefixes[u]}="{_escape_attribute(u)}"' for u in declare]
    attributes += [f'{_qname(key, prefixes)[0]}="{_escape_attribute(value)}"' for key, value in element.attrib.items()]
    pad = "\n" + _INDENT * depth
    opening = f"<{tag}" + "".join(
        (f"{pad}{_INDENT * 2}" if len(attributes) > 1 else " ") + attribute for attribute in attributes)
    children = list(element)
    literal = element.get(f"{{{_NS_RDF}}}parseType") == "Literal"
    if not children:
        out.write(f"{opening}/>" if not element.text else f"{opening}>{_escape_text(element.text)}</{tag}>")
        return
    if literal or (element.text and element.text.strip()):
        # Mixed content (an XML literal): keep every character as it is.
        out.write(f"{opening}>{_escape_text(element.text or '')}")
        for child in children:
            _serialize_verbatim(child, prefixes, scope, out)
        out.write(f"</{tag}>")
        return
    out.write(f"{opening}>")
    for child in children:
        out.write("\n" + _INDENT * (depth + 1))
        _serialize(child, prefixes, scope, out, depth + 1)
    out.write(f"{pad}</{tag}>")


def _serialize_verbatim(element: ElementTree.Element, prefixes: dict[str, str], in_scope: set[str],
                        out: io.StringIO) -> None:
    tag, uri = _qname(element.tag, prefixes)
    needed = [u for u in [uri, *(_qname(a, prefixes)[1] for a in element.attrib)] if u]
    declare = [u for u in dict.fromkeys(needed) if u not in in_scope and u != _NS_XML]
    scope = in_scope | set(declare)
    attributes = [f' xmlns:{prefixes[u]}="{_escape_attribute(u)}"' for u in declare]
    attributes += [f' {_qname(n, prefixes)[0]}="{_escape_attribute(v)}"' for n, v in element.attrib.items()]
    out.write(f"<{tag}{''.join(attributes)}>{_escape_text(element.text or '')}")
    for child in element:
        _serialize_verbatim(child, prefixes, scope, out)
    out.write(f"</{tag}>{_escape_text(element.tail or '')}")


# --- Extended XMP (a JPEG's packet over 64 KB) --------------------------------------------------

_NS_XMP_NOTE = "http://ns.adobe.com/xmp/note/"
_HAS_EXTENDED = f"{{{_NS_XMP_NOTE}}}HasExtendedXMP"


def extended_xmp_guid(extended: bytes) -> str:
    """The GUID of an Extended XMP serialization: the upper-case hex MD5 of its bytes (XMP part 3, 1.1.3.1)."""
    return hashlib.md5(extended, usedforsecurity=False).hexdigest().upper()


def named_extended_xmp(packet: bytes) -> str | None:
    """The GUID a JPEG's standard packet names in ``xmpNote:HasExtendedXMP`` (None: none, or unreadable)."""
    if _HAS_EXTENDED.split("}")[1].encode() not in packet:
        return None
    try:
        values = XmpPacket.parse(packet).values(_NS_XMP_NOTE, "HasExtendedXMP")
    except XmpError:
        return None
    return values[0].strip() if values else None


def join_extended_xmp(packet: bytes, extended: bytes) -> bytes:
    """One packet holding the properties of a JPEG's standard packet and of its Extended XMP (without
    ``xmpNote:HasExtendedXMP``, which names the split, not the photo).

    Raises:
        XmpError: either does not parse.
    """
    main, more = XmpPacket.parse(packet), XmpPacket.parse(extended)
    _drop_has_extended(main)
    main._rdf.extend(more._descriptions())
    return XmpPacket(main._root, more._prefixes | main._prefixes).to_bytes()


def split_extended_xmp(packet: XmpPacket, limit: int, padding: int = 0) -> tuple[bytes, bytes | None]:
    """The packet as a JPEG holds it: its standard packet (at most ``limit`` bytes, with up to ``padding``
    bytes of spaces where they fit) and its Extended XMP, None when the whole packet fits.

    A larger packet moves whole top-level properties into the Extended XMP, the largest first — the
    keyword lists last, so that readers without Extended XMP still see the keywords — until the rest
    fits; the standard packet then names the Extended XMP's GUID in ``xmpNote:HasExtendedXMP``. The
    Extended XMP is an ``x:xmpmeta`` element without a packet wrapper. ``packet`` is not changed.

    Raises:
        XmpError: the standard packet would not fit even with every property moved.
    """
    whole = packet.to_bytes()
    if len(whole) <= limit:
        return packet.to_bytes(padding=min(padding, limit - len(whole))), None
    main = XmpPacket(copy.deepcopy(packet._root), {_NS_XMP_NOTE: "xmpNote"} | packet._prefixes)
    _drop_has_extended(main)
    descriptions = main._descriptions()
    if not descriptions:
        raise XmpError("no rdf:Description to split")
    keyword_lists = {f"{{{namespace}}}{name}" for namespace, name, _kind in _KEYWORD_LISTS}
    prefixes = _prefix_map(main._root, main._prefixes)
    movable: list[tuple[bool, int, ElementTree.Element, str | ElementTree.Element]] = []
    for description in descriptions:  # each property with its size as written (under x:xmpmeta/rdf:RDF/rdf:Description)
        for key, value in description.attrib.items():
            if key.startswith("{") and not key.startswith(f"{{{_NS_RDF}}}"):
                weight = len(f'\n{_INDENT * 4}{_qname(key, prefixes)[0]}="{_escape_attribute(value)}"'.encode())
                movable.append((False, weight, description, key))
        for prop in description:
            out = io.StringIO()
            _serialize(prop, prefixes, set(prefixes), out, 3)
            movable.append((prop.tag in keyword_lists, len(out.getvalue().encode()) + 4, description, prop))
    movable.sort(key=lambda item: (item[0], -item[1]))
    descriptions[0].set(_HAS_EXTENDED, "0" * 32)  # the GUID's length: replaced once the extension is known
    extended = ElementTree.Element(f"{{{_NS_X}}}xmpmeta", {f"{{{_NS_X}}}xmptk": _TOOLKIT})
    rdf = ElementTree.SubElement(extended, f"{{{_NS_RDF}}}RDF")
    homes: dict[int, ElementTree.Element] = {}
    size = len(main.to_bytes())
    for number, (_keywords, weight, description, moved) in enumerate(movable, 1):
        home = homes.get(id(description))
        if home is None:
            about = {f"{{{_NS_RDF}}}about": description.get(f"{{{_NS_RDF}}}about", "")}
            home = homes[id(description)] = ElementTree.SubElement(rdf, f"{{{_NS_RDF}}}Description", about)
        if isinstance(moved, str):
            home.set(moved, description.attrib.pop(moved))
        else:
            description.remove(moved)
            home.append(moved)
        size -= weight
        if size <= limit or number == len(movable):
            size = len(main.to_bytes())  # the estimate says it fits (or nothing is left to move): measure
            if size <= limit:
                break
    else:
        raise XmpError(f"even without its properties the packet exceeds {limit} bytes")
    out = io.StringIO()
    _serialize(extended, _prefix_map(extended, main._prefixes), set(), out, 0)
    serialized = out.getvalue().encode("utf-8")
    descriptions[0].set(_HAS_EXTENDED, extended_xmp_guid(serialized))
    return main.to_bytes(padding=min(padding, limit - size)), serialized


def _drop_has_extended(packet: XmpPacket) -> None:
    for description in packet._descriptions():
        description.attrib.pop(_HAS_EXTENDED, None)
        _remove_children(description, {id(prop) for prop in description.findall(_HAS_EXTENDED)})
