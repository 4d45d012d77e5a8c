"""Columnar log segments for batch scoring, and labels of their predictions.

Batch scoring logs each scored chunk as one ``prediction_log_segments`` row (a compressed
Parquet blob) instead of one ``prediction_log`` row per prediction; feedback on those
predictions goes to ``prediction_labels``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "prediction_log_segments",
        sa.Column("id", big_id, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(40), nullable=False),
        sa.Column("first_index", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("ts_min", sa.DateTime(), nullable=False),
        sa.Column("ts_max", sa.DateTime(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_log_segments"),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_prediction_log_segments_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token", "first_index", name="uq_prediction_log_segments_token_first_index"),
    )
    op.create_index(
        "ix_prediction_log_segments_deployment_ts", "prediction_log_segments", ["deployment_id", "ts_max", "ts_min"]
    )

    op.create_table(
        "prediction_labels",
        sa.Column("id", big_id, nullable=False),
        sa.Column("segment_id", big_id, nullable=False),
        sa.Column("request_id", sa.String(80), nullable=False),
        sa.Column("label", sa.JSON(), nullable=False),
        sa.Column("labelled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_labels"),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["prediction_log_segments.id"],
            name="fk_prediction_labels_segment_id_prediction_log_segments",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("request_id", name="uq_prediction_labels_request_id"),
    )
    op.create_index("ix_prediction_labels_segment_id", "prediction_labels", ["segment_id"])


def downgrade() -> None:
    op.drop_table("prediction_labels")
    op.drop_table("prediction_log_segments")
