"""Model families: search spaces declared as data become the right suggest calls; pipelines fit raw rows."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from workbench.errors import InvalidInput
from workbench.training.model_families import (
    FAMILIES,
    FAMILY_PARAM,
    build_pipeline,
    flat_params,
    param_key,
    split_params,
    suggest_params,
)


def _frame(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "fee": rng.normal(30, 5, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )
    X.loc[3, "age"] = np.nan  # missing values must be imputed by the pipeline
    X.loc[5, "plan"] = None
    y_cls = pd.Series(np.where(X["fee"] > 30, "yes", "no"))
    y_reg = X["fee"] * 2 + rng.normal(0, 1, n)
    return X, y_cls, y_reg


def test_ids_are_the_documented_ones() -> None:
    assert set(FAMILIES) == {"linear", "random_forest", "extra_trees", "hist_gradient_boosting", "knn"}
    assert FAMILIES["linear"].needs_scaling and FAMILIES["knn"].needs_scaling
    assert not FAMILIES["random_forest"].needs_scaling
    assert FAMILIES["hist_gradient_boosting"].supports_pruning and not FAMILIES["linear"].supports_pruning


@pytest.mark.parametrize("family_id", sorted(FAMILIES))
def test_space_becomes_suggest_calls_within_bounds(family_id: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(5):
        trial = study.ask()
        chosen, params = suggest_params(trial, [family_id])
        assert chosen == family_id
        study.tell(trial, 0.0)
        dists = trial.distributions
        spec_names = {p.name for p in FAMILIES[family_id].space}
        assert set(params) == spec_names
        assert FAMILY_PARAM not in dists  # one family: no family choice
        for spec in FAMILIES[family_id].space:
            dist = dists[param_key(family_id, spec.name)]
            if spec.kind == "int":
                assert isinstance(dist, optuna.distributions.IntDistribution)
                assert (dist.low, dist.high, dist.log) == (spec.low, spec.high, spec.log)
                assert spec.low <= params[spec.name] <= spec.high
            elif spec.kind == "float":
                assert isinstance(dist, optuna.distributions.FloatDistribution)
                assert (dist.low, dist.high, dist.log) == (spec.low, spec.high, spec.log)
            else:
                assert isinstance(dist, optuna.distributions.CategoricalDistribution)
                assert tuple(dist.choices) == spec.choices
                assert params[spec.name] in spec.choices


def test_several_families_add_a_family_choice_and_round_trip() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        family_id, params = suggest_params(trial, ["linear", "knn"])
        seen.add(family_id)
        assert trial.params[FAMILY_PARAM] == family_id
        assert split_params(trial.params) == (family_id, params)
        assert flat_params(family_id, params, multi=True) == trial.params
        study.tell(trial, 1.0)
    assert seen == {"linear", "knn"}


def test_unknown_family_names_the_allowed_ids() -> None:
    with pytest.raises(InvalidInput, match="random_forest") as info:
        suggest_params(optuna.create_study().ask(), ["boosted_unicorn"])
    assert info.value.field == "models"


@pytest.mark.parametrize("family_id", sorted(FAMILIES))
@pytest.mark.parametrize("task_type", ["classification", "regression"])
def test_pipelines_fit_and_score_raw_rows(family_id: str, task_type: str) -> None:
    X, y_cls, y_reg = _frame()
    y = y_cls if task_type == "classification" else y_reg
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    _, params = suggest_params(study.ask(), [family_id])
    if "n_estimators" in params:
        params["n_estimators"] = 20  # keep the test quick
    if "max_iter" in params:
        params["max_iter"] = 30
    pipeline = build_pipeline(family_id, params, X, task_type, seed=0, n_rows=len(X))
    assert [name for name, _ in pipeline.steps] == ["preprocess", "model"]
    pipeline.fit(X, y)
    raw = X.head(7).copy()
    raw.loc[raw.index[0], "plan"] = "never-seen-plan"  # unknown category at scoring time
    predictions = pipeline.predict(raw)
    assert len(predictions) == 7
    if task_type == "classification":
        assert set(predictions) <= {"yes", "no"}
        # a scaled model has a StandardScaler in its preprocessing, a tree model does not
    text = repr(pipeline.named_steps["preprocess"])
    assert ("StandardScaler" in text) == FAMILIES[family_id].needs_scaling


def test_knn_neighbours_are_capped_by_the_rows() -> None:
    X, y_cls, _ = _frame(n=12)
    pipeline = build_pipeline("knn", {"n_neighbors": 50, "weights": "uniform", "p": 2}, X, "classification", n_rows=8)
    assert pipeline.named_steps["model"].n_neighbors == 8
    pipeline.fit(X.head(8), y_cls.head(8))


def test_linear_regression_maps_c_to_ridge_alpha() -> None:
    X, _, _ = _frame()
    pipeline = build_pipeline("linear", {"C": 4.0}, X, "regression")
    assert pipeline.named_steps["model"].alpha == pytest.approx(0.25)
