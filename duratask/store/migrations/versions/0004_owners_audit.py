"""owners and teams of definitions and schedules; the audit table

Existing definitions get the identity that saved their first version as owner;
existing schedules keep their owner. Neither gets a team.

Revision ID: 0004_owners_audit
Revises: 0003_collab
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_owners_audit"
down_revision = "0003_collab"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("definitions") as b:
        b.add_column(sa.Column("owner", sa.String(255), nullable=True))
        b.add_column(sa.Column("team", sa.String(255), nullable=True))
    op.execute(
        "UPDATE definitions SET owner = (SELECT v.created_by FROM definition_versions v"
        " WHERE v.definition_id = definitions.id ORDER BY v.version LIMIT 1)"
    )
    with op.batch_alter_table("schedules") as b:
        b.add_column(sa.Column("team", sa.String(255), nullable=True))
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("resource_id", sa.String(512), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("team", sa.String(255), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    for column in ("actor", "resource_id", "owner", "team"):
        op.create_index(f"ix_audit_{column}", "audit", [column])


def downgrade() -> None:
    for column in ("actor", "resource_id", "owner", "team"):
        op.drop_index(f"ix_audit_{column}", "audit")
    op.drop_table("audit")
    with op.batch_alter_table("schedules") as b:
        b.drop_column("team")
    with op.batch_alter_table("definitions") as b:
        b.drop_column("team")
        b.drop_column("owner")
