"""Keeping the run projection in line with MLflow: :func:`sync_runs`.

MLflow runs have no "last updated" time (``runs`` has ``start_time``, ``end_time`` and
``deleted_time`` only, and a tag or a metric can be written to a finished run at any time), so a
watermark on time alone would miss changes. Instead the tracking store's
:class:`~workbench.tracking.RunSource` gives one small **fingerprint per run** (status, lifecycle
stage, times, name, and a digest of every tag, param and latest metric). Runs whose fingerprint
differs from the stored one (new, updated, deleted or restored) are re-read in full; runs that
vanished (``mlflow gc``) are removed. The digest of all fingerprints is the sync cursor
(:class:`~workbench.db.models.RunSyncState`): when it is unchanged nothing is written.

Which source: :func:`workbench.tracking.open_run_source` gives the SQL source on MLflow's own
tables (tens of milliseconds for 10,000 runs) when the store is a database whose schema matches
what it reads, else the ``MlflowClient`` source (exact, as slow as MLflow). Either reads only the
experiment of the workbench's MLflow workspace.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from workbench.db.handles import Handles
from workbench.db.models import Project, RunProjection, RunSyncState, utcnow

if TYPE_CHECKING:
    from workbench.settings import Settings
    from workbench.tracking import RunRecord

TAG_PARENT = "mlflow.parentRunId"
_CHUNK = 500
# SQLite stores: the ``PRAGMA data_version`` seen at each project's last sync, and the digest then.
# In the shared handle cache: a value is only meaningful for the watcher connection that read it,
# and reset_handles() closes those connections.
_seen: Handles[dict[tuple[str, str, int], tuple[int, str]]] = Handles("experiments.seen_versions")


@dataclass
class SyncResult:
    """What one :func:`sync_runs` changed."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    source: str = ""
    experiment_id: str | None = None
    changed_ids: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"added": self.added, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged, "source": self.source, "experiment_id": self.experiment_id}


