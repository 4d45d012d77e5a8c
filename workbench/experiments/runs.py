"""The project's MLflow runs as an indexed projection in the workbench DB: querying it.

Why a projection: ``mlflow.search_runs`` needs about 8.5 s for 10,000 runs (it materialises
every run entity), while the Experiments page must have its data in under a second. The
projection (:class:`~workbench.db.models.RunProjection`) keeps one row per run with params,
metrics and tags as JSON plus indexed columns (kind, job, status, start time), so the page's
filter (:mod:`workbench.experiments.run_filter`, with OR), sort, count and pagination run as SQL.

:func:`sync_runs` (in ``_sync``, re-exported here) keeps it exact, reading MLflow through the
tracking package's run source (:func:`workbench.tracking.open_run_source`). Saved views and the
side-by-side comparison of runs live here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import Project, RunProjection, RunSyncState, SavedView
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.experiments._conditions import base_conditions as _base_conditions
from workbench.experiments._frame_cache import RunsFrameCache
from workbench.experiments._sync import TAG_PARENT, SyncResult, sync_all_projects, sync_runs

if TYPE_CHECKING:
    import pandas as pd

    from workbench.settings import Settings

__all__ = [
    "ATTRIBUTE_COLUMNS", "COMPARE_MAX", "COMPARE_MIN", "DEFAULT_PAGE_SIZE", "FIGURE_ARTIFACTS", "MAX_PAGE_SIZE",
    "TAG_PARENT", "Comparison", "RunsFrameCache", "SyncResult", "available_columns", "compare_runs", "get_run",
    "get_view", "job_ids", "list_views", "projection_state", "query_runs", "run_figures", "runs_frame", "save_view",
    "sync_all_projects", "sync_runs",
]

ATTRIBUTE_COLUMNS = ("run_id", "run_name", "kind", "job_id", "status", "start_time", "end_time")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# --------------------------------------------------------------------------- querying


def _column_expression(name: str) -> Any:
    """A projection column or JSON field for a column name such as ``metrics.accuracy``."""
    from workbench.experiments.run_filter import ATTRIBUTES, ENTITY_ALIASES

    entity, dot, key = name.partition(".")
    entity = ENTITY_ALIASES.get(entity.lower(), entity)
    if not dot:
        if name in ATTRIBUTE_COLUMNS:
            return getattr(RunProjection, name)
        raise InvalidInput(
            f"column {name!r} is unknown; expected one of {', '.join(ATTRIBUTE_COLUMNS)} or metrics.<name>, "
            "params.<name>, tags.<name>.", field="columns")
    if entity == "attributes":
        if key.lower() not in ATTRIBUTES:
            raise InvalidInput(f"attribute {key!r} is unknown; expected one of {', '.join(sorted(ATTRIBUTES))}.",
                               field="columns")
        return getattr(RunProjection, ATTRIBUTES[key.lower()][0])
    if entity == "metrics":
        return RunProjection.metrics[key].as_float()
    if entity in ("params", "tags"):
        return getattr(RunProjection, entity)[key].as_string()
    raise InvalidInput(f"column {name!r} is unknown; expected metrics.<name>, params.<name>, tags.<name> or an "
                       f"attribute ({', '.join(ATTRIBUTE_COLUMNS)}).", field="columns")


def _order_clauses(order_by: Sequence[str] | str | None) -> list[Any]:
    from sqlalchemy import nulls_last

    if isinstance(order_by, str):
        order_by = [order_by]
    clauses = []
    for entry in order_by or ["attributes.start_time DESC"]:
        words = entry.strip().split()
        if not words:
            continue
        direction = "ASC"
        if len(words) > 1 and words[-1].upper() in ("ASC", "DESC"):
            direction = words[-1].upper()
            words = words[:-1]
        name = " ".join(words).replace("`", "")
        expression = _column_expression(name)
        clauses.append(nulls_last(expression.desc() if direction == "DESC" else expression.asc()))
    clauses.append(RunProjection.run_id.asc())  # a stable order across pages
    return clauses


def _flatten(row: RunProjection, columns: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(row, name) for name in ATTRIBUTE_COLUMNS}
    out["experiment_id"] = row.experiment_id
    out["parent_run_id"] = row.parent_run_id
    if columns is None:
        out.update({f"metrics.{k}": v for k, v in (row.metrics or {}).items()})
        out.update({f"params.{k}": v for k, v in (row.params or {}).items()})
        return out
    for name in columns:
        entity, _, key = name.partition(".")
        if entity in ("metrics", "params", "tags"):
            out[name] = (getattr(row, entity) or {}).get(key)
    return out


def query_runs(
    session: Session,
    *,
    project: Project,
    filter_expr: str | None = None,
    order_by: Sequence[str] | str | None = None,
    columns: Sequence[str] | None = None,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    kinds: Sequence[str] | None = None,
    job_ids: Sequence[str] | None = None,
    include_deleted: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the project's runs from the projection, filtered and sorted in SQL, and the total.

    ``filter_expr`` is :mod:`workbench.experiments.run_filter` syntax; ``order_by`` entries look like
    ``"metrics.accuracy DESC"``; ``columns`` names the metrics/params/tags to return besides the
    attributes (None: every metric and param). Call :func:`sync_runs` first for fresh data.
    """
    if page < 1:
        raise InvalidInput(f"page must be 1 or more; got {page}.", field="page")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}; got {page_size}.", field="page_size")
    conditions = _base_conditions(session, project, filter_expr, kinds=kinds, job_ids=job_ids,
                                  include_deleted=include_deleted)
    total = int(session.scalar(select(func.count()).select_from(RunProjection).where(*conditions)) or 0)
    query = (
        select(RunProjection).where(*conditions).order_by(*_order_clauses(order_by))
        .offset((page - 1) * page_size).limit(page_size)
    )
    rows = [_flatten(row, columns) for row in session.scalars(query)]
    return rows, total


