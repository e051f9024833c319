"""transient live items (token deltas) relayed from workers to gateways outside history

Revision ID: 0006_stream_deltas
Revises: 0005_health_verdicts
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_stream_deltas"
down_revision = "0005_health_verdicts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_deltas",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(512), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_stream_deltas_run_id", "stream_deltas", ["run_id"])
    op.create_index("ix_stream_deltas_created_at", "stream_deltas", ["created_at"])


def downgrade() -> None:
    op.drop_table("stream_deltas")
