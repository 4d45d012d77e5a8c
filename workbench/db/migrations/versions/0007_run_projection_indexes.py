"""Run projection indexes for the incremental sync and the page's run list at 50,000 runs:
``ix_run_projection_project_active`` (project, lifecycle, start time, run id, fingerprint: the active runs
in order, read from the index alone) and ``ix_run_projection_project_status`` (the still-running runs).
Without them each view after a new run scanned the wide projection rows three times (0.17 s + 2 x 0.045 s
at 50,000 runs).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_run_projection_project_active", "run_projection",
                    ["project_id", "lifecycle_stage", "start_time", "run_id", "fingerprint"])
    op.create_index("ix_run_projection_project_status", "run_projection", ["project_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_run_projection_project_status", table_name="run_projection")
    op.drop_index("ix_run_projection_project_active", table_name="run_projection")
