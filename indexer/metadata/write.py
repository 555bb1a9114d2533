"""Writing the catalog's tags into photos' metadata: safely, verifiably and reversibly.

``MetadataWriter(catalog, options).run(photo_ids)`` writes, for each photo, the keywords of its
tags into an XMP sidecar (the default), into the JPEG itself (``embed``: the XMP packet and EXIF
``XPKeywords``), or both. Per photo:

1. **Check** it is indexed and unchanged since: same size and mtime as the catalog row (and, when
   the file itself is rewritten, the same content hash). A changed file is skipped — its tags
   describe other bytes; ``phototag index`` first.
2. **Plan** each target file: parse what is there (never overwrite an XMP that cannot be read),
   merge (:mod:`indexer.metadata.xmp`: keep everything, add ours, remove only ours), and compare.
   A dry run stops here and reports the keywords to add and remove.
3. **Stage** the new bytes in a temporary file next to the target (fsynced) and **verify** them:
   the keywords read back with our own reader; for a JPEG, every other segment, the scan data and
   the decoded pixels are identical (:func:`indexer.metadata.embed.verify`).
4. **Journal**: back the target up into the run's folder and record the change, durably, before
   anything is replaced (:mod:`indexer.metadata.journal`).
5. **Commit**: rename over the target, fsync the folder. If a photo has two targets and the
   second fails, the first is put back: a photo is written completely or not at all.

A read-only file or folder, a full disk, an unreadable XMP or a failed verification skips that
photo with a reason; the run goes on. So does a link, FIFO or device where a sidecar (or the photo
itself) belongs: every file is opened by the rule of :mod:`indexer.metadata._files` — relative to
the photo's folder, never through a link, never blocking, a regular file or nothing. Which tags become keywords:

- ``include="accepted"`` (default): tags a person accepted or added (state ``accepted``, source
  ``model`` or ``user``); ``"suggested"`` adds the model's suggestions above their thresholds.
- Tags read from the file (source ``file``) are never written back: they are there already. A new
  ``dc:subject`` (a new sidecar, a JPEG's first XMP keywords) starts with the photo's own keywords
  so tools that read only that list still see them.
- A keyword Phototag wrote is removed when a person rejected the tag or the photo no longer has
  it; switching ``include`` or ``lang`` later removes nothing (undo the run for that).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from indexer._paths import folder_prefix
from indexer.catalog import Catalog
from indexer.errors import CatalogError, FileSkipped, MetadataError, XmpError
from indexer.index import under
from indexer.metadata import embed as jpeg_embed
from indexer.metadata._files import Folder, Staged, bytes_hash, skipped_for
from indexer.metadata.iptc import MAX_KEYWORD_BYTES, IptcBlock, keywords_left_out
from indexer.metadata.journal import ClaimLedger, Journal
from indexer.metadata.profiles import DEFAULT_PROFILE, XP_KEYWORDS, WriteProfile, profile_named
from indexer.metadata.read import MAX_XMP_BYTES, read_keywords_from_xmp, read_photo_info
from indexer.metadata.xmp import Claim, KeywordChange, XmpPacket, unique_keywords
from indexer.schema import (
    ACCEPTED,
    INDEXED,
    REJECTED,
    SOURCE_FILE,
    SOURCE_MODEL,
    SUGGESTED,
    Photo,
    PhotoTag,
    Tag,
    recorded_ns,
)

Mode = Literal["sidecar", "embed", "both"]
Include = Literal["accepted", "suggested"]
Lang = Literal["en", "zh", "both"]
Naming = Literal["ext", "replace"]
MODES: tuple[str, ...] = ("sidecar", "embed", "both")
INCLUDES: tuple[str, ...] = ("accepted", "suggested")
LANGS: tuple[str, ...] = ("en", "zh", "both")
NAMINGS: tuple[str, ...] = ("ext", "replace")

EMBEDDABLE_FORMATS = frozenset({"jpeg", "mpo"})  # WebP, HEIC, PNG, ...: sidecars
_SIDECAR_INSTEAD = frozenset({"unsupported", "link"})  # a photo not embedded into for these gets a sidecar
_PHOTOS_PER_QUERY = 500
_FOLDERS_KEPT = 64
_HARD_LINKS = "it had {} hard links: this path now has its own copy, the others keep the old bytes"
_T = TypeVar("_T")


@dataclass(frozen=True)
class WriteOptions:
    """What one run writes, where, and how. ``profile`` names the app(s) written for
    (:mod:`indexer.metadata.profiles`: fields, sidecar names, and where keywords go when ``mode`` is
    None); ``sidecar_naming`` overrides its sidecar names for every photo. ``keep_mtime`` keeps a
    rewritten photo's modification time (sidecars always get the current time, so that tools
    watching them notice)."""

    mode: Mode | None = None
    include: Include = "accepted"
    lang: Lang = "en"
    sidecar_naming: Naming | None = None
    profile: str = DEFAULT_PROFILE
    keep_mtime: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (("mode", MODES), ("include", INCLUDES), ("lang", LANGS),
                              ("sidecar_naming", NAMINGS)):
            value = getattr(self, name)
            if value not in allowed and not (value is None and name in ("mode", "sidecar_naming")):
                raise MetadataError(f"unknown {name} {value!r}: use one of {', '.join(allowed)}")
        profile_named(self.profile)

    @property
    def write_profile(self) -> WriteProfile:
        return profile_named(self.profile)

    @property
    def where(self) -> Mode:
        """Where keywords go: ``mode``, else the profile's choice."""
        return self.mode or self.write_profile.mode


