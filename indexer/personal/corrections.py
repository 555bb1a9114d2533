"""A person's corrections: accept, reject or add tags on photos (the CLI's ``phototag tag`` and the app).

A correction changes the ``state`` of a photo–tag row and never its history: an accepted model tag
stays ``source="model"`` with its score, a tag a person adds is ``source="user"``. The indexer
never suggests a rejected tag again for that photo and never drops an accepted one (see
``Indexer._store_model_tags``). Every call is one write transaction, which holds SQLite's write lock
from its first read (``indexer.catalog``): an index pass storing beside it waits, or is waited for, and
never comes between what a correction reads and what it writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from indexer._paths import display_path, spellings, undecodable
from indexer.catalog import Catalog
from indexer.errors import IndexerError
from indexer.index import now
from indexer.schema import ACCEPTED, CUSTOM, REJECTED, SOURCE_USER, SUGGESTED, Photo, PhotoTag, Tag

STATES = (ACCEPTED, REJECTED, SUGGESTED)
EDIT_STATES = {"+": ACCEPTED, "-": REJECTED, "=": SUGGESTED}  # the state an edit (+dog, -cat, =bird) asks for


class CorrectionError(IndexerError):
    """A correction names a photo or tag the catalog does not know."""


@dataclass(frozen=True)
class Change:
    photo_id: int
    tag: str
    before: str | None  # the row's state before, None when the row is new
    after: str | None  # None when a user tag was withdrawn (the row is gone)


def photo_ids_for(catalog: Catalog, paths: Iterable[str | os.PathLike[str]]) -> list[int]:
    """Catalog ids of photo files; an unknown path is an error naming it."""
    ids = []
    with catalog.session() as session:
        for path in paths:
            names = spellings(path)
            photo_id = next(filter(None, (session.scalar(select(Photo.id).where(Photo.path == name))
                                          for name in names)), None)
            if photo_id is None:
                raise CorrectionError(f"{names[0]} is not in the catalog: index it first (phototag index {path})")
            ids.append(photo_id)
    return ids


def resolve_tag(session: Session, name: str, *, create: bool = False) -> Tag:
    """A tag by English name (any case) or Chinese name; with ``create``, a new custom tag."""
    wanted = name.strip()
    if undecodable(wanted):  # bytes of another encoding, from a terminal or a script
        raise CorrectionError(f"the tag name '{display_path(wanted)}' is not UTF-8 text: was it typed in another "
                              "encoding?")
    tag = session.scalars(select(Tag).where(or_(func.lower(Tag.name) == wanted.lower(), Tag.name_zh == wanted))
                          .order_by(Tag.id)).first()
    if tag is not None:
        return tag
    if not create:
        raise CorrectionError(f"unknown tag {wanted!r}")
    tag = Tag(name=wanted, kind=CUSTOM)
    session.add(tag)
    session.flush()
    return tag


def set_state(catalog: Catalog, photo_ids: Sequence[int], tag_name: str, state: str) -> list[Change]:
    """Accept or reject ``tag_name`` on photos (adding it as a user tag where accepted and absent),
    or return it to ``suggested`` — undoing a person's decision on a model tag."""
    if state not in STATES:
        raise CorrectionError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    changes = []
    stamp = now()
    with catalog.session() as session, session.begin():
        tag = resolve_tag(session, tag_name, create=state == ACCEPTED)
        for photo_id in photo_ids:
            row = session.get(PhotoTag, (photo_id, tag.id))
            if row is None:
                if state != ACCEPTED:
                    if state == REJECTED:  # rejecting a tag the model never gave still prevents it later
                        session.add(PhotoTag(photo_id=photo_id, tag_id=tag.id, source=SOURCE_USER, state=REJECTED,
                                             updated_at=stamp))
                        changes.append(Change(photo_id, tag.name, None, REJECTED))
                    continue
                session.add(PhotoTag(photo_id=photo_id, tag_id=tag.id, source=SOURCE_USER, state=ACCEPTED,
                                     updated_at=stamp))
                changes.append(Change(photo_id, tag.name, None, ACCEPTED))
            elif row.state != state:
                before = row.state
                if state == SUGGESTED and row.source == SOURCE_USER:
                    session.delete(row)  # a user tag has no suggestion to go back to
                    changes.append(Change(photo_id, tag.name, before, None))
                    continue
                row.state, row.updated_at = state, stamp
                changes.append(Change(photo_id, tag.name, before, state))
    return changes


def apply_edits(catalog: Catalog, photo_ids: Sequence[int], edits: Sequence[str]) -> list[Change]:
    """``+dog`` accepts (or adds) dog, ``-cat`` rejects cat, ``=bird`` returns bird to suggested."""
    changes: list[Change] = []
    for edit in edits:
        sign, name = edit[:1], edit[1:].strip()
        if sign not in "+-=" or not name:
            raise CorrectionError(f"{edit!r}: write +TAG to accept or add, -TAG to reject, =TAG to undo a decision")
        state = EDIT_STATES[sign]
        changes += set_state(catalog, photo_ids, name, state)
    return changes
