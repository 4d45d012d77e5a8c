"""The compiled small-input path for random forests and extra trees: sklearn's numbers, bit for bit.

The models are the workbench's own Pipelines (``build_pipeline``: imputer, as_category_strings,
one-hot with infrequent categories, then the forest) fitted on the messy tips survey
(``tests.helpers.messy_data``: gaps in numeric and text columns, string categories), registered
in MLflow and loaded the way the web service loads them. Their outputs on the compiled path are
compared byte for byte with the Pipeline's; a planted difference must send serving back to the
Pipeline; and /health must say which path a forest takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.messy_data import DATE_COLUMN, SPACED_COLUMN, messy_tips
from tests.helpers.registered_model import module_home, register_model
from workbench.serving.fast_path import FAST_PATH_MAX_ROWS
from workbench.serving.model_loader import ServedModel, column_arrays, frame_from_validated, load_model

# The target of each task; every other column but the date (dates keep the Pipeline) is a feature.
TARGETS = {"classification": "generous", "multiclass": "day", "regression": "party_age"}
TOKEN = "forest-health-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def messy_frame(n: int, *, seed: int, task: str) -> tuple[pd.DataFrame, list[str]]:
    frame = messy_tips(n, seed=seed)
    target = TARGETS[task]
    frame = frame[frame[target].notna()].reset_index(drop=True)
    features = [c for c in frame.columns if c not in (target, DATE_COLUMN, "generous")]
    return frame, features


def request_records(frame: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """Rows as the web request model hands them over, plus unseen categories and gaps everywhere."""
    records: list[dict[str, Any]] = []
    for row in frame[features].to_dict(orient="records"):
        records.append({k: None if v is None or (isinstance(v, float) and np.isnan(v))
                        else (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()})
    extra = []
    for i, record in enumerate(records[:16]):
        changed = dict(record)
        if i % 4 == 0:
            changed["sex"], changed["smoker"] = "Other", None  # unseen, missing
        if i % 4 == 1:
            changed[SPACED_COLUMN] = None
            changed["time"] = "Breakfast"  # unseen
        if i % 4 == 2:
            changed = {k: None for k in changed}  # every value missing
        if i % 4 == 3:
            changed[SPACED_COLUMN] = -1e30  # far outside the data, still a float32
            changed["size"] = 10_000
        extra.append(changed)
    return records + extra


def build(family: str, task: str, train: pd.DataFrame, features: list[str]) -> Any:
    from workbench.training.model_families import build_pipeline

    sk_task = "regression" if task == "regression" else "classification"
    return build_pipeline(family, {"n_estimators": 25}, train[features], sk_task, n_rows=len(train))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with module_home(tmp_path_factory, "fastforest") as path:
        yield path


def register_and_load(name: str, pipeline: Any, train: pd.DataFrame, features: list[str], target: str) -> ServedModel:
    from workbench.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    register_model(name, tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                   frame=train, pipeline=pipeline, features=features, target=target)
    return load_model(name, fast_path=True)


def pipeline_outputs(served: ServedModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    compiled, served.fast = served.fast, None
    try:
        return served.predict_frame(frame, checked=True)
    finally:
        served.fast = compiled


def assert_same_bytes(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.kind == "f":
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()
    else:
        assert got.tolist() == want.tolist()


CASES = [(family, task) for family in ("random_forest", "extra_trees")
         for task in ("classification", "multiclass", "regression")]


@pytest.mark.parametrize(("family", "task"), CASES)
def test_forest_compiled_path_gives_the_pipelines_numbers_bit_for_bit(home: Path, family: str, task: str) -> None:
    train, features = messy_frame(800, seed=1, task=task)
    name = f"forest-{family}-{task}".replace("_", "-")
    served = register_and_load(name, build(family, task, train, features), train, features, TARGETS[task])
    path = served.describe()["predict_path"]
    assert path["small_inputs"] == "compiled", path["reason"]
    assert f"flat {type(served.pipeline.steps[-1][1]).__name__} trees" in path["reason"], path["reason"]

    holdout, _ = messy_frame(80, seed=2, task=task)
    records = request_records(holdout, features)
    batches = [[record] for record in records] + [records[:FAST_PATH_MAX_ROWS], records[-7:]]
    for batch in batches:
        frame = frame_from_validated(batch, served.columns)
        want_pred, want_proba = pipeline_outputs(served, frame)
        got_pred, got_proba = served._predict_compiled(column_arrays(batch, served.fast_columns), len(batch))
        assert_same_bytes(got_pred, want_pred)
        assert (got_proba is None) == (want_proba is None)
        if want_proba is not None and got_proba is not None:
            assert_same_bytes(got_proba, want_proba)
        # The public route the web service uses.
        results = served.predict_records(batch, validated=True)
        assert [r["prediction"] for r in results] == want_pred.tolist()


def test_forest_compiled_path_raises_where_sklearn_does(home: Path) -> None:
    """A number that overflows float32 is sklearn's error; the web route then gets the Pipeline's own."""
    train, features = messy_frame(400, seed=3, task="regression")
    served = register_and_load("forest-overflow", build("random_forest", "regression", train, features),
                               train, features, TARGETS["regression"])
    assert served.fast is not None, served.fast_reason
    record = request_records(train.head(1), features)[0] | {SPACED_COLUMN: 1e300}
    with pytest.raises(ValueError, match="infinity"):
        served._predict_compiled(column_arrays([record], served.fast_columns), 1)
    with pytest.raises(ValueError, match="infinity"):
        served.predict_records([record], validated=True)


def test_flat_forests_give_sklearns_numbers_on_many_rows() -> None:
    """The flat walk against sklearn itself: NaN in training and scoring, extremes, every forest type."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    from workbench.serving._trees import FlatForest

    rng = np.random.default_rng(5)
    x = rng.normal(size=(1500, 5))
    x[rng.random(x.shape) < 0.15] = np.nan
    labels = rng.integers(0, 3, 1500)
    target = np.nan_to_num(x[:, 0]) * 2 + rng.normal(size=1500)
    test = rng.normal(size=(300, 5)) * 3
    test[rng.random(test.shape) < 0.2] = np.nan
    test[0, 0], test[1, 1], test[2, 2] = 3.4e38, -3.4e38, 1e-45  # float32 extremes, a subnormal
    test[3] = np.nan
    models = [
        RandomForestClassifier(n_estimators=15, random_state=0).fit(x, labels),
        RandomForestClassifier(n_estimators=15, max_depth=4, class_weight="balanced", random_state=0)
        .fit(x, labels == 1),
        ExtraTreesClassifier(n_estimators=15, max_leaf_nodes=20, random_state=0).fit(x, labels),
        RandomForestRegressor(n_estimators=15, min_samples_leaf=3, random_state=0).fit(x, target),
        ExtraTreesRegressor(n_estimators=15, random_state=0).fit(x, target),
    ]
    for model in models:
        forest = FlatForest(model)
        for rows in (1, 2, FAST_PATH_MAX_ROWS):
            for start in range(0, len(test), rows * 7):
                chunk = test[start : start + rows]
                if forest.classifier:
                    assert_same_bytes(forest.predict_proba(chunk), model.predict_proba(chunk))
                else:
                    assert_same_bytes(forest.predict(chunk), model.predict(chunk))
        for bad in (np.inf, 1e39):
            with pytest.raises(ValueError):
                model.predict(np.full((1, 5), bad))
            with pytest.raises(ValueError):
                (forest.predict_proba if forest.classifier else forest.predict)(np.full((1, 5), bad))