_RECORD_ONLY = "(only Phototag's record of its keywords changed)"  # a file whose keywords stay as they were


@dataclass(frozen=True)
class FileReport:
    """One target file of one photo: what was (or, in a dry run, would be) done to it.

    ``status``: ``written``, ``would_write``, ``unchanged`` or ``skipped`` (with ``reason``, a short
    word, and ``message``). ``kind``: ``sidecar`` or ``embedded``; ``target`` is None when the photo
    was skipped before a target was chosen. ``notes`` say, e.g., why a photo got a sidecar instead.
    A sidecar several photos share (``--sidecar-naming replace``) is one report, under the first of
    them selected, with a note naming the others.
    """

    photo: str
    target: str | None
    kind: str | None
    status: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    created: bool = False
    reason: str | None = None
    message: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"added": list(self.added), "removed": list(self.removed), "notes": list(self.notes)}

    def line(self) -> str:
        """This file in one line, as ``phototag write-metadata`` and the app list it (its notes aside)."""
        if self.status == "skipped":
            return f"skipped: {self.message}"
        if self.status == "unchanged":
            return f"unchanged: {self.target or self.photo}"
        verb = "would write" if self.status == "would_write" else "wrote"
        new = " (new)" if self.created else ""
        changes = "  ".join([f"+{name}" for name in self.added] + [f"-{name}" for name in self.removed])
        return f"{verb} {self.kind} {self.target}{new}: {changes or _RECORD_ONLY}"


@dataclass
class WriteSummary:
    run_id: str | None  # None: nothing was written (a dry run, or nothing to change)
    dry_run: bool
    files: list[FileReport] = field(default_factory=list)
    interrupted: bool = False

    def counts(self) -> dict[str, int]:
        counts = {"written": 0, "would_write": 0, "unchanged": 0, "skipped": 0}
        for report in self.files:
            counts[report.status] = counts.get(report.status, 0) + 1
        return counts

    @property
    def skipped(self) -> list[FileReport]:
        return [report for report in self.files if report.status == "skipped"]


def select_photos(catalog: Catalog, query: str | None = None, searcher: Any = None,
                  min_score: float | None = None) -> list[int]:
    """Photo ids to write: those matching ``query`` (through ``searcher``, an
    ``indexer.search.engine.Searcher``), or every indexed photo when there is no query."""
    if not query or not query.strip():
        with catalog.session() as session:
            return list(session.scalars(select(Photo.id).where(Photo.status == INDEXED).order_by(Photo.path)))
    if searcher is None:
        from indexer.search.engine import Searcher

        searcher = Searcher(catalog)
    found = searcher.search(query, limit=None, min_score=min_score)
    return [result.photo_id for result in found.results]


@dataclass(frozen=True)
class _TagRow:
    name: str
    name_zh: str | None
    source: str
    state: str
    score: float | None
    model_version: str | None


@dataclass(frozen=True)
class _PhotoRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    format: str | None
    status: str
    tags: tuple[_TagRow, ...]


@dataclass
class _Plan:
    """One target file of one or more photos: its bytes now and after, and how to check what was written."""

    kind: str  # sidecar or embedded
    folder: Folder  # the photos' folder, held open: the file is the entry ``name`` in it
    name: str
    photo: str  # the photo the report names (a shared sidecar: the first one selected)
    old: bytes | None  # None: the file does not exist yet
    new: bytes
    change: KeywordChange
    stat: os.stat_result | None
    verify: Callable[[bytes], None]
    photo_id: int | None = None  # embedded: the catalog row to update
    mtime_ns: int | None = None  # keep this mtime (--keep-mtime)
    notes: tuple[str, ...] = ()

    @property
    def shown(self) -> Path:
        """The file's path (as the catalog spells its folder), for messages, the journal and the ledger."""
        return self.folder.shown(self.name)

    @property
    def changed(self) -> bool:
        return self.change.changed


