"""The catalog's tables (SQLAlchemy 2.x declarative models).

One row per photo *file* (``photos``): a moved file keeps its row, and with it its tags,
embedding and every correction. ``content_hash`` ties identical files together so their model
work is done once. The schema itself changes only through Alembic revisions in ``migrations/``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import (
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    cast,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from indexer._paths import name_bytes


class Base(DeclarativeBase):
    pass


_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _fs_decode(value: bytes | None) -> str | None:
    return None if value is None else value.decode(_FS_ENCODING, _FS_ERRORS)  # os.fsdecode, without its checks


class _PathBytes(TypeDecorator[str]):
    """The result side of :class:`PathText`: the stored bytes, decoded as the OS decodes names."""

    impl = LargeBinary
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return _fs_decode  # straight from the driver's bytes: a pass reads every path of a library


# A file time in nanoseconds as the catalog keeps it: SQLite integers are 64-bit, and ext4 and others accept dates
# up to 2446 (a camera or NAS with a wrong clock makes them), past int64's 2262.
_NS_MIN, _NS_MAX = -(2**63), 2**63 - 1


def recorded_ns(value: int) -> int:
    """``value`` (``st_mtime_ns``) clamped to what the catalog can store; compare files with it, not the raw value."""
    return min(max(value, _NS_MIN), _NS_MAX)


class FileTimeNs(TypeDecorator[int]):
    """A file's modification time in ns: stored through :func:`recorded_ns`, so a far-future mtime never overflows."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else recorded_ns(int(value))


class PathText(TypeDecorator[str]):
    """Text that holds file system paths, stored as the exact bytes the OS gave (``_paths.name_bytes``).

    A name that is not valid UTF-8 reaches Python as a str with lone surrogates, which sqlite3 can
    neither bind nor read back as TEXT. So the value is bound as bytes and cast to TEXT in SQL
    (``CAST(? AS TEXT)`` keeps the bytes), and read as ``CAST(column AS BLOB)``. A valid UTF-8
    path is stored exactly as plain TEXT would store it (no data migration), and comparisons, the
    unique index and prefix ranges work on the bytes as before. Raw SQL that binds or reads such a
    column must follow the same rule.
    """

    impl = Text
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(bindvalue, Text)

    def column_expression(self, column: Any) -> Any:
        return cast(column, _PathBytes())

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else name_bytes(value)  # a message's stray surrogate escaped, not raised

    # No process_result_value: column_expression's _PathBytes decodes what is read (an identity processor
    # here would only add a call per path read).


class HalfVector(TypeDecorator[np.ndarray]):
    """An embedding: a float32 vector in Python, stored as float16 bytes (half the bytes; migration 0006).

    512 float16 take 1 KiB, so three rows fill a 4 KiB page (one float32 row did, half full). CLIP
    embeddings are unit vectors with components around 0.04: float16 keeps them to about 1e-5, and the
    cosine scores of search move by about 1e-4 (``bench/results/catalog.md`` measures recall against float32).
    Reads give a new float32 unit vector (:func:`decode_vector`); writes take any float array (or sequence)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else np.asarray(value, dtype=VECTOR_DTYPE).tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        return None if value is None else decode_vector(value)


VECTOR_DTYPE = np.dtype("<f2")
"""How the catalog stores embeddings (``embeddings.vector``, little-endian float16)."""


def decode_vector(blob: bytes) -> np.ndarray:
    """A stored embedding (``VECTOR_DTYPE`` bytes) as a float32 vector: for raw-SQL readers; the ORM does it itself.

    Scaled back to the unit length it was stored with (rounding to float16 moves it by about 1e-4), so a
    photo's score against itself stays 1."""
    return decode_vectors([blob])[0]


