"""Writes to a row that another process also ends: conditional on the status this process read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session


def write_if_status_unchanged(session: Session, row: Any, **values: Any) -> bool:
    """Write ``values`` to ``row`` only while its ``status`` is still the one read; then reload ``row``.

    A job's or a deployment's own process writes its row too (it ends it ``succeeded`` or
    ``stopped``) and may do so between this process's read and its write: an unconditional write
    would overwrite that ending (a finished profile shown as cancelled, a stopped service as
    failed). False when the row moved on; ``row`` then holds what it moved to. ``row``'s model
    needs ``id`` and ``status`` columns.
    """
    model = type(row)
    written = session.execute(
        update(model).where(model.id == row.id, model.status == row.status).values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    return bool(getattr(written, "rowcount", 0))
