"""Model families and their search spaces, declared as data.

A family is an id used everywhere (UI, CLI, MLflow tags), one estimator per task type, a
search space made of :class:`ParamSpec` rows, and two flags: whether the model needs scaled
inputs and whether its trials may be pruned (they report an intermediate score after each
CV fold). :func:`suggest_params` turns a space into ``trial.suggest_*`` calls and
:func:`build_pipeline` makes the WHOLE scikit-learn Pipeline (preprocessing + estimator), so
the logged model scores raw rows.

Params of several families share one Optuna study, so each is named ``<family>__<param>``
and a categorical ``family`` param picks the family of a trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput

if TYPE_CHECKING:
    import optuna
    from sklearn.pipeline import Pipeline

PARAM_KINDS = ("int", "float", "categorical")
FAMILY_PARAM = "family"
SEPARATOR = "__"


@dataclass(frozen=True)
class ParamSpec:
    """One hyper-parameter of a search space."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")


@dataclass(frozen=True)
class ModelFamily:
    """A model family: estimators per task type, a search space, and what it needs."""

    id: str
    label: str
    estimators: dict[str, str]  # task type -> "module:Class"
    space: tuple[ParamSpec, ...]
    needs_scaling: bool
    supports_pruning: bool
    fixed: dict[str, dict[str, Any]] = field(default_factory=dict)  # task type -> fixed kwargs
    seeded: bool = True  # takes random_state

    @property
    def numeric_only(self) -> bool:
        """True when every param is numeric (CMA-ES can search such a space)."""
        return all(p.numeric for p in self.space)


_FOREST_SPACE = (
    ParamSpec("n_estimators", "int", 20, 200, log=True),
    ParamSpec("max_depth", "int", 2, 16),
    ParamSpec("min_samples_leaf", "int", 1, 10),
    ParamSpec("max_features", "categorical", choices=("sqrt", "log2", 1.0)),
)

FAMILIES: dict[str, ModelFamily] = {
    family.id: family
    for family in (
        ModelFamily(
            id="linear",
            label="Linear (logistic / ridge), scaled",
            estimators={
                "classification": "sklearn.linear_model:LogisticRegression",
                "regression": "sklearn.linear_model:Ridge",
            },
            space=(ParamSpec("C", "float", 1e-3, 1e2, log=True),),
            needs_scaling=True,
            supports_pruning=False,
            fixed={"classification": {"max_iter": 2000}, "regression": {}},
        ),
        ModelFamily(
            id="random_forest",
            label="Random forest",
            estimators={
                "classification": "sklearn.ensemble:RandomForestClassifier",
                "regression": "sklearn.ensemble:RandomForestRegressor",
            },
            space=_FOREST_SPACE,
            needs_scaling=False,
            supports_pruning=True,
            fixed={"classification": {"n_jobs": 1}, "regression": {"n_jobs": 1}},
        ),
        ModelFamily(
            id="extra_trees",
            label="Extra trees",
            estimators={
                "classification": "sklearn.ensemble:ExtraTreesClassifier",
                "regression": "sklearn.ensemble:ExtraTreesRegressor",
            },
            space=_FOREST_SPACE,
            needs_scaling=False,
            supports_pruning=True,
            fixed={"classification": {"n_jobs": 1}, "regression": {"n_jobs": 1}},
        ),
        ModelFamily(
            id="hist_gradient_boosting",
            label="Histogram gradient boosting",
            estimators={
                "classification": "sklearn.ensemble:HistGradientBoostingClassifier",
                "regression": "sklearn.ensemble:HistGradientBoostingRegressor",
            },
            space=(
                ParamSpec("learning_rate", "float", 0.01, 0.3, log=True),
                ParamSpec("max_iter", "int", 30, 300, log=True),
                ParamSpec("max_leaf_nodes", "int", 8, 64, log=True),
                ParamSpec("min_samples_leaf", "int", 5, 50, log=True),
                ParamSpec("l2_regularization", "float", 1e-6, 1.0, log=True),
            ),
            needs_scaling=False,
            supports_pruning=True,
            # A fixed early-stopping rule keeps fits deterministic and the trial time bounded.
            fixed={"classification": {"early_stopping": False}, "regression": {"early_stopping": False}},
        ),
        ModelFamily(
            id="knn",
            label="k-nearest neighbours",
            estimators={
                "classification": "sklearn.neighbors:KNeighborsClassifier",
                "regression": "sklearn.neighbors:KNeighborsRegressor",
            },
            space=(
                ParamSpec("n_neighbors", "int", 1, 50),
                ParamSpec("weights", "categorical", choices=("uniform", "distance")),
                ParamSpec("p", "categorical", choices=(1, 2)),
            ),
            needs_scaling=True,
            supports_pruning=False,
            seeded=False,
        ),
    )
}
FAMILY_IDS = tuple(FAMILIES)
DEFAULT_FAMILIES = ("linear", "random_forest", "hist_gradient_boosting")