def decode_vectors(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings of one dimension as a float32 matrix [n, dim] of unit rows (see :func:`decode_vector`)."""
    if not blobs:
        return np.empty((0, 0), np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).astype(np.float32).reshape(len(blobs), -1)
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    norms[norms == 0] = 1.0
    return matrix / norms[:, None]


def encode_vector(vector: Any) -> bytes:
    """The bytes ``embeddings.vector`` stores for ``vector``: for raw-SQL writers; the ORM does it itself."""
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


class Code(TypeDecorator[str]):
    """A short word from a fixed list (a photo tag's source or state), stored as its small integer code.

    SQLite stores the integers 0 and 1 in no bytes at all and 2 in one, where ``'suggested'`` took ten: on a
    table of 20 rows a photo, and in the tag index, that is about 0.5 KB a photo (migration 0006). Python
    and every query see the words (``PhotoTag.state == SUGGESTED`` binds the code). A word stored by another
    program as text is read back as it is."""

    impl = Integer
    cache_ok = True

    def __init__(self, *words: str) -> None:
        super().__init__()
        self.words = words
        self._codes = {word: code for code, word in enumerate(words)}

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None or isinstance(value, int):
            return value
        try:
            return self._codes[value]
        except KeyError:
            raise ValueError(f"{value!r} is not one of {', '.join(self.words)}") from None

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if isinstance(value, int) and 0 <= value < len(self.words):
            return self.words[value]
        return value

    def copy(self, **kw: Any) -> Code:
        return Code(*self.words)


_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


class Microseconds(TypeDecorator[datetime]):
    """A naive datetime stored as integer microseconds since 1970-01-01 (7 bytes, not the 26 of
    SQLAlchemy's text form; migration 0006). Like that form, it keeps the wall time and drops a time zone.
    Text stored by another program (``'2024-01-01 10:00:00'``) is read back as ISO 8601."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return (value.replace(tzinfo=None) - _EPOCH) // _MICROSECOND

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value)
        return _EPOCH + int(value) * _MICROSECOND


# Photo status: what the indexer knows about a file.
PENDING, INDEXED, FAILED, MISSING = "pending", "indexed", "failed", "missing"
PHOTO_STATUSES = (PENDING, INDEXED, FAILED, MISSING)
# Where a photo-tag row came from, and what a person made of it.
SOURCE_MODEL, SOURCE_USER, SOURCE_FILE = "model", "user", "file"
SUGGESTED, ACCEPTED, REJECTED = "suggested", "accepted", "rejected"
TAG_SOURCES = (SOURCE_MODEL, SOURCE_USER, SOURCE_FILE)  # in the order of their stored codes (0, 1, 2): never reorder
TAG_STATES = (SUGGESTED, ACCEPTED, REJECTED)  # likewise
# Tag kinds.
BUILTIN, CUSTOM, KEYWORD = "builtin", "custom", "keyword"


class Meta(Base):
    """Small key/value facts about the catalog (e.g. the embeddings generation the FAISS file reflects)."""

    __tablename__ = "catalog_meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Absolute, folders' links resolved (indexer._paths.catalog_path); prefix queries serve folder: filters.
    path: Mapped[str] = mapped_column(PathText, unique=True)
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(FileTimeNs)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)  # blake2b-256 of the bytes, hex
    format: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    orientation: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column(index=True)
    camera_make: Mapped[str | None] = mapped_column(String(128))
    camera_model: Mapped[str | None] = mapped_column(String(128))
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)

    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    error_reason: Mapped[str | None] = mapped_column(String(32))  # ImageError.reason, e.g. "truncated"
    error_message: Mapped[str | None] = mapped_column(PathText)  # names the file
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed attempts since the content last changed
    tagger_version: Mapped[str | None] = mapped_column(String(128))  # the model that produced its model tags
    embedder_version: Mapped[str | None] = mapped_column(String(128))

    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()
    indexed_at: Mapped[datetime | None] = mapped_column()
    missing_since: Mapped[datetime | None] = mapped_column()

    tags: Mapped[list[PhotoTag]] = relationship(back_populates="photo", cascade="all, delete-orphan")


