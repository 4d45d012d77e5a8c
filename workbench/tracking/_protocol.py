"""The contract between the workbench and an MLflow tracking store: a run source and a run sink.

Like MLflow's own ``AbstractStore``, each side is a small protocol with two implementations:
one that goes straight to MLflow's SQL tables (fast; its schema is checked before use) and one
that goes through ``MlflowClient`` (works with any tracking URI, as slow as MLflow). Callers
never pick one: :func:`workbench.tracking.open_run_source` and
:class:`workbench.tracking.RunBulkWriter` do, falling back to the client when the SQL one
cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict


class RunRecord(TypedDict):
    """One MLflow run as both sources return it: attributes, then tags, params and latest metrics."""

    run_id: str
    run_name: str | None
    status: str | None
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]  # the latest value of each metric; NaN when MLflow holds NaN


@dataclass(frozen=True)
class FinishedRun:
    """A run that is already over, written whole by a :class:`RunSink`."""

    experiment_id: str
    run_name: str
    status: str  # FINISHED, FAILED or KILLED
    start_ms: int
    end_ms: int
    tags: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class RunSource(Protocol):
    """Reads the runs of one experiment of the workbench's MLflow workspace."""

    kind: str  # "sql" or "client": recorded with each projection sync

    def experiment_id(self, name: str) -> str | None:
        """The id of the experiment called ``name`` in the current workspace, or None."""
        ...

    def fingerprints(self, experiment_id: str) -> dict[str, str]:
        """One digest per run (every run, deleted ones too) that changes whenever anything of the run does."""
        ...

    def recent_fingerprints(self, experiment_id: str, *, since: int | None, run_ids: Collection[str]) -> dict[str, str]:
        """The fingerprints of the runs started at or after ``since`` (ms) and of ``run_ids`` (incremental sync)."""
        ...

    def lifecycle(self, experiment_id: str) -> tuple[int | None, set[str]]:
        """The experiment's run count (None when it cannot be had cheaply) and its deleted runs' ids."""
        ...

    def read_runs(self, experiment_id: str, run_ids: Collection[str]) -> list[RunRecord]:
        """The named runs of the experiment, in full (ids not in it are skipped)."""
        ...

    def data_version(self) -> int | None:
        """A number that changes whenever the store is written, or None when the store cannot tell."""
        ...


class RunSink(Protocol):
    """Writes finished runs to MLflow."""

    kind: str  # "sql" or "client"

    def write(self, runs: Sequence[FinishedRun]) -> list[str]:
        """Write ``runs``; returns their new run ids, in order."""
        ...
