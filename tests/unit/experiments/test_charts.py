"""Charts that read (issue 15): the parameter charts of a study over several model families show one
family (its runs, its params), few dimensions with short labels, the best-covered contour pair, and
importances per family over every finished trial, or say why there are none.

Real Optuna studies (the workbench's own search spaces through ``suggest_params``), figures
checked through ``fig.to_dict()``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from workbench.errors import InvalidInput
from workbench.experiments import charts as ec
from workbench.training.model_families import DEFAULT_FAMILIES, suggest_params

METRIC = "metrics.cv_accuracy_mean"
T0 = datetime(2026, 12, 1, 9, 0, 0)


def _objective(trial: optuna.Trial) -> float:
    """Random forest scores by max_depth, boosting by learning rate, linear is flat and poor."""
    family, params = suggest_params(trial, list(DEFAULT_FAMILIES))
    if family == "random_forest":
        return 0.6 + 0.02 * params["max_depth"]
    if family == "hist_gradient_boosting":
        return 0.95 - abs(np.log10(params["learning_rate"]) + 1.0) * 0.1
    return 0.55


def _study(n_trials: int = 45, seed: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(_objective, n_trials=n_trials)
    return study


def _frame(study: optuna.Study, job_id: str = "job1") -> pd.DataFrame:
    """The trials as the Experiments page's runs frame has them (params as strings)."""
    rows: list[dict[str, Any]] = []
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        rows.append({"run_id": f"run{trial.number}", "job_id": job_id, "trial_number": trial.number, "kind": "trial",
                     "start_time": T0 + timedelta(seconds=trial.number), METRIC: trial.value,
                     **{f"params.{k}": str(v) for k, v in trial.params.items()}})
    frame = pd.DataFrame(rows)
    # runs_frame's order: attributes, metrics, then params sorted by name.
    return frame[[c for c in frame.columns if not c.startswith("params.")]
                 + sorted(c for c in frame.columns if c.startswith("params."))]


def _params(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("params.") and frame[c].nunique(dropna=True) > 1]


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    return _study()


def test_family_view_keeps_the_family_runs_and_its_params(study: optuna.Study) -> None:
    frame = _frame(study)
    params = _params(frame)
    assert ec.families(frame, params) == sorted(DEFAULT_FAMILIES)
    assert ec.best_family(frame, METRIC, params, direction="maximize") == "hist_gradient_boosting"
    rows, own = ec.family_view(frame, params, "random_forest")
    assert set(rows["params.family"]) == {"random_forest"}
    assert len(rows) == sum(t.params["family"] == "random_forest" for t in study.trials)
    assert own == [c for c in params if c.startswith("params.random_forest__")] and len(own) == 4
    # A one-family study logs no family param: the family is read from the params' prefix.
    single = frame[frame["params.family"] == "linear"].drop(columns=["params.family"])
    assert ec.families(single, _params(single)) == ["linear"]


def test_parallel_coordinates_show_few_short_labels(study: optuna.Study) -> None:
    """Before: every param of every family (11 axes) with labels like
    ``hist_gradient_boosting__l2_regularization``, overlapping until unreadable."""
    frame = _frame(study)
    params = _params(frame)
    fig = ec.parallel_figure(frame, METRIC, params).to_dict()
    trace = fig["data"][0]
    labels = [d["label"] for d in trace["dimensions"]]
    assert len(labels) == ec.MAX_PARALLEL_PARAMS + 1 and labels[-1] == "cv_accuracy_mean"
    assert all(len(label) <= ec.MAX_LABEL_CHARS for label in labels[:-1]), labels
    assert len(set(labels)) == len(labels), "labels stay distinct"
    assert trace["labelangle"] == -20
    for dimension in trace["dimensions"]:
        assert all(len(t) <= ec.MAX_TICK_CHARS for t in dimension.get("ticktext", [])[:-1] or [])
    family_ticks = next(d for d in trace["dimensions"] if d["label"] == "family")["ticktext"]
    assert family_ticks == ["hist_grad…", "linear", "random_fo…"]
    assert f"{ec.MAX_PARALLEL_PARAMS} of {len(params)} params" in fig["layout"]["title"]["text"]

    rows, own = ec.family_view(frame, params, "random_forest")
    fig = ec.parallel_figure(rows, METRIC, own, family="random_forest").to_dict()
    assert [d["label"] for d in fig["data"][0]["dimensions"]] == [
        "max_depth", "max_features", "min_samples_leaf", "n_estimators", "cv_accuracy_mean"]
    assert fig["layout"]["title"]["text"] == f"Parallel coordinates · random_forest · {len(rows)} runs"
    assert all(np.isfinite(v).all() for v in (d["values"] for d in fig["data"][0]["dimensions"]))