def get_family(family_id: str) -> ModelFamily:
    """The family ``family_id``, or InvalidInput naming the allowed ids."""
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise InvalidInput(
            f"models must be among {', '.join(FAMILY_IDS)}; got {family_id!r}.", field="models"
        ) from None


def param_key(family_id: str, name: str) -> str:
    """The study-wide name of one family's param (``random_forest__max_depth``)."""
    return f"{family_id}{SEPARATOR}{name}"


def suggest_params(trial: optuna.Trial, families: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Ask the trial for a family (when there are several) and that family's params.

    Returns ``(family_id, estimator params without prefix)``.
    """
    if not families:
        raise InvalidInput("models must name at least one family.", field="models")
    family_id = families[0] if len(families) == 1 else trial.suggest_categorical(FAMILY_PARAM, list(families))
    family = get_family(str(family_id))
    params: dict[str, Any] = {}
    for spec in family.space:
        key = param_key(family.id, spec.name)
        if spec.kind == "int":
            assert spec.low is not None and spec.high is not None
            params[spec.name] = trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
        elif spec.kind == "float":
            assert spec.low is not None and spec.high is not None
            params[spec.name] = trial.suggest_float(key, float(spec.low), float(spec.high), log=spec.log)
        else:
            params[spec.name] = trial.suggest_categorical(key, list(spec.choices))
    return family.id, params


def split_params(flat: dict[str, Any], families: Sequence[str] | None = None) -> tuple[str, dict[str, Any]]:
    """Turn a study's flat params back into ``(family_id, estimator params)``."""
    family_id = flat.get(FAMILY_PARAM)
    if family_id is None:
        prefixes = {key.split(SEPARATOR, 1)[0] for key in flat if SEPARATOR in key}
        candidates = list(families or []) or sorted(prefixes)
        if len(candidates) != 1:
            raise InvalidInput(
                f"Cannot tell the family of params {sorted(flat)}; expected a {FAMILY_PARAM!r} key.",
                field="params",
            )
        family_id = candidates[0]
    prefix = f"{family_id}{SEPARATOR}"
    return str(family_id), {key[len(prefix) :]: value for key, value in flat.items() if key.startswith(prefix)}


def flat_params(family_id: str, params: dict[str, Any], *, multi: bool) -> dict[str, Any]:
    """The study-wide form of a family's params (the inverse of :func:`split_params`)."""
    flat = {param_key(family_id, name): value for name, value in params.items()}
    if multi:
        flat[FAMILY_PARAM] = family_id
    return flat


def _estimator_class(path: str) -> Any:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def make_estimator(family_id: str, params: dict[str, Any], task_type: str, *, seed: int = 0) -> Any:
    """The unfitted estimator of a family with ``params``."""
    family = get_family(family_id)
    if task_type not in family.estimators:
        raise InvalidInput(
            f"task_type must be one of {', '.join(family.estimators)}; got {task_type!r}.", field="task_type"
        )
    kwargs = {**family.fixed.get(task_type, {}), **params}
    if family.id == "linear" and task_type == "regression" and "C" in kwargs:
        # One declared param for both tasks: Ridge's alpha is the inverse of logistic C.
        kwargs["alpha"] = 1.0 / float(kwargs.pop("C"))
    if family.seeded:
        kwargs["random_state"] = seed
    return _estimator_class(family.estimators[task_type])(**kwargs)


def build_pipeline(
    family: str | ModelFamily,
    params: dict[str, Any],
    frame_meta: Any,
    task_type: str,
    *,
    seed: int = 0,
    n_rows: int | None = None,
) -> Pipeline:
    """The whole Pipeline ``[("preprocess", ...), ("model", estimator)]`` for raw feature rows.

    ``frame_meta`` is what :func:`workbench.data.preprocessing.build_preprocessor` takes (the
    feature frame or its column metadata). ``n_rows``, the number of rows the pipeline will
    be fitted on, caps ``n_neighbors`` of k-NN, which cannot exceed it.
    """
    from sklearn.pipeline import Pipeline

    from workbench.data.preprocessing import build_preprocessor

    family_row = family if isinstance(family, ModelFamily) else get_family(family)
    params = dict(params)
    if family_row.id == "knn" and n_rows is not None and "n_neighbors" in params:
        params["n_neighbors"] = max(1, min(int(params["n_neighbors"]), n_rows))
    estimator = make_estimator(family_row.id, params, task_type, seed=seed)
    preprocessor = build_preprocessor(frame_meta, scale=family_row.needs_scaling)
    return Pipeline([("preprocess", preprocessor), ("model", estimator)])
