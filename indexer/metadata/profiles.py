"""Write profiles: where each photo app looks for keywords, as data.

Photo apps disagree on where keywords live. ``phototag write-metadata --for APP`` picks one row
of :data:`PROFILES`: which fields get the keywords, which sidecar file (``IMG.jpg.xmp`` — named
``ext`` — or ``IMG.xmp`` — ``stem``, for RAW files only), and whether JPEGs are written into
(``mode``). The default, ``all``, is the union of every row, so every listed app shows the tags.
The README's "Which app reads what" table states the same facts with their sources; a test keeps
the two in step.


Imported by ``phototag``'s parser (the names of ``--for``): it imports nothing heavy until used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

__all__ = ["DEFAULT_PROFILE", "FIELDS", "PROFILES", "SidecarName", "WriteProfile", "profile_named"]

SidecarName = Literal["ext", "stem"]

# Every field a profile can name: XMP arrays, the JPEG's IPTC-IIM keywords and EXIF XPKeywords.
SUBJECT = "dc:subject"
HIERARCHICAL = "lr:hierarchicalSubject"
TAGS_LIST = "digiKam:TagsList"
LAST_KEYWORD = "MicrosoftPhoto:LastKeywordXMP"
IPTC = "IPTC:Keywords"  # read by the app; written (the MWG way) only where a JPEG has an IPTC block already
XP_KEYWORDS = "EXIF:XPKeywords"
FIELDS: tuple[str, ...] = (SUBJECT, HIERARCHICAL, TAGS_LIST, LAST_KEYWORD, IPTC, XP_KEYWORDS)
XMP_FIELDS: tuple[str, ...] = (SUBJECT, HIERARCHICAL, TAGS_LIST, LAST_KEYWORD)


@dataclass(frozen=True)
class WriteProfile:
    """One app's conventions.

    ``mode``: where keywords go when ``--mode`` is not given (``embed``: into JPEGs, a sidecar for the
    rest). ``ext_sidecar``: ``IMG.jpg.xmp`` for every photo that gets a sidecar; ``stem_sidecar``:
    ``IMG.xmp`` for RAW files (shared by ``IMG.jpg`` and ``IMG.cr2``: it holds both photos'
    keywords). A photo that needs a sidecar under a profile naming none for it gets ``IMG.jpg.xmp``.
    """

    name: str
    app: str
    mode: Literal["sidecar", "embed", "both"]
    fields: frozenset[str]
    ext_sidecar: bool
    stem_sidecar: bool

    def sidecars(self, photo: PurePath, naming: Literal["ext", "replace"] | None = None) -> tuple[SidecarName, ...]:
        """The sidecar names a photo gets: ``naming`` (``--sidecar-naming``) overrides the profile for all."""
        if naming == "ext":
            return ("ext",)
        if naming == "replace":
            return ("stem",)
        names: list[SidecarName] = ["ext"] if self.ext_sidecar else []
        from indexer.scan import RAW_EXTENSIONS

        if self.stem_sidecar and photo.suffix.lower() in RAW_EXTENSIONS:
            names.append("stem")
        return tuple(names) or ("ext",)

    def xmp_fields(self) -> tuple[str, ...]:
        """The XMP arrays this profile writes, ``dc:subject`` always among them (every app falls back to it)."""
        return tuple(field for field in XMP_FIELDS if field == SUBJECT or field in self.fields)


def _profile(name: str, app: str, mode: Literal["sidecar", "embed", "both"], fields: Iterable[str], *,
             ext: bool, stem: bool) -> WriteProfile:
    return WriteProfile(name, app, mode, frozenset(fields), ext, stem)


PROFILES: dict[str, WriteProfile] = {profile.name: profile for profile in (
    _profile("digikam", "digiKam", "sidecar", (TAGS_LIST, SUBJECT, HIERARCHICAL, LAST_KEYWORD, IPTC),
             ext=True, stem=False),
    _profile("lightroom", "Lightroom Classic", "embed", (SUBJECT, HIERARCHICAL, IPTC), ext=False, stem=True),
    _profile("darktable", "darktable", "sidecar", (HIERARCHICAL, SUBJECT), ext=True, stem=False),
    _profile("immich", "Immich", "sidecar", (TAGS_LIST, HIERARCHICAL, SUBJECT, IPTC), ext=True, stem=False),
    _profile("capture-one", "Capture One", "embed", (SUBJECT, HIERARCHICAL, IPTC), ext=False, stem=True),
    _profile("windows", "Windows (Explorer, Photos)", "embed", (XP_KEYWORDS, SUBJECT, LAST_KEYWORD, IPTC),
             ext=False, stem=False),
)}
PROFILES["all"] = _profile("all", "every app above", "both", FIELDS, ext=True, stem=True)
DEFAULT_PROFILE = "all"


def profile_named(name: str) -> WriteProfile:
    """The profile called ``name``. Raises MetadataError naming the choices for an unknown one."""
    from indexer.errors import MetadataError

    try:
        return PROFILES[name]
    except KeyError:
        raise MetadataError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}") from None
