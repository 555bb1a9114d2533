"""Index runs: when each pass ran, over which roots, with which models, and what it found.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("roots", sa.Text(), nullable=False),
        sa.Column("tagger_version", sa.String(128)),
        sa.Column("embedder_version", sa.String(128)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("runs")