class Tag(Base):
    """The vocabulary: built-in RAM tags, a user's custom tags, and keywords read from files."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    name_zh: Mapped[str | None] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(String(16), default=BUILTIN)
    threshold: Mapped[float | None] = mapped_column(Float)


class PhotoTag(Base):
    """One tag on one photo: its score, who put it there, and what a person decided about it."""

    __tablename__ = "photo_tags"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    score: Mapped[float | None] = mapped_column(Float)  # the model's probability (None for user/file tags)
    source: Mapped[str] = mapped_column(Code(*TAG_SOURCES))  # model, user or file
    state: Mapped[str] = mapped_column(Code(*TAG_STATES))  # suggested, accepted or rejected
    model_version: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(Microseconds)

    photo: Mapped[Photo] = relationship(back_populates="tags")
    tag: Mapped[Tag] = relationship()

    # Covering index for tag search (migration 0005): a tag's photos counted and ranked from the index alone, in
    # score order (0007: a tag's best photos are its range read backwards). WITHOUT ROWID (migration 0006): the
    # rows live in the primary key's B-tree, so (photo_id, tag_id) is not kept a second time in an index of its own.
    __table_args__ = (Index("ix_photo_tags_tag_state_score", "tag_id", "state", "score", "photo_id"),
                      {"sqlite_with_rowid": False})


class Embedding(Base):
    """A photo's image embedding (a unit vector, float32 in Python, float16 on disk); FAISS is rebuilt from these."""

    __tablename__ = "embeddings"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(128))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[np.ndarray] = mapped_column(HalfVector)


class Run(Base):
    """One index pass: when, over what, and what it found (``phototag status`` shows the last ones)."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    roots: Mapped[str] = mapped_column(PathText)  # JSON list
    tagger_version: Mapped[str | None] = mapped_column(String(128))
    embedder_version: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16), default="running")  # running, completed, interrupted, crashed
    summary: Mapped[str | None] = mapped_column(Text)  # JSON counts


class SavedSearch(Base):
    """A query saved under a name (``phototag search --save NAME QUERY``; ``@NAME`` in a query)."""

    __tablename__ = "saved_searches"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()


class CustomTagDef(Base):
    """A custom tag's definition: descriptions and/or example photos → one CLIP prototype (unit float32)."""

    __tablename__ = "custom_tags"

    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    descriptions: Mapped[str] = mapped_column(Text)  # JSON list of phrases
    examples: Mapped[str] = mapped_column(Text)  # JSON list of photo ids
    prototype: Mapped[bytes] = mapped_column(LargeBinary)
    dim: Mapped[int] = mapped_column(Integer)
    embedder_version: Mapped[str] = mapped_column(String(128))  # the space the prototype lives in
    threshold: Mapped[float] = mapped_column(Float)  # cosine at or above which the tag is suggested
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    tag: Mapped[Tag] = relationship()


class PersonalModel(Base):
    """One ``phototag finetune`` result: its held-out evaluation, and whether it is the active one."""

    __tablename__ = "personal_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column()
    embedder_version: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(default=False)
    accepted: Mapped[bool] = mapped_column(default=False)  # passed its evaluation (could be activated)
    corrections: Mapped[int] = mapped_column(Integer)
    report: Mapped[str] = mapped_column(Text)  # JSON: per-tag before/after metrics, decision


class PersonalTagParams(Base):
    """A personal model's rule for one tag: a calibrated threshold or a logistic adapter."""

    __tablename__ = "personal_tag_params"

    model_id: Mapped[int] = mapped_column(ForeignKey("personal_models.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(16))  # "threshold" or "adapter"
    threshold: Mapped[float | None] = mapped_column(Float)  # on the base score (method "threshold")
    weights: Mapped[bytes | None] = mapped_column(LargeBinary)  # float64 [dim + 2] (method "adapter")
    bias: Mapped[float | None] = mapped_column(Float)


class PersonalHidden(Base):
    """A base-model suggestion the active personal model withholds, kept so a rollback restores it exactly."""

    __tablename__ = "personal_hidden"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    score: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(128))
