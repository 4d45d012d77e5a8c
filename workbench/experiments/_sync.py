"""Keeping the run projection in line with MLflow: :func:`sync_runs`.

MLflow runs have no "last updated" time (``runs`` has ``start_time``, ``end_time`` and
``deleted_time`` only, and a tag or a metric can be written to a finished run at any time), so a
watermark on time alone would miss changes. Instead the tracking store's
:class:`~workbench.tracking.RunSource` gives one small **fingerprint per run** (status, lifecycle
stage, times, name, and a digest of every tag, param and latest metric). Runs whose fingerprint
differs from the stored one (new, updated, deleted or restored) are re-read in full; runs that
vanished (``mlflow gc``) are removed. The digest of all fingerprints is the sync cursor
(:class:`~workbench.db.models.RunSyncState`): when it is unchanged nothing is written.

**Incremental sync** (``incremental=True``, what the Experiments page asks for): re-reading every
fingerprint costs time in proportion to the experiment, so between full passes a sync reads only
what can have changed: the runs started since the newest one it has seen (less
:data:`WATERMARK_MARGIN_MS`, for writers whose clocks or queues lag), the runs the projection
holds as still running (``RUNNING``/``SCHEDULED``: their metrics and final status keep moving), and
the runs whose lifecycle (deleted or restored) differs from the projection's, from the store's
list of deleted ids. The store's run count checks the result: when it is not the projected count
plus the new runs (a run purged by ``mlflow gc``, or one logged with a start time before the
watermark), the sync falls back to a full pass. What no cheap read can see is an edit of a
*finished* run (a tag set later, a metric re-logged): a full pass every ``reconcile_seconds``
(:data:`RECONCILE_SECONDS`) in each process picks those up, and the first sync of a process is full.
With ``defer_reconcile`` (the page), a due full pass over a projection that already exists runs in
a background thread (one per project and process) while the caller gets the incremental pass:
at 50,000 runs a full pass takes seconds, which a page view should not wait for every few minutes.

Which source: :func:`workbench.tracking.open_run_source` gives the SQL source on MLflow's own
tables (tens of milliseconds for 10,000 runs) when the store is a database whose schema matches
what it reads, else the ``MlflowClient`` source (exact, as slow as MLflow). Either reads only the
experiment of the workbench's MLflow workspace.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from workbench.db.dialect import conflict_insert
from workbench.db.handles import Handles
from workbench.db.models import Project, RunProjection, RunSyncState, utcnow

if TYPE_CHECKING:
    from workbench.settings import Settings
    from workbench.tracking import RunRecord

TAG_PARENT = "mlflow.parentRunId"
_CHUNK = 500
# An incremental sync re-reads the runs started this long before the newest one seen.
WATERMARK_MARGIN_MS = 60_000
# An incremental sync turns into a full pass when the process's last full pass is older than this.
RECONCILE_SECONDS = 300.0
OPEN_STATUSES = ("RUNNING", "SCHEDULED")
# SQLite stores: the ``PRAGMA data_version`` seen at each project's last sync, and the digest then.
# In the shared handle cache: a value is only meaningful for the watcher connection that read it,
# and reset_handles() closes those connections.
# (data version, digest, whether that sync was a full pass).
_seen: Handles[dict[tuple[str, str, int], tuple[int, str, bool]]] = Handles("experiments.seen_versions")
# When each (tracking URI, workbench DB, project) last had a full pass in this process (time.monotonic()).
_last_full: Handles[dict[tuple[str, str, int], float]] = Handles("experiments.last_full_sync")
# The deferred full passes running in this process, by the same key (see reconcile_threads).
_reconciling: dict[tuple[str, str, int], threading.Thread] = {}
_reconciling_lock = threading.Lock()
_logger = logging.getLogger(__name__)


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
    mode: str = ""  # "full", "incremental" or "unchanged" (the store was not written since the last sync)
    scanned: int = 0  # run fingerprints read from the tracking store

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"added": self.added, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged, "source": self.source, "experiment_id": self.experiment_id,
                "mode": self.mode, "scanned": self.scanned}


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


def sync_runs(
    session: Session,
    *,
    project: Project,
    settings: Settings | None = None,
    incremental: bool = False,
    reconcile_seconds: float = RECONCILE_SECONDS,
    defer_reconcile: bool = False,
) -> SyncResult:
    """Bring the project's run projection in line with MLflow (see the module docstring).

    Added, updated, deleted (lifecycle ``deleted``, kept and hidden by default) and restored runs
    are re-read; runs gone from MLflow are removed. With ``incremental``, only new, running and
    deleted/restored runs are looked at, unless this process's last full pass is older than
    ``reconcile_seconds`` (then, and for the first sync, a full pass). With ``defer_reconcile`` too,
    that full pass runs in a background thread when the projection exists already
    (:func:`reconcile_threads` lists them) and this call makes the incremental pass. Returns what changed.
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
    full_passes = _last_full.get("all", dict)
    last_full = full_passes.get(seen_key)
    reconcile_due = last_full is None or time.monotonic() - last_full >= reconcile_seconds
    # An unchanged store needs no sync, if what was seen then was exact: a full pass, or an incremental
    # one when an incremental sync is asked for and no full pass is due.
    if data_version is not None and seen is not None and seen[0] == data_version \
            and (seen[2] or (incremental and not reconcile_due)):
        state = session.get(RunSyncState, project.id)
        if state is not None and state.fingerprint == seen[1]:
            result.unchanged = state.n_runs
            result.experiment_id = state.experiment_id or None
            result.mode = "unchanged"
            return result
    experiment_id = source.experiment_id(experiment_name(project.slug))
    if experiment_id is None:
        return _apply(session, project, result, None, {}, [])
    state = session.get(RunSyncState, project.id)
    applied: SyncResult | None = None
    projected = state is not None and state.experiment_id == experiment_id
    if incremental and reconcile_due and defer_reconcile and projected:
        _reconcile_in_background(seen_key, project.id, settings)
        reconcile_due = False
    if incremental and not reconcile_due and projected:
        assert state is not None
        applied = _incremental(session, project, result, source, experiment_id, state)
    if applied is None:
        started = time.monotonic()
        fingerprints = source.fingerprints(experiment_id)
        result.scanned = len(fingerprints)
        stored = _stored_fingerprints(session, project)
        changed = [run_id for run_id, fp in fingerprints.items() if stored.get(run_id) != fp]
        changed_runs = source.read_runs(experiment_id, changed) if changed else []
        applied = _apply(session, project, result, experiment_id, fingerprints, changed_runs)
        applied.mode = "full"
        full_passes[seen_key] = started
    if data_version is not None:
        state = session.get(RunSyncState, project.id)
        if state is not None:
            seen_versions[seen_key] = (data_version, state.fingerprint, applied.mode == "full")
    return applied