class MetadataWriter:
    """Writes tags into photos' metadata for one catalog (see the module docs).

    The caller holds the catalog's writer lock (``catalog.writer(task="write-metadata")``) for a
    run that writes; a dry run only reads. ``on_file`` is called with each report as it is made;
    once ``stop`` is set the run ends after the current photo (or the photos sharing its sidecar).

    Photos that share a sidecar (``--sidecar-naming replace``: ``IMG.jpg`` and ``IMG.cr2`` both use
    ``IMG.xmp``) are written together, once: the sidecar states the union of their keywords, and a
    keyword Phototag wrote there goes only when none of them still has its tag. The photos sharing
    it are found in the catalog, whether the run selected them or not.
    """

    def __init__(self, catalog: Catalog, options: WriteOptions | None = None, *,
                 on_file: Callable[[FileReport], None] | None = None, stop: threading.Event | None = None) -> None:
        self.catalog = catalog
        self.options = options or WriteOptions()
        self.on_file = on_file
        self.stop = stop
        self._journal: Journal | None = None
        self._ledger: ClaimLedger | None = None
        self._started_ns = time.time_ns()
        self._cleaned: set[str] = set()  # folders whose leftover temporaries are gone
        self._folders: dict[str, dict[str, tuple[_PhotoRow, ...]]] = {}  # naming replace: folder -> stem -> rows

    # --- a run ---------------------------------------------------------------------------------
    def run(self, photo_ids: Sequence[int]) -> WriteSummary:
        summary = WriteSummary(None, self.options.dry_run)
        self._started_ns = time.time_ns()
        selected = set(photo_ids)
        done: set[int] = set()  # written already, with an earlier photo sharing their sidecar
        try:
            for photo in self._photos(photo_ids):
                if photo.id in done:
                    continue
                if self.stop is not None and self.stop.is_set():
                    summary.interrupted = True
                    break
                sharing = self._sharing(photo)
                group = [photo, *(other for other in sharing if other.id in selected and other.id != photo.id)]
                done.update(member.id for member in group)
                for report in self._group(group, sharing):
                    summary.files.append(report)
                    if self.on_file is not None:
                        self.on_file(report)
        finally:
            if self._journal is not None:
                summary.run_id = self._journal.id
                self._journal.finish(summary.counts())
        return summary

    def _photos(self, photo_ids: Sequence[int]) -> Iterator[_PhotoRow]:
        ids = list(dict.fromkeys(photo_ids))
        for start in range(0, len(ids), _PHOTOS_PER_QUERY):
            chunk = ids[start : start + _PHOTOS_PER_QUERY]
            rows = self._rows(Photo.id.in_(chunk))
            yield from (rows[photo_id] for photo_id in chunk if photo_id in rows)

    def _rows(self, where: Any) -> dict[int, _PhotoRow]:
        with self.catalog.session() as session:
            photos = list(session.execute(
                select(Photo.id, Photo.path, Photo.size, Photo.mtime_ns, Photo.content_hash, Photo.format,
                       Photo.status).where(where)))
            ids = [row.id for row in photos]
            tags: dict[int, list[_TagRow]] = {}
            for row in session.execute(
                    select(PhotoTag.photo_id, Tag.name, Tag.name_zh, PhotoTag.source, PhotoTag.state,
                           PhotoTag.score, PhotoTag.model_version)
                    .join(Tag, Tag.id == PhotoTag.tag_id).where(PhotoTag.photo_id.in_(ids))):
                tags.setdefault(row.photo_id, []).append(_TagRow(*row[1:]))
        return {row.id: _PhotoRow(row.id, row.path, row.size, row.mtime_ns, row.content_hash, row.format,
                                  row.status, tuple(tags.get(row.id, ()))) for row in photos}

    def _sidecars(self, photo: _PhotoRow) -> tuple[str, ...]:
        return self.options.write_profile.sidecars(Path(photo.path), self.options.sidecar_naming)

    def _sharing(self, photo: _PhotoRow) -> list[_PhotoRow]:
        """The indexed photos whose ``IMG.xmp`` is ``photo``'s (itself included), in path order: ``IMG.*``
        when one of them gets an ``IMG.xmp`` (the profile's for RAW files, or ``--sidecar-naming
        replace``); else just the photo."""
        profile = self.options.write_profile
        if self.options.sidecar_naming == "ext" or (self.options.sidecar_naming is None and not profile.stem_sidecar):
            return [photo]
        path = Path(photo.path)
        shared = self._shared(str(path.parent)).get(path.stem, ())
        sharing = {row.id: row for row in shared if row.id != photo.id}
        if photo.status == INDEXED:
            sharing[photo.id] = photo
        if not any("stem" in self._sidecars(row) for row in sharing.values()):
            return [photo]
        return sorted(sharing.values(), key=lambda row: row.path)

    def _shared(self, folder: str) -> dict[str, tuple[_PhotoRow, ...]]:
        """The indexed photos directly in ``folder`` that share a stem with another, by stem: one set of
        queries a folder, not one a photo (the last few folders are kept, as a run goes in path order)."""
        if folder not in self._folders:
            if len(self._folders) >= _FOLDERS_KEPT:
                del self._folders[next(iter(self._folders))]
            prefix = folder_prefix(folder)
            stems: dict[str, list[int]] = {}
            with self.catalog.session() as session:
                for photo_id, photo_path in session.execute(select(Photo.id, Photo.path).where(
                        under(Photo.path, [folder]), Photo.status == INDEXED)):
                    if photo_path.startswith(prefix) and os.sep not in photo_path[len(prefix):]:
                        stems.setdefault(Path(photo_path).stem, []).append(photo_id)
            ids = [photo_id for members in stems.values() if len(members) > 1 for photo_id in members]
            rows: dict[int, _PhotoRow] = {}
            for start in range(0, len(ids), _PHOTOS_PER_QUERY):
                rows |= self._rows(Photo.id.in_(ids[start : start + _PHOTOS_PER_QUERY]))
            self._folders[folder] = {stem: tuple(rows[i] for i in members if i in rows)
                                     for stem, members in stems.items() if len(members) > 1}
        return self._folders[folder]

    def _group(self, group: list[_PhotoRow], sharing: list[_PhotoRow]) -> list[FileReport]:
        """Write the photos of ``group`` (one, or those selected that share a sidecar), all of it or nothing."""
        folder_path = Path(group[0].path).parent
        try:
            folder = Folder.open(folder_path)
        except FileSkipped as exc:
            return [_skipped(photo, exc) for photo in group]
        except (FileNotFoundError, NotADirectoryError):
            return [_skipped(photo, _gone(photo)) for photo in group]
        except OSError as exc:
            return [_skipped(photo, skipped_for(exc, folder_path, "open the folder")) for photo in group]
        with folder:
            if not self.options.dry_run and str(folder.path) not in self._cleaned:
                self._cleaned.add(str(folder.path))
                folder.clean_temporaries(self._started_ns)
            reports, current = [], []
            for photo in group:
                try:
                    self._check_current(folder, photo)
                    current.append(photo)
                except FileSkipped as exc:
                    reports.append(_skipped(photo, exc))
            if current:
                reports += self._write(folder, current, sharing)
            return reports

    def _write(self, folder: Folder, photos: list[_PhotoRow], sharing: list[_PhotoRow]) -> list[FileReport]:
        notes: list[str] = []
        try:
            plans = self._plans(folder, photos, sharing, notes)
        except FileSkipped as exc:
            return [_skipped(photo, exc, notes) for photo in photos]
        except MetadataError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad file never stops a run; it is reported
            return [_skipped(photo, FileSkipped("error", f"{photo.path}: {type(exc).__name__}: {exc}; left as it is"),
                             notes) for photo in photos]
        changed = [plan for plan in plans if plan.changed]
        if changed and not self.options.dry_run:
            try:
                self._commit(changed)
            except FileSkipped as exc:
                return [self._report(plan, "skipped", notes, exc) for plan in plans]
            except MetadataError:
                raise
            except Exception as exc:  # noqa: BLE001 - as above; everything already done was put back
                skipped = FileSkipped("error", f"{photos[0].path}: {type(exc).__name__}: {exc}; left as it is")
                return [self._report(plan, "skipped", notes, skipped) for plan in plans]
        done = "would_write" if self.options.dry_run else "written"
        return [self._report(plan, done if plan.changed else "unchanged", notes) for plan in plans]

    @staticmethod
    def _report(plan: _Plan, status: str, notes: list[str], exc: FileSkipped | None = None) -> FileReport:
        return FileReport(
            plan.photo, str(plan.shown), plan.kind, status, tuple(plan.change.added), tuple(plan.change.removed),
            created=plan.old is None and plan.changed, reason=exc.reason if exc else None,
            message=str(exc) if exc else None, notes=(*notes, *plan.notes))

    # --- checking and planning -----------------------------------------------------------------
    @staticmethod
    def _check_current(folder: Folder, photo: _PhotoRow) -> None:
        if photo.status != INDEXED:
            raise FileSkipped("not_indexed", f"{photo.path}: not indexed ({photo.status}); "
                                             "run 'phototag index' on it first")
        try:
            info = folder.stat(Path(photo.path).name)
        except FileNotFoundError:
            raise _gone(photo) from None
        except OSError as exc:
            raise skipped_for(exc, Path(photo.path), "read it") from None
        if info.st_size != photo.size or recorded_ns(info.st_mtime_ns) != photo.mtime_ns:
            raise FileSkipped("changed", f"{photo.path}: changed since it was indexed; run 'phototag index' "
                                         "first so that its tags describe the file as it is")

    def _plans(self, folder: Folder, photos: list[_PhotoRow], sharing: list[_PhotoRow],
               notes: list[str]) -> list[_Plan]:
        mode = self.options.where
        plans: list[_Plan] = []
        needing = list(photos) if mode in ("sidecar", "both") else []  # the photos that get sidecars
        if mode in ("embed", "both"):
            for photo in photos:
                try:
                    plans.append(self._plan_embedded(folder, photo, notes))
                except FileSkipped as exc:
                    if exc.reason not in _SIDECAR_INSTEAD:
                        raise
                    notes.append(f"not embedded: {exc}" + (" — a sidecar instead" if mode == "embed" else ""))
                    if photo not in needing:
                        needing.append(photo)
        for photo in needing:  # IMG.jpg.xmp: each photo its own
            if "ext" in self._sidecars(photo):
                plans.append(self._plan_sidecar(folder, [photo], [photo], Path(photo.path).name))
        stem = [photo for photo in needing if "stem" in self._sidecars(photo)]
        if stem:  # IMG.xmp: one file, shared by every IMG.* photo (all of them when selected)
            ordered = stem + [photo for photo in photos if photo not in stem]
            plans.append(self._plan_sidecar(folder, ordered, sharing, Path(stem[0].path).stem))
        return plans

    def _wanted(self, photo: _PhotoRow) -> list[Claim]:
        claims: list[Claim] = []
        rows = sorted(photo.tags, key=lambda t: (t.state != ACCEPTED, -(t.score or 0.0), t.name.casefold()))
        for row in rows:
            if row.source == SOURCE_FILE:
                continue  # read from the file: it is there already
            if row.state == ACCEPTED:
                confirmed = True
            elif row.state == SUGGESTED and row.source == SOURCE_MODEL and self.options.include == "suggested":
                confirmed = False
            else:
                continue
            model, _, version = (row.model_version or "").partition("@")
            for name in self._names(row):
                claims.append(Claim(name=name, tag=row.name, source=row.source, model=model or None,
                                    model_version=version or None, score=row.score, confirmed=confirmed))
        return claims

    def _wanted_by_all(self, photos: list[_PhotoRow]) -> list[Claim]:
        """The union of the photos' wanted keywords; for a keyword several want, the strongest claim (a
        person's, then the highest score) — the same whichever of them a run selected."""
        claims = [claim for photo in photos for claim in self._wanted(photo)]
        return sorted(claims, key=lambda c: (not c.confirmed, -(c.score or 0.0), c.name.casefold()))

    def _names(self, row: _TagRow) -> list[str]:
        chinese = row.name_zh or row.name  # a custom tag or file keyword has no Chinese name
        names = {"en": [row.name], "zh": [chinese], "both": [row.name, chinese]}[self.options.lang]
        return unique_keywords(names)

    @staticmethod
    def _dropped(photos: list[_PhotoRow], packet: XmpPacket) -> list[str]:
        """Claimed keywords to remove: no photo of the file still has their tag (it was rejected, or it is
        gone; a tag left only as a file keyword is there because we wrote it). The merge removes only
        those whose claim the journal confirms (:meth:`_trusted`)."""
        kept = {row.name for photo in photos for row in photo.tags
                if row.state != REJECTED and row.source != SOURCE_FILE}
        return [claim.name for claim in packet.claims() if claim.tag not in kept]

    def _trusted(self, target: Path, current: bytes | None) -> frozenset[str] | None:
        """The claims in ``target`` that Phototag wrote, as the journal of its runs says
        (:class:`~indexer.metadata.journal.ClaimLedger`): only their keywords may be removed."""
        return self._claim_ledger().trusted(target, current)

    def _claim_ledger(self) -> ClaimLedger:
        if self._ledger is None:
            self._ledger = ClaimLedger(self.catalog.directory)
        return self._ledger

    def sidecar_paths(self, photo_path: Path) -> list[Path]:
        """The sidecars this run's profile gives a photo when it gets sidecars (see :meth:`sidecar_path`)."""
        names = self.options.write_profile.sidecars(photo_path, self.options.sidecar_naming)
        return [self.sidecar_path(photo_path, photo_path.name if name == "ext" else photo_path.stem) for name in names]

    @staticmethod
    def sidecar_path(photo_path: Path, base: str | None = None) -> Path:
        """``BASE.xmp`` next to the photo (``IMG.jpg.xmp`` by default; ``IMG.xmp`` with ``base`` the stem); an
        existing ``.XMP`` is used as is (whatever it is: a link there is refused when it is written, never
        followed)."""
        base = photo_path.name if base is None else base
        for suffix in (".xmp", ".XMP"):
            candidate = photo_path.with_name(base + suffix)
            if os.path.lexists(candidate):
                return candidate
        return photo_path.with_name(base + ".xmp")

    def _plan_sidecar(self, folder: Folder, photos: list[_PhotoRow], sharing: list[_PhotoRow], base: str) -> _Plan:
        """The sidecar ``BASE.xmp`` of ``photos`` (the first named in the report), holding the keywords of
        every photo in ``sharing``."""
        name = self.sidecar_path(folder.shown(Path(photos[0].path).name), base).name
        shown = folder.shown(name)
        try:
            found = folder.read(name, limit=MAX_XMP_BYTES)
        except FileSkipped as exc:
            if exc.reason != "too_large":
                raise
            raise FileSkipped("unreadable_xmp", f"{shown}: larger than {MAX_XMP_BYTES >> 20} MiB, "
                                                "not an XMP sidecar; left untouched") from None
        except OSError as exc:
            raise skipped_for(exc, shown, "read the sidecar") from None
        old, info = found if found is not None else (None, None)
        try:
            packet = XmpPacket.parse(old) if old is not None else XmpPacket.new()
        except XmpError as exc:
            raise FileSkipped("unreadable_xmp", f"{shown}: the sidecar cannot be read ({exc}); left untouched — "
                                                "fix or move it and run again") from None
        others = [photo for photo in sharing if photo.path != photos[0].path]
        own = _Own([photo.path for photo in sharing])
        change = packet.merge(self._wanted_by_all(sharing), self._dropped(sharing, packet), seed=own.keywords,
                              trusted=self._trusted(shown, old), fields=self.options.write_profile.xmp_fields(),
                              seed_paths=own.paths)
        new = packet.to_bytes() if change.changed else old or b""

        def verify(written: bytes) -> None:
            _verify_packet(written, packet, change, shown)

        notes = [f"shared with {', '.join(Path(photo.path).name for photo in others)}: it holds the keywords of "
                 "them all"] if others else []
        if info is not None and info.st_nlink > 1 and change.changed:
            notes.append(_HARD_LINKS.format(info.st_nlink))
        return _Plan("sidecar", folder, name, photos[0].path, old, new, change, info, verify, notes=tuple(notes))

    def _plan_embedded(self, folder: Folder, photo: _PhotoRow, notes: list[str]) -> _Plan:
        name = Path(photo.path).name
        shown = folder.shown(name)
        if (photo.format or "").lower() not in EMBEDDABLE_FORMATS:
            raise FileSkipped("unsupported", f"{(photo.format or 'this').upper()} files are not embedded into, "
                                             "only JPEG and MPO")
        try:
            found = folder.read(name)
        except OSError as exc:
            raise skipped_for(exc, shown, "read it") from None
        if found is None:
            raise _gone(photo)
        data, info = found
        if bytes_hash(data) != photo.content_hash:
            raise FileSkipped("changed", f"{shown}: its content changed since it was indexed; run "
                                         "'phototag index' first")
        jpeg = _named(shown, jpeg_embed.JpegFile.parse, data)
        if (why := jpeg_embed.embeddable(jpeg)) is not None:
            raise FileSkipped("unsupported", f"{shown}: {why}")
        old_xmp = jpeg.xmp()
        try:
            packet = XmpPacket.parse(old_xmp) if old_xmp is not None else XmpPacket.new()
        except XmpError as exc:
            raise FileSkipped("unreadable_xmp", f"{shown}: its XMP packet cannot be read ({exc}); left untouched "
                                                "(--mode sidecar writes a sidecar instead)") from None
        profile = self.options.write_profile
        try:
            iptc: IptcBlock | None = jpeg.iptc()
        except FileSkipped as exc:
            iptc = None
            notes.append(f"IPTC keywords left as they are: {exc}")
        own = jpeg.own_keywords(iptc)
        dropped, trusted = self._dropped([photo], packet), self._trusted(shown, data)
        joined: list[str] = []
        if iptc is not None and iptc.digest_state != "current" and packet.subject():
            # IPTC keywords and dc:subject are kept in step (the Metadata Working Group's reconciliation):
            # with a current IPTC digest the XMP is the newer and the IIM follows it; without one, or with a
            # stale one (a tool that ignores XMP edited the IIM), the IIM's keywords join dc:subject first,
            # before Phototag's — nobody's keyword is dropped.
            leaving = {name.casefold() for name in dropped if trusted is None or name.casefold() in trusted}
            joined = packet.add_to_subject(k for k in iptc.keywords if k.casefold() not in leaving)
        change = packet.merge(self._wanted(photo), dropped, seed=own, elsewhere=own, trusted=trusted,
                              fields=profile.xmp_fields())
        if change.changed:
            change.seeded = unique_keywords([*change.seeded, *joined])
        if not change.changed:
            return _Plan("embedded", folder, name, photo.path, data, data, change, info, lambda _written: None,
                         photo.id)
        xmp, extended = _named(shown, jpeg_embed.split_packet, packet)  # over 64 KB: Extended XMP
        xp_keywords, tiff = self._xp_keywords(jpeg, change, XP_KEYWORDS in profile.fields)
        iptc_keywords, app13 = self._iptc_keywords(iptc, packet, shown, notes)
        new = _named(shown, jpeg.with_metadata, xmp, tiff, extended=extended, app13=app13).to_bytes()
        try:
            pixels = jpeg_embed.pixel_digest(data)
        except Exception as exc:  # noqa: BLE001 - whatever the decoder raises
            raise FileSkipped("unsupported", f"{shown}: it does not decode completely ({exc}), so the pixels "
                                             "cannot be verified") from None

        def verify(written: bytes) -> None:
            _named(shown, jpeg_embed.verify, jpeg, written, xmp=xmp, extended=extended,
                   xp_keywords=xp_keywords if tiff is not None else None, original_pixels=pixels,
                   iptc_keywords=iptc_keywords if app13 is not None else None)
            _verify_packet(jpeg_embed.JpegFile.parse(written).xmp() or b"", packet, change, shown)

        if info.st_nlink > 1:
            notes.append(_HARD_LINKS.format(info.st_nlink))
        mtime = info.st_mtime_ns if self.options.keep_mtime else None
        return _Plan("embedded", folder, name, photo.path, data, new, change, info, verify, photo.id, mtime)

    @staticmethod
    def _iptc_keywords(iptc: IptcBlock | None, packet: XmpPacket, shown: Path,
                       notes: list[str]) -> tuple[list[str], bytes | None]:
        """The IPTC-IIM keywords after the change — dc:subject's, so both say the same — and the APP13
        payload holding them (None: left as it is). As the Metadata Working Group asks (and exiftool's MWG
        module does), an IIM block is kept in step where the file has one and never created: every app
        reads XMP. A block that cannot be read stays as it is."""
        if iptc is None or not iptc.has_iptc:
            return [], None
        keywords = packet.subject()
        if left_out := keywords_left_out(keywords):
            notes.append(f"not in IPTC (over {MAX_KEYWORD_BYTES} bytes; XMP has them): {', '.join(left_out)}")
        if iptc.keywords == [k for k in dict.fromkeys(keywords) if k not in left_out]:
            return keywords, None
        try:
            payload = iptc.with_keywords(keywords)
        except FileSkipped as exc:
            notes.append(f"IPTC keywords left as they are: {shown}: {exc}")
            return [], None
        return keywords, payload

    @staticmethod
    def _xp_keywords(jpeg: jpeg_embed.JpegFile, change: KeywordChange,
                     wanted: bool = True) -> tuple[list[str], bytes | None]:
        """XPKeywords after the change, and the EXIF data holding them (None: left as it is — no EXIF
        block, or one that cannot be edited safely; Windows reads the XMP keywords too). ``wanted``: the
        profile writes XPKeywords (otherwise Phototag's keywords are only removed from them)."""
        tiff = jpeg.exif()
        if tiff is None or not (change.added or change.removed or change.completed) \
                or not jpeg_embed.exif_readable(tiff):
            return [], None
        before = jpeg.xp_keywords()
        removed = {name.casefold() for name in change.removed}
        # XPKeywords' separator is ';': XMP holds those keywords
        added = [name for name in [*change.added, *change.completed] if ";" not in name] if wanted else []
        after = unique_keywords([*(k for k in before if k.casefold() not in removed), *added])
        if after == before:
            return before, None
        try:
            return after, jpeg_embed.set_xp_keywords(tiff, after)
        except FileSkipped:
            return before, None

    # --- committing ----------------------------------------------------------------------------
    def _commit(self, plans: list[_Plan]) -> None:
        """Stage, verify, journal and rename every changed target of a photo (or of the photos sharing a
        sidecar), or none of them.

        Raises:
            FileSkipped: why the photos were left as they were (everything already done is put back).
        """
        staged: list[tuple[_Plan, Staged]] = []
        committed: list[_Plan] = []
        try:
            for plan in plans:
                plan.folder.check_writable(plan.name)
            for plan in plans:
                try:
                    staged.append((plan, plan.folder.stage(plan.name, plan.new, like=plan.stat,
                                                           mtime_ns=plan.mtime_ns)))
                    written = staged[-1][1].read_back()
                except OSError as exc:
                    raise skipped_for(exc, plan.shown, "write a temporary file next to it") from None
                if written != plan.new:
                    raise FileSkipped("verify_failed", f"{plan.shown}: the temporary file does not read back as "
                                                       "written; the original is kept")
                plan.verify(written)
            journal = self._journal_for_run()
            for plan, pending in staged:
                journal.record_change(plan.shown, pending.digest, plan.old, photo_id=plan.photo_id,
                                      claims=plan.change.claimed, info=plan.stat)
            for plan, pending in staged:
                _ensure_unchanged(plan)
                try:
                    pending.commit()
                except OSError as exc:
                    raise skipped_for(exc, plan.shown, "replace it") from None
                committed.append(plan)
                self._claim_ledger().note(plan.shown, plan.change.claimed)
        except BaseException as exc:
            for _plan, pending in staged:
                pending.discard()
            self._roll_back(committed, exc)
            raise
        self._update_catalog(plans)

    def _roll_back(self, committed: list[_Plan], cause: BaseException) -> None:
        """Put back the targets already replaced when a later one failed."""
        assert self._journal is not None or not committed
        for plan in reversed(committed):
            try:
                if plan.old is None:
                    plan.folder.remove(plan.name)
                else:
                    plan.folder.stage(plan.name, plan.old, like=plan.stat,
                                      mtime_ns=plan.stat.st_mtime_ns if plan.stat else None).commit()
                assert self._journal is not None
                self._journal.record_change(plan.shown, None if plan.old is None else bytes_hash(plan.old), None,
                                            claims=plan.change.trusted)
                self._claim_ledger().note(plan.shown, plan.change.trusted)
            except (OSError, FileSkipped) as exc:
                raise MetadataError(
                    f"{plan.shown}: written, but putting it back after a later failure ({cause}) failed too "
                    f"({exc}); restore it with: phototag undo-metadata {self._journal.id if self._journal else ''}"
                ) from exc

    def _update_catalog(self, plans: list[_Plan]) -> None:
        """The rewritten photo's pixels are verified identical, so its tags and embedding still hold:
        the row takes the new size, mtime and hash instead of being re-indexed."""
        for plan in plans:
            if plan.photo_id is None:
                continue
            try:
                info = plan.folder.stat(plan.name)
                with self.catalog.session() as session, session.begin():
                    session.execute(update(Photo).where(Photo.id == plan.photo_id).values(
                        size=info.st_size, mtime_ns=info.st_mtime_ns, content_hash=bytes_hash(plan.new)))
            except (OSError, SQLAlchemyError, CatalogError) as exc:
                raise MetadataError(f"{plan.shown} was written, but the catalog could not record it ({exc}); "
                                    "run 'phototag index' on it") from exc

    def _journal_for_run(self) -> Journal:
        if self._journal is None:
            options = asdict(self.options) | {"catalog": str(self.catalog.directory)}
            self._journal = Journal.create(self.catalog.directory, options)
        return self._journal


