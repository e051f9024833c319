"""the usage table: model usage per call, summed per owner and definition per day

Revision ID: 0008_usage
Revises: 0007_mentions
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_usage"
down_revision = "0007_mentions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("key", sa.String(600), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("definition_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(512), nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_usage_day_owner", "usage", ["day", "owner"])
    op.create_index("ix_usage_day_definition", "usage", ["day", "definition_id"])


def downgrade() -> None:
    op.drop_index("ix_usage_day_definition", "usage")
    op.drop_index("ix_usage_day_owner", "usage")
    op.drop_table("usage")
