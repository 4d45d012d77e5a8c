"""Projects and dataset versions over SQLite and PostgreSQL (the repository layer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.bad_inputs import good_frame
from workbench.data.datasets import (
    add_dataset,
    create_project_with_dataset,
    dataset_dict,
    get_dataset,
    latest_dataset,
    list_datasets,
    load_frame,
    set_project_setup,
)
from workbench.db import session_scope
from workbench.db.models import Dataset, Project
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.projects import archive_project, create_project, get_project, list_projects, project_dict, rename_project
from workbench.settings import get_settings


def test_create_list_rename_archive(db_url: str) -> None:
    with session_scope() as session:
        create_project(session, name="Alpha Churn", task_type="classification", target="churned", actor="ann")
        create_project(session, name="Beta Ärger", task_type="regression", target="y", time_column="t")
    with session_scope() as session:
        slugs = [p.slug for p in list_projects(session)]
        assert slugs == ["alpha-churn", "beta-arger"]
        renamed = rename_project(session, slug="alpha-churn", new_name="Churn v2", actor="bob")
        assert (renamed.slug, renamed.name, renamed.updated_by) == ("alpha-churn", "Churn v2", "bob")
    with session_scope() as session:
        archive_project(session, slug="beta-arger", actor="bob")
    with session_scope() as session:
        assert [p.slug for p in list_projects(session)] == ["alpha-churn"]
        assert len(list_projects(session, include_archived=True)) == 2
        data = project_dict(get_project(session, slug="beta-arger"))
        assert data["archived"] is True and data["time_column"] == "t"
        archive_project(session, slug="beta-arger", archived=False)
    with session_scope() as session:
        assert len(list_projects(session)) == 2


def test_duplicate_slug_is_a_conflict(db_url: str) -> None:
    with session_scope() as session:
        create_project(session, name="Sales", task_type="regression", target="y")
    with pytest.raises(Conflict, match="slug 'sales' already exists"), session_scope() as session:
        create_project(session, name="SALES!", task_type="regression", target="y")
    with pytest.raises(Conflict), session_scope() as session:
        create_project_with_dataset(
            session, name="sales", dataset_spec_or_frame=good_frame(), target="amount", task_type="regression"
        )
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Project)) == 1
        assert session.scalar(select(func.count()).select_from(Dataset)) == 0
    with pytest.raises(NotFound, match="Known projects: sales"), session_scope() as session:
        get_project(session, slug="nope")


def test_dataset_versions(db_url: str) -> None:
    with session_scope() as session:
        project = create_project_with_dataset(
            session,
            name="Versions",
            dataset_spec_or_frame=good_frame(30),
            source="upload:v1.csv",
            target="label",
            task_type="classification",
            time_column="day",
            actor="ann",
        )
        with pytest.raises(NotFound, match="no dataset with id 999"):
            get_dataset(session, project=project, dataset_id=999)
    for seed in (1, 2):
        with session_scope() as session:
            project = get_project(session, slug="versions")
            add_dataset(
                session, project=project, frame=good_frame(30 + seed, seed=seed), source=f"s{seed}", actor="bob"
            )
    with session_scope() as session:
        project = get_project(session, slug="versions")
        rows = [dataset_dict(d) for d in list_datasets(session, project=project)]
        latest = latest_dataset(session, project=project)
        first = get_dataset(session, project=project, dataset_id=rows[-1]["id"])
    assert [r["version"] for r in rows] == [3, 2, 1]
    assert [r["n_rows"] for r in rows] == [32, 31, 30]
    assert rows[-1]["created_by"] == "ann" and rows[0]["created_by"] == "bob"
    assert len({r["content_hash"] for r in rows}) == 3
    assert latest.version == 3 and first.version == 1
    assert len(load_frame(first)) == 30
    assert all(Path(r["path"]).is_file() for r in rows)
    assert {c["name"]: c["kind"] for c in rows[0]["columns"]}["label"] == "categorical"


def test_rolled_back_version_leaves_no_row_or_file(db_url: str) -> None:
    with session_scope() as session:
        create_project_with_dataset(
            session, name="Atomic", dataset_spec_or_frame=good_frame(), target="label", task_type="classification"
        )
    folder = get_settings().datasets_dir / "atomic"
    before = sorted(folder.iterdir())
    with pytest.raises(RuntimeError), session_scope() as session:
        add_dataset(session, project=get_project(session, slug="atomic"), frame=good_frame(9, seed=9), source="x")
        raise RuntimeError("the caller failed after the write")
    assert sorted(folder.iterdir()) == before
    with session_scope() as session:
        assert [d.version for d in list_datasets(session, project=get_project(session, slug="atomic"))] == [1]


def test_set_project_setup_validates_against_the_data(db_url: str) -> None:
    with session_scope() as session:
        project = create_project_with_dataset(
            session, name="Setup", dataset_spec_or_frame=good_frame(), target="label", task_type="classification"
        )
    with pytest.raises(InvalidInput, match="not numeric"), session_scope() as session:
        set_project_setup(session, project=project, target="label", task_type="regression")
    with session_scope() as session:
        set_project_setup(session, project=project, target="amount", task_type="regression", time_column="day")
    with session_scope() as session:
        data = project_dict(get_project(session, slug="setup"))
    assert (data["target"], data["task_type"], data["time_column"]) == ("amount", "regression", "day")