# --- helpers -----------------------------------------------------------------------------------


class _lazy:  # noqa: N801 - reads as a function at the call site
    """An iterable computed on first iteration (the seed is read only when a new dc:subject needs it)."""

    def __init__(self, compute: Callable[[], Iterable[str]]) -> None:
        self._compute = compute

    def __iter__(self) -> Iterator[str]:
        return iter(self._compute())


class _Own:
    """The keywords and keyword paths the photos carry themselves (embedded XMP, IPTC, XPKeywords, another
    sidecar), read only when a new keyword list needs them."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._photos = paths
        self._infos: list[Any] | None = None
        self.keywords = _lazy(lambda: [keyword for info in self._read() for keyword in info.keywords])
        self.paths = _lazy(lambda: [path for info in self._read() for path in info.paths])

    def _read(self) -> list[Any]:
        if self._infos is None:
            self._infos = []
            for path in self._photos:
                try:
                    self._infos.append(read_photo_info(path))
                except Exception:  # noqa: BLE001 - unreadable: nothing to start a new list with
                    continue
        return self._infos


def _verify_packet(written: bytes, packet: XmpPacket, change: KeywordChange, shown: Path) -> None:
    """The packet reads back with Phototag's own readers: the claims as merged, every added keyword
    present, no removed one left in dc:subject."""

    def fail(what: str) -> FileSkipped:
        return FileSkipped("verify_failed", f"{shown}: verification failed, the original is kept: {what}")

    try:
        again = XmpPacket.parse(written)
        keywords = {keyword.casefold() for keyword in read_keywords_from_xmp(written)}
    except (XmpError, ValueError) as exc:
        raise fail(f"the XMP does not parse back ({exc})") from None
    if again.claims() != packet.claims():
        raise fail("Phototag's record of its keywords does not read back")
    if missing := [name for name in change.added if name.casefold() not in keywords]:
        raise fail(f"keywords missing after writing: {', '.join(missing)}")
    subject = {keyword.casefold() for keyword in again.subject()}
    if left := [name for name in change.removed if name.casefold() in subject]:
        raise fail(f"keywords still present after removing them: {', '.join(left)}")


def _ensure_unchanged(plan: _Plan) -> None:
    """Between reading a target and replacing it, nothing else may have written it (or put a link there)."""
    now = plan.folder.entry(plan.name)
    if plan.stat is None:
        if now is not None:
            raise FileSkipped("changed", f"{plan.shown}: created by something else while writing; left as it is")
        return
    if now is None or (now.st_mode, now.st_size, now.st_mtime_ns, now.st_ino) != (
            plan.stat.st_mode, plan.stat.st_size, plan.stat.st_mtime_ns, plan.stat.st_ino):
        raise FileSkipped("changed", f"{plan.shown}: changed by something else while writing; left as it is")


def _skipped(photo: _PhotoRow, exc: FileSkipped, notes: Iterable[str] = ()) -> FileReport:
    return FileReport(photo.path, None, None, "skipped", reason=exc.reason, message=str(exc), notes=tuple(notes))


def _gone(photo: _PhotoRow) -> FileSkipped:
    return FileSkipped("missing", f"{photo.path}: the file is gone; run 'phototag index' to record moves and "
                                  "deletions")


def _named(path: Path, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``function(*args, **kwargs)``, its FileSkipped naming ``path`` (the JPEG module works on bytes)."""
    try:
        return function(*args, **kwargs)
    except FileSkipped as exc:
        if str(exc).startswith(f"{path}: "):
            raise
        raise FileSkipped(exc.reason, f"{path}: {exc}") from None
