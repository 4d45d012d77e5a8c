"""The compiled small-input path against the Pipeline itself, on real registered models.

Every model is a real sklearn Pipeline built by the workbench's own builder
(``workbench.training.model_families.build_pipeline``: imputer, scaler, as_category_strings, one-hot
with infrequent categories), fitted, logged with a signature and registered in MLflow, then
loaded the way the web service and the stream consumer load it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.registered_model import module_home, register_model
from workbench.serving.fast_path import FAST_PATH_MAX_ROWS
from workbench.serving.model_loader import (
    ServedModel,
    column_arrays,
    frame_from_validated,
    load_model,
)
from workbench.serving.signature import conform as conform_frame

REGIONS = [f"r{i:02d}" for i in range(40)]  # more than MAX_CATEGORIES: the rare ones are pooled
FEATURES = ["tenure", "fee", "plan", "region", "active", "joined"]


def churn_frame(n: int, *, seed: int, task: str) -> pd.DataFrame:
    """Numeric (with missing values), text (with missing values and rare categories), boolean, date."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n).astype("int64"),
            "fee": rng.normal(40, 15, n).round(2),
            "plan": rng.choice(["basic", "plus", "pro", "family"], n).astype(object),
            # Skewed: a few regions are frequent, most are rare.
            "region": rng.choice(REGIONS, n, p=np.r_[np.full(5, 0.15), np.full(35, 0.25 / 35)]).astype(object),
            "active": rng.random(n) < 0.6,
            "joined": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D"),
        }
    )
    frame.loc[rng.random(n) < 0.1, "fee"] = np.nan
    frame.loc[rng.random(n) < 0.1, "plan"] = None
    score = (frame["tenure"] < 12) * 1.0 + (frame["plan"] == "basic") * 0.8 + frame["fee"].fillna(40) / 60
    if task == "classification":
        frame["churned"] = np.where(score + rng.normal(0, 0.4, n) > 1.2, "yes", "no")
    elif task == "multiclass":
        frame["churned"] = pd.cut(score + rng.normal(0, 0.3, n), 3, labels=["low", "mid", "high"]).astype(str)
    else:
        frame["churned"] = score * 10 + rng.normal(0, 1, n)
    return frame


def as_request_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the web request model hands them over: python values, None for missing."""
    records: list[dict[str, Any]] = []
    for row in frame[FEATURES].to_dict(orient="records"):
        out: dict[str, Any] = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and np.isnan(value)):
                out[key] = None
            elif isinstance(value, pd.Timestamp):
                out[key] = value.to_pydatetime()
            elif isinstance(value, np.generic):
                out[key] = value.item()
            else:
                out[key] = value
        records.append(out)
    return records


def awkward_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Holdout rows plus unseen categories, every kind of missing value and extreme numbers."""
    base = as_request_records(frame)
    extra = []
    for i, record in enumerate(base[:12]):
        changed = dict(record)
        if i % 4 == 0:
            changed["plan"] = "enterprise"  # unseen
        if i % 4 == 1:
            changed["region"] = "r99"  # unseen
            changed["fee"] = None
        if i % 4 == 2:
            changed["plan"], changed["region"] = None, None
            changed["tenure"] = 10_000
        if i % 4 == 3:
            changed["fee"] = -1e9
            changed["region"] = REGIONS[-1]  # a rare (infrequent) one
            changed["active"] = None
        extra.append(changed)
    return base + extra


def build(family: str, task: str, train: pd.DataFrame) -> Any:
    from workbench.training.model_families import build_pipeline

    params = {"n_estimators": 25} if family in ("random_forest", "extra_trees") else {}
    sk_task = "regression" if task == "regression" else "classification"
    return build_pipeline(family, params, train[FEATURES], sk_task, n_rows=len(train))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with module_home(tmp_path_factory, "fastpath") as path:
        yield path


def register_and_load(name: str, pipeline: Any, train: pd.DataFrame) -> ServedModel:
    from workbench.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    register_model(name, tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                   frame=train, pipeline=pipeline, features=FEATURES, target="churned")
    return load_model(name, fast_path=True)


