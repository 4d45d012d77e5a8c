"""One MLflow child run per Optuna trial, written off the trial's path.

A tuning job's trials finish on the optimisation thread; :class:`TrialRunWriter` takes a small
record of each and writes the child runs from a background thread, a group at a time, through
:class:`workbench.tracking.RunBulkWriter` (one transaction per group on a SQL tracking store).
A resumed job finds the trials a killed worker never logged (:func:`backfill_trial_runs`).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.training.study import (
    ATTR_CV_MEAN,
    ATTR_CV_STD,
    ATTR_FAMILY,
    ATTR_FIT_SECONDS,
    ATTR_SURPLUS,
    ATTR_WORKER,
    FINISHED_STATES,
    TAG_STUDY,
    TAG_TRIAL_NUMBER,
)

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

    from workbench.tracking import FinishedRun

# Optuna trial state -> MLflow run status.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}


@dataclass(frozen=True)
class TrialRecord:
    """What a finished trial's child run holds (copied out of Optuna on the trial's thread)."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    user_attrs: dict[str, Any]
    start_ms: int | None
    end_ms: int | None

    @classmethod
    def from_trial(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        """Copy the parts of a finished trial its child run needs."""

        def ms(moment: Any) -> int | None:
            return int(moment.timestamp() * 1000) if moment is not None else None

        return cls(
            number=trial.number,
            state=trial.state.name,
            value=trial.value if trial.state.name == "COMPLETE" else None,
            params=dict(trial.params),
            user_attrs=dict(trial.user_attrs),
            start_ms=ms(trial.datetime_start),
            end_ms=ms(trial.datetime_complete),
        )


class TrialRunWriter(threading.Thread):
    """Logs one MLflow child run per trial from a background thread.

    The trial's thread only puts a small record on a queue; this thread gathers groups of up to
    ``group_size`` trials or ``flush_seconds`` and writes each group's runs (tags, params, metrics,
    final status) in one go. :meth:`close` flushes what is left (called at the end of a study and on
    cancel); trials a killed process never flushed are logged by the resumed job
    (:func:`backfill_trial_runs`). A failed group is retried once, then its trials are counted in ``errors``.
    """

    def __init__(
        self,
        client: MlflowClient,
        *,
        experiment_id: str,
        parent_run_id: str,
        study: str,
        project_slug: str,
        job_id: str,
        metric: str,
        group_size: int = 50,
        flush_seconds: float = 0.5,
    ) -> None:
        from workbench.tracking import RunBulkWriter, mlflow_fast_writes

        super().__init__(name=f"mlflow-trials-{job_id}", daemon=True)
        self.client = client
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.study = study
        self.project_slug = project_slug
        self.job_id = job_id
        self.metric = metric
        self.group_size = group_size
        self.flush_seconds = flush_seconds
        # Finished trials waiting to be written; the trial's thread wakes this one only for the first
        # trial of a group or a full group (a wake-up per trial took the GIL from the next trial).
        self._pending: collections.deque[TrialRecord] = collections.deque()
        self._wake = threading.Condition()
        self._closing = False
        mlflow_fast_writes(client)
        self.runs = RunBulkWriter(client)
        # The experiment's artifact root, read here (before the trials) rather than by the first group's write.
        self.runs.prepare(experiment_id)
        self.logged = 0
        self.errors: list[str] = []

    def submit(self, record: TrialRecord) -> None:
        """Queue a finished trial (never blocks on MLflow)."""
        with self._wake:
            self._pending.append(record)
            if len(self._pending) == 1 or len(self._pending) >= self.group_size:
                self._wake.notify()

    def callback(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """An Optuna callback that queues every finished trial."""
        if trial.user_attrs.get(ATTR_SURPLUS):
            return
        self.submit(TrialRecord.from_trial(trial))

    def run(self) -> None:
        import time

        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                # Gather for up to ``flush_seconds`` (or ``group_size`` trials): one transaction for many
                # short trials instead of one each, which kept this thread busy beside the trials'.
                deadline = time.monotonic() + self.flush_seconds
                while not self._closing and len(self._pending) < self.group_size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                records = [self._pending.popleft() for _ in range(min(self.group_size, len(self._pending)))]
                done = self._closing and not self._pending
            if records:
                self._write(records)
            if done:
                return

    def finished_run(self, record: TrialRecord) -> FinishedRun:
        """The child run of one trial."""
        import time

        from workbench.tracking import TAG_JOB, TAG_KIND, TAG_PROJECT, FinishedRun

        metrics: dict[str, float] = {}
        for attr, key in ((ATTR_CV_MEAN, f"cv_{self.metric}_mean"), (ATTR_CV_STD, f"cv_{self.metric}_std")):
            if attr in record.user_attrs:
                metrics[key] = float(record.user_attrs[attr])
        if ATTR_FIT_SECONDS in record.user_attrs:
            metrics["fit_seconds"] = float(record.user_attrs[ATTR_FIT_SECONDS])
        if record.value is not None:
            metrics["value"] = float(record.value)
        now_ms = int(time.time() * 1000)
        return FinishedRun(
            experiment_id=self.experiment_id,
            run_name=f"trial-{record.number}",
            status=RUN_STATUS.get(record.state, "FAILED"),
            start_ms=record.start_ms or now_ms,
            end_ms=record.end_ms or now_ms,
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                TAG_KIND: "trial",
                TAG_PROJECT: self.project_slug,
                TAG_JOB: self.job_id,
                TAG_STUDY: self.study,
                TAG_TRIAL_NUMBER: str(record.number),
                "optuna.state": record.state,
                ATTR_FAMILY: str(record.user_attrs.get(ATTR_FAMILY, "")),
                ATTR_WORKER: str(record.user_attrs.get(ATTR_WORKER, "")),
            },
            params=record.params,
            metrics=metrics,
        )

    def _write(self, records: list[TrialRecord]) -> None:
        runs = [self.finished_run(record) for record in records]
        for attempt in (1, 2):
            try:
                self.runs.write(runs)
                self.logged += len(runs)
                return
            except Exception as exc:  # MLflow hiccup: retry once, then record it and carry on
                if attempt == 2:
                    self.errors.extend(f"trial {record.number}: {exc}" for record in records)

    def close(self, timeout: float | None = None) -> None:
        """Flush every queued trial and stop the thread."""
        if self.is_alive():
            with self._wake:
                self._closing = True
                self._wake.notify()
            self.join(timeout)


def logged_trial_numbers(client: MlflowClient, *, experiment_id: str, study: str) -> set[int]:
    """Numbers of the trials of ``study`` that already have a child run."""
    from mlflow.entities import ViewType

    numbers: set[int] = set()
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_STUDY}` = '{study}'",
            run_view_type=ViewType.ALL,
            max_results=1000,
            page_token=token,
        )
        for run in page:
            value = run.data.tags.get(TAG_TRIAL_NUMBER)
            if value is not None:
                numbers.add(int(value))
        token = page.token
        if not token:
            return numbers


def backfill_trial_runs(study: optuna.Study, writer: TrialRunWriter) -> int:
    """Queue child runs for finished trials that have none (lost when a worker was killed)."""
    logged = logged_trial_numbers(writer.client, experiment_id=writer.experiment_id, study=writer.study)
    missing = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name in (*FINISHED_STATES, "FAIL") and t.number not in logged and not t.user_attrs.get(ATTR_SURPLUS)
    ]
    for trial in missing:
        writer.submit(TrialRecord.from_trial(trial))
    return len(missing)
