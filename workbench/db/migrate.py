"""Alembic migrations kept inside the package, under the version table ``wb_alembic_version``.

MLflow and Optuna keep their own ``alembic_version`` table, so the workbench uses its own
table name and never collides with them even when a team shares one PostgreSQL database.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from workbench.errors import StoreOutdated

VERSION_TABLE = "wb_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration this version of the workbench knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the DB behind ``engine`` is at, or None for an empty DB."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the DB behind ``engine`` to ``revision``; returns the revision reached."""
    from alembic import command

    command.upgrade(_config(engine), revision)
    reached = current_revision(engine)
    return reached or ""


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Upgrade an embedded DB, or refuse an outdated shared one with the command that fixes it."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if auto_upgrade:
        upgrade(engine)
        return
    where = engine.url.render_as_string(hide_password=True)
    raise StoreOutdated(
        f"The workbench DB at {where} is at migration {current or 'none (empty)'}, "
        f"but this version needs {head}. Run `workbench db upgrade` to migrate it."
    )
