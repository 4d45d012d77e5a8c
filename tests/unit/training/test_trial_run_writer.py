"""The background writer of tuning trials' child runs (issue 16 item 6): every trial written, in groups, on close.

Trials are handed over without waking the writer per trial; these tests check that nothing is lost:
a burst of trials from the trial's thread and from several threads at once, each written once as an
MLflow child run with its params and value, read back through MlflowClient from a real SQLite store.
"""

from __future__ import annotations

import threading
from pathlib import Path

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