def pipeline_outputs(served: ServedModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions the Pipeline itself gives (the compiled path switched off)."""
    compiled, served.fast = served.fast, None
    try:
        return served.predict_frame(frame, checked=True)
    finally:
        served.fast = compiled


CASES = [
    ("hist_gradient_boosting", "classification"),
    ("hist_gradient_boosting", "multiclass"),
    ("hist_gradient_boosting", "regression"),
    ("random_forest", "classification"),
    ("linear", "classification"),
    ("linear", "regression"),
    ("knn", "classification"),
]


@pytest.mark.parametrize(("family", "task"), CASES)
def test_compiled_path_matches_the_pipeline(home: Path, family: str, task: str) -> None:
    train = churn_frame(600, seed=1, task=task)
    served = register_and_load(f"fast-{family}-{task}".replace("_", "-"), build(family, task, train), train)
    path = served.describe()["predict_path"]
    assert path["small_inputs"] == "compiled", path["reason"]
    if family == "hist_gradient_boosting":
        assert "flat HistGradientBoosting trees" in path["reason"]

    records = awkward_records(churn_frame(60, seed=2, task=task))
    batches = [[record] for record in records] + [records[:FAST_PATH_MAX_ROWS]]
    for batch in batches:
        frame = frame_from_validated(batch, served.columns)
        want_pred, want_proba = pipeline_outputs(served, frame)
        # The compiled path itself (not its fall-back to the Pipeline on an error).
        got_pred, got_proba = served._predict_compiled(column_arrays(batch, served.fast_columns), len(batch))
        if want_proba is not None:
            assert got_proba is not None
            np.testing.assert_allclose(got_proba, want_proba, rtol=1e-9, atol=1e-12)
            assert got_pred.tolist() == want_pred.tolist()
        else:
            np.testing.assert_allclose(got_pred.astype(float), want_pred.astype(float), rtol=1e-9, atol=1e-9)
        # And the public route the web service uses gives the same answers.
        results = served.predict_records(batch, validated=True)
        assert [r["prediction"] for r in results] == [
            p if isinstance(p, str) else pytest.approx(p, rel=1e-9) for p in want_pred.tolist()
        ]

    # The stream/batch route (a frame checked against the signature) agrees too.
    raw = pd.DataFrame.from_records(records[:20])
    fast_pred, _ = served.predict_frame(raw)
    slow_pred, _ = pipeline_outputs(served, conform_frame(raw, served.columns))
    if fast_pred.dtype.kind in "fc":
        np.testing.assert_allclose(fast_pred, slow_pred, rtol=1e-9)
    else:
        assert fast_pred.tolist() == slow_pred.tolist()


def test_hist_gradient_boosting_trees_give_the_same_numbers_on_many_rows(home: Path) -> None:
    """The flat-tree walk against sklearn's own predict_proba, bit for bit, NaN and infinities included."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from workbench.serving._trees import FlatGradientBoosting

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 5))
    x[rng.random(x.shape) < 0.15] = np.nan
    y = rng.integers(0, 3, 3000)
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, y)
    test = rng.normal(size=(500, 5)) * 3
    test[rng.random(test.shape) < 0.2] = np.nan
    test[0, 0], test[1, 1] = np.inf, -np.inf
    forest = FlatGradientBoosting(model)
    for start in range(0, 500, FAST_PATH_MAX_ROWS):
        chunk = test[start : start + FAST_PATH_MAX_ROWS]
        assert np.array_equal(forest.predict_proba(chunk), model.predict_proba(chunk))


def test_unknown_transformer_falls_back_to_the_pipeline(home: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    train = churn_frame(400, seed=4, task="classification").dropna()
    pipeline = Pipeline([
        ("pre", ColumnTransformer([
            ("num", MinMaxScaler(), ["tenure", "fee"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ])),
        ("model", HistGradientBoostingClassifier(max_iter=20, random_state=0)),
    ])
    served = register_and_load("fast-unknown-transformer", pipeline, train)
    path = served.describe()["predict_path"]
    assert path["small_inputs"] == "pipeline"
    assert "MinMaxScaler" in path["reason"]
    records = as_request_records(churn_frame(5, seed=5, task="classification").dropna())
    frame = frame_from_validated(records, served.columns)
    want = served.pipeline.predict_proba(frame)
    got = served.predict_records(records, validated=True)
    np.testing.assert_allclose([list(r["proba"].values()) for r in got], want)


def test_estimator_fitted_on_a_frame_is_not_compiled(home: Path) -> None:
    train = churn_frame(300, seed=6, task="classification")
    pipeline = build("linear", "classification", train)
    pipeline.steps[0][1].set_output(transform="pandas")  # the estimator then sees feature names
    served = register_and_load("fast-pandas-output", pipeline, train)
    path = served.describe()["predict_path"]
    assert path["small_inputs"] == "pipeline" and "feature names" in path["reason"]


def test_web_route_reports_the_path_and_predicts_like_the_pipeline(home: Path) -> None:
    """The helper's model (scaler + one-hot without as_category_strings) is compiled too."""
    from tests.helpers.registered_model import build_pipeline, tiny_frame

    train = tiny_frame(200, seed=7)
    features = ["age", "plan", "monthly_fee"]
    from workbench.settings import get_settings

    settings = get_settings()
    register_model("fast-helper", tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                   frame=train, pipeline=build_pipeline(), features=features)
    served = load_model("fast-helper", fast_path=True)
    assert served.describe()["predict_path"]["small_inputs"] == "compiled"
    assert load_model("fast-helper").describe()["predict_path"]["small_inputs"] == "pipeline"  # batch default
    record = {"age": 33, "plan": "unseen-plan", "monthly_fee": 12.5}
    got = served.predict_records([record], validated=True)[0]
    want = served.pipeline.predict_proba(pd.DataFrame([record]))[0]
    assert list(got["proba"].values()) == pytest.approx(want.tolist(), rel=1e-12)