def runs_frame(
    session: Session,
    *,
    project: Project,
    filter_expr: str | None = None,
    kinds: Sequence[str] | None = None,
    job_ids: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every matching run (no pagination) as a DataFrame for charts: attributes, ``trial_number``,
    then ``metrics.<k>`` (floats) and ``params.<k>`` (strings) columns, oldest run first.

    ``metrics``/``params`` None means every key present (in the project's active runs). Each run's
    JSON documents are decoded once; :class:`RunsFrameCache` keeps them between calls.
    """
    # A cache used once: the Experiments page keeps one per project instead, so a new run costs its row.
    return RunsFrameCache().frame(session, project=project, filter_expr=filter_expr, kinds=kinds, job_ids=job_ids,
                                  metrics=metrics, params=params)


def available_columns(session: Session, *, project: Project) -> dict[str, list[str]]:
    """The metric, param and tag keys present in the project's runs (sorted), for column choosers."""
    dialect = session.get_bind().dialect.name
    out: dict[str, list[str]] = {}
    from sqlalchemy import text

    for entity in ("metrics", "params", "tags"):
        if dialect == "sqlite":
            sql = (f"SELECT DISTINCT j.key FROM run_projection r, json_each(r.{entity}) j "
                   "WHERE r.project_id = :pid AND r.lifecycle_stage = 'active'")
        elif dialect == "postgresql":
            sql = (f"SELECT DISTINCT json_object_keys(r.{entity}) FROM run_projection r "
                   "WHERE r.project_id = :pid AND r.lifecycle_stage = 'active'")
        else:
            keys: set[str] = set()
            for value in session.scalars(select(getattr(RunProjection, entity))
                                         .where(RunProjection.project_id == project.id)):
                keys.update(value or {})
            out[entity] = sorted(keys)
            continue
        out[entity] = sorted(str(row[0]) for row in session.execute(text(sql), {"pid": project.id}))
    return out


def get_run(session: Session, *, project: Project, run_id: str) -> dict[str, Any]:
    """One projected run as a dict (params, metrics and tags in full)."""
    row = session.get(RunProjection, run_id)
    if row is None or row.project_id != project.id:
        raise NotFound(f"Run {run_id!r} is not a run of project {project.slug!r}; pick one from `workbench runs "
                       f"{project.slug}`.")
    out = _flatten(row, [])
    out.update({"params": dict(row.params or {}), "metrics": dict(row.metrics or {}), "tags": dict(row.tags or {}),
                "lifecycle_stage": row.lifecycle_stage})
    return out


def job_ids(session: Session, *, project: Project) -> list[str]:
    """The distinct job ids of the project's runs, newest first."""
    rows = session.execute(
        select(RunProjection.job_id, func.max(RunProjection.start_time))
        .where(RunProjection.project_id == project.id, RunProjection.job_id.is_not(None))
        .group_by(RunProjection.job_id).order_by(func.max(RunProjection.start_time).desc())
    ).all()
    return [str(row[0]) for row in rows]


# --------------------------------------------------------------------------- saved views


def save_view(
    session: Session, *, project: Project, name: str, filter_expr: str, columns: Sequence[str] | None = None,
    actor: str = "", replace: bool = False, principal: Principal | None = None,
) -> SavedView:
    """Save a named filter (validated) and column choice; ``replace`` overwrites a view of that name.

    Views are shared by the project, so ``principal`` (None: the operator) must be an editor.
    """
    from workbench.experiments.run_filter import parse

    require(session, project=project, principal=principal, action="edit")

    name = (name or "").strip()
    if not name or len(name) > 120:
        raise InvalidInput(f"view name must be 1 to 120 characters; got {name!r}.", field="name")
    parse(filter_expr)
    existing = session.scalar(select(SavedView).where(SavedView.project_id == project.id, SavedView.name == name))
    if existing is not None:
        if not replace:
            raise Conflict(f"A view named {name!r} already exists in {project.slug!r}; choose another name or "
                           "replace it.")
        existing.filter_expr = filter_expr or ""
        existing.columns = list(columns or [])
        existing.created_by = actor
        session.flush()
        return existing
    view = SavedView(project_id=project.id, name=name, filter_expr=filter_expr or "", columns=list(columns or []),
                     created_by=actor)
    session.add(view)
    session.flush()
    return view


def list_views(session: Session, *, project: Project) -> list[SavedView]:
    """The project's saved views by name."""
    return list(session.scalars(select(SavedView).where(SavedView.project_id == project.id).order_by(SavedView.name)))


def get_view(session: Session, *, project: Project, name: str) -> SavedView:
    """A saved view by name."""
    view = session.scalar(select(SavedView).where(SavedView.project_id == project.id, SavedView.name == name))
    if view is None:
        names = ", ".join(v.name for v in list_views(session, project=project)) or "none yet"
        raise NotFound(f"No view named {name!r} in {project.slug!r}; saved views: {names}.")
    return view


# --------------------------------------------------------------------------- compare


COMPARE_MIN, COMPARE_MAX = 2, 4
# Figure artifacts that runs log (baselines under plots/, refit best models under evaluation/).
FIGURE_ARTIFACTS: dict[str, tuple[str, ...]] = {
    "confusion matrix": ("evaluation/confusion_matrix.json", "plots/confusion_matrix.json"),
    "ROC curve": ("evaluation/roc_curve.json", "plots/roc.json", "plots/roc_curve.json"),
    "PR curve": ("evaluation/pr_curve.json", "plots/pr.json", "plots/pr_curve.json"),
    "residuals": ("evaluation/residuals_vs_predicted.json", "plots/residuals.json"),
    "residual histogram": ("evaluation/residuals_histogram.json",),
}


@dataclass(frozen=True)
class Comparison:
    """2-4 runs side by side: params (with the differing ones named) and metrics."""

    run_ids: list[str]
    labels: list[str]
    params: pd.DataFrame  # index: param, columns: labels
    metrics: pd.DataFrame
    differing: list[str]
    runs: list[dict[str, Any]]


def compare_runs(session: Session, *, project: Project, run_ids: Sequence[str]) -> Comparison:
    """Params and metrics of 2 to 4 runs of the project, side by side."""
    import pandas as pd

    ids = list(dict.fromkeys(run_ids))
    if not COMPARE_MIN <= len(ids) <= COMPARE_MAX:
        raise InvalidInput(f"compare takes {COMPARE_MIN} to {COMPARE_MAX} runs; got {len(ids)}. Pick between two "
                           "and four runs.", field="run_ids")
    runs = [get_run(session, project=project, run_id=run_id) for run_id in ids]
    labels = [f"{run['run_name'] or run['run_id'][:8]} · {run['run_id'][:8]}" for run in runs]
    param_keys = sorted({k for run in runs for k in run["params"]})
    metric_keys = sorted({k for run in runs for k in run["metrics"]})
    params = pd.DataFrame({label: [run["params"].get(k) for k in param_keys] for label, run in zip(labels, runs,
                                                                                                  strict=True)},
                          index=pd.Index(param_keys, name="param"))
    metrics = pd.DataFrame({label: [run["metrics"].get(k) for k in metric_keys] for label, run in zip(labels, runs,
                                                                                                     strict=True)},
                           index=pd.Index(metric_keys, name="metric"))
    differing = [k for k in param_keys if len({str(run["params"].get(k)) for run in runs}) > 1]
    return Comparison(ids, labels, params, metrics, differing, runs)


def run_figures(run_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """The evaluation figures a run logged (confusion matrix, ROC/PR curves, residuals), as plotly figures."""
    import tempfile

    import plotly.io as pio

    from workbench.tracking import get_client

    client = get_client(settings)
    present: set[str] = set()
    for folder in ("evaluation", "plots"):
        try:
            present.update(info.path for info in client.list_artifacts(run_id, folder))
        except Exception:  # a run without that folder, or a store that cannot list it
            continue
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, paths in FIGURE_ARTIFACTS.items():
            path = next((p for p in paths if p in present), None)
            if path is None:
                continue
            local = client.download_artifacts(run_id, path, tmp)
            with open(local, encoding="utf-8") as handle:
                figures[name] = pio.from_json(handle.read())
    return figures


def projection_state(session: Session, *, project: Project) -> tuple[str, int]:
    """``(digest, run count)`` of the projection's last sync: a cache key that changes with any run."""
    state = session.get(RunSyncState, project.id)
    return (state.fingerprint, state.n_runs) if state is not None else ("", 0)
