"""The Optuna study of a train job: open it, run it on a shared budget, read its progress and history.

- :func:`open_study` opens the study ``<project-slug>/<job-id>`` on ``settings.optuna_storage``
  (:mod:`workbench.training.optuna_storage`). On an RDB storage trials carry a heartbeat; a
  trial whose worker died is failed and retried.
- :func:`run_study` runs trials until the study holds exactly ``n_trials`` finished trials in
  total, whichever workers ran them (the cap of ``MaxTrialsCallback`` plus a guard against
  the race where two workers start the last trial at once), or the time budget ends.
- :class:`StudyProgress`, :func:`study_counts`, :func:`finished_trials` and
  :func:`history_frame` read where a study is, for the job's progress and the Tuning page.

The trial user attrs and run tags here are read by the objective, by the MLflow writer
(:mod:`workbench.training.trial_runs`) and by the page's chart.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput
from workbench.training.config import TuningConfig

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from workbench.settings import Settings

# Trial user attrs (read by the page's chart and by the MLflow writer).
ATTR_CV_MEAN = "cv_mean"
ATTR_CV_STD = "cv_std"
ATTR_FIT_SECONDS = "fit_seconds"
ATTR_FAMILY = "family"
ATTR_WORKER = "worker"
ATTR_SURPLUS = "workbench.surplus"
# MLflow tags on trial runs, so a resumed job can tell which trials are already logged.
TAG_STUDY = "workbench.study"
TAG_TRIAL_NUMBER = "workbench.trial_number"
CONFIG_ATTR = "workbench.config"
FINISHED_STATES = ("COMPLETE", "PRUNED")


def study_name(project_slug: str, job_id: str) -> str:
    """The Optuna study name of a tuning job."""
    return f"{project_slug}/{job_id}"


def make_sampler(config: TuningConfig) -> optuna.samplers.BaseSampler:
    """The sampler a config names, seeded."""
    import optuna

    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=config.seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=min(10, max(2, (config.n_trials or 20) // 3)))


def make_pruner(config: TuningConfig) -> optuna.pruners.BasePruner:
    """The pruner a config names (NopPruner for 'none')."""
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if config.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_study(
    *, name: str, config: TuningConfig, settings: Settings, create: bool = True
) -> optuna.Study:
    """Create (or load) the study ``name`` on the settings' Optuna storage."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from workbench.training.optuna_storage import open_storage

    storage = open_storage(settings.optuna_storage, heartbeat_seconds=settings.heartbeat_seconds)
    if not create:
        try:
            return optuna.load_study(
                study_name=name, storage=storage, sampler=make_sampler(config), pruner=make_pruner(config)
            )
        except KeyError:
            from workbench.errors import NotFound

            raise NotFound(f"No Optuna study named {name!r} in {settings.optuna_storage}.") from None
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(config),
        pruner=make_pruner(config),
        direction="maximize" if config.direction == "maximize" else "minimize",
        load_if_exists=True,
    )
    study.set_user_attr(CONFIG_ATTR, config.as_dict())
    return study


def config_from_study(name: str, *, settings: Settings) -> TuningConfig:
    """The tuning config stored on study ``name`` by the job that created it (for workers)."""
    import optuna

    from workbench.errors import NotFound
    from workbench.training.optuna_storage import open_storage

    storage = open_storage(settings.optuna_storage, heartbeat_seconds=settings.heartbeat_seconds)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise NotFound(f"No Optuna study named {name!r} in {settings.optuna_storage}.") from None
    data = study.user_attrs.get(CONFIG_ATTR)
    if not data:
        raise InvalidInput(f"Study {name!r} was not created by a workbench job.", field="job_id")
    data = dict(data)
    data["models"] = tuple(data["models"])
    return TuningConfig(**data)


def study_counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state name (COMPLETE, PRUNED, RUNNING, WAITING, FAIL)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def finished_trials(study: optuna.Study) -> int:
    """Finished trials (complete or pruned) of the whole study, every worker's."""
    counts = study_counts(study)
    return sum(counts.get(state, 0) for state in FINISHED_STATES)


def best_trial_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The study's best trial, or None while no trial has completed."""
    try:
        return study.best_trial
    except ValueError:
        return None


