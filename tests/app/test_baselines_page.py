"""The Baselines page in AppTest: build a rule, run the baseline job, see the table and the chart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.helpers.app_pages import open_page
from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.data.datasets import create_project_with_dataset
from workbench.db import session_scope
from workbench.jobs import FINAL_STATUSES, get_job, list_jobs
from workbench.projects import get_project

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "baselines.py")


def _project() -> str:
    rng = np.random.default_rng(5)
    n = 160
    calls = rng.poisson(2, n)
    frame = pd.DataFrame(
        {
            "calls": calls,
            "plan": rng.choice(["basic", "pro"], n),
            "spend": rng.normal(50, 10, n).round(1),
            "churned": np.where(calls + rng.normal(0, 1, n) > 3, "yes", "no"),
        }
    )
    with session_scope() as session:
        project = create_project_with_dataset(
            session, name="Page churn", dataset_spec_or_frame=frame, target="churned", task_type="classification"
        )
        return project.slug


def _app(slug: str, *, charts: bool = True) -> AppTest:
    return open_page(PAGE, slug, timeout=30, charts=charts)


def _wait_for_baseline_job(slug: str, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            jobs = list_jobs(session, project=get_project(session, slug=slug), kind="baseline")
            if jobs and get_job(session, job_id=jobs[0].id).status in FINAL_STATUSES:
                return jobs[0].status
        time.sleep(0.5)
    raise AssertionError("the baseline job did not finish in time")


def test_build_rule_run_baselines_and_see_results(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    slug = _project()
    at = _app(slug, charts=False)  # as a fresh visit: the chart is opened below
    assert not at.exception
    assert any("No split yet" in i.value for i in at.info)

    # Rule: calls > 3 -> yes, else no.
    at.selectbox(key="baselines.rule.column1").set_value("calls").run()
    at.selectbox(key="baselines.rule.operator1.numeric").set_value(">").run()
    at.text_input(key="baselines.rule.text1").input("3").run()
    at.selectbox(key="baselines.rule.then").set_value("yes")
    at.selectbox(key="baselines.rule.else").set_value("no")
    at.button(key="baselines.rule.save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Saved the rule" in s.value for s in at.success)
    with session_scope() as session:
        stored = get_project(session, slug=slug).heuristic
    assert stored == {"conditions": [{"column": "calls", "operator": ">", "value": 3}], "combine": "all",
                      "then": "yes", "else": "no"}

    at.button(key="baselines.run").click().run()
    assert not at.exception
    assert _wait_for_baseline_job(slug) == "succeeded"
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["baseline"]) == [
        "Class prior (most frequent)", "Random by class share", "Logistic regression", "Canvas rule (heuristic)",
    ]
    assert table["status"].eq("succeeded").all()
    assert table["best"].sum() == 1
    # The chart is drawn once its expander is opened (a fresh tab would otherwise load plotly, issue 15).
    assert at.get("plotly_chart") == []
    at.session_state["baselines.charts"] = True
    at.run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = spec["data"][0]
    assert len(bars["x"]) == 4
    best_index = int(np.argmax(bars["y"]))  # balanced accuracy: higher is better
    assert bars["marker"]["color"][best_index] == "#2e7d32"
    assert table["baseline"].iloc[int(np.flatnonzero(table["best"].to_numpy())[0])] == bars["x"][best_index]
    # The bar to beat is drawn as a line at the best value.
    assert spec["layout"]["shapes"][0]["y0"] == max(bars["y"])
    # The split is now recorded and shown.
    assert any(m.label == "Strategy" and m.value == "stratified" for m in at.metric)


def test_invalid_rule_shows_the_field(workbench_home: Path) -> None:
    slug = _project()
    at = _app(slug)
    at.selectbox(key="baselines.rule.column1").set_value("spend").run()
    at.selectbox(key="baselines.rule.operator1.numeric").set_value("<").run()
    at.text_input(key="baselines.rule.text1").input("lots").run()
    at.button(key="baselines.rule.save").click().run()
    assert any("value" in e.value and "number" in e.value for e in at.error)
    with session_scope() as session:
        assert get_project(session, slug=slug).heuristic is None
