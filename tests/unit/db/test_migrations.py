"""The Alembic migrations inside the package: they build exactly the models' schema.

Covers both SQLite (upgraded automatically, WAL mode) and PostgreSQL (refused when outdated,
with the command to run, and migrated by ``workbench db upgrade``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from workbench.db.engine import get_engine, make_engine, session_scope
from workbench.db.migrate import VERSION_TABLE, current_revision, head_revision, upgrade
from workbench.db.models import Base
from workbench.errors import StoreOutdated


def schema_diff(engine: Engine) -> list[Any]:
    """Differences between the DB behind ``engine`` and the models, as Alembic's autogenerate sees them."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "compare_server_default": False, "version_table": VERSION_TABLE},
        )
        return list(compare_metadata(context, Base.metadata))


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_migration_head_builds_the_models_schema_on_sqlite(workbench_home: Path) -> None:
    engine = make_engine(f"sqlite:///{workbench_home / 'fresh.db'}")
    try:
        assert current_revision(engine) is None
        assert upgrade(engine) == head_revision()
        assert schema_diff(engine) == []
        assert _tables(engine) == set(Base.metadata.tables) | {VERSION_TABLE}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_migration_head_builds_the_models_schema_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        assert current_revision(engine) is None
        assert upgrade(engine) == head_revision()
        assert schema_diff(engine) == []
        assert _tables(engine) == set(Base.metadata.tables) | {VERSION_TABLE}
    finally:
        engine.dispose()


def test_schema_diff_detects_a_missing_table(workbench_home: Path) -> None:
    """Guard the guard: a DB that lacks a model's table must show up as a difference."""
    engine = make_engine(f"sqlite:///{workbench_home / 'partial.db'}")
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE splits"))
        diff = schema_diff(engine)
        assert any(entry[0] == "add_table" and entry[1].name == "splits" for entry in diff)
    finally:
        engine.dispose()


def test_version_table_is_namespaced(workbench_home: Path) -> None:
    """MLflow and Optuna own ``alembic_version``; the workbench keeps to ``wb_alembic_version``."""
    engine = make_engine(f"sqlite:///{workbench_home / 'named.db'}")
    try:
        upgrade(engine)
        tables = _tables(engine)
        assert VERSION_TABLE == "wb_alembic_version"
        assert VERSION_TABLE in tables and "alembic_version" not in tables
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        assert rows == [head_revision()]
    finally:
        engine.dispose()


def test_embedded_sqlite_is_upgraded_automatically_and_runs_in_wal_mode(workbench_home: Path) -> None:
    from workbench.settings import get_settings

    settings = get_settings()
    assert settings.embedded_db
    database = Path(settings.db_url.removeprefix("sqlite:///"))
    assert not database.exists()
    engine = get_engine()
    assert current_revision(engine) == head_revision()
    with session_scope() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert int(session.execute(text("PRAGMA busy_timeout")).scalar() or 0) > 0
    assert database.is_file()


@pytest.mark.postgres
def test_outdated_postgresql_names_the_upgrade_command(
    workbench_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.db.engine import dispose_all
    from workbench.settings import get_settings

    monkeypatch.setenv("WORKBENCH_DB_URL", postgres_url)
    get_settings.cache_clear()
    dispose_all()
    with pytest.raises(StoreOutdated) as raised:
        get_engine()
    message = str(raised.value)
    assert "workbench db upgrade" in message
    assert head_revision() in message
    # Nothing was created behind the user's back: the DB is still empty.
    engine = make_engine(postgres_url)
    try:
        assert _tables(engine) == set()
    finally:
        engine.dispose()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.postgres
def test_db_upgrade_command_migrates_postgresql(workbench_home: Path, postgres_url: str) -> None:
    import os

    env = {**os.environ, "WORKBENCH_DB_URL": postgres_url, "WORKBENCH_HOME": str(workbench_home)}
    outdated = _cli("project", "list", env=env)
    assert outdated.returncode == 2
    assert "workbench db upgrade" in outdated.stderr and "Traceback" not in outdated.stderr

    result = _cli("db", "upgrade", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == {"from": None, "to": head_revision()}

    engine = make_engine(postgres_url)
    try:
        assert current_revision(engine) == head_revision()
        assert schema_diff(engine) == []
    finally:
        engine.dispose()
    # Now the store is current and the CLI works on it.
    listed = _cli("project", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    again = _cli("db", "upgrade", "--json", env=env)
    assert json.loads(again.stdout) == {"from": head_revision(), "to": head_revision()}