def fail_orphaned_trials(study: optuna.Study) -> int:
    """Fail the RUNNING trials of a dead job's workers and queue each again; how many.

    Called when resuming a lost or cancelled job. On a storage without heartbeats (the journal) every
    RUNNING trial is such a trial. On an RDB storage Optuna's heartbeat fails a trial whose heartbeat went
    stale, but not one whose worker died before its first heartbeat (Optuna skips a trial without one), which
    stayed RUNNING forever and held the resumed job's budget: such a trial, started longer ago than the
    grace period, is failed here too (:func:`_never_beat`).
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if is_heartbeat_enabled(study._storage):
        orphans = _never_beat(study._storage, orphans)
    for trial in orphans:
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"workbench.retry_of": trial.number})
    return len(orphans)


def _never_beat(storage: Any, trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The ``trials`` with no heartbeat, started longer ago than the storage's grace period.

    Optuna has no public way to ask whether a trial ever beat: this reads its RDB storage's
    ``trial_heartbeats`` table (Optuna 5.1). Where that is not there to read, no trial is failed (as
    before): the caller then relies on Optuna's stale-heartbeat check alone.
    """
    import datetime
    import logging

    import sqlalchemy

    rdb = getattr(storage, "_backend", storage)  # Optuna wraps an RDB storage in a cache
    interval = getattr(rdb, "heartbeat_interval", None)
    grace = getattr(rdb, "grace_period", None) or 2 * (interval or 0)
    # FrozenTrial.datetime_start is the worker's local time, without a zone.
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace)
    old = [t for t in trials if t.datetime_start is not None and t.datetime_start < cutoff]
    if not old:
        return []
    try:
        with rdb.engine.connect() as connection:
            beat = set(connection.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats")).scalars())
    except (AttributeError, sqlalchemy.exc.SQLAlchemyError) as exc:
        logging.getLogger(__name__).warning("could not read Optuna's trial heartbeats (%s): a trial whose worker "
                                            "died before its first heartbeat stays RUNNING", exc)
        return []
    return [t for t in old if t._trial_id not in beat]


class StudyProgress:
    """An Optuna callback that keeps ``(finished trials, best value)`` of the whole study for progress.

    It counts this process's trials locally and re-reads the study-wide figures (every
    worker's trials) from the storage at most every ``interval`` seconds, so reporting
    progress adds no storage query to most trials. ``report(done, best)`` gets the figures.
    """

    def __init__(
        self, report: Callable[[int, float | None], None], *, direction: str, done: int = 0, interval: float = 0.5
    ) -> None:
        self.report = report
        self.maximize = direction == "maximize"
        self.done = done
        self.best: float | None = None
        self.interval = interval
        self._refreshed = 0.0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get(ATTR_SURPLUS):
            return
        if trial.state.name in FINISHED_STATES:
            self.done += 1
        if trial.state.name == "COMPLETE" and trial.value is not None and (
            self.best is None or (trial.value > self.best if self.maximize else trial.value < self.best)
        ):
            self.best = float(trial.value)
        now = time.monotonic()
        if now - self._refreshed >= self.interval:
            self._refreshed = now
            self.done = finished_trials(study)
            best = best_trial_or_none(study)
            self.best = float(best.value) if best is not None and best.value is not None else self.best
        self.report(self.done, self.best)


class _Surplus(Exception):
    """A trial started after the study's budget was already taken by other workers."""


def _guard(objective: Callable[[Any], float], n_trials: int | None) -> Callable[[Any], float]:
    """Fail (and stop) a trial that would exceed the budget; makes the total exact under races."""
    if n_trials is None:
        return objective

    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)

    def guarded(trial: Any) -> float:
        # A trial numbered below the budget cannot be surplus (its rank is at most its number),
        # so the storage is only asked near the end of the study.
        if trial.number < n_trials:
            return objective(trial)
        before = [t for t in trial.study.get_trials(deepcopy=False, states=live) if t.number < trial.number]
        if len(before) >= n_trials:
            trial.set_user_attr(ATTR_SURPLUS, True)
            trial.study.stop()
            raise _Surplus(f"trial {trial.number} is beyond the budget of {n_trials}")
        return objective(trial)

    return guarded



def run_study(
    study: optuna.Study,
    objective: Callable[[Any], float],
    *,
    n_trials: int | None,
    timeout_seconds: float | None,
    cancel_event: threading.Event | None = None,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    poll_seconds: float = 0.2,
) -> str:
    """Run trials until the study holds ``n_trials`` finished trials, time runs out or a cancel.

    Several processes may run this on the same study at once: they share the budget. Returns
    why it stopped: ``"budget"``, ``"timeout"`` or ``"cancelled"``.
    """
    import optuna

    started = time.monotonic()
    # No MaxTrialsCallback: each optimize() call below runs one trial, and the loop checks the
    # study-wide budget itself (only near the end); the callback re-read every trial from the storage.
    guarded = _guard(objective, n_trials)
    # Highest trial number seen here; while the next number stays below the budget the budget
    # cannot be spent yet, so the counts are read from the storage only near the end.
    last_number: int | None = None

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal last_number
        last_number = max(trial.number, last_number if last_number is not None else -1)
        if on_trial is not None:
            on_trial(study, trial)

    # One callback, not one per concern: Optuna deep-copies the finished trial for every callback
    # (about 16 us a copy, a tenth of untracked Optuna's CPU time per trivial trial).
    callbacks = [after_trial]
    while True:
        if cancel_event is not None and cancel_event.is_set():
            return "cancelled"
        remaining = None if timeout_seconds is None else timeout_seconds - (time.monotonic() - started)
        if remaining is not None and remaining <= 0:
            return "timeout"
        if n_trials is not None and (last_number is None or last_number + 1 >= n_trials):
            counts = study_counts(study)
            done = sum(counts.get(state, 0) for state in FINISHED_STATES)
            if done >= n_trials:
                return "budget"
            if done + counts.get("RUNNING", 0) >= n_trials:
                # Other workers hold the rest of the budget; wait, in case one of them dies and
                # its trial comes back (failed by its stale heartbeat, then retried).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                time.sleep(poll_seconds)
                continue
        study.optimize(guarded, n_trials=1, callbacks=callbacks, catch=(_Surplus,), gc_after_trial=False)


def history_frame(study: optuna.Study) -> pd.DataFrame:
    """Every finished trial of the study (all workers): number, value, best so far, family, worker."""
    import pandas as pd

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name != "COMPLETE" or trial.value is None:
            continue
        rows.append(
            {
                "number": trial.number,
                "value": float(trial.value),
                "family": trial.user_attrs.get(ATTR_FAMILY, ""),
                "worker": trial.user_attrs.get(ATTR_WORKER, ""),
                "completed_at": trial.datetime_complete,
            }
        )
    frame = pd.DataFrame(rows, columns=["number", "value", "family", "worker", "completed_at"])
    if frame.empty:
        frame["best"] = []
        return frame
    frame = frame.sort_values("number", ignore_index=True)
    maximize = study.direction.name == "MAXIMIZE"
    frame["best"] = frame["value"].cummax() if maximize else frame["value"].cummin()
    return frame
