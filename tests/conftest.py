"""Shared fixtures: an isolated workbench home per test, and a real PostgreSQL database.

Every test gets its own ``WORKBENCH_HOME`` in a temporary folder, so the stores (SQLite
files, datasets, MLflow artifacts) never leak between tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get("WORKBENCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

def _store_variables() -> tuple[str, ...]:
    from workbench.settings import environment_variables

    return environment_variables()


def reset_workbench_caches() -> None:
    """Forget cached settings and every store handle so the next call reads the environment again."""
    from workbench.db.handles import reset_handles
    from workbench.settings import get_settings

    get_settings.cache_clear()
    reset_handles()  # engines, MLflow clients and engines, Optuna storages: one cache, one reset


@pytest.fixture()
def workbench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty workbench home with every store embedded under it."""
    for name in _store_variables():
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_CONFIG", str(tmp_path / "absent-workbench.toml"))
    reset_workbench_caches()
    yield home
    reset_workbench_caches()


def _postgres_available() -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return f"no PostgreSQL server answers at {POSTGRES_ADMIN_URL}: {exc}"


def make_postgres_database() -> str:
    """Create an empty database on the test server; returns its SQLAlchemy URL."""
    import psycopg

    name = f"wbtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); skips, saying why, when no server answers."""
    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    url = make_postgres_database()
    try:
        yield url
    finally:
        reset_workbench_caches()
        drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The workbench DB URL, once on SQLite and once on PostgreSQL, already migrated."""
    if request.param == "sqlite":
        url = f"sqlite:///{workbench_home / 'workbench.db'}"
        monkeypatch.setenv("WORKBENCH_DB_URL", url)
        reset_workbench_caches()
        yield url
        return
    url = request.getfixturevalue("postgres_url")
    use_migrated_database(monkeypatch, url)
    yield url


def use_migrated_database(patch: pytest.MonkeyPatch, url: str) -> None:
    """Point ``WORKBENCH_DB_URL`` at ``url`` (through ``patch``) and migrate that database."""
    patch.setenv("WORKBENCH_DB_URL", url)
    reset_workbench_caches()
    from workbench.db.engine import make_engine
    from workbench.db.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
