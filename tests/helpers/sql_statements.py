"""Record the SQL statements an engine sends inside a block (a SQLAlchemy event listener, not a mock)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def recorded_statements(engine: Any) -> Iterator[list[tuple[str, Any]]]:
    """Yield a list that fills with (SQL, driver parameters) of every statement ``engine`` sends in the block."""
    from sqlalchemy import event

    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine, "after_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "after_cursor_execute", record)