def _digest(parts: Iterable[Any]) -> str:
    # The sync cursor: a digest of every (run id, fingerprint) pair.
    return hashlib.sha1(json.dumps(list(parts), default=str).encode()).hexdigest()


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _numeric_params(params: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in params.items():
        number = _finite(value)
        if number is not None and value is not None and str(value).strip().lower() not in ("true", "false"):
            out[key] = number
    return out


def _projection_row(project_id: int, experiment_id: str, run: RunRecord, fingerprint: str) -> dict[str, Any]:
    tags: dict[str, str] = run["tags"]
    params: dict[str, str] = run["params"]
    return {
        "run_id": run["run_id"],
        "project_id": project_id,
        "experiment_id": experiment_id,
        "job_id": tags.get("workbench.job_id"),
        "kind": tags.get("workbench.kind"),
        "status": run.get("status") or "",
        "lifecycle_stage": run.get("lifecycle_stage") or "active",
        "run_name": (run.get("run_name") or "")[:250],
        "parent_run_id": tags.get(TAG_PARENT),
        "start_time": run.get("start_time"),
        "end_time": run.get("end_time"),
        "params": params,
        "params_num": _numeric_params(params),
        # JSON has no NaN: a non-finite metric is kept as null (it matches no comparison).
        "metrics": {k: _finite(v) for k, v in run["metrics"].items()},
        "tags": tags,
        "fingerprint": fingerprint,
        "synced_at": utcnow(),
    }


def sync_runs(session: Session, *, project: Project, settings: Settings | None = None) -> SyncResult:
    """Bring the project's run projection in line with MLflow (see the module docstring).

    Added, updated, deleted (lifecycle ``deleted``, kept and hidden by default) and restored runs
    are re-read; runs gone from MLflow are removed. Returns what changed.
    """
    from workbench.db.engine import sqlite_file
    from workbench.settings import get_settings
    from workbench.tracking import experiment_name, open_run_source

    settings = settings or get_settings()
    uri = settings.mlflow_tracking_uri
    result = SyncResult()
    db_path = sqlite_file(uri)
    if db_path is not None and not db_path.exists():  # nothing logged yet: do not let MLflow create the file
        return _apply(session, project, result, None, {}, [])
    source = open_run_source(settings)
    result.source = source.kind
    # Read before anything else, so a write that lands during this sync is seen by the next one.
    data_version = source.data_version()
    seen_versions = _seen.get("all", dict)
    seen_key = (uri, str(session.get_bind().engine.url), project.id)
    seen = seen_versions.get(seen_key)
    if data_version is not None and seen is not None and seen[0] == data_version:
        state = session.get(RunSyncState, project.id)
        if state is not None and state.fingerprint == seen[1]:
            result.unchanged = state.n_runs
            result.experiment_id = state.experiment_id or None
            return result
    experiment_id = source.experiment_id(experiment_name(project.slug))
    if experiment_id is None:
        return _apply(session, project, result, None, {}, [])
    fingerprints = source.fingerprints(experiment_id)
    stored = _stored_fingerprints(session, project)
    changed = [run_id for run_id, fp in fingerprints.items() if stored.get(run_id) != fp]
    changed_runs = source.read_runs(experiment_id, changed) if changed else []
    applied = _apply(session, project, result, experiment_id, fingerprints, changed_runs)
    if data_version is not None:
        seen_versions[seen_key] = (data_version, _digest(sorted(fingerprints.items())))
    return applied


def _stored_fingerprints(session: Session, project: Project) -> dict[str, str]:
    rows = session.execute(
        select(RunProjection.run_id, RunProjection.fingerprint).where(RunProjection.project_id == project.id)
    ).all()
    return {row[0]: row[1] for row in rows}


def _apply(
    session: Session,
    project: Project,
    result: SyncResult,
    experiment_id: str | None,
    fingerprints: dict[str, str],
    changed_runs: list[RunRecord],
) -> SyncResult:
    result.experiment_id = experiment_id
    state = session.get(RunSyncState, project.id)
    digest = _digest(sorted(fingerprints.items()))
    stored = _stored_fingerprints(session, project)
    gone = [run_id for run_id in stored if run_id not in fingerprints]
    if state is not None and state.fingerprint == digest and state.experiment_id == (experiment_id or "") \
            and not changed_runs and not gone:
        result.unchanged = len(fingerprints)
        return result
    for start in range(0, len(gone), _CHUNK):
        session.execute(delete(RunProjection).where(RunProjection.run_id.in_(gone[start : start + _CHUNK])))
    result.removed = len(gone)
    rows = [
        _projection_row(project.id, experiment_id or "", run, fingerprints[run["run_id"]])
        for run in changed_runs
        if run["run_id"] in fingerprints
    ]
    updated_ids = [row["run_id"] for row in rows if row["run_id"] in stored]
    for start in range(0, len(updated_ids), _CHUNK):
        session.execute(delete(RunProjection).where(RunProjection.run_id.in_(updated_ids[start : start + _CHUNK])))
    # A run id moved from another project's experiment (runs cannot move in MLflow, but be safe).
    new_ids = [row["run_id"] for row in rows if row["run_id"] not in stored]
    for start in range(0, len(new_ids), _CHUNK):
        session.execute(delete(RunProjection).where(RunProjection.run_id.in_(new_ids[start : start + _CHUNK])))
    for start in range(0, len(rows), 2000):
        session.execute(insert(RunProjection), rows[start : start + 2000])
    result.updated = len(updated_ids)
    result.added = len(rows) - len(updated_ids)
    result.unchanged = len(fingerprints) - len(rows)
    result.changed_ids = [row["run_id"] for row in rows]
    if state is None:
        state = RunSyncState(project_id=project.id)
        session.add(state)
    state.experiment_id = experiment_id or ""
    state.n_runs = len(fingerprints)
    state.fingerprint = digest
    state.max_start_time = max((row["start_time"] or 0 for row in rows), default=state.max_start_time)
    state.source = result.source
    state.synced_at = utcnow()
    session.flush()
    return result
