"""Landing another process's write between a checker's read of a row and its UPDATE, deterministically."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from workbench.db import get_engine, session_scope


@contextmanager
def written_just_before_the_next_update(model: Any, row_id: Any, **fields: Any) -> Iterator[None]:
    """The row's own process writes ``fields`` to it, committed, right before the next UPDATE of its table.

    Hooked on the workbench engine's cursor, so it lands between whatever the checker read and its
    write, whichever way the checker writes (an ORM flush or an ``update()``).
    """
    engine = get_engine()
    table = model.__tablename__.upper()
    done: list[bool] = []

    def write(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if not done and statement.lstrip().upper().startswith(f"UPDATE {table}"):
            done.append(True)
            with session_scope() as other:
                row = other.get(model, row_id)
                assert row is not None
                for name, value in fields.items():
                    setattr(row, name, value)

    event.listen(engine, "before_cursor_execute", write)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", write)
    assert done, f"the checker never updated {model.__tablename__}"
