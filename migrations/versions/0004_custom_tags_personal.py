"""Custom tags (CLIP prototypes) and personal models learned from corrections.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custom_tags",
        sa.Column("tag_id", sa.Integer(), sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("descriptions", sa.Text(), nullable=False),
        sa.Column("examples", sa.Text(), nullable=False),
        sa.Column("prototype", sa.LargeBinary(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedder_version", sa.String(128), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "personal_models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("embedder_version", sa.String(128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("corrections", sa.Integer(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
    )
    op.create_table(
        "personal_tag_params",
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("personal_models.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tag_id", sa.Integer(), sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("threshold", sa.Float()),
        sa.Column("weights", sa.LargeBinary()),
        sa.Column("bias", sa.Float()),
    )
    op.create_table(
        "personal_hidden",
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag_id", sa.Integer(), sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("score", sa.Float()),
        sa.Column("model_version", sa.String(128)),
    )


def downgrade() -> None:
    op.drop_table("personal_hidden")
    op.drop_table("personal_tag_params")
    op.drop_table("personal_models")
    op.drop_table("custom_tags")
