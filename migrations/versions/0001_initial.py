"""Initial catalog: photos, tags, photo tags, embeddings, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False, unique=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("mtime_ns", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("format", sa.String(16)),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("orientation", sa.Integer()),
        sa.Column("taken_at", sa.DateTime()),
        sa.Column("camera_make", sa.String(128)),
        sa.Column("camera_model", sa.String(128)),
        sa.Column("gps_lat", sa.Float()),
        sa.Column("gps_lon", sa.Float()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_reason", sa.String(32)),
        sa.Column("error_message", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tagger_version", sa.String(128)),
        sa.Column("embedder_version", sa.String(128)),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("indexed_at", sa.DateTime()),
        sa.Column("missing_since", sa.DateTime()),
    )
    op.create_index("ix_photos_content_hash", "photos", ["content_hash"])
    op.create_index("ix_photos_taken_at", "photos", ["taken_at"])
    op.create_index("ix_photos_status", "photos", ["status"])
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False, unique=True),
        sa.Column("name_zh", sa.Text()),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("threshold", sa.Float()),
    )
    op.create_index("ix_tags_name_zh", "tags", ["name_zh"])
    op.create_table(
        "photo_tags",
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag_id", sa.Integer(), sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("score", sa.Float()),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("model_version", sa.String(128)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_photo_tags_tag_state", "photo_tags", ["tag_id", "state"])
    op.create_table(
        "embeddings",
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    for table in ("embeddings", "photo_tags", "tags", "photos", "catalog_meta"):
        op.drop_table(table)
