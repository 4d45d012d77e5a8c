"""Datasets: read uploads, built-in and synthetic data, validate the target, store versions.

A dataset version is a Parquet file under ``<home>/datasets/<project-slug>/`` plus a row in
the ``datasets`` table with its content hash, row and column counts and inferred column
types. Writing is all-or-nothing: the Parquet file is written to a temporary name, renamed
once the row is flushed, and removed again if the transaction rolls back.

Dataset specs (the ``--dataset`` argument and the Home form) are strings:

- a path to a CSV or Parquet file;
- ``builtin:<name>`` for one of scikit-learn's bundled datasets (:data:`BUILTINS`);
- ``synthetic:<name>[?param=value&...]`` for a generated, time-stamped dataset with
  controllable drift (:data:`SYNTHETIC`, parameters in :data:`SYNTHETIC_PARAMS`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require

# The pieces live in private modules by concept; their public names are re-exported here,
# where every caller imports them from.
from workbench.data._columns import (
    CATEGORICAL_MAX_UNIQUE,
    COLUMN_KINDS,
    INTEGER_CARDINALITY_LIMIT,
    TEXT_UNIQUE_SHARE,
    analysis_kind,
    check_values,
    column_kind,
    infer_columns,
    normalize_frame,
)
from workbench.data._names import normalize_column_name, normalize_columns
from workbench.data._sources import (
    BUILTINS,
    DRIFT_KINDS,
    SYNTHETIC,
    SYNTHETIC_PARAMS,
    BuiltinSpec,
    Param,
    SyntheticSpec,
    dataset_choices,
    parse_synthetic_params,
    resolve_spec,
    suggested_setup,
)
from workbench.data._target import validate_target
from workbench.data._upload import CSV_EXTENSIONS, PARQUET_EXTENSIONS, read_upload
from workbench.db.models import Dataset, Project, utcnow
from workbench.errors import Conflict, InvalidInput, NotFound, check_choice
from workbench.settings import Settings, get_settings

__all__ = [
    "BUILTINS",
    "CATEGORICAL_MAX_UNIQUE",
    "COLUMN_KINDS",
    "CSV_EXTENSIONS",
    "DRIFT_KINDS",
    "INTEGER_CARDINALITY_LIMIT",
    "PARQUET_EXTENSIONS",
    "SYNTHETIC",
    "SYNTHETIC_PARAMS",
    "TEXT_UNIQUE_SHARE",
    "BuiltinSpec",
    "Param",
    "SyntheticSpec",
    "add_dataset",
    "analysis_kind",
    "check_values",
    "column_kind",
    "content_hash",
    "create_project_with_dataset",
    "dataset_choices",
    "dataset_dict",
    "get_dataset",
    "infer_columns",
    "latest_dataset",
    "list_datasets",
    "load_frame",
    "normalize_column_name",
    "normalize_columns",
    "normalize_frame",
    "parse_synthetic_params",
    "read_upload",
    "resolve_spec",
    "set_project_setup",
    "suggested_setup",
    "validate_target",
]


def content_hash(frame: pd.DataFrame) -> str:
    """sha256 of a canonical form of the frame: column names, dtypes and row hashes.

    ``pd.util.hash_pandas_object`` uses a fixed key, so the hash is the same across runs
    and machines for the same content (unlike Parquet bytes, which carry writer metadata).
    """
    digest = hashlib.sha256()
    for name in frame.columns:
        digest.update(f"{name}\x1f{frame[name].dtype}\x1e".encode())
    if len(frame):
        rows = pd.util.hash_pandas_object(frame, index=False, categorize=True).to_numpy()
        digest.update(rows.astype("<u8").tobytes())
    return digest.hexdigest()


_PENDING_FILES = "workbench.pending_dataset_files"


def _remove_pending(session: Session) -> None:
    for name in session.info.pop(_PENDING_FILES, []):
        path = Path(name)
        path.unlink(missing_ok=True)
        # The project's folder too, when this was its only file (nothing is left behind).
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING_FILES, None)


def _track_file(session: Session, path: Path) -> None:
    """Delete ``path`` if this session's transaction rolls back, so nothing is partly stored."""
    if _PENDING_FILES not in session.info:
        session.info[_PENDING_FILES] = []
        if not event.contains(session, "after_rollback", _remove_pending):
            event.listen(session, "after_rollback", _remove_pending)
            event.listen(session, "after_commit", _forget_pending)
    session.info[_PENDING_FILES].append(str(path))


def add_dataset(
    session: Session,
    *,
    project: Project,
    frame: pd.DataFrame,
    source: str,
    actor: str = "",
    settings: Settings | None = None,
    principal: Principal | None = None,
) -> Dataset:
    """Store ``frame`` as the project's next dataset version (Parquet + row), all or nothing.

    ``principal`` (None: the operator) must be an editor of the project.
    """
    require(session, project=project, principal=principal, action="edit")
    settings = settings or get_settings()
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidInput("the dataset has no rows or no columns; nothing to store.", field="file")
    stored = normalize_frame(frame)
    digest = content_hash(stored)
    folder = settings.datasets_dir / project.slug
    folder.mkdir(parents=True, exist_ok=True)
    version = (session.scalar(select(func.max(Dataset.version)).where(Dataset.project_id == project.id)) or 0) + 1
    final = folder / f"v{version:04d}-{digest[:12]}.parquet"
    handle, temp_name = tempfile.mkstemp(prefix=f".v{version:04d}-", suffix=".parquet.tmp", dir=folder)
    os.close(handle)
    temp = Path(temp_name)
    try:
        stored.to_parquet(temp, index=False)
        dataset = Dataset(
            project_id=project.id,
            version=version,
            source=source[:500],
            path=str(final),
            content_hash=digest,
            n_rows=int(stored.shape[0]),
            n_cols=int(stored.shape[1]),
            size_bytes=temp.stat().st_size,
            columns=infer_columns(stored),
            created_by=actor,
            created_at=utcnow(),
        )
        session.add(dataset)
        try:
            session.flush()
        except IntegrityError as exc:
            raise Conflict(
                f"Another dataset version {version} of {project.slug!r} was added at the same time; try again."
            ) from exc
        os.replace(temp, final)
        _track_file(session, final)
    finally:
        temp.unlink(missing_ok=True)
    return dataset


