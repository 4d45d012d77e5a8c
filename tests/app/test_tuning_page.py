"""The Tuning page in AppTest: a bad choice is refused, Launch starts a real job, the page follows it."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.helpers.app_pages import open_page
from tests.helpers.processes import job_row, poll
from tests.pipelines.test_train import _project
from workbench.db import session_scope
from workbench.jobs import FINAL_STATUSES, list_jobs
from workbench.projects import get_project

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "tuning.py")


def _app(slug: str, *, charts: bool = True) -> AppTest:
    return open_page(PAGE, slug, timeout=60, charts=charts)


def _launch(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Launch tuning").click().run()


def _train_jobs(slug: str) -> list:
    with session_scope() as session:
        return list_jobs(session, project=get_project(session, slug=slug), kind="train")


def _wait(job_id: str, timeout: float = 180.0) -> str:
    job = poll(lambda: job_row(job_id), lambda j: j.status in FINAL_STATUSES, timeout=timeout, every=0.5)
    assert job.status in FINAL_STATUSES, "the train job did not finish in time"
    return job.status


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_launch_follow_and_see_the_result(workbench_home: Path) -> None:
    slug = _project(workbench_home, name="Tuning page")
    at = _app(slug, charts=False)  # as a fresh visit: the charts open by themselves while the job runs
    assert not at.exception, at.exception
    assert any("No tuning job yet" in i.value for i in at.info)

    # A bad choice is refused before anything starts, naming the field.
    at.multiselect(key="tuning.models").set_value([])
    at = _launch(at)
    assert any("models" in e.value for e in at.error), [e.value for e in at.error]
    assert _train_jobs(slug) == []

    at.multiselect(key="tuning.models").set_value(["knn"])
    at.number_input(key="tuning.n_trials").set_value(3)
    at.number_input(key="tuning.folds").set_value(2)
    at = _launch(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    jobs = _train_jobs(slug)
    assert len(jobs) == 1 and jobs[0].params["models"] == ["knn"] and jobs[0].params["n_trials"] == 3
    job_id = jobs[0].id

    # While it runs: the live panel (trials done, best vs bar, time left) and the history chart.
    at.run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "Trials done" in labels and "Time left" in labels
    assert _charts(at), "the optimisation-history chart is on the page"

    assert _wait(job_id) == "succeeded"
    at.run()
    assert not at.exception, at.exception
    trials_done = next(m for m in at.metric if m.label == "Trials done")
    assert trials_done.value == "3/3"
    # The charts' expander was open while the job ran, and stays open for this session.
    assert at.session_state["tuning.charts"] is True
    chart = _charts(at)[0]
    points = next(t for t in chart["data"] if t.get("name") == "trial")
    assert sorted(points["x"]) == [0, 1, 2]
    assert next(m for m in at.metric if m.label == "Registered version").value == f"{slug} v1"
    # No baselines were run: the version is registered but flagged, with the reason.
    assert any("no bar to beat" in w.value for w in at.warning)

    # Launch again puts the earlier job's settings back into the form.
    at.multiselect(key="tuning.models").set_value(["linear"])
    at.run()
    next(b for b in at.button if b.label == "Launch again").click().run()
    assert at.multiselect(key="tuning.models").value == ["knn"]
    assert at.number_input(key="tuning.n_trials").value == 3


def _finished_trials(slug: str, job_id: str) -> int:
    from workbench.settings import get_settings
    from workbench.training.optuna_storage import load_study
    from workbench.training.study import finished_trials, study_name

    study = load_study(study_name(slug, job_id), settings=get_settings())
    return 0 if study is None else finished_trials(study)


def test_resume_a_cancelled_job_from_the_page(workbench_home: Path) -> None:
    """Resume on the page continues the cancelled job's study with the job's own settings."""
    from tests.helpers.app_pages import button

    slug = _project(workbench_home, name="Tuning resume")
    at = _app(slug)
    at.multiselect(key="tuning.models").set_value(["knn"])
    at.number_input(key="tuning.n_trials").set_value(5000)  # more than it runs before the cancel
    at.number_input(key="tuning.folds").set_value(2)
    at.number_input(key="tuning.seed").set_value(5)
    at = _launch(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    job_id = _train_jobs(slug)[0].id
    poll(lambda: _finished_trials(slug, job_id), lambda n: n >= 1, timeout=120, every=0.5)

    # The form's settings go back to the defaults: Resume must not take them.
    at.multiselect(key="tuning.models").set_value(["linear", "random_forest"])
    at.number_input(key="tuning.folds").set_value(3)
    at.run()
    button(at, "Cancel job").click().run()
    assert _wait(job_id) == "cancelled"
    before = _finished_trials(slug, job_id)

    at.run()
    at.number_input(key="tuning.resume.trials").set_value(2)
    button(at, "Resume the study").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    resumed = next(j for j in _train_jobs(slug) if (j.params or {}).get("resume_of") == job_id)
    assert resumed.params["models"] == ["knn"] and resumed.params["folds"] == 2 and resumed.params["seed"] == 5
    assert resumed.params["n_trials"] == 2
    assert _wait(resumed.id) == "succeeded", job_row(resumed.id).error

    at.run()
    assert not at.exception, at.exception
    # The page follows the resumed job: the one study, with the trials of both jobs.
    assert next(m for m in at.metric if m.label == "Trials done").value == f"{before + 2}/{before + 2}"
    assert next(m for m in at.metric if m.label == "Best family").value == "knn"


def test_the_result_compares_holdout_with_holdout_and_states_the_uplift_rule(workbench_home: Path) -> None:
    from tests.helpers.jobs import run_job_ok
    from tests.pipelines.test_train import PARAMS

    slug = _project(workbench_home, name="Tuning bar")
    run_job_ok(slug, "baseline")
    result = run_job_ok(slug, "train", PARAMS)["result"]
    at = _app(slug, charts=False)
    assert not at.exception, at.exception

    # The CV score carries no delta against the (holdout) bar: they are different measurements.
    cv = next(m for m in at.metric if m.label.startswith("Best balanced_accuracy so far (CV)"))
    assert cv.proto.delta == "" and "holdout" in cv.help
    assert not [m.label for m in at.metric if "vs bar" in (m.proto.delta or "")]

    bar, holdout = result["bar"], result["holdout_metrics"]["balanced_accuracy"]
    uplift = (holdout - bar["value"]) / abs(bar["value"])
    text = next(m.value for m in at.markdown if "against the bar to beat" in m.value)
    assert f"Holdout balanced_accuracy **{holdout:.4f}**" in text and f"**{bar['value']:.4f}**" in text
    assert "same holdout" in text and f"relative uplift **{uplift:+.2%}**" in text
    assert "passes" in text and "Rule: a relative uplift (value − bar) / |bar| of at least 1.00%" in text
    # A finished job's charts wait behind their expander (a fresh tab would otherwise load plotly, issue 15).
    assert _charts(at) == []


def test_trials_are_shown_as_an_edf_and_a_table(workbench_home: Path) -> None:
    """The EDF of the objective per family and the trial table (state, duration, params, attributes)."""
    from tests.helpers.jobs import run_job_ok
    from workbench.settings import get_settings
    from workbench.training.optuna_storage import load_study

    slug = _project(workbench_home, name="Tuning trials")
    result = run_job_ok(slug, "train", {"models": ["knn", "linear"], "n_trials": 6, "folds": 2,
                                        "seed": 4})["result"]
    study = load_study(result["study"], settings=get_settings())
    assert study is not None
    trials = [t for t in study.get_trials() if not t.user_attrs.get("workbench.surplus")]
    at = _app(slug)
    assert not at.exception, at.exception

    edf = next(c for c in _charts(at) if c["layout"]["title"]["text"].startswith("Empirical distribution"))
    expected: dict[str, list[float]] = {}
    for trial in trials:
        if trial.state.name == "COMPLETE":
            expected.setdefault(trial.user_attrs["family"], []).append(trial.value)
    lines = {t["name"]: t for t in edf["data"]}
    assert set(lines) == set(expected)
    for family, values in expected.items():
        assert list(lines[family]["x"]) == sorted(values)
        assert list(lines[family]["y"]) == [(i + 1) / len(values) for i in range(len(values))]

    table = next(df.value for df in at.dataframe if "state" in df.value.columns and "user_attrs" in df.value.columns)
    assert table["number"].tolist() == [t.number for t in trials]
    assert table["state"].tolist() == [t.state.name for t in trials]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    assert table["duration (s)"].tolist() == [round(d, 3) for d in durations]
    first = trials[0]
    assert all(f"{name}=" in table.loc[0, "params"] for name in first.params)
    assert "cv_mean=" in table.loc[0, "user_attrs"] and "worker=" in table.loc[0, "user_attrs"]
    assert table["family"].tolist() == [t.user_attrs.get("family", "") for t in trials]