def test_slices_are_few_with_short_titles_and_tilted_ticks(study: optuna.Study) -> None:
    frame = _frame(study)
    params = _params(frame)
    fig = ec.slice_figure(frame, METRIC, params).to_dict()
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert len(fig["data"]) == len(titles) == ec.MAX_SLICE_PARAMS
    assert all(len(t) <= ec.MAX_LABEL_CHARS for t in titles), titles
    xaxes = [v for k, v in fig["layout"].items() if k.startswith("xaxis")]
    assert len(xaxes) == ec.MAX_SLICE_PARAMS and all(x["tickangle"] == -45 and x["nticks"] == 4 for x in xaxes)

    rows, own = ec.family_view(frame, params, "hist_gradient_boosting")
    fig = ec.slice_figure(rows, METRIC, own, family="hist_gradient_boosting").to_dict()
    assert [a["text"] for a in fig["layout"]["annotations"]] == [
        "l2_regularization", "learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf"]
    assert all(len(trace["x"]) == len(rows) for trace in fig["data"]), "every run of the family in each slice"


def test_contour_defaults_to_the_best_covered_pair() -> None:
    """Before: the first two numeric params, here a pair two runs share (the page showed "only 2
    runs have both ..." instead of a chart)."""
    rng = np.random.default_rng(0)
    n = 30
    frame = pd.DataFrame({
        METRIC: rng.uniform(0.5, 0.9, n),
        "params.knn__leaf": [str(v) if i < 2 else None for i, v in enumerate(rng.integers(1, 9, n))],
        "params.knn__n_neighbors": rng.integers(1, 50, n).astype(str),
        "params.knn__p": rng.choice(["1", "2"], n),
        "params.knn__radius": [str(v) if i % 2 else None for i, v in enumerate(rng.uniform(0.1, 2, n).round(3))],
    })
    numeric = ["params.knn__leaf", "params.knn__n_neighbors", "params.knn__p", "params.knn__radius"]
    assert ec.best_covered_pair(frame, METRIC, numeric) == ("params.knn__n_neighbors", "params.knn__p")
    fig = ec.contour_figure(frame, METRIC, "params.knn__n_neighbors", "params.knn__p", direction="maximize",
                            family="knn").to_dict()
    assert fig["layout"]["title"]["text"] == f"Contour · knn · {n} runs"
    assert fig["layout"]["xaxis"]["title"]["text"] == "n_neighbors"
    assert ec.best_covered_pair(frame, METRIC, numeric[:1]) is None


def test_importance_per_family_over_every_finished_trial() -> None:
    """Before: over a study of several families, Optuna's evaluator kept the params every trial has,
    so the chart showed ``family = 1.0`` alone. A resumed job adds trials to the same study: they
    count, failed trials do not."""
    study = _study(n_trials=30, seed=1)

    def fails(trial: optuna.Trial) -> float:
        suggest_params(trial, list(DEFAULT_FAMILIES))
        raise RuntimeError("a failed trial")

    study.optimize(fails, n_trials=2, catch=(RuntimeError,))
    study.optimize(_objective, n_trials=15)  # the resumed job's trials, same study
    forest = [t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
              if t.params["family"] == "random_forest"]
    assert len(forest) >= 5 and any(t.number >= 32 for t in forest), "resumed trials of the family"

    importance = ec.param_importance(pd.DataFrame(), "metrics.value", [], direction="maximize", study=study,
                                     study_label="xor/job1", family="random_forest")
    assert set(importance.values) == {"random_forest__n_estimators", "random_forest__max_depth",
                                      "random_forest__min_samples_leaf", "random_forest__max_features"}
    assert max(importance.values, key=importance.values.__getitem__) == "random_forest__max_depth"
    assert importance.n_trials == len(forest)
    fig = ec.importance_figure(importance).to_dict()
    assert fig["data"][0]["y"][-1] == "max_depth"  # most important on top, a short label
    assert fig["layout"]["yaxis"]["dtick"] == 1, "no bar loses its label"
    assert "random_forest" in fig["layout"]["title"]["text"] and f"{len(forest)} trials" in fig["layout"]["title"][
        "text"]

    # From the runs when the study cannot be loaded: the same family's runs and params.
    frame = _frame(study)
    from_runs = ec.param_importance(frame, METRIC, _params(frame), direction="maximize", family="random_forest")
    assert set(from_runs.values) == {p.removeprefix("params.") for p in ec.family_view(
        frame, _params(frame), "random_forest")[1]}
    assert from_runs.n_trials == len(forest)


def test_importance_says_why_it_cannot_be_computed(study: optuna.Study) -> None:
    lonely = optuna.create_study(direction="maximize")
    lonely.enqueue_trial({"family": "linear", "linear__C": 1.0})
    lonely.optimize(_objective, n_trials=1)
    with pytest.raises(InvalidInput, match="at least 2 finished trials of linear; 1 found"):
        ec.param_importance(pd.DataFrame(), "metrics.value", [], direction="maximize", study=lonely, family="linear")
    same = optuna.create_study(direction="maximize")
    for _ in range(3):
        same.enqueue_trial({"family": "linear", "linear__C": 1.0})
    same.optimize(_objective, n_trials=3)
    with pytest.raises(InvalidInput, match="3 finished trials of linear all have the same params"):
        ec.param_importance(pd.DataFrame(), "metrics.value", [], direction="maximize", study=same, family="linear")
