"""The workbench DB of a module-scoped fixture on SQLite (the home's default) or on a fresh PostgreSQL database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

DATABASES = ("sqlite", "postgresql")


@contextlib.contextmanager
def module_database(kind: str) -> Iterator[str | None]:
    """Inside :func:`tests.helpers.registered_model.module_home`: ``sqlite`` keeps the home's SQLite DB (yields
    None); ``postgresql`` points ``WORKBENCH_DB_URL`` at a new, migrated database on the test server, dropped on
    exit (yields its URL), or skips, saying why, when no server answers."""
    if kind == "sqlite":
        yield None
        return
    from tests.conftest import (
        _postgres_available,
        drop_postgres_database,
        make_postgres_database,
        reset_workbench_caches,
        use_migrated_database,
    )

    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    url = make_postgres_database()
    try:
        with pytest.MonkeyPatch.context() as patch:
            use_migrated_database(patch, url)
            yield url
    finally:
        reset_workbench_caches()
        drop_postgres_database(url)
