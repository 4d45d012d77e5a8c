"""Baselines as data, choosing the best, and the bar-to-beat line later pages draw."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from workbench.design.baselines import BarToBeat, baseline_specs, choose_best
from workbench.errors import InvalidInput
from workbench.ui.baselines import bar_to_beat_line


def test_specs_per_task_and_data() -> None:
    names = [s.name for s in baseline_specs("classification", has_time=True, has_heuristic=False)]
    assert names == ["dummy_prior", "dummy_stratified", "logistic_regression"]
    names = [s.name for s in baseline_specs("regression", has_time=True, has_heuristic=True)]
    assert names == ["dummy_mean", "dummy_median", "ridge", "heuristic", "persistence"]
    assert "persistence" not in [s.name for s in baseline_specs("regression", has_time=False, has_heuristic=False)]
    stratified = baseline_specs("classification", has_time=False, has_heuristic=False)[1]
    assert stratified.params == {"strategy": "stratified", "random_state": 42}
    assert all(s.preprocess == (s.kind == "linear") for s in baseline_specs("regression", has_time=True,
                                                                            has_heuristic=True))
    with pytest.raises(InvalidInput) as err:
        baseline_specs("ranking", has_time=False, has_heuristic=False)
    assert err.value.field == "task_type"


def test_choose_best_follows_direction_and_skips_failures() -> None:
    rows = [
        {"name": "a", "status": "succeeded", "metrics": {"rmse": 3.0}},
        {"name": "b", "status": "failed", "metrics": {}},
        {"name": "c", "status": "succeeded", "metrics": {"rmse": 2.0}},
        {"name": "d", "status": "succeeded", "metrics": {"rmse": 2.0}},
    ]
    best_min = choose_best(rows, metric="rmse", direction="minimize")
    best_max = choose_best(rows, metric="rmse", direction="maximize")
    assert best_min is not None and best_min["name"] == "c"  # first on ties
    assert best_max is not None and best_max["name"] == "a"
    assert choose_best(rows, metric="mae", direction="minimize") is None


def test_bar_to_beat_line_draws_at_the_value() -> None:
    bar = BarToBeat(metric="rmse", value=2.5, direction="minimize", baseline="ridge", run_id="r", job_id="j",
                    label="Ridge regression")
    fig = bar_to_beat_line(go.Figure(go.Bar(x=["m"], y=[3.0])), bar)
    shape = fig.layout.shapes[0]
    assert (shape.y0, shape.y1) == (2.5, 2.5)
    assert "Ridge regression" in fig.layout.annotations[0].text
    vertical = bar_to_beat_line(go.Figure(), bar, orientation="v")
    assert vertical.layout.shapes[0].x0 == 2.5
    assert bar_to_beat_line(go.Figure(), None).layout.shapes == ()
