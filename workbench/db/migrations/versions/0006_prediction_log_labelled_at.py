"""An index on ``prediction_log.labelled_at``: every check of a running rollout reads the labels set
since its previous check (``labelled_at > ...``), which without it scanned the deployment's log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Built in place on both databases (no table rebuild); on PostgreSQL a large log's index build holds a
    # write lock for its duration, like 0005's index on rollout_id.
    op.create_index("ix_prediction_log_labelled_at", "prediction_log", ["labelled_at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_labelled_at", table_name="prediction_log")
