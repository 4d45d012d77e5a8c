"""The run source and sink that go through ``MlflowClient``: any tracking URI, MLflow's own rules.

Exact and portable (an HTTP tracking server, a store whose schema the SQL side does not know),
but as slow as MLflow: reading an experiment materialises every run entity (about 8.5 s for
10,000 runs) and writing a finished run costs three store calls. MLflow itself decides the
workspace, so nothing here filters by it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from workbench.tracking._client import clean_tags, log_run_batch
from workbench.tracking._protocol import FinishedRun, RunRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient


def digest(parts: Iterable[Any]) -> str:
    """A short stable digest of JSON-able parts (the fingerprint of a run, the cursor of a sync)."""
    return hashlib.sha1(json.dumps(list(parts), default=str).encode()).hexdigest()


def record_fingerprint(run: RunRecord) -> str:
    """A run's fingerprint computed from the whole record (what the client source has to hand)."""
    return digest([run["status"], run["start_time"], run["end_time"], run["lifecycle_stage"], run["run_name"],
                   sorted(run["tags"].items()), sorted(run["params"].items()),
                   sorted((k, repr(v)) for k, v in run["metrics"].items())])


class ClientRunSource:
    """:class:`~workbench.tracking.RunSource` through ``MlflowClient.search_runs`` pages."""

    kind = "client"

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        # fingerprints() has to read every run anyway; read_runs() then serves them from here.
        self._last: tuple[str, dict[str, RunRecord]] | None = None

    def experiment_id(self, name: str) -> str | None:
        """The experiment's id as MLflow finds it by name (in MLflow's active workspace)."""
        experiment = self.client.get_experiment_by_name(name)
        return None if experiment is None else str(experiment.experiment_id)

    def fingerprints(self, experiment_id: str) -> dict[str, str]:
        """Every run's fingerprint, from a full read of the experiment."""
        runs = self._search(experiment_id)
        self._last = (experiment_id, runs)
        return {run_id: record_fingerprint(run) for run_id, run in runs.items()}

    def read_runs(self, experiment_id: str, run_ids: Collection[str]) -> list[RunRecord]:
        """The named runs (from the read that computed the fingerprints, when it was of this experiment)."""
        if self._last is not None and self._last[0] == experiment_id:
            runs = self._last[1]
        else:
            runs = self._search(experiment_id)
        return [runs[run_id] for run_id in run_ids if run_id in runs]

    def recent_fingerprints(self, experiment_id: str, *, since: int | None, run_ids: Collection[str]) -> dict[str, str]:
        """The fingerprints of the runs started at or after ``since`` and of ``run_ids``, by ``search_runs`` filters."""
        runs: dict[str, RunRecord] = {}
        if since is not None:
            runs.update(self._search(experiment_id, f"attributes.start_time >= {int(since)}"))
        ids = sorted(set(run_ids))
        for start in range(0, len(ids), 100):
            quoted = ", ".join(f"'{run_id}'" for run_id in ids[start : start + 100])
            runs.update(self._search(experiment_id, f"attributes.run_id IN ({quoted})"))
        return {run_id: record_fingerprint(run) for run_id, run in runs.items()}

    def lifecycle(self, experiment_id: str) -> tuple[int | None, set[str]]:
        """``(None, deleted run ids)``: MLflow's API cannot count an experiment's runs without reading them all."""
        from mlflow.entities import ViewType

        return None, set(self._search(experiment_id, "", view=ViewType.DELETED_ONLY))

    def data_version(self) -> int | None:
        """None: MLflow's API has no cheap "anything changed" signal."""
        return None

    def _search(self, experiment_id: str, filter_string: str = "", view: Any = None) -> dict[str, RunRecord]:
        from mlflow.entities import ViewType

        runs: dict[str, RunRecord] = {}
        token = None
        while True:
            page = self.client.search_runs([experiment_id], filter_string=filter_string,
                                           run_view_type=ViewType.ALL if view is None else view, max_results=1000,
                                           page_token=token)
            for run in page:
                info = run.info
                runs[info.run_id] = RunRecord(
                    run_id=info.run_id, run_name=info.run_name, status=info.status, start_time=info.start_time,
                    end_time=info.end_time, lifecycle_stage=info.lifecycle_stage, tags=dict(run.data.tags),
                    params=dict(run.data.params), metrics=dict(run.data.metrics))
            token = page.token
            if not token:
                return runs


class ClientRunSink:
    """:class:`~workbench.tracking.RunSink` through ``MlflowClient``: three store calls per run."""

    kind = "client"

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def write(self, runs: Sequence[FinishedRun]) -> list[str]:
        """Create, log and terminate each run in turn (not atomic across runs)."""
        return [self.write_one(run) for run in runs]

    def write_one(self, run: FinishedRun) -> str:
        """Create, log and terminate one run; returns its id."""
        created = self.client.create_run(
            run.experiment_id, start_time=run.start_ms, tags=clean_tags(run.tags), run_name=run.run_name
        )
        run_id = str(created.info.run_id)
        log_run_batch(self.client, run_id, params=run.params, metrics=run.metrics)
        self.client.set_terminated(run_id, status=run.status, end_time=run.end_ms)
        return run_id
