"""The runs of a project as a DataFrame, kept up to date a few rows at a time: :class:`RunsFrameCache`.

:func:`workbench.experiments.runs.runs_frame` reads and decodes every run on each call: at 10,000
runs that is most of the Experiments page's time after a new run lands. The cache keeps each
run's decoded row under its projection ``fingerprint`` (which changes whenever anything of the
run does), so each call costs one narrow query (run id and fingerprint of the matching runs, in
order) plus the decoding of the rows whose fingerprint moved: a new run costs its own row.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.orm import Session

from workbench.db.models import Project, RunProjection
from workbench.experiments._conditions import base_conditions

if TYPE_CHECKING:
    import pandas as pd

ATTRIBUTES = ("run_id", "run_name", "kind", "job_id", "status", "start_time", "end_time")
_CHUNK = 500


class _Row(NamedTuple):
    fingerprint: str
    attributes: tuple[Any, ...]
    trial_number: str | None
    metrics: dict[str, Any]
    params: dict[str, Any]
    tag_keys: frozenset[str]


def _metric_keys(row: _Row) -> Iterable[str]:
    return row.metrics


def _param_keys(row: _Row) -> Iterable[str]:
    return row.params


def _tag_keys(row: _Row) -> Iterable[str]:
    return row.tag_keys


class RunsFrameCache:
    """Decoded projection rows of one project, by run id; thread-safe (Streamlit sessions share one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self.decoded = 0  # rows decoded since creation: what a test or a benchmark reads
        # The last frame built per query, with the (run id, fingerprint) list it was built from: an
        # unchanged list returns it, a list that only grew at the end (new runs) appends their rows.
        self._frames: dict[tuple[Any, ...], tuple[list[tuple[str, str]], pd.DataFrame]] = {}
        self._columns: tuple[list[tuple[str, str]], dict[str, list[str]]] | None = None
        # What the key lists were counted from: each active run's row as counted, and how many of those rows
        # hold each metric, param and tag key. A changed list of runs updates the counts by the rows that
        # differ, so a new run costs its own keys, not a pass over every run (0.15 s at 30,000 runs).
        self._counted: dict[str, _Row] = {}
        self._key_counts: dict[str, Counter[str]] = {"metrics": Counter(), "params": Counter(), "tags": Counter()}
        self._counting = threading.Lock()
        self.counted = 0  # rows whose keys were counted since creation: what a test reads

    def _refresh(self, session: Session, ids_fps: Sequence[tuple[str, str]]) -> list[_Row]:
        """The rows of ``ids_fps`` in order, decoding the ones not cached under that fingerprint."""
        with self._lock:
            stale = [run_id for run_id, fp in ids_fps if (row := self._rows.get(run_id)) is None
                     or row.fingerprint != fp]
        fresh: dict[str, _Row] = {}

        def loads(value: Any) -> Any:
            # SQLite hands the JSON back as text; psycopg parses PostgreSQL's json type itself.
            return json.loads(value) if isinstance(value, str | bytes) else value

        for start in range(0, len(stale), _CHUNK):
            query = select(
                RunProjection.fingerprint,
                *(getattr(RunProjection, name) for name in ATTRIBUTES),
                RunProjection.tags["workbench.trial_number"].as_string(),
                # As text, decoded here: one json.loads per document beats a JSON function per field.
                type_coerce(RunProjection.metrics, Text),
                type_coerce(RunProjection.params, Text),
                type_coerce(RunProjection.tags, Text),
            ).where(RunProjection.run_id.in_(stale[start : start + _CHUNK]))
            for record in session.execute(query):
                n = len(ATTRIBUTES)
                fresh[record[1]] = _Row(
                    fingerprint=record[0], attributes=tuple(record[1 : 1 + n]), trial_number=record[1 + n],
                    metrics=loads(record[2 + n]) if record[2 + n] else {},
                    params=loads(record[3 + n]) if record[3 + n] else {},
                    tag_keys=frozenset(loads(record[4 + n]) if record[4 + n] else ()))
        with self._lock:
            self._rows.update(fresh)
            self.decoded += len(fresh)
            return [self._rows[run_id] for run_id, _ in ids_fps if run_id in self._rows]

    def _ids(self, session: Session, project: Project, conditions: Iterable[Any]) -> list[tuple[str, str]]:
        query = (select(RunProjection.run_id, RunProjection.fingerprint)
                 .where(RunProjection.project_id == project.id, *conditions)
                 .order_by(RunProjection.start_time.asc(), RunProjection.run_id.asc()))
        # On the Core connection: the ORM's result handling cost 0.3 s of this read at 50,000 runs.
        return [(run_id, fp) for run_id, fp in session.connection().execute(query)]

    def columns(self, session: Session, *, project: Project) -> dict[str, list[str]]:
        """The metric, param and tag keys of the project's active runs (what ``available_columns`` gives).

        Also forgets the rows of runs that are no longer active.
        """
        return self._columns_of(session, project)[0]

    def _columns_of(self, session: Session, project: Project) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
        """:meth:`columns`, and the (run id, fingerprint) list of the active runs it was read from."""
        ids_fps = self._ids(session, project, [RunProjection.lifecycle_stage == "active"])
        if self._columns is not None and self._columns[0] == ids_fps:
            return {entity: list(keys) for entity, keys in self._columns[1].items()}, ids_fps
        with self._counting:  # one count at a time: the counts are updated in place
            return self._count_columns(session, ids_fps)

    def _count_columns(self, session: Session, ids_fps: list[tuple[str, str]]
                       ) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
        counted = self._counted  # only this method changes it, under ``_counting``
        previous = self._columns[0] if self._columns is not None else None
        gone: list[_Row]
        if previous is not None and len(ids_fps) >= len(previous) and ids_fps[: len(previous)] == previous:
            # Only new runs, at the end (the newest start times): one list comparison, no walk over every run.
            stale = ids_fps[len(previous):]
            gone = [counted[run_id] for run_id, _ in stale if run_id in counted]
        else:
            active = dict(ids_fps)
            gone = [row for run_id, row in counted.items() if active.get(run_id) != row.fingerprint]
            stale = [(run_id, fp) for run_id, fp in ids_fps if (row := counted.get(run_id)) is None
                     or row.fingerprint != fp]
        fresh = self._refresh(session, stale)
        counts = self._key_counts
        for entity, keys_of in (("metrics", _metric_keys), ("params", _param_keys), ("tags", _tag_keys)):
            # Counter over a chained iterable counts in C: a cold session counts 50,000 rows this way.
            counts[entity].update(chain.from_iterable(map(keys_of, fresh)))
            if gone:
                counts[entity].subtract(chain.from_iterable(map(keys_of, gone)))
                counts[entity] = +counts[entity]  # drop the keys no active run holds any more
        for row in gone:
            counted.pop(row.attributes[0], None)
        counted.update((row.attributes[0], row) for row in fresh)
        with self._lock:
            if gone:  # forget the rows of runs that are no longer active
                active_ids = {run_id for run_id, _ in ids_fps}
                for run_id in [run_id for run_id in self._rows if run_id not in active_ids]:
                    del self._rows[run_id]
            self._counted = counted
            self.counted += len(fresh)
        found = {entity: sorted(keys) for entity, keys in counts.items()}
        self._columns = (ids_fps, found)
        return {entity: list(keys) for entity, keys in found.items()}, ids_fps

    def fingerprint(self, run_id: str) -> str | None:
        """The fingerprint the cache holds for a run (None when it holds none): a cache key for that run alone."""
        with self._lock:
            row = self._rows.get(run_id)
        return None if row is None else row.fingerprint

    def digest(self, session: Session, *, project: Project, job_ids: Sequence[str] | None = None) -> str:
        """A digest of the fingerprints of the project's active runs (of ``job_ids`` only, when given): a cache
        key that moves only when one of those runs does (one narrow indexed query)."""
        import hashlib

        conditions = [RunProjection.lifecycle_stage == "active"]
        if job_ids:
            conditions.append(RunProjection.job_id.in_(list(job_ids)))
        ids_fps = self._ids(session, project, conditions)
        return hashlib.sha1("\n".join(f"{run_id}:{fp}" for run_id, fp in ids_fps).encode()).hexdigest()

    def frame(
        self,
        session: Session,
        *,
        project: Project,
        filter_expr: str | None = None,
        kinds: Sequence[str] | None = None,
        job_ids: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
        params: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """What :func:`workbench.experiments.runs.runs_frame` returns, from the cached rows."""
        import pandas as pd

        active_ids: list[tuple[str, str]] | None = None
        if metrics is None or params is None:
            present, active_ids = self._columns_of(session, project)
            metrics = present["metrics"] if metrics is None else metrics
            params = present["params"] if params is None else params
        if active_ids is not None and not filter_expr and not kinds and not job_ids:
            ids_fps = active_ids  # no filter: the same runs in the same order (at 50,000 runs a read is 0.5 s)
        else:
            conditions = base_conditions(session, project, filter_expr, kinds=kinds, job_ids=job_ids,
                                          include_deleted=False)
            ids_fps = self._ids(session, project, conditions)
        query_key = (filter_expr or "", tuple(kinds or ()), tuple(job_ids or ()), tuple(metrics), tuple(params))
        with self._lock:
            previous = self._frames.get(query_key)
        if previous is not None and previous[0] == ids_fps:
            return previous[1].copy()
        if previous is not None and len(ids_fps) > len(previous[0]) and ids_fps[: len(previous[0])] == previous[0]:
            # Only new runs, at the end (the newest start times): build their rows and append them.
            tail = _build(self._refresh(session, ids_fps[len(previous[0]):]), metrics, params)
            frame = pd.concat([previous[1], tail], ignore_index=True) if len(previous[1]) else tail
        else:
            frame = _build(self._refresh(session, ids_fps), metrics, params)
        with self._lock:
            self._frames[query_key] = (ids_fps, frame)
            while len(self._frames) > 8:  # a few filters at a time; the oldest goes first
                del self._frames[next(iter(self._frames))]
        return frame.copy()


def _build(rows: Sequence[_Row], metrics: Sequence[str], params: Sequence[str]) -> pd.DataFrame:
    """The frame of ``rows``: attributes, ``trial_number``, ``metrics.<k>`` (floats), ``params.<k>``."""
    import pandas as pd

    columns: dict[str, list[Any]] = {name: [row.attributes[i] for row in rows] for i, name in enumerate(ATTRIBUTES)}
    columns["trial_number"] = [row.trial_number for row in rows]
    for key in metrics:
        columns[f"metrics.{key}"] = [row.metrics.get(key) for row in rows]
    for key in params:
        columns[f"params.{key}"] = [row.params.get(key) for row in rows]
    frame = pd.DataFrame(columns)
    frame["trial_number"] = pd.to_numeric(frame["trial_number"], errors="coerce")
    for key in metrics:
        frame[f"metrics.{key}"] = pd.to_numeric(frame[f"metrics.{key}"], errors="coerce")
    return frame