def _flip_missing(forest: Any) -> None:
    forest.missing_left2 = ~forest.missing_left2


def _float64_input(forest: Any) -> None:
    forest._float32_input = lambda x: np.asarray(x, dtype=np.float64)  # the cast sklearn makes, forgotten


@pytest.mark.parametrize("plant", ["_nudge_leaves", "_flip_missing", "_float64_input"])
@pytest.mark.parametrize("kind", ["RandomForestClassifier", "ExtraTreesRegressor"])
def test_the_split_point_check_refuses_a_walk_that_is_not_sklearns(
    monkeypatch: pytest.MonkeyPatch, plant: str, kind: str
) -> None:
    """Built from a fitted forest, the flat trees compare themselves with it at its own split points."""
    import sklearn.ensemble

    from workbench.serving import _trees

    rng = np.random.default_rng(8)
    x = rng.normal(size=(800, 4))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = rng.integers(0, 3, 800) if kind.endswith("Classifier") else np.nan_to_num(x[:, 0]) + rng.normal(size=800)
    model = getattr(sklearn.ensemble, kind)(n_estimators=10, random_state=0).fit(x, y)
    _trees.FlatForest(model)  # as built, it agrees
    check = _trees.FlatForest._check_at_split_points

    def planted_check(self: Any, *args: Any) -> None:
        globals()[plant](self)
        check(self, *args)

    monkeypatch.setattr(_trees.FlatForest, "_check_at_split_points", planted_check)
    with pytest.raises(_trees.NotCompilable, match="split points"):
        _trees.FlatForest(model)


