"""The Data page through AppTest: profile charts, new versions, target and task, the profile job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.bad_inputs import CASES, BadCase, good_csv, good_frame
from tests.conftest import REPO_ROOT, reset_workbench_caches
from workbench.data.datasets import create_project_with_dataset, list_datasets
from workbench.db import session_scope
from workbench.projects import create_project, get_project

APP = str(REPO_ROOT / "streamlit_app.py")


def _data_page(slug: str, *, charts: bool = True) -> AppTest:
    """The Data page of ``slug``, with its charts' expander opened (as a click does) when ``charts``."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["shell.project"] = slug
    if charts:
        at.session_state["data.charts"] = True
    at.run()
    at.switch_page("app_pages/data.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _titles(at: AppTest) -> list[str]:
    return [chart["layout"]["title"]["text"] for chart in _charts(at)]


def _project(name: str = "Shop", frame=None, **kwargs) -> str:  # type: ignore[no-untyped-def]
    setup = {"target": "label", "task_type": "classification", "time_column": "day", **kwargs}
    with session_scope() as session:
        return create_project_with_dataset(
            session, name=name, dataset_spec_or_frame=good_frame() if frame is None else frame, **setup
        ).slug


def _submit(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_profile_shows_types_missing_values_and_a_chart_per_column(workbench_home: Path) -> None:
    frame = good_frame(60)
    frame.loc[::4, "x1"] = None
    at = _data_page(_project(frame=frame))
    assert [e.value for e in at.error] == []
    titles = _titles(at)
    assert "Missing values per column" in titles
    for column in frame.columns:
        assert column in titles, (column, titles)
    charts = {c["layout"]["title"]["text"]: c for c in _charts(at)}
    assert charts["x1"]["layout"]["xaxis"]["title"]["text"] == "numeric · 25.0% missing"
    # A numeric column is a histogram of all its non-missing values; a category a bar per value.
    assert sum(charts["x1"]["data"][0]["y"]) == 45
    assert set(charts["colour"]["data"][0]["x"]) == {"red", "green", "blue"}
    # The inline profile was stored, so Home's journey counts the data as profiled.
    from workbench.projects.journey import journey

    with session_scope() as session:
        steps = {step.id: step for step in journey(session, project=get_project(session, slug="shop"))}
    assert steps["profile"].done and steps["profile"].detail == "profile stored"
    types = at.dataframe[-1].value.set_index("column")
    assert types.loc["x1", "kind"] == "numeric" and types.loc["x1", "missing"] == 15
    assert types.loc["day", "kind"] == "datetime" and types.loc["colour", "kind"] == "categorical"


def test_profile_charts_are_drawn_once_their_section_is_opened(workbench_home: Path) -> None:
    # A fresh tab loading plotly pays ~1.5 s (issue 15): the first draw has the table, not the charts.
    at = _data_page(_project(), charts=False)
    assert _charts(at) == []
    assert "Charts: missing values and distributions" in [e.label for e in at.expander]
    assert "column" in at.dataframe[-1].value.columns  # the column types table is there at once
    at.session_state["data.charts"] = True  # what opening the expander does
    at.run()
    assert "label" in _titles(at)


def test_upload_a_new_version(workbench_home: Path) -> None:
    at = _data_page(_project())
    at = _submit(at, "Add as new version")
    assert "choose a CSV or Parquet file" in at.error[0].value
    at.file_uploader(key="data.upload").set_value(("more.csv", good_csv(70), "text/csv"))
    at = _submit(at, "Add as new version")
    assert [e.value for e in at.error] == []
    assert any("Added version 2" in s.value for s in at.success)
    versions = at.dataframe[0].value
    assert list(versions["version"]) == [2, 1] and list(versions["n_rows"]) == [70, 40]
    assert at.subheader[-1].value == "Profile of version 2"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_bad_upload_shows_its_message(
    case: BadCase, workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The project expects the case's target and task; the upload is checked against them.
    with session_scope() as session:
        create_project(session, name="Bad", task_type=case.task, target=case.target)
    at = _data_page("bad")
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    reset_workbench_caches()
    at.file_uploader(key="data.upload").set_value((case.filename, case.content, "text/csv"))
    at = _submit(at, "Add as new version")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and case.message in errors[0], errors
    with session_scope() as session:
        assert list_datasets(session, project=get_project(session, slug="bad")) == []


def test_choosing_target_and_task_is_validated(workbench_home: Path) -> None:
    at = _data_page(_project())
    at.radio(key="data.task").set_value("regression")
    at = _submit(at, "Check and save")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "not numeric" in errors[0]
    at.selectbox(key="data.time_column").set_value("colour")
    at.selectbox(key="data.target").set_value("amount")
    at = _submit(at, "Check and save")
    assert "does not parse as dates" in at.error[0].value
    at.selectbox(key="data.time_column").set_value("day")
    at = _submit(at, "Check and save")
    assert [e.value for e in at.error] == []
    with session_scope() as session:
        project = get_project(session, slug="shop")
    assert (project.target, project.task_type, project.time_column) == ("amount", "regression", "day")
    many = good_frame(120)
    many["label"] = [f"c{i % 60}" for i in range(120)]
    at = _data_page(_project(name="Many", frame=many, target="amount", task_type="regression"))
    at.radio(key="data.task").set_value("classification")
    at.selectbox(key="data.target").set_value("label")
    at = _submit(at, "Check and save")
    assert "more than the limit of 50" in at.error[0].value


def test_large_data_is_profiled_by_a_background_job(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.ui.data

    monkeypatch.setattr(workbench.ui.data, "INLINE_PROFILE_MAX_CELLS", 10)
    slug = _project(name="Large", frame=good_frame(500))
    at = _data_page(slug)
    assert _charts(at) == []
    assert any("background job" in i.value for i in at.info)
    at = _submit(at, "Profile in the background")
    deadline = time.monotonic() + 60
    # The polling fragment does not fire inside AppTest: rerun until the job has ended.
    while not _charts(at):
        assert time.monotonic() < deadline, [m.value for m in at.markdown]
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    assert any("succeeded" in m.value for m in at.markdown)
    assert "colour" in _titles(at)


def test_low_cardinality_integers_have_the_kind_monitoring_tests_them_by(workbench_home: Path) -> None:
    """Issue 15: an integer column of a few values was "numeric" here but categorical for drift."""
    from tests.helpers.messy_data import LOW_CARDINALITY_INT, SPACED_COLUMN_NORMALISED, TARGET, messy_tips
    from workbench.monitoring.drift import column_drift, infer_column_kind

    frame = messy_tips(600, seed=3)
    at = _data_page(_project(name="Messy", frame=frame, target=TARGET, time_column="visit_date"))
    types = at.dataframe[-1].value.set_index("column")
    drift_kind = infer_column_kind(frame[LOW_CARDINALITY_INT])
    assert drift_kind == "categorical"
    assert types.loc[LOW_CARDINALITY_INT, "kind"] == "categorical"
    # The same rule for the other columns: a float with gaps is numeric on both sides.
    assert types.loc["party_age", "kind"] == "numeric" and infer_column_kind(frame["party_age"]) == "numerical"
    # The drift check agrees (it compares value frequencies), and the profile draws a bar per value.
    assert column_drift(LOW_CARDINALITY_INT, frame[LOW_CARDINALITY_INT], frame[LOW_CARDINALITY_INT]).kind == drift_kind
    # Six distributions are drawn at first (each plotly chart costs the browser time), target first.
    distributions = [t for t in _titles(at) if t != "Missing values per column"]
    assert sorted(distributions) == sorted([TARGET, SPACED_COLUMN_NORMALISED, "sex", "smoker", "day", "time"])
    picker = at.multiselect(key="data.chart_columns")
    if LOW_CARDINALITY_INT not in picker.value:  # the first columns are charted by default; pick it
        picker.set_value([*picker.value, LOW_CARDINALITY_INT]).run()
    chart = next(c for c in _charts(at) if c["layout"]["title"]["text"] == LOW_CARDINALITY_INT)
    assert chart["layout"]["xaxis"]["title"]["text"].startswith("categorical")
    assert sorted(int(v) for v in chart["data"][0]["x"]) == sorted(frame[LOW_CARDINALITY_INT].unique().tolist())
    assert sum(chart["data"][0]["y"]) == len(frame)
