"""the rate-limit tables: model calls per endpoint, shared by every worker's limiter

Revision ID: 0010_rate_limits
Revises: 0009_used_links
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_rate_limits"
down_revision = "0009_used_links"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_locks",
        sa.Column("endpoint", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "rate_limit_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("claimed", sa.Boolean, nullable=False),
    )
    op.create_index("ix_rate_limit_calls_endpoint_at", "rate_limit_calls", ["endpoint", "at"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_calls_endpoint_at", "rate_limit_calls")
    op.drop_table("rate_limit_calls")
    op.drop_table("rate_limit_locks")
