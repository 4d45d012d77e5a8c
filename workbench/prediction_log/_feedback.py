"""Labels of logged predictions (``/feedback``): in the row when row-logged, in ``prediction_labels`` for segments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import PredictionLabel, PredictionLog, utcnow
from workbench.errors import InvalidInput, NotFound
from workbench.prediction_log._rows import _insert_statement, json_safe
from workbench.prediction_log._segments import _find_segment


def record_feedback(session: Session, *, request_id: str, label: Any) -> PredictionLog | PredictionLabel:
    """Attach the true ``label`` to the logged prediction ``request_id`` (overwrites an earlier label).

    A row-logged prediction (web, stream) keeps its label in ``prediction_log``; a prediction of
    a batch segment gets a ``prediction_labels`` row. Either returned object has ``request_id``,
    ``label`` and ``labelled_at``.
    """
    if label is None:
        raise InvalidInput("label must be the true outcome; got None.", field="label")
    row = session.scalar(select(PredictionLog).where(PredictionLog.request_id == request_id))
    if row is not None:
        row.label = json_safe(label)
        row.labelled_at = utcnow()
        return row
    segment_id = _find_segment(session, request_id)
    if segment_id is None:
        raise NotFound(
            f"No logged prediction with request_id {request_id!r}. Use the request_id returned by /predict; "
            "the log is written in batches, so retry after a second."
        )
    values = {"label": json_safe(label), "labelled_at": utcnow()}
    connection = session.connection()
    # An upsert, so that two feedbacks for one request racing each other both succeed.
    statement = _insert_statement(connection.dialect.name, PredictionLabel).values(
        segment_id=segment_id, request_id=request_id, **values
    ).on_conflict_do_update(index_elements=["request_id"], set_=values)
    session.execute(statement)
    labelled = session.scalar(
        select(PredictionLabel)
        .where(PredictionLabel.request_id == request_id)
        .execution_options(populate_existing=True)
    )
    assert labelled is not None
    return labelled
