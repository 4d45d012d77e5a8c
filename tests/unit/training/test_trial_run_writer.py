"""The background writer of tuning trials' child runs (issue 16 item 6): every trial written, in groups, on close.

Trials are handed over without waking the writer per trial; these tests check that nothing is lost:
a burst of trials from the trial's thread and from several threads at once, each written once as an
MLflow child run with its params and value, read back through MlflowClient from a real SQLite store.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from workbench.settings import get_settings
from workbench.tracking import ensure_experiment, get_client
from workbench.training.study import TAG_TRIAL_NUMBER
from workbench.training.trial_runs import TrialRecord, TrialRunWriter


def _writer(slug: str) -> tuple[TrialRunWriter, str]:
    settings = get_settings()
    client = get_client(settings)
    experiment_id = ensure_experiment(project_slug=slug, settings=settings)
    parent = client.create_run(experiment_id, run_name="parent")
    writer = TrialRunWriter(client, experiment_id=experiment_id, parent_run_id=parent.info.run_id, study=f"{slug}/s",
                            project_slug=slug, job_id="job1", metric="roc_auc", group_size=50, flush_seconds=0.5)
    return writer, experiment_id


def _record(number: int) -> TrialRecord:
    return TrialRecord(number=number, state="COMPLETE" if number % 7 else "PRUNED",
                       value=None if number % 7 == 0 else number / 10, params={"C": number * 0.5, "kernel": "rbf"},
                       user_attrs={"cv_mean": 0.5, "family": "svm"}, start_ms=1_000 + number, end_ms=2_000 + number)


def _logged(experiment_id: str) -> dict[int, object]:
    runs = get_client(get_settings()).search_runs([experiment_id], filter_string="tags.`workbench.kind` = 'trial'",
                                                  max_results=1000)
    return {int(run.data.tags[TAG_TRIAL_NUMBER]): run for run in runs}


def test_a_burst_of_trials_is_written_once_each_in_groups(workbench_home: Path) -> None:
    writer, experiment_id = _writer("burst")
    writes: list[int] = []
    write = writer.runs.write
    writer.runs.write = lambda runs: (writes.append(len(runs)), write(runs))[1]  # type: ignore[method-assign]
    writer.start()
    for number in range(130):
        writer.submit(_record(number))
    writer.close(timeout=60)
    assert not writer.is_alive() and writer.errors == []
    assert writer.logged == 130 and sum(writes) == 130 and max(writes) <= 50
    assert len(writes) < 130  # grouped, not one transaction per trial
    runs = _logged(experiment_id)
    assert sorted(runs) == list(range(130))
    run = runs[8]
    assert run.data.params == {"C": "4.0", "kernel": "rbf"} and run.data.metrics["value"] == 0.8  # type: ignore[attr-defined]
    assert runs[7].info.status == "KILLED" and "value" not in runs[7].data.metrics  # type: ignore[attr-defined]


def test_trials_from_several_threads_and_a_close_right_away(workbench_home: Path) -> None:
    writer, experiment_id = _writer("threads")
    writer.start()
    threads = [threading.Thread(target=lambda k=k: [writer.submit(_record(k * 40 + i)) for i in range(40)])
               for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close(timeout=60)  # no wait for a flush: close writes what is left
    assert writer.logged == 120 and sorted(_logged(experiment_id)) == list(range(120))


def test_a_lone_trial_is_written_at_close(workbench_home: Path) -> None:
    writer, experiment_id = _writer("lone")
    writer.start()
    writer.submit(_record(3))
    writer.close(timeout=60)
    assert writer.logged == 1 and list(_logged(experiment_id)) == [3]


def _tuning_study(name: str) -> Any:
    from workbench.training.config import validate_tuning
    from workbench.training.study import open_study

    config = validate_tuning(models=["linear"], n_trials=40, timeout_seconds=None, folds=3, sampler="random",
                             pruner="none", workers=1, seed=0, metric="roc_auc", task_type="classification")
    return open_study(name=name, config=config, settings=get_settings())


def _quadratic(trial: Any) -> float:
    x = trial.suggest_float("x", -10, 10)
    return x * x


def test_the_study_deep_copies_each_finished_trial_once(workbench_home: Path, monkeypatch: Any) -> None:
    """Optuna deep-copies the finished trial for every callback it is given: run_study gives it one.

    Two callbacks (the loop's own and the job's) cost a second copy per trial, a tenth of untracked
    Optuna's CPU time on a trivial objective.
    """
    import copy

    import optuna

    from workbench.training.study import run_study

    study = _tuning_study("copies/s")
    copies: list[int] = []
    deepcopy = copy.deepcopy

    def counting(value: Any, memo: Any = None) -> Any:
        if isinstance(value, optuna.trial.FrozenTrial) and memo is None:
            copies.append(value.number)
        return deepcopy(value, memo)

    seen: list[int] = []
    monkeypatch.setattr(copy, "deepcopy", counting)
    assert run_study(study, _quadratic, n_trials=12, timeout_seconds=None,
                     on_trial=lambda s, t: seen.append(t.number)) == "budget"
    assert seen == list(range(12))
    assert sorted(copies) == list(range(12))  # one copy per trial


def test_a_tracked_study_writes_its_runs_in_a_few_statements_readable_by_mlflow(workbench_home: Path) -> None:
    """Every trial becomes a child run (params, value, tags) in a bounded number of SQL statements.

    Counted on the real SQLite engine of the MLflow store: a group of runs is one transaction of one
    multi-row INSERT per table, so the statements do not grow with the number of trials.
    """
    from sqlalchemy import event

    from workbench.tracking import TAG_KIND
    from workbench.tracking._sql_store import sql_store
    from workbench.training.study import TAG_STUDY, run_study

    writer, experiment_id = _writer("statements")
    engine = sql_store(writer.client).engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append(statement.strip())

    study = _tuning_study("statements/s")
    event.listen(engine, "before_cursor_execute", count)
    try:
        writer.start()
        run_study(study, _quadratic, n_trials=40, timeout_seconds=None, on_trial=writer.callback)
        writer.close(timeout=60)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert writer.errors == [] and writer.logged == 40
    writes = [s for s in statements if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    assert len(writes) <= 5 * 2, statements  # one INSERT per table (runs, tags, params, metrics, latest) a group
    assert len(statements) <= 25, statements  # and a few PRAGMAs: nothing per trial
    # The experiment's artifact root was read when the writer was made, before the trials.
    assert not [s for s in statements if s.upper().startswith("SELECT")], statements
    runs = _logged(experiment_id)
    assert sorted(runs) == list(range(40))
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number, run in runs.items():
        assert run.data.params == {"x": str(trials[number].params["x"])}  # type: ignore[attr-defined]
        assert run.data.metrics["value"] == trials[number].value  # type: ignore[attr-defined]
        assert run.data.tags[TAG_KIND] == "trial" and run.data.tags[TAG_STUDY] == "statements/s"  # type: ignore[attr-defined]
        assert run.info.status == "FINISHED"  # type: ignore[attr-defined]


def test_a_writer_on_a_deleted_experiment_starts_and_reports_its_trials_as_errors(workbench_home: Path) -> None:
    """Looking the experiment up ahead is best effort: the failure still comes from the write, per trial."""
    settings = get_settings()
    client = get_client(settings)
    experiment_id = ensure_experiment(project_slug="gone", settings=settings)
    parent = client.create_run(experiment_id, run_name="parent")
    client.delete_experiment(experiment_id)
    writer = TrialRunWriter(client, experiment_id=experiment_id, parent_run_id=parent.info.run_id, study="gone/s",
                            project_slug="gone", job_id="job1", metric="roc_auc")
    writer.start()
    writer.submit(_record(1))
    writer.close(timeout=60)
    assert writer.logged == 0 and len(writer.errors) == 1 and "trial 1" in writer.errors[0]
