"""@mentions in run comments: who was mentioned in which comment

Revision ID: 0007_mentions
Revises: 0006_stream_deltas
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_mentions"
down_revision = "0006_stream_deltas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_mentions",
        sa.Column("comment_id", sa.Integer, primary_key=True),
        sa.Column("identity", sa.String(255), primary_key=True),
        sa.Column("run_id", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_run_mentions_identity", "run_mentions", ["identity"])


def downgrade() -> None:
    op.drop_table("run_mentions")
