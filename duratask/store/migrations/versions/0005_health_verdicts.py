"""the last health verdict of each definition, kept across gateway restarts

Revision ID: 0005_health_verdicts
Revises: 0004_owners_audit
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_health_verdicts"
down_revision = "0004_owners_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_verdicts",
        sa.Column("definition_id", sa.String(64), primary_key=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("health_verdicts")
