"""The Experiments page in AppTest over real runs (a baseline job and a tiny real tuning job):
every chart's figure, the filter box with OR, kind quick filters, saved views and the compare view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.app_pages import open_page
from tests.helpers.experiments_project import seed_experiments_project
from tests.helpers.registered_model import module_home

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "experiments.py")
CHART_TITLES = ("Optimisation history", "Parallel coordinates", "Parameter importance", "Slices", "Contour",
                "vs fit time")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with module_home(tmp_path_factory) as home:
        yield seed_experiments_project(home, train_jobs=1)


def _app(slug: str) -> AppTest:
    at = open_page(PAGE, slug, timeout=60)
    assert not at.exception, at.exception
    return at


def _figures(at: AppTest) -> dict[str, dict[str, Any]]:
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"].get("title", {})
        out[title.get("text", "") if isinstance(title, dict) else str(title)] = spec
    return out


def _mlflow_runs(slug: str, filter_string: str = "") -> list[Any]:
    from workbench.tracking import experiment_name, get_client

    client = get_client()
    experiment = client.get_experiment_by_name(experiment_name(slug))
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], filter_string=filter_string, max_results=1000))


def _match_count(at: AppTest) -> tuple[int, int]:
    caption = next(c.value for c in at.caption if " runs match" in c.value)
    matched, _, rest = caption.partition(" of ")
    return int(matched), int(rest.split(" runs")[0])


def _each_chart(at: AppTest) -> dict[str, dict[str, Any]]:
    """Pick each chart in turn; the figures drawn, by title. Only the picked chart is drawn (issue 15)."""
    from workbench.ui.experiments import CHARTS

    figures: dict[str, dict[str, Any]] = {}
    for name in CHARTS:
        at.radio(key="experiments.chart").set_value(name).run()
        assert not at.exception, at.exception
        drawn = [t for t in _figures(at) if any(title in t for title in CHART_TITLES)]
        assert len(drawn) == 1, (name, drawn)
        figures.update({t: spec for t, spec in _figures(at).items() if t in drawn})
    return figures


def test_every_chart_has_its_figure_with_every_run_and_the_bar(project: dict[str, Any]) -> None:
    at = _app(project["slug"])
    # Opening the page draws the one chart picked (the history), not six at once.
    assert [t for t in _figures(at) if any(title in t for title in CHART_TITLES)] == [
        t for t in _figures(at) if t.startswith("Optimisation history")]
    figures = _each_chart(at)
    for title in CHART_TITLES:
        assert any(title in t for t in figures), (title, list(figures), [i.value for i in at.info])
    trials = _mlflow_runs(project["slug"], "tags.`workbench.kind` = 'trial'")
    history = next(spec for t, spec in figures.items() if t.startswith("Optimisation history"))
    assert history["data"][0]["type"] == "scattergl"
    assert len(history["data"][0]["x"]) == len(trials) == 4  # every trial, WebGL
    # The bar to beat (best baseline on balanced accuracy) is drawn on the CV balanced accuracy axis.
    bar_value = project["baseline"]["result"]["best"]["value"]
    assert any(shape.get("y0") == pytest.approx(bar_value) for shape in history["layout"].get("shapes", []))
    assert any("bar to beat" in a.get("text", "") for a in history["layout"].get("annotations", []))
    parallel = next(spec for t, spec in figures.items() if t.startswith("Parallel coordinates"))
    assert parallel["data"][0]["type"] == "parcoords"
    labels = [d["label"] for d in parallel["data"][0]["dimensions"]]
    # Short labels (issue 15): the family prefix moves to the title, one family shown at a time.
    assert "learning_rate" in labels and labels[-1] == "cv_balanced_accuracy_mean"
    assert "· hist_gradient_boosting ·" in parallel["layout"]["title"]["text"]
    importance = next(spec for t, spec in figures.items() if "Parameter importance" in t)
    assert "fANOVA" in importance["layout"]["title"]["text"]  # 4 trials: a small study
    assert importance["data"][0]["y"], "importances of the study's params"


def test_filter_with_or_kind_quick_filter_and_bad_syntax(project: dict[str, Any]) -> None:
    slug = project["slug"]
    at = _app(slug)
    total = len(_mlflow_runs(slug))
    assert _match_count(at) == (total, total)

    expr = ("tags.workbench.kind = 'baseline' OR (metrics.cv_balanced_accuracy_mean > 0.5 "
            "and params.hist_gradient_boosting__max_iter > 100)")
    at.text_input(key="experiments.filter").input(expr).run()
    assert not at.exception
    # MLflow has no OR and no numeric param ranges: the expected set is a union of two MLflow searches,
    # the param range applied in Python.
    expected = {r.info.run_id for r in _mlflow_runs(slug, "tags.`workbench.kind` = 'baseline'")} | {
        r.info.run_id for r in _mlflow_runs(slug, "metrics.cv_balanced_accuracy_mean > 0.5")
        if float(r.data.params.get("hist_gradient_boosting__max_iter", "0")) > 100}
    assert len(expected) > len(project["baseline"]["result"]["baselines"]), "the OR branch adds trials"
    assert _match_count(at) == (len(expected), total)
    shown = set(at.dataframe[0].value["run_id"])
    assert shown == expected

    at.text_input(key="experiments.filter").input("").run()
    at.multiselect(key="experiments.kinds").set_value(["trial"]).run()
    assert _match_count(at)[0] == 4

    at.text_input(key="experiments.filter").input("metrics.cv_balanced_accuracy_mean >").run()
    assert any("column 36" in e.value for e in at.error), [e.value for e in at.error]


def test_save_and_load_a_view(project: dict[str, Any]) -> None:
    at = _app(project["slug"])
    at.text_input(key="experiments.filter").input("tags.workbench.kind = 'baseline'").run()
    at.text_input(key="experiments.view_name").input("baselines only").run()
    at.button(key="experiments.save_view").click().run()
    assert not at.exception and not at.error
    fresh = _app(project["slug"])
    fresh.selectbox(key="experiments.view").set_value("baselines only").run()
    fresh.button(key="experiments.load_view").click().run()
    assert fresh.text_input(key="experiments.filter").value == "tags.workbench.kind = 'baseline'"
    assert _match_count(fresh)[0] == len(_mlflow_runs(project["slug"], "tags.`workbench.kind` = 'baseline'"))


def test_compare_two_baselines_side_by_side(project: dict[str, Any]) -> None:
    at = _app(project["slug"])
    at.multiselect(key="experiments.kinds").set_value(["baseline"]).run()
    baselines = [r["run_id"] for r in project["baseline"]["result"]["baselines"]][:2]
    at.multiselect(key="experiments.compare_pick").set_value(baselines).run()
    at.button(key="experiments.compare_go").click().run()
    assert not at.exception, at.exception
    params_note = next(m.value for m in at.markdown if m.value.startswith("**Parameters**"))
    assert "`baseline`" in params_note  # the two baselines differ in their name param
    assert at.dataframe[1].value.shape[1] == 2
    confusion = [t for t, spec in _figures(at).items() if t.startswith("confusion matrix · ")]
    assert len(confusion) == 2, "a confusion matrix per compared run, side by side"
    assert {t.rsplit(" ", 1)[-1] for t in confusion} == {run_id[:8] for run_id in baselines}