def _reconcile_in_background(key: tuple[str, str, int], project_id: int, settings: Settings) -> None:
    """Start the full pass of ``key``'s project in a daemon thread, unless one is running already."""
    from workbench.db.engine import session_scope

    def run() -> None:
        try:
            with session_scope(settings.db_url) as session:
                project = session.get(Project, project_id)
                if project is not None:
                    sync_runs(session, project=project, settings=settings, incremental=False)
        except Exception as exc:  # the next due pass retries; the page keeps its incremental view
            _logger.warning("background full sync of project %s failed: %s", project_id, exc)
        finally:
            with _reconciling_lock:
                _reconciling.pop(key, None)

    with _reconciling_lock:
        running = _reconciling.get(key)
        if running is not None and running.is_alive():
            return
        thread = threading.Thread(target=run, name=f"runs-reconcile-{project_id}", daemon=True)
        _reconciling[key] = thread
    thread.start()


def reconcile_threads() -> list[threading.Thread]:
    """The deferred full passes running in this process (tests join them)."""
    with _reconciling_lock:
        return list(_reconciling.values())


def _project_ids(session: Session, project: Project, *conditions: Any) -> set[str]:
    query = select(RunProjection.run_id).where(RunProjection.project_id == project.id, *conditions)
    return set(session.connection().execute(query).scalars())  # Core: no ORM result handling


def _incremental(
    session: Session, project: Project, result: SyncResult, source: Any, experiment_id: str, state: RunSyncState,
) -> SyncResult | None:
    """The incremental pass (module docstring); None when the store's run count says a full pass is needed."""
    open_ids = _project_ids(session, project, RunProjection.status.in_(OPEN_STATUSES))
    projected_deleted = _project_ids(session, project, RunProjection.lifecycle_stage == "deleted")
    count, deleted = source.lifecycle(experiment_id)
    flipped = deleted ^ projected_deleted
    since = None if state.max_start_time is None else state.max_start_time - WATERMARK_MARGIN_MS
    fingerprints: dict[str, str] = source.recent_fingerprints(experiment_id, since=since,
                                                              run_ids=open_ids | flipped)
    result.scanned = len(fingerprints)
    stored: dict[str, str] = {}
    ids = sorted(fingerprints)
    for start in range(0, len(ids), _CHUNK):
        query = select(RunProjection.run_id, RunProjection.fingerprint).where(
            RunProjection.project_id == project.id, RunProjection.run_id.in_(ids[start : start + _CHUNK]))
        stored.update((row[0], row[1]) for row in session.execute(query))
    new_ids = [run_id for run_id in fingerprints if run_id not in stored]
    vanished = [run_id for run_id in open_ids | flipped if run_id not in fingerprints]
    if vanished or (count is not None and count != state.n_runs + len(new_ids)):
        return None  # purged runs, or a run that started before the watermark: only a full pass is exact
    changed = sorted(run_id for run_id, fp in fingerprints.items() if stored.get(run_id) != fp)
    result.experiment_id = experiment_id
    result.mode = "incremental"
    result.unchanged = state.n_runs + len(new_ids) - len(changed)
    if not changed:
        return result
    runs = {run["run_id"]: run for run in source.read_runs(experiment_id, changed)}
    rows = [_projection_row(project.id, experiment_id, runs[run_id], fingerprints[run_id])
            for run_id in changed if run_id in runs]
    _replace_rows(session, rows)
    result.added = sum(1 for row in rows if row["run_id"] not in stored)
    result.updated = len(rows) - result.added
    result.changed_ids = [row["run_id"] for row in rows]
    state.n_runs = count if count is not None else state.n_runs + len(new_ids)
    # The cursor moves with every change: a digest of the previous cursor and what changed.
    state.fingerprint = _digest([state.fingerprint, [(row["run_id"], row["fingerprint"]) for row in rows]])
    state.max_start_time = max([state.max_start_time or 0, *(row["start_time"] or 0 for row in rows)])
    state.source = result.source
    state.synced_at = utcnow()
    session.flush()
    return result


