"""the used_links table: delivered decision links that were used (single use)

Revision ID: 0009_used_links
Revises: 0008_usage
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_used_links"
down_revision = "0008_usage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_links",
        sa.Column("link_id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(512), nullable=False),
        sa.Column("step_id", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_used_links_expires_at", "used_links", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_used_links_expires_at", "used_links")
    op.drop_table("used_links")
