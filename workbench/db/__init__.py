"""The workbench DB: SQLAlchemy 2.x models, the engine and session scope, and Alembic migrations."""

from workbench.db.engine import get_engine, session_scope

__all__ = ["get_engine", "session_scope"]
