"""The Tuning page's trial table and EDF plot, on a real Optuna study's trials."""

from __future__ import annotations

from datetime import datetime, timedelta

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from workbench.training.study import ATTR_FAMILY, ATTR_SURPLUS
from workbench.training.trial_views import edf_figure, edf_points, trial_table

START = datetime(2026, 1, 1, 12, 0, 0)


def _trial(value: float | None, family: str, *, state: TrialState = TrialState.COMPLETE, seconds: float = 2.0,
           extra: dict | None = None) -> optuna.trial.FrozenTrial:
    params, dists = ({"n_neighbors": 5}, {"n_neighbors": IntDistribution(1, 50)}) if family == "knn" else (
        {"C": 0.5}, {"C": FloatDistribution(0.01, 10.0, log=True)})
    trial = create_trial(state=state, value=value, params=params, distributions=dists,
                         user_attrs={ATTR_FAMILY: family, "worker": "w1", **(extra or {})})
    trial.datetime_start = START
    trial.datetime_complete = START + timedelta(seconds=seconds) if state != TrialState.RUNNING else None
    return trial


@pytest.fixture
def trials() -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="maximize")  # in memory: the trials come back numbered
    for trial in (
        _trial(0.70, "knn", seconds=1.5),
        _trial(0.80, "logreg", seconds=3.0),
        _trial(0.60, "knn", seconds=2.25),
        _trial(None, "knn", state=TrialState.PRUNED, seconds=0.5),
        _trial(None, "logreg", state=TrialState.FAIL, seconds=0.1),
        _trial(None, "knn", state=TrialState.RUNNING),
        _trial(None, "knn", state=TrialState.FAIL, extra={ATTR_SURPLUS: True}),
    ):
        study.add_trial(trial)
    return study.get_trials(deepcopy=False)


def test_the_table_has_state_duration_params_and_attributes(trials: list) -> None:
    table = trial_table(trials)
    assert list(table.columns) == ["number", "state", "value", "duration (s)", "family", "params", "user_attrs"]
    assert table["number"].tolist() == [0, 1, 2, 3, 4, 5]  # the surplus guard trial is not shown
    assert table["state"].tolist() == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "FAIL", "RUNNING"]
    assert table["value"].tolist()[:3] == [0.70, 0.80, 0.60] and table["value"][3:].isna().all()
    assert table["duration (s)"].tolist()[:5] == [1.5, 3.0, 2.25, 0.5, 0.1] and table["duration (s)"].isna()[5]
    assert table["family"].tolist()[:2] == ["knn", "logreg"]
    assert table.loc[0, "params"] == "n_neighbors=5" and table.loc[1, "params"] == "C=0.5"
    assert table.loc[0, "user_attrs"] == "worker=w1"  # the family has its own column


def test_an_empty_study_gives_an_empty_table_and_no_edf() -> None:
    assert trial_table([]).empty
    assert not edf_figure([], metric="balanced_accuracy").to_dict()["data"]


def test_edf_is_the_share_of_completed_trials_at_most_each_value_per_family(trials: list) -> None:
    assert edf_points(trials) == {"knn": ([0.60, 0.70], [0.5, 1.0]), "logreg": ([0.80], [1.0])}
    figure = edf_figure(trials, metric="balanced_accuracy", direction="maximize").to_dict()
    lines = {t["name"]: t for t in figure["data"]}
    assert set(lines) == {"knn", "logreg"}
    assert list(lines["knn"]["x"]) == [0.60, 0.70] and list(lines["knn"]["y"]) == [0.5, 1.0]
    assert lines["knn"]["line"]["shape"] == "hv"  # a step function
    assert "better to the right" in figure["layout"]["title"]["text"] and figure["layout"]["showlegend"]
    minimise = edf_figure(trials, metric="rmse", direction="minimize").to_dict()
    assert "better to the left" in minimise["layout"]["title"]["text"]
