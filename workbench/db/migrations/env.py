"""Alembic environment: runs on the engine handed over by ``workbench.db.migrate``."""

from alembic import context

from workbench.db.migrate import VERSION_TABLE
from workbench.db.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
