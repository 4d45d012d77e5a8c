"""``shadow_predictions.latency_ms`` may be NULL: a copy scored in one call with other requests' copies has no
latency of its own.

The challenger's latency in shadow mode was each row's share of its batched call, while the champion's is its
request's own time: the ``p99_vs_champion`` guardrail compared a 1/100 share with a whole request. Rows now
carry a latency only when their copy was scored alone (every copy when they come one at a time, one probe now
and then when they queue up); the others are NULL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite rebuilds the table (batch mode); PostgreSQL drops the constraint in place.
    with op.batch_alter_table("shadow_predictions") as batch:
        batch.alter_column("latency_ms", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE shadow_predictions SET latency_ms = 0 WHERE latency_ms IS NULL")
    with op.batch_alter_table("shadow_predictions") as batch:
        batch.alter_column("latency_ms", existing_type=sa.Float(), nullable=False)
