"""A compact catalog: embeddings as float16, photo tags WITHOUT ROWID with coded source/state and integer times.

Measured on the synthetic catalog of ``bench/bench_search.py`` at 1M photos (20 tags a photo;
``bench/results/catalog.md``): 7,765 bytes a photo before, 3,817 after.

* ``embeddings.vector``: float32 bytes -> float16 bytes (``indexer.schema.HalfVector``). A 2 KiB row filled a
  4 KiB page only half (one row a page); 1 KiB rows fill three a page.
* ``photo_tags``: a WITHOUT ROWID table (the primary key (photo_id, tag_id) is no longer stored twice, in the
  table and in its own index); ``source`` and ``state`` as integer codes (``indexer.schema.Code``: model 0, user
  1, file 2; suggested 0, accepted 1, rejected 2 — SQLite stores 0 and 1 in no bytes); ``updated_at`` as integer
  microseconds since 1970 (``indexer.schema.Microseconds``) instead of 26 characters of text.

Both tables are copied into new ones in batches of photo ids (memory bounded at any size), the old ones dropped
and the new ones renamed, inside the catalog's one upgrade transaction (``indexer.catalog.schema_transaction``):
an upgrade that fails or is interrupted leaves the catalog as it was. SQLite keeps the freed pages in the file
for its next rows; ``VACUUM`` gives them back to the disk. The upgrade rewrites the two big tables once: at 1M
photos (a 7.8 GB catalog) 7 minutes on two busy cores, with a write-ahead log of up to 8.7 GB on top of the
backup copy the catalog makes first — free space of about twice the catalog's size. Afterwards the file is
9.2 GB, 3.8 GB of it in use, until ``VACUUM``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from alembic import op
from sqlalchemy import Connection

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 20_000  # photos a step: 40 MB of float32 embeddings at 512 dimensions
# The codes as this revision defines them (indexer.schema.TAG_SOURCES / TAG_STATES name them from now on).
SOURCES = ("model", "user", "file")
STATES = ("suggested", "accepted", "rejected")
INDEX = "ix_photo_tags_tag_state_photo"

_PHOTO_TAGS = """CREATE TABLE {name} (
    photo_id INTEGER NOT NULL,
    tag_id INTEGER NOT NULL,
    score FLOAT,
    source {code} NOT NULL,
    state {code} NOT NULL,
    model_version VARCHAR(128),
    updated_at {time} NOT NULL,
    PRIMARY KEY (photo_id, tag_id),
    FOREIGN KEY(photo_id) REFERENCES photos (id) ON DELETE CASCADE,
    FOREIGN KEY(tag_id) REFERENCES tags (id) ON DELETE CASCADE
){rowid}"""
_EMBEDDINGS = """CREATE TABLE {name} (
    photo_id INTEGER NOT NULL,
    model_version VARCHAR(128) NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (photo_id),
    FOREIGN KEY(photo_id) REFERENCES photos (id) ON DELETE CASCADE
)"""


def _word_to_code(column: str, words: tuple[str, ...]) -> str:
    cases = " ".join(f"WHEN '{word}' THEN {code}" for code, word in enumerate(words))
    return f"CASE {column} {cases} ELSE {column} END"  # an unknown word stays as it is


def _code_to_word(column: str, words: tuple[str, ...]) -> str:
    cases = " ".join(f"WHEN {code} THEN '{word}'" for code, word in enumerate(words))
    return f"CASE {column} {cases} ELSE {column} END"


# SQLAlchemy's text form 'YYYY-MM-DD HH:MM:SS[.ffffff]' (or any SQLite time string) <-> microseconds since 1970.
_TEXT_TO_MICROSECONDS = ("CASE WHEN typeof(updated_at) = 'text' THEN "
                         "CAST(strftime('%s', updated_at) AS INTEGER) * 1000000 "
                         "+ CAST(substr(substr(updated_at, 21) || '000000', 1, 6) AS INTEGER) ELSE updated_at END")
_MICROSECONDS_TO_TEXT = ("CASE WHEN typeof(updated_at) = 'integer' THEN "
                         "strftime('%Y-%m-%d %H:%M:%S', updated_at / 1000000, 'unixepoch') "
                         "|| printf('.%06d', updated_at % 1000000) ELSE updated_at END")


def _photo_batches(connection: Connection, table: str) -> list[tuple[int, int]]:
    """(first, last) photo-id ranges of BATCH ids that cover ``table``'s rows."""
    low, high = connection.exec_driver_sql(f"SELECT min(photo_id), max(photo_id) FROM {table}").one()
    if low is None:
        return []
    return [(start, start + BATCH - 1) for start in range(low, high + 1, BATCH)]


def _copy_photo_tags(connection: Connection, *, compact: bool) -> None:
    if compact:
        new = _PHOTO_TAGS.format(name="photo_tags_new", code="INTEGER", time="INTEGER", rowid=" WITHOUT ROWID")
        source, state, time = _word_to_code("source", SOURCES), _word_to_code("state", STATES), _TEXT_TO_MICROSECONDS
    else:
        new = _PHOTO_TAGS.format(name="photo_tags_new", code="VARCHAR(12)", time="DATETIME", rowid="")
        source, state, time = _code_to_word("source", SOURCES), _code_to_word("state", STATES), _MICROSECONDS_TO_TEXT
    connection.exec_driver_sql(new)
    for first, last in _photo_batches(connection, "photo_tags"):
        connection.exec_driver_sql(
            "INSERT INTO photo_tags_new (photo_id, tag_id, score, source, state, model_version, updated_at) "
            f"SELECT photo_id, tag_id, score, {source}, {state}, model_version, {time} FROM photo_tags "
            "WHERE photo_id BETWEEN ? AND ? ORDER BY photo_id, tag_id", (first, last))
    connection.exec_driver_sql("DROP TABLE photo_tags")
    connection.exec_driver_sql("ALTER TABLE photo_tags_new RENAME TO photo_tags")
    connection.exec_driver_sql(f"CREATE INDEX {INDEX} ON photo_tags (tag_id, state, photo_id, score)")


def _copy_embeddings(connection: Connection, convert: Callable[[bytes], bytes]) -> None:
    connection.exec_driver_sql(_EMBEDDINGS.format(name="embeddings_new"))
    last = -1
    while True:
        rows = connection.exec_driver_sql(
            "SELECT photo_id, model_version, dim, vector FROM embeddings WHERE photo_id > ? "
            "ORDER BY photo_id LIMIT ?", (last, BATCH)).fetchall()
        if not rows:
            break
        connection.exec_driver_sql("INSERT INTO embeddings_new (photo_id, model_version, dim, vector) "
                                   "VALUES (?, ?, ?, ?)",
                                   [(r[0], r[1], r[2], convert(r[3])) for r in rows])
        last = rows[-1][0]
    connection.exec_driver_sql("DROP TABLE embeddings")
    connection.exec_driver_sql("ALTER TABLE embeddings_new RENAME TO embeddings")


def _to_float16(blob: bytes) -> bytes:
    return np.frombuffer(blob, dtype="<f4").astype("<f2").tobytes()


def _to_float32(blob: bytes) -> bytes:
    return np.frombuffer(blob, dtype="<f2").astype("<f4").tobytes()


def upgrade() -> None:
    connection = op.get_bind()
    _copy_photo_tags(connection, compact=True)
    _copy_embeddings(connection, _to_float16)


def downgrade() -> None:
    connection = op.get_bind()
    _copy_photo_tags(connection, compact=False)
    _copy_embeddings(connection, _to_float32)