def _nudge_leaves(forest: Any) -> None:
    forest.values = np.nextafter(forest.values, np.inf)  # one ulp: invisible to a tolerance


def _all_left(forest: Any) -> None:
    forest.threshold2 = np.full_like(forest.threshold2, np.inf)


@pytest.mark.parametrize("plant", [_nudge_leaves, _all_left], ids=["one-ulp-leaves", "every-split-left"])
def test_a_planted_difference_keeps_the_pipeline(home: Path, monkeypatch: pytest.MonkeyPatch, plant: Any) -> None:
    from workbench.serving import _trees

    original = _trees.FlatForest.__init__

    def planted(self: Any, estimator: Any) -> None:
        original(self, estimator)
        plant(self)

    train, features = messy_frame(500, seed=4, task="classification")
    pipeline = build("extra_trees", "classification", train, features)
    monkeypatch.setattr(_trees.FlatForest, "__init__", planted)
    served = register_and_load(f"forest-planted-{plant.__name__.strip('_')}".replace("_", "-"),
                               pipeline, train, features, TARGETS["classification"])
    path = served.describe()["predict_path"]
    assert path["small_inputs"] == "pipeline"
    assert "disagreed with the Pipeline" in path["reason"], path["reason"]
    records = request_records(train.head(5), features)
    want = served.pipeline.predict_proba(frame_from_validated(records, served.columns))
    got = served.predict_records(records, validated=True)
    assert np.array_equal([list(r["proba"].values()) for r in got], want)


def test_health_reports_the_compiled_path_for_a_forest(home: Path) -> None:
    from fastapi.testclient import TestClient

    from workbench.db import session_scope
    from workbench.projects import create_project
    from workbench.serving.tokens import hash_token
    from workbench.serving.web import create_app

    with session_scope() as session:  # the web service serves a project's model
        assert create_project(session, name="Forest health", task_type="classification", target="generous",
                              actor="test").slug == "forest-health"
    train, features = messy_frame(400, seed=6, task="classification")
    register_and_load("forest-health", build("random_forest", "classification", train, features), train,
                      features, TARGETS["classification"])
    app = create_app("forest-health", token_hash=hash_token(TOKEN), log_flush_ms=20, poll_seconds=0,
                     metrics_seconds=0.2)
    with TestClient(app) as client:
        path = client.get("/health", headers=AUTH).json()["predict_path"]
        assert path["small_inputs"] == "compiled", path["reason"]
        assert "flat RandomForestClassifier trees" in path["reason"]
        record = request_records(train.head(1), features)[0]
        response = client.post("/predict", json=record, headers=AUTH)
        assert response.status_code == 200, response.text
        served = load_model("forest-health")
        want = served.pipeline.predict_proba(frame_from_validated([record], served.columns))[0]
        assert list(response.json()["proba"].values()) == want.tolist()


def test_a_walk_refused_at_the_split_points_leaves_the_forest_to_sklearn(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preprocessing stays compiled; the forest itself then scores the compiled matrix."""
    from workbench.serving import _trees

    monkeypatch.setattr(_trees.FlatForest, "_float32_input", lambda self, x: np.asarray(x, dtype=np.float64))
    train, features = messy_frame(500, seed=9, task="regression")
    served = register_and_load("forest-refused", build("random_forest", "regression", train, features), train,
                               features, TARGETS["regression"])
    path = served.describe()["predict_path"]
    assert path["small_inputs"] == "compiled", path["reason"]
    assert "the estimator itself (the flat trees differ from sklearn's at the split points)" in path["reason"]
    records = request_records(train.head(9), features)
    want, _ = pipeline_outputs(served, frame_from_validated(records, served.columns))
    assert [r["prediction"] for r in served.predict_records(records, validated=True)] == want.tolist()
