"""Engine and session scope, created lazily per DB URL.

SQLite runs in WAL mode with a busy timeout so that several browser sessions and job
processes can write at once. The schema is checked the first time a URL is used: an
embedded SQLite DB is upgraded automatically, any other DB must already be current.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from workbench.db.handles import Handles
from workbench.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000

# In the shared store-handle cache (workbench.db.handles), so one reset_handles() disposes them with the rest.
_engines: Handles[Engine] = Handles("db.engine", close=lambda engine: engine.dispose())
_sessionmakers: Handles[sessionmaker[Session]] = Handles("db.sessionmaker")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_file(url: str) -> Path | None:
    """The file behind a ``sqlite:///path`` URL (any store's), or None for any other URL."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :]
    return Path(path) if path and path != ":memory:" else None


def sqlite_fast_writes(engine: Any) -> None:
    """Make an SQLite engine's connections use WAL with ``synchronous=NORMAL``.

    Each commit then appends to the write-ahead log without an fsync (a checkpoint syncs), which
    is what makes per-trial writes cheap: 4-10x faster commits on a busy disk. A commit survives
    the process being killed (``kill -9``); only an OS crash may lose the last ones. Other
    engines are left alone.
    """
    if engine is None or getattr(engine.dialect, "name", "") != "sqlite":
        return
    if getattr(engine, "_workbench_fast_writes", False):
        return

    def on_connect(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine._workbench_fast_writes = True
    engine.dispose()  # connections opened before the listener get replaced


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` with the workbench's connection settings (no schema check)."""
    if url.startswith("sqlite"):
        from pathlib import Path

        from sqlalchemy.engine import make_url

        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    configured = url  # named in error messages as the user wrote it
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # A server that is down or silent fails within the store timeout, as one StoreUnavailable (no traceback).
    from workbench.db._outage import WORKBENCH_DB, connect_args, guard_engine

    timeout = get_settings().store_timeout_seconds
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                           connect_args=connect_args(url, timeout))
    return guard_engine(engine, store=WORKBENCH_DB, url=configured, timeout=timeout)


def get_engine(url: str | None = None) -> Engine:
    """The shared engine for ``url`` (default: the workbench DB), schema checked on first use."""
    from workbench.db.migrate import ensure_schema

    url = url or get_settings().db_url

    def create() -> Engine:
        engine = make_engine(url)
        ensure_schema(engine, auto_upgrade=url.startswith("sqlite"))
        return engine

    return _engines.get(url, create)


def _get_sessionmaker(url: str | None) -> sessionmaker[Session]:
    url = url or get_settings().db_url
    return _sessionmakers.get(url, lambda: sessionmaker(bind=get_engine(url), expire_on_commit=False))


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = _get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_all() -> None:
    """Close the workbench DB engines' pooled connections (``reset_handles()`` closes every store's)."""
    _sessionmakers.reset()
    _engines.reset()
