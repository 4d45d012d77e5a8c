"""Choosing the run source and sink for a tracking store: the SQL one when its schema checks out.

The check runs once per store in a process (its verdict is kept in the shared handle cache,
so ``reset_handles()`` forgets it); a store that differs gets one warning on the
``workbench.tracking`` logger naming the differences, and the ``MlflowClient`` implementation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from workbench.db.handles import Handles
from workbench.tracking._client import get_client
from workbench.tracking._client_store import ClientRunSink, ClientRunSource
from workbench.tracking._protocol import FinishedRun, RunSource
from workbench.tracking._sql_store import SqlRunSink, SqlRunSource, is_sql_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from workbench.settings import Settings

logger = logging.getLogger("workbench.tracking")

# Per tracking URI: the SQL source with the differences found (empty: usable), checked once.
_sources: Handles[tuple[SqlRunSource, list[str]]] = Handles("tracking.sql_source")
# Per tracking URI: the differences between the store and what the SQL sink writes.
_sink_checks: Handles[list[str]] = Handles("tracking.sql_sink_check")


def _shown(uri: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show only its scheme
        return uri.split(":", 1)[0] + ":…"


def _check_source(uri: str) -> tuple[SqlRunSource, list[str]]:
    source, problems = SqlRunSource.open(uri)
    if problems:
        logger.warning("MLflow tracking store %s differs from what the SQL run source reads (%s); reading runs "
                       "through MlflowClient instead (exact, slower).", _shown(uri), "; ".join(problems))
    return source, problems


def open_run_source(settings: Settings | None = None) -> RunSource:
    """The run source for the settings' tracking URI.

    A database URI gets the :class:`SqlRunSource` unless its tables differ from
    :data:`~workbench.tracking.SOURCE_COLUMNS`; any other URI, or a store that differs, gets the
    :class:`ClientRunSource`.
    """
    from workbench.settings import get_settings

    settings = settings or get_settings()
    uri = settings.mlflow_tracking_uri
    if is_sql_uri(uri):
        source, problems = _sources.get(uri, lambda: _check_source(uri))
        if not problems:
            if source.empty:  # MLflow has made no table yet: check again once it has
                _sources.forget(uri)
            return source
    return ClientRunSource(get_client(settings))


def _check_sink(client: MlflowClient) -> tuple[SqlRunSink | None, list[str]]:
    sink, problems = SqlRunSink.open(client)
    if sink is None:
        return None, []

    def warn_once() -> list[str]:
        if problems:
            logger.warning("MLflow tracking store %s differs from what the bulk run writer writes (%s); logging "
                           "runs one by one through MlflowClient instead.", _shown(client.tracking_uri),
                           "; ".join(problems))
        return problems

    _sink_checks.get(client.tracking_uri, warn_once)
    return (None, problems) if problems else (sink, [])


class RunBulkWriter:
    """Writes finished runs to MLflow, many per transaction on a SQL store whose schema checks out.

    Through ``MlflowClient`` a finished run costs three store calls (``create_run``,
    ``log_batch``, ``set_terminated``), each its own transaction: 3-5 ms apiece on SQLite, which
    caps a tuning job's trial logging near 70-100 runs/s. On a SQL tracking store whose tables
    match :data:`~workbench.tracking.SINK_COLUMNS` the :class:`SqlRunSink` adds a group of runs in
    one transaction, about 6x faster per run. Any other store, a store that differs, or a bulk
    write that fails goes through the :class:`ClientRunSink` instead; ``bulk`` says which is in use.
    """

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self._client_sink = ClientRunSink(client)
        self._sql_sink, self.problems = _check_sink(client)
        self.bulk = self._sql_sink is not None
        # The experiments' artifact roots, looked up once (shared with the SQL sink).
        self._artifact_roots: dict[str, str] = self._sql_sink.artifact_roots if self._sql_sink is not None else {}

    @property
    def kind(self) -> str:
        """``"sql"`` while the bulk path is in use, else ``"client"``."""
        return "sql" if self.bulk else "client"

    def prepare(self, experiment_id: str) -> None:
        """Look up what writing to ``experiment_id`` needs (its artifact root) now, not at the first write.

        Best effort: a lookup that fails here (an unreachable store, a deleted experiment) is left to
        the first write, which raises as it would have. A tuning job calls this before its trials, so
        the first group of child runs does not pay an MLflow read.
        """
        if self.bulk and self._sql_sink is not None:
            try:
                self._sql_sink.prepare(experiment_id)
            except Exception as exc:
                logger.debug("artifact root of experiment %s not looked up ahead (%s)", experiment_id, exc)

    def write(self, runs: Sequence[FinishedRun]) -> list[str]:
        """Write ``runs`` (all or none on the bulk path); returns their run ids in order."""
        if not runs:
            return []
        if self.bulk:
            try:
                return self._write_bulk(runs)
            except Exception as exc:
                logger.warning("bulk run write failed (%s); logging runs one by one through MlflowClient from now on",
                               exc)
                self.bulk = False
        return self._client_sink.write(runs)

    def _write_one(self, run: FinishedRun) -> str:
        return self._client_sink.write_one(run)

    def _write_bulk(self, runs: Sequence[FinishedRun]) -> list[str]:
        if self._sql_sink is None:
            raise RuntimeError("no SQL sink: the tracking store is not a SQL store or its schema differs")
        return self._sql_sink.write(runs)
