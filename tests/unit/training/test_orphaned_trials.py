"""Resuming a dead job fails its workers' RUNNING trials, on an RDB storage too when a worker died before its
trial's first heartbeat (Optuna's heartbeat only fails trials whose heartbeat went stale; one with none stayed
RUNNING forever, and the resumed job waited for it: test_train_kill timed out so in a suite run)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from workbench.training.study import fail_orphaned_trials

HEARTBEAT = 1


def _study(path: Path) -> optuna.Study:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat_interval is experimental; ask() warns with a heartbeat
        storage = optuna.storages.RDBStorage(f"sqlite:///{path / 'optuna.db'}", heartbeat_interval=HEARTBEAT,
                                             grace_period=2 * HEARTBEAT)
        return optuna.create_study(storage=storage, study_name="orphans")


def _ask(study: optuna.Study, *, beat: bool) -> optuna.Trial:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    if beat:
        study._storage.record_heartbeat(trial._trial_id)  # as the worker's heartbeat thread does first
    return trial


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_queued_again(tmp_path: Path) -> None:
    study = _study(tmp_path)
    done = _ask(study, beat=True)
    study.tell(done, 0.5)
    silent = _ask(study, beat=False)  # killed between the trial's creation and its first heartbeat
    time.sleep(2 * HEARTBEAT + 0.5)  # older than the grace period
    beating = _ask(study, beat=True)  # a live worker's fresh trial: not touched
    young = _ask(study, beat=False)  # just started, its heartbeat not written yet: not touched either

    assert fail_orphaned_trials(study) == 1
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[silent.number] == TrialState.FAIL
    assert states[done.number] == TrialState.COMPLETE
    assert states[beating.number] == TrialState.RUNNING and states[young.number] == TrialState.RUNNING
    queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert len(queued) == 1  # to be run again with the failed trial's parameters
    assert study._storage.get_trial_system_attrs(queued[0]._trial_id)["fixed_params"] == silent.params
    assert queued[0].user_attrs["workbench.retry_of"] == silent.number
