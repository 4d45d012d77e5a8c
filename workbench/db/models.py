"""The workbench's data model (SQLAlchemy 2.x declarative).

Times are stored as naive UTC so that SQLite and PostgreSQL round-trip them identically.
Changing a model means adding an Alembic migration under ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, as naive UTC (the convention of every time column)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    task_type: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(200))
    time_column: Mapped[str | None] = mapped_column(String(200), nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # The rule baseline ("heuristic") built in the UI, kept as data: column / operator / value -> prediction.
    heuristic: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120), default="")


class ProjectMember(Base):
    """A user's role in one project (owner, editor or viewer); see ``workbench.access.roles``."""

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user", name="uq_project_members_project_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    # The identity the app records for a signed-in user (email, else name, else subject).
    user: Mapped[str] = mapped_column(String(120), index=True)
    role: Mapped[str] = mapped_column(String(20))
    added_by: Mapped[str] = mapped_column(String(120), default="")
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Dataset(Base):
    """One version of a project's data, stored as Parquet under the home folder."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "version", name="uq_datasets_project_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(500))
    path: Mapped[str] = mapped_column(String(1000))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    n_rows: Mapped[int] = mapped_column(Integer)
    n_cols: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # [{"name": ..., "dtype": ..., "kind": "numeric"|"categorical"|"datetime"|"boolean"|"text"}]
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")


class Job(Base):
    """A background job: a pipeline run in a detached process, watched through this row."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True, nullable=True
    )
    kind: Mapped[str] = mapped_column(String(40), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True, default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    log_path: Mapped[str] = mapped_column(String(1000), default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120), default="")