def latest_dataset(session: Session, *, project: Project) -> Dataset:
    """The project's newest dataset version; NotFound with how to add one."""
    dataset = session.scalar(
        select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.version.desc()).limit(1)
    )
    if dataset is None:
        raise NotFound(
            f"Project {project.slug!r} has no dataset yet. Add one on the Data page or with "
            f"`workbench data add {project.slug} FILE`."
        )
    return dataset


def get_dataset(session: Session, *, project: Project, dataset_id: int | None = None) -> Dataset:
    """Dataset ``dataset_id`` of the project (the latest when None)."""
    if dataset_id is None:
        return latest_dataset(session, project=project)
    dataset = session.get(Dataset, int(dataset_id))
    if dataset is None or dataset.project_id != project.id:
        raise NotFound(
            f"Project {project.slug!r} has no dataset with id {dataset_id}; "
            f"list them with `workbench data list {project.slug}`."
        )
    return dataset


def list_datasets(session: Session, *, project: Project) -> list[Dataset]:
    """The project's dataset versions, newest first."""
    return list(
        session.scalars(select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.version.desc()))
    )


def load_frame(dataset: Dataset) -> pd.DataFrame:
    """The stored data of a dataset version."""
    path = Path(dataset.path)
    if not path.is_file():
        raise NotFound(
            f"The file of dataset version {dataset.version} is missing ({path}); the home folder was moved "
            "or cleaned. Add the data again with `workbench data add`."
        )
    return pd.read_parquet(path)


def dataset_dict(dataset: Dataset) -> dict[str, Any]:
    """The dataset as JSON-ready data (CLI ``--json``, the Data page's table)."""
    return {
        "id": dataset.id,
        "project_id": dataset.project_id,
        "version": dataset.version,
        "source": dataset.source,
        "path": dataset.path,
        "content_hash": dataset.content_hash,
        "n_rows": dataset.n_rows,
        "n_cols": dataset.n_cols,
        "size_bytes": dataset.size_bytes,
        "columns": dataset.columns,
        "created_at": dataset.created_at.isoformat() if dataset.created_at else None,
        "created_by": dataset.created_by,
    }


def create_project_with_dataset(
    session: Session,
    *,
    name: str,
    dataset_spec_or_frame: str | pd.DataFrame,
    target: str,
    task_type: str,
    time_column: str | None = None,
    actor: str = "",
    source: str | None = None,
    settings: Settings | None = None,
) -> Project:
    """Create a project and its first dataset version in the caller's transaction.

    Everything is validated first (name, slug free, data readable, target, task and time
    column), so a bad input writes nothing. ``source`` labels a frame (e.g. ``upload:x.csv``).
    """
    from workbench.projects import slugify, validate_name

    settings = settings or get_settings()
    cleaned = validate_name(name)
    check_choice("task_type", task_type, ("classification", "regression"))
    slug = slugify(cleaned)
    existing = session.scalar(select(Project).where(Project.slug == slug))
    if existing is not None:
        raise Conflict(
            f"A project with slug {slug!r} already exists (named {existing.name!r}). "
            "Choose another name, or open the existing project."
        )
    if isinstance(dataset_spec_or_frame, pd.DataFrame):
        frame, label = dataset_spec_or_frame, source or "frame"
    else:
        frame, label = resolve_spec(dataset_spec_or_frame, settings=settings)
        label = source or label
    time_column = time_column or None
    # The target is checked under the names the data is stored with (a shallow copy: no data copied).
    check_values(frame)
    names = normalize_columns(frame.columns, field="file")
    frame = frame.copy(deep=False)
    frame.columns = names
    validate_target(frame, target=target, task_type=task_type, time_column=time_column, settings=settings)
    from workbench.projects import create_project

    project = create_project(
        session, name=cleaned, task_type=task_type, target=target, time_column=time_column, actor=actor
    )
    add_dataset(session, project=project, frame=frame, source=label, actor=actor, settings=settings)
    return project


def set_project_setup(
    session: Session,
    *,
    project: Project,
    target: str,
    task_type: str,
    time_column: str | None = None,
    actor: str = "",
    settings: Settings | None = None,
    principal: Principal | None = None,
) -> Project:
    """Change the project's target, task and time column after checking them on its latest data.

    ``principal`` (None: the operator) must be an editor of the project.
    """
    from workbench.projects import get_project

    # Re-read the row in this session: pages hold detached copies.
    project = get_project(session, slug=project.slug)
    require(session, project=project, principal=principal, action="edit")
    dataset = latest_dataset(session, project=project)
    frame = load_frame(dataset)
    validate_target(frame, target=target, task_type=task_type, time_column=time_column or None, settings=settings)
    project.target = target
    project.task_type = task_type
    project.time_column = time_column or None
    project.updated_by = actor
    project.updated_at = utcnow()
    session.flush()
    return project