def _replace_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write projection rows, replacing any row of the same run id (one project's or, to be safe, another's).

    A page's incremental pass and a background full pass may write the same run at once. SQLite has one
    writer at a time, so the second pass's delete waits for the first's commit and then sees its rows: a
    delete, then a plain insert (the fastest, ~20 % faster than an upsert at 10,000 runs). On PostgreSQL the
    second pass's delete, once the first committed, no longer saw the row the first had inserted, and its
    insert failed on the primary key: there, an upsert.
    """
    # On the Core connection: the ORM's bulk insert path cost ~1.5 s of a 30,000-run first sync (profile).
    connection = session.connection()
    table = cast(Table, RunProjection.__table__)
    if connection.dialect.name == "sqlite":
        ids = [row["run_id"] for row in rows]
        for start in range(0, len(ids), _CHUNK):
            session.execute(delete(RunProjection).where(RunProjection.run_id.in_(ids[start : start + _CHUNK])))
        statement = insert(table)
    else:
        upsert = conflict_insert(connection.dialect.name, table, what="The run projection")
        statement = upsert.on_conflict_do_update(
            index_elements=[table.c.run_id],
            set_={column.name: upsert.excluded[column.name] for column in table.c if column.name != "run_id"},
        )
    for start in range(0, len(rows), 2000):
        connection.execute(statement, rows[start : start + 2000])


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
    if state is not None and state.experiment_id == (experiment_id or "") and not changed_runs and not gone:
        # Nothing to write: the cursor stays (an incremental sync's cursor is not this digest; moving it
        # would make the page rebuild what has not changed).
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
    _replace_rows(session, rows)
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
    session.flush()
    state.max_start_time = session.scalar(select(func.max(RunProjection.start_time))
                                          .where(RunProjection.project_id == project.id))
    state.source = result.source
    state.synced_at = utcnow()
    session.flush()
    return result


def sync_all_projects(settings: Settings | None = None) -> dict[str, SyncResult]:
    """Sync the run projection of every active (not archived) project, by slug: the server's warm-up.

    A process's first sync of a project is a full pass (every run's fingerprint read); run here, in the
    server's background warm-up, it leaves the first Experiments view of the process only the check for
    changes (an unchanged store answers from ``PRAGMA data_version`` without reading MLflow). A project
    whose sync fails is logged and skipped: the page syncs it again and shows the error there.
    """
    from workbench.db.engine import session_scope
    from workbench.settings import get_settings

    settings = settings or get_settings()
    results: dict[str, SyncResult] = {}
    with session_scope(settings.db_url) as session:
        projects = [(p.id, p.slug) for p in session.scalars(select(Project).where(Project.archived.is_(False))
                                                                .order_by(Project.name))]
    current = threading.current_thread()
    for project_id, slug in projects:
        key: tuple[str, str, int] | None = None
        try:
            with session_scope(settings.db_url) as session:
                project = session.get(Project, project_id)
                if project is None:
                    continue
                key = (settings.mlflow_tracking_uri, str(session.get_bind().engine.url), project_id)
                # Listed as this project's full pass, so a page view meanwhile does not start a second one.
                with _reconciling_lock:
                    running = _reconciling.get(key)
                    if running is not None and running.is_alive():
                        key = None
                        continue
                    _reconciling[key] = current
                results[slug] = sync_runs(session, project=project, settings=settings, incremental=True)
        except Exception as exc:  # the page's own sync reports it
            _logger.warning("warm-up sync of project %s failed: %s", slug, exc)
        finally:
            if key is not None:
                with _reconciling_lock:
                    if _reconciling.get(key) is current:
                        del _reconciling[key]
    return results