class CanvasRevision(Base):
    """One saved state of one canvas; every save and every restore appends a revision."""

    __tablename__ = "canvas_revisions"
    __table_args__ = (
        UniqueConstraint("project_id", "kind", "revision", name="uq_canvas_revisions_project_kind_rev"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    revision: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(120), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Split(Base):
    """The project's one train/holdout split per dataset version, reused by every run."""

    __tablename__ = "splits"
    __table_args__ = (UniqueConstraint("project_id", "dataset_id", name="uq_splits_project_dataset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    strategy: Mapped[str] = mapped_column(String(20))
    seed: Mapped[int] = mapped_column(Integer)
    holdout_fraction: Mapped[float] = mapped_column(Float)
    # Row positions of the holdout in the stored dataset, as a Parquet file beside the dataset.
    holdout_path: Mapped[str] = mapped_column(String(1000))
    n_train: Mapped[int] = mapped_column(Integer)
    n_holdout: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# SQLite only auto-increments an "INTEGER PRIMARY KEY"; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Deployment(Base):
    """One way the project's registered model is served: a batch run, a web service or a stream consumer."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(10))
    alias: Mapped[str] = mapped_column(String(80), default="champion")
    # The registered-model version the deployment resolved its alias to when it (last) loaded.
    model_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="created")
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120), default="")


class PredictionLog(Base):
    """Predictions of web and stream deployments, one row each (batch runs log segments instead).

    Monitoring reads this table and :class:`PredictionLogSegment` through ``workbench.prediction_log``.
    """

    __tablename__ = "prediction_log"
    __table_args__ = (Index("ix_prediction_log_deployment_ts", "deployment_id", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Unique, so that a re-delivered stream message or a retried batch never logs twice.
    request_id: Mapped[str] = mapped_column(String(80), unique=True)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    prediction: Mapped[Any] = mapped_column(JSON)
    proba: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    label: Mapped[Any] = mapped_column(JSON, nullable=True)
    # Indexed: a running rollout's check reads the labels set since its previous check by this column.
    labelled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    # During a canary or A/B rollout, which variant answered ("champion" or "challenger") and the
    # rollout; both are NULL for a prediction served with no rollout running (the champion's).
    variant: Mapped[str | None] = mapped_column(String(10), nullable=True)
    rollout_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class PredictionLogSegment(Base):
    """One chunk of a batch run's predictions, stored as a compressed Parquet blob (columnar log).

    Batch scoring logs millions of rows; one ``prediction_log`` row per prediction costs more than
    the prediction itself, so each scored chunk is one segment instead. Its rows have request ids
    ``<token>-<first_index + i>`` and are read back by ``workbench.prediction_log`` exactly like
    row-logged predictions. ``data`` holds the columns ``request_id, ts, prediction, latency_ms,
    proba_<class>...`` and ``feature:<name>`` per logged feature.
    """

    __tablename__ = "prediction_log_segments"
    __table_args__ = (
        # A retried chunk of the same run is written once, like a re-delivered row.
        UniqueConstraint("token", "first_index", name="uq_prediction_log_segments_token_first_index"),
        Index("ix_prediction_log_segments_deployment_ts", "deployment_id", "ts_max", "ts_min"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    # The batch run's request-id prefix.
    token: Mapped[str] = mapped_column(String(40))
    first_index: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer)
    ts_min: Mapped[datetime] = mapped_column(DateTime)
    ts_max: Mapped[datetime] = mapped_column(DateTime)
    # Mean latency per row of the chunk (what DevOps metrics read without decoding ``data``).
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class PredictionLabel(Base):
    """The true label of a prediction logged in a segment (row-logged ones keep it in ``prediction_log``)."""

    __tablename__ = "prediction_labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The segment holding the prediction: labels go with it, and a segment's labels are one indexed read.
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("prediction_log_segments.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[str] = mapped_column(String(80), unique=True)
    label: Mapped[Any] = mapped_column(JSON)
    labelled_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DeploymentMetric(Base):
    """A sample of a serving process's health: CPU, memory and request/error counts since the last sample."""

    __tablename__ = "deployment_metrics"
    __table_args__ = (Index("ix_deployment_metrics_deployment_ts", "deployment_id", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpu_percent: Mapped[float] = mapped_column(Float, default=0.0)
    rss_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)


class MonitoringReport(Base):
    """One monitoring run over a window of a deployment's prediction log."""

    __tablename__ = "monitoring_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The window as asked and as resolved: {"spec": "24h", "kind": "hours", "since": ..., "n_rows": ...}.
    window: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Gzipped Evidently snapshots (workbench.monitoring.reports), so the HTML can be drawn later.
    snapshot_path: Mapped[str] = mapped_column(String(1000), default="")
    # Drift table, check results and headline figures: what the page and `--json` show.
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="pass")
    created_by: Mapped[str] = mapped_column(String(120), default="")


class MonitoringMetric(Base):
    """One flattened metric of one report: the narrow history table the charts draw."""

    __tablename__ = "monitoring_metrics"
    __table_args__ = (Index("ix_monitoring_metrics_deployment_metric_ts", "deployment_id", "metric", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    report_id: Mapped[int] = mapped_column(ForeignKey("monitoring_reports.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(255))
    value: Mapped[float] = mapped_column(Float)


class Alert(Base):
    """A failed monitoring check, shown on Home and on the Monitoring page until acknowledged."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    report_id: Mapped[int | None] = mapped_column(
        ForeignKey("monitoring_reports.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    check: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text, default="")
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(120), nullable=True)


class RunProjection(Base):
    """An indexed copy of one MLflow run of a project (``workbench.experiments.runs``), so the Experiments page
    queries 10,000 runs in SQL instead of through MLflow's ``search_runs``.

    ``fingerprint`` summarises what the run holds in MLflow (status, times, every tag, param and
    latest metric); a sync re-reads only the runs whose fingerprint changed.
    """

    __tablename__ = "run_projection"
    __table_args__ = (
        Index("ix_run_projection_project_start", "project_id", "start_time"),
        Index("ix_run_projection_project_kind", "project_id", "kind"),
        Index("ix_run_projection_project_job", "project_id", "job_id"),
        # The active runs in order, from the index alone (the row cache's id read); the running ones (the
        # incremental sync). Migration 0007.
        Index("ix_run_projection_project_active", "project_id", "lifecycle_stage", "start_time", "run_id",
              "fingerprint"),
        Index("ix_run_projection_project_status", "project_id", "status"),
    )

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    experiment_id: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="")
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="active")
    run_name: Mapped[str] = mapped_column(String(250), default="")
    parent_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    start_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The params that parse as numbers, as floats: what makes ``params.x > 3`` a SQL comparison.
    params_num: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    synced_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RunSyncState(Base):
    """The sync cursor of a project's run projection: what the last sync saw in MLflow."""

    __tablename__ = "run_sync_state"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(String(32), default="")
    n_runs: Mapped[int] = mapped_column(Integer, default=0)
    # Digest of every run's fingerprint: equal digests mean nothing changed since the last sync.
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    max_start_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(20), default="")
    synced_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SavedView(Base):
    """A named filter + column choice of the Experiments page (and ``workbench runs --view``)."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_saved_views_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    filter_expr: Mapped[str] = mapped_column(Text, default="")
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Promotion(Base):
    """One change of a registered-model alias: who moved it, when, from which version to which, and why."""

    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(40))
    from_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    action: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = mapped_column(String(120), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # The rollout a step belongs to (start, share change, stop, breach, promotion after a rollout).
    rollout_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class Rollout(Base):
    """A registered version (normally ``@challenger``) served beside the champion on one deployment.

    ``mode`` is ``shadow`` (the challenger scores a copy of every request off the response path),
    ``canary`` or ``ab`` (the challenger answers ``share`` of the keys, sticky by a stable hash of
    the key column, else the request id). ``settings`` freezes, at start, what the verdict and the
    guardrails use (alpha, minimum uplift, burn-in, latency budget), so editing the canvas later
    does not change a running test. ``status`` is ``running`` until the rollout is stopped,
    breached (a guardrail stopped it) or promoted.
    """

    __tablename__ = "rollouts"
    __table_args__ = (
        # At most one running rollout per deployment, enforced by the database (a partial unique
        # index, which SQLite and PostgreSQL both have), so two people starting one at once can't
        # both succeed.
        Index(
            "uq_rollouts_running_deployment",
            "deployment_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(10))
    share: Mapped[float] = mapped_column(Float, default=0.0)
    champion_version: Mapped[str] = mapped_column(String(20))
    challenger_version: Mapped[str] = mapped_column(String(20))
    key_column: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(12), default="running")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The last verdict computed (better, worse, no difference yet), for listings without recomputing.
    verdict: Mapped[str | None] = mapped_column(String(20), nullable=True)
    end_reason: Mapped[str] = mapped_column(Text, default="")
    started_by: Mapped[str] = mapped_column(String(120), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ShadowPrediction(Base):
    """The challenger's prediction for a request the champion answered, during a shadow rollout.

    The request's features and its label stay on the champion's ``prediction_log`` row; the two
    are linked by ``request_id``. ``error`` says why there is no prediction (the challenger raised
    or timed out); requests dropped because the shadow queue was full have no row and are counted
    in the service's metrics instead.
    """

    __tablename__ = "shadow_predictions"
    __table_args__ = (
        # A re-delivered stream message or a retried request is scored in shadow once.
        UniqueConstraint("rollout_id", "request_id", name="uq_shadow_predictions_rollout_request"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(80))
    ts: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    prediction: Mapped[Any] = mapped_column(JSON, nullable=True)
    proba: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    # The copy's own call time per row when it was scored alone; NULL when scored with other requests'
    # copies (its share of that call is not a request's latency). Migration 0008.
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class RolloutTraffic(Base):
    """One serving process's counts for one variant of a rollout since its previous sample.

    The prediction log holds what was answered; this holds what was not: failed requests, and in
    shadow mode the copies dropped because the shadow queue was full or that timed out. The
    guardrails' error rates and the page's "dropped" figure are sums over these rows.
    """

    __tablename__ = "rollout_traffic"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    variant: Mapped[str] = mapped_column(String(10))
    ts: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
    timeouts: Mapped[int] = mapped_column(Integer, default=0)


class WebhookDelivery(Base):
    """One attempt to post an event to a webhook (``workbench.events``): the delivery log.

    ``url`` is stored without credentials (no user, password, query or fragment); ``status_code``
    is the receiver's answer, None when it could not be reached (``error`` then says why).
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    event: Mapped[str] = mapped_column(String(60))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True, index=True
    )
    url: Mapped[str] = mapped_column(String(1000))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
