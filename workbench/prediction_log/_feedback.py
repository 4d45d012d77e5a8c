"""Labels of logged predictions (``/feedback``): in the row when row-logged, in ``prediction_labels`` for segments."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import PredictionLabel, PredictionLog, utcnow
from workbench.errors import InvalidInput, NotFound
from workbench.prediction_log._rows import _insert_statement, json_safe
from workbench.prediction_log._segments import _find_segment


def _plain(value: Any) -> Any:
    """``value`` as a plain Python scalar (numpy scalars unwrapped)."""
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, str | bytes):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def storable_text(text: str) -> bool:
    """Whether every store takes ``text`` as it is: UTF-8 encodable (no lone surrogate) and without NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _same_class(label: Any, cls: Any) -> bool:
    """Equal as values, but a bool is only ever the same as a bool (True == 1 in Python)."""
    if isinstance(label, bool) or isinstance(cls, bool):
        return isinstance(label, bool) and isinstance(cls, bool) and label is cls
    try:
        return bool(label == cls)
    except (TypeError, ValueError):
        return False


def conform_label(label: Any, *, classes: Sequence[Any] | None = None, numeric: bool = False) -> Any:
    """The label as it is stored, or InvalidInput (field ``label``) saying what it may be.

    ``classes``: the model is a classifier; the label must be one of them, equal as a value or
    as text (``"1"`` for the class ``1``), and the class itself is stored. ``numeric``: the model
    is a regressor; the label must be a finite number. Neither: any non-null scalar. In every
    case null, NaN and infinities are refused (stored, they would read as "no label" and replace
    a real one), and so is text that a store cannot hold (a lone surrogate, NUL).
    """
    label = _plain(label)
    if label is None:
        raise InvalidInput("label must be the true outcome; got null.", field="label")
    if isinstance(label, float) and not math.isfinite(label):
        raise InvalidInput(f"label must be a finite value; got {label!r}.", field="label")
    if isinstance(label, str) and not storable_text(label):
        raise InvalidInput("label must be valid text (no lone surrogate or NUL character); got "
                           f"{label.encode('utf-8', 'backslashreplace').decode('ascii', 'replace')!r}.", field="label")
    if not isinstance(label, str | int | float | bool):
        raise InvalidInput(f"label must be a string, a number or a boolean; got {type(label).__name__}.",
                           field="label")
    if classes is not None:
        plain = [_plain(c) for c in classes]
        for cls in plain:
            if _same_class(label, cls):
                return cls
        if not isinstance(label, bool):  # "yes" for the class "yes", "1" for the class 1 (never True for "True")
            for cls in plain:
                if not isinstance(cls, bool) and str(cls) == str(label):
                    return cls
        shown = label if not isinstance(label, str) or len(label) <= 60 else label[:60] + "…"
        raise InvalidInput(f"label must be one of the model's classes {plain!r}; got {shown!r}.", field="label")
    if numeric and (isinstance(label, bool) or not isinstance(label, int | float)):
        raise InvalidInput(f"label must be a finite number (the model is a regressor); got {label!r:.60}.",
                           field="label")
    return label


def record_feedback(session: Session, *, request_id: str, label: Any, classes: Sequence[Any] | None = None,
                    numeric: bool = False, deployment_id: int | None = None) -> PredictionLog | PredictionLabel:
    """Attach the true ``label`` to the logged prediction ``request_id`` (overwrites an earlier label).

    ``deployment_id``: only a prediction of that deployment can be labelled (a web service
    labels only its own predictions, so a token cannot label another deployment's, nor probe
    which ids exist there); another deployment's request id is NotFound, like an unknown one.

    The request id and the label are checked before anything is read or written (``classes``
    and ``numeric``: see :func:`conform_label`). A row-logged prediction (web, stream) keeps its
    label in ``prediction_log``; a prediction of a batch segment gets a ``prediction_labels``
    row. Either returned object has ``request_id``, ``label`` and ``labelled_at``.
    """
    if not isinstance(request_id, str) or not request_id or not storable_text(request_id):
        raise InvalidInput("request_id must be the request_id a prediction returned (text without lone "
                           "surrogates or NUL).", field="request_id")
    label = json_safe(conform_label(label, classes=classes, numeric=numeric))
    query = select(PredictionLog).where(PredictionLog.request_id == request_id)
    if deployment_id is not None:
        query = query.where(PredictionLog.deployment_id == deployment_id)
    row = session.scalar(query)
    if row is not None:
        row.label = label
        row.labelled_at = utcnow()
        return row
    segment_id = _find_segment(session, request_id, deployment_id=deployment_id)
    if segment_id is None:
        raise NotFound(
            f"No logged prediction with request_id {request_id!r}. Use the request_id returned by /predict; "
            "the log is written in batches, so retry after a second."
        )
    values = {"label": label, "labelled_at": utcnow()}
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
