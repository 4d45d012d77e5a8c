"""Rollouts: ``rollouts`` (shadow, canary and A/B of a challenger on a deployment),
``shadow_predictions`` (the challenger's predictions off the response path), ``rollout_traffic``
(per-variant errors, dropped and timed-out shadow copies), the answering
variant on ``prediction_log`` and the rollout of each step in ``promotions``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("champion_version", sa.String(20), nullable=False),
        sa.Column("challenger_version", sa.String(20), nullable=False),
        sa.Column("key_column", sa.String(200), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=False),
        sa.Column("started_by", sa.String(120), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_rollouts_project_id_projects",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], name="fk_rollouts_deployment_id_deployments",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_rollouts_project_id", "rollouts", ["project_id"])
    op.create_index("ix_rollouts_deployment_id", "rollouts", ["deployment_id"])
    op.create_index(
        "uq_rollouts_running_deployment", "rollouts", ["deployment_id"], unique=True,
        sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"),
    )
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "shadow_predictions",
        sa.Column("id", big_id, nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(80), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("prediction", sa.JSON(), nullable=True),
        sa.Column("proba", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_predictions"),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], name="fk_shadow_predictions_rollout_id_rollouts",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"],
                                name="fk_shadow_predictions_deployment_id_deployments", ondelete="CASCADE"),
        sa.UniqueConstraint("rollout_id", "request_id", name="uq_shadow_predictions_rollout_request"),
    )
    op.create_index("ix_shadow_predictions_rollout_id", "shadow_predictions", ["rollout_id"])
    op.create_table(
        "rollout_traffic",
        sa.Column("id", big_id, nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(10), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.Column("timeouts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_traffic"),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], name="fk_rollout_traffic_rollout_id_rollouts",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_rollout_traffic_rollout_id", "rollout_traffic", ["rollout_id"])
    # Plain nullable columns: ADD COLUMN works in place on SQLite and PostgreSQL (no table rebuild
    # of a possibly large prediction log).
    op.add_column("prediction_log", sa.Column("variant", sa.String(10), nullable=True))
    op.add_column("prediction_log", sa.Column("rollout_id", sa.Integer(), nullable=True))
    op.create_index("ix_prediction_log_rollout_id", "prediction_log", ["rollout_id"])
    op.add_column("promotions", sa.Column("rollout_id", sa.Integer(), nullable=True))
    op.create_index("ix_promotions_rollout_id", "promotions", ["rollout_id"])


def downgrade() -> None:
    op.drop_index("ix_promotions_rollout_id", table_name="promotions")
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("rollout_id")
    op.drop_index("ix_prediction_log_rollout_id", table_name="prediction_log")
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("rollout_id")
        batch.drop_column("variant")
    op.drop_table("rollout_traffic")
    op.drop_table("shadow_predictions")
    op.drop_table("rollouts")
