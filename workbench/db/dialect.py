"""The dialect-specific ``INSERT`` the workbench DB's upserts need (SQLite and PostgreSQL both have ``ON CONFLICT``)."""

from __future__ import annotations

from typing import Any

from workbench.errors import InvalidInput


def conflict_insert(dialect: str, model: Any, *, what: str) -> Any:
    """The dialect's ``INSERT`` of ``model``, which has ``on_conflict_do_nothing``/``_do_update``.

    ``what`` names the feature in the error for any other database (InvalidInput on ``db_url``).
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model)
    raise InvalidInput(
        f"{what} supports SQLite and PostgreSQL; got a {dialect!r} database. Point WORKBENCH_DB_URL at one of them.",
        field="db_url",
    )
