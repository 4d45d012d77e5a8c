"""Project roles: ``project_members`` holds each user's role (owner, editor, viewer) per project.

Every existing project's creator (``projects.created_by``, when recorded) becomes its owner, so
the people who made projects before roles existed can still manage them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(120), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("added_by", sa.String(120), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_project_members"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_members_project_id_projects", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("project_id", "user", name="uq_project_members_project_user"),
    )
    op.create_index("ix_project_members_project_id", "project_members", ["project_id"])
    op.create_index("ix_project_members_user", "project_members", ["user"])
    # "user" is quoted: it is a reserved word on PostgreSQL.
    op.execute(
        'INSERT INTO project_members (project_id, "user", role, added_by, added_at) '
        "SELECT id, created_by, 'owner', 'migration 0003', created_at FROM projects "
        "WHERE created_by IS NOT NULL AND created_by <> ''"
    )


def downgrade() -> None:
    op.drop_table("project_members")
