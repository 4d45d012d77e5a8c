"""The tuning settings, declared once, and the validated :class:`TuningConfig` a train job runs with.

:data:`TUNING_PARAMS` is the one declaration of every setting a train job takes (constraint,
default, hint, and how the page and the CLI show it). It is read by :func:`validate_tuning`,
by :data:`DEFAULTS` (the pipeline's and the page form's defaults), by the ``workbench train``
options and by the Tuning page's form; adding a setting means declaring it here and using it
where it acts (a :class:`TuningConfig` field, the sampler, the objective...).

``Param.extra`` keys read by the CLI and the page: ``label`` (form label), ``help`` (CLI help),
``form_help`` (form help), ``flag`` (CLI option name when it differs from ``--<name>``),
``step``/``widget_max`` (form number inputs), ``labels`` (option labels) and ``zero_is_none``
(0 means "no limit", stored as None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from workbench.errors import InvalidInput
from workbench.training._constraints import Families, WholeNumber
from workbench.training.model_families import DEFAULT_FAMILIES, FAMILIES
from workbench.validation import Options, Param, Real, check_param, values_of

SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("none", "median", "successive_halving")
MAX_WORKERS = 8
MAX_FOLDS = 20
MAX_TRIALS = 100_000

TUNING_PARAMS: dict[str, Param] = {
    "models": Param(
        Families(), default=DEFAULT_FAMILIES,
        extra={"label": "Model families",
               "help": "Comma-separated families: linear, random_forest, extra_trees, hist_gradient_boosting, knn.",
               "form_help": "Each family has its own search space; a study with several also chooses the family."},
    ),
    "n_trials": Param(
        WholeNumber(1, MAX_TRIALS), default=20, nullable=True,
        extra={"label": "Trials (0: time budget only)", "help": "Trials in total (0: time budget only).",
               "flag": "--trials", "zero_is_none": True, "widget_max": 10_000},
    ),
    "timeout_seconds": Param(
        Real(0, None, closed="neither"), default=None, nullable=True,
        hint="Give a positive number of seconds, or none for no time budget.",
        extra={"label": "Time budget, seconds (0: none)", "help": "Time budget in seconds.", "flag": "--timeout",
               "zero_is_none": True, "step": 30, "widget_max": 7 * 24 * 3600},
    ),
    "folds": Param(
        WholeNumber(2, MAX_FOLDS), default=3, hint="Use 3 to 5 folds.",
        extra={"label": "CV folds", "help": "Cross-validation folds."},
    ),
    "sampler": Param(
        Options(SAMPLERS), default="tpe",
        extra={"label": "Sampler", "help": "tpe, random or cmaes (numeric spaces only).",
               "labels": {"tpe": "TPE (default)", "random": "Random", "cmaes": "CMA-ES (numeric spaces only)"}},
    ),
    "pruner": Param(
        Options(PRUNERS), default="none",
        extra={"label": "Pruner", "help": "none, median or successive_halving.",
               "form_help": "Stops poor trials after a CV fold (forests and gradient boosting).",
               "labels": {"none": "No pruning", "median": "Median", "successive_halving": "Successive halving"}},
    ),
    "workers": Param(
        WholeNumber(1, MAX_WORKERS), default=1,
        extra={"label": "Local parallel workers", "help": "Local parallel workers (K-1 extra processes)."},
    ),
    "seed": Param(
        WholeNumber(0, 2**32 - 1), default=42,
        extra={"label": "Seed", "help": "Random seed of the sampler, the folds and the models."},
    ),
}
DEFAULTS: dict[str, Any] = values_of(TUNING_PARAMS)


@dataclass(frozen=True)
class TuningConfig:
    """Validated tuning settings (what a job's params become), with the project's metric and task."""

    models: tuple[str, ...]
    n_trials: int | None
    timeout_seconds: float | None
    folds: int
    sampler: str
    pruner: str
    workers: int
    seed: int
    metric: str
    direction: str
    task_type: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored on the study, logged as the parent run's params)."""
        data = asdict(self)
        data["models"] = list(self.models)
        return data

    def job_params(self) -> dict[str, Any]:
        """The declared settings, validated, as a train job stores them (its ``params``)."""
        data = self.as_dict()
        return {name: data[name] for name in TUNING_PARAMS}

    @property
    def pruning(self) -> bool:
        """True when a pruner may stop poor trials early."""
        return self.pruner != "none"


def _means_none(value: Any) -> bool:
    """True for a value that means "no limit" where 0 does: None, an empty string or a zero number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        return float(value) == 0
    except ValueError:
        return False


def tuning_values(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every declared setting checked and coerced, defaults filled in (no cross-setting check).

    A missing setting takes its default; None takes it too, except where None means "no
    limit" (``n_trials``, ``timeout_seconds``, which also read 0 that way).
    """
    given = dict(params or {})
    unknown = sorted(set(given) - set(TUNING_PARAMS))
    if unknown:
        raise InvalidInput(f"unknown tuning setting(s) {unknown}; allowed: {sorted(TUNING_PARAMS)}.",
                           field=unknown[0])
    values: dict[str, Any] = {}
    for name, param in TUNING_PARAMS.items():
        value = given.get(name, param.default)
        if param.extra.get("zero_is_none") and _means_none(value):
            value = None
        if value is None:
            if param.nullable:
                values[name] = None
                continue
            value = param.default
        values[name] = check_param(name, value, param.constraint, hint=param.hint)
    return values


def validate_tuning(
    params: Mapping[str, Any] | None = None,
    /,
    *,
    metric: str,
    task_type: str,
    y_train: Any = None,
    **settings: Any,
) -> TuningConfig:
    """Check every tuning setting (``params`` and/or keyword ``settings``) before anything starts.

    ``metric`` and ``task_type`` are the project's; ``y_train`` (the train split's target) lets
    the folds be checked against the smallest class. Raises :class:`InvalidInput` whose
    ``field`` names the setting at fault.
    """
    from workbench.evaluation.metrics import METRICS

    values = tuning_values({**(params or {}), **settings})
    chosen: tuple[str, ...] = values["models"]
    if values["n_trials"] is None and values["timeout_seconds"] is None:
        given = {**(params or {}), **settings}.get("n_trials")
        raise InvalidInput(
            f"n_trials is {given or 0} and there is no time budget, so the study would not run any trial. "
            "Set n_trials to at least 1, or give timeout_seconds.",
            field="n_trials",
        )
    check_param("metric", metric, Options(tuple(METRICS)))
    spec = METRICS[metric]
    if spec.task_type != task_type:
        fitting = [m.name for m in METRICS.values() if m.task_type == task_type]
        raise InvalidInput(
            f"metric {metric!r} is a {spec.task_type} metric but the project is {task_type}; "
            f"use one of {', '.join(fitting)} (set it in the ML Canvas, Impact Simulation).",
            field="metric",
        )
    _check_search_space(chosen, sampler=values["sampler"], pruner=values["pruner"])
    _check_folds(values["folds"], task_type=task_type, y_train=y_train)
    return TuningConfig(**values, metric=metric, direction=spec.direction, task_type=task_type)


def _check_search_space(chosen: tuple[str, ...], *, sampler: str, pruner: str) -> None:
    """CMA-ES needs an all-numeric space; a pruner needs a family that reports intermediate scores."""
    if sampler == "cmaes":
        categorical = [f for f in chosen if not FAMILIES[f].numeric_only]
        if len(chosen) > 1 or categorical:
            reason = (
                "several families make the family choice categorical"
                if len(chosen) > 1
                else f"{', '.join(categorical)} has categorical params"
            )
            numeric_ids = [f.id for f in FAMILIES.values() if f.numeric_only]
            raise InvalidInput(
                f"sampler 'cmaes' needs an all-numeric search space, but {reason}. "
                f"Choose one family among {', '.join(numeric_ids)}, or use sampler 'tpe'.",
                field="sampler",
            )
    if pruner != "none" and not any(FAMILIES[f].supports_pruning for f in chosen):
        prunable = [f.id for f in FAMILIES.values() if f.supports_pruning]
        raise InvalidInput(
            f"pruner {pruner!r} needs a family that reports intermediate scores ({', '.join(prunable)}); "
            f"{', '.join(chosen)} do not. Add one, or set pruner 'none'.",
            field="pruner",
        )


def _check_folds(folds: int, *, task_type: str, y_train: Any) -> None:
    """Every fold needs a row of every class (classification) or at least a row (regression)."""
    if y_train is None:
        return
    if task_type == "classification":
        import pandas as pd

        counts = pd.Series(y_train).value_counts()
        if len(counts) < 2:
            raise InvalidInput(
                "The train split holds a single class, so there is nothing to learn; check the target.",
                field="target",
            )
        smallest = int(counts.min())
        if folds > smallest:
            raise InvalidInput(
                f"folds must be at most {smallest}: the smallest class ({counts.idxmin()!r}) has only "
                f"{smallest} rows in the train split; got {folds}. Use fewer folds.",
                field="folds",
            )
    elif folds > len(y_train):
        raise InvalidInput(
            f"folds must be at most {len(y_train)} (the rows of the train split); got {folds}.", field="folds"
        )


__all__ = [
    "DEFAULTS",
    "MAX_FOLDS",
    "MAX_TRIALS",
    "MAX_WORKERS",
    "PRUNERS",
    "SAMPLERS",
    "TUNING_PARAMS",
    "TuningConfig",
    "tuning_values",
    "validate_tuning",
]
