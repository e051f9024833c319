"""run ratings, run comment threads and run assignees (handoffs)

Revision ID: 0003_collab
Revises: 0002_schedules
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_collab"
down_revision = "0002_schedules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_ratings",
        sa.Column("run_id", sa.String(512), primary_key=True),
        sa.Column("identity", sa.String(255), primary_key=True),
        sa.Column("score", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("definition_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "run_comments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(512), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("handoff_to", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_run_comments_run_id", "run_comments", ["run_id"])
    op.create_index("ix_run_comments_handoff_to", "run_comments", ["handoff_to"])
    op.create_table(
        "run_assignees",
        sa.Column("run_id", sa.String(512), primary_key=True),
        sa.Column("assignee", sa.String(255), nullable=False),
        sa.Column("assigned_by", sa.String(255), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment_id", sa.Integer, nullable=False),
    )
    op.create_index("ix_run_assignees_assignee", "run_assignees", ["assignee"])


def downgrade() -> None:
    op.drop_index("ix_run_assignees_assignee", "run_assignees")
    op.drop_table("run_assignees")
    op.drop_index("ix_run_comments_handoff_to", "run_comments")
    op.drop_index("ix_run_comments_run_id", "run_comments")
    op.drop_table("run_comments")
    op.drop_table("run_ratings")
