"""Hyper-parameter tuning: settings validation, the Optuna study, trial tracking and the refit.

- :func:`validate_tuning` checks every setting before anything starts and raises
  :class:`InvalidInput` naming the field.
- :func:`open_study` opens the study ``<project-slug>/<job-id>`` on ``settings.optuna_storage``.
  On an RDB storage trials carry a heartbeat; a trial whose worker died is failed and retried
  (``RetryFailedTrialCallback``).
- :func:`run_study` runs trials until the study holds exactly ``n_trials`` finished trials in
  total, whichever workers ran them (the cap of ``MaxTrialsCallback`` plus a guard against
  the race where two workers start the last trial at once), or the time budget ends.
- The storage comes from :mod:`workbench.training.optuna_storage`; the MLflow child run of every trial
  is written off the trial's path by :class:`workbench.training.trial_runs.TrialRunWriter`.
- :func:`refit_and_register` refits the best params on the train split, evaluates on the
  holdout, logs the whole Pipeline with everything needed to reproduce and monitor it, and
  registers it as a new version of the project's model.
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput, check_choice
from workbench.training.model_families import FAMILIES, FAMILY_IDS, get_family

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from mlflow import MlflowClient

    from workbench.settings import Settings

SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("none", "median", "successive_halving")
MAX_WORKERS = 8
MAX_FOLDS = 20
# Trial user attrs (read by the page's chart and by the MLflow writer).
ATTR_CV_MEAN = "cv_mean"
ATTR_CV_STD = "cv_std"
ATTR_FIT_SECONDS = "fit_seconds"
ATTR_FAMILY = "family"
ATTR_WORKER = "worker"
ATTR_SURPLUS = "workbench.surplus"
# MLflow tags on trial runs, so a resumed job can tell which trials are already logged.
TAG_STUDY = "workbench.study"
TAG_TRIAL_NUMBER = "workbench.trial_number"
TAG_FLAG = "workbench.flag"
CHAMPION = "champion"
REFERENCE_ROWS = 2000


@dataclass(frozen=True)
class TuningConfig:
    """Validated tuning settings (what a job's params become)."""

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
        data = asdict(self)
        data["models"] = list(self.models)
        return data

    @property
    def pruning(self) -> bool:
        return self.pruner != "none"


def _int_field(name: str, value: Any, *, low: int, high: int | None = None, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidInput(f"{name} must be a whole number; got {value!r}.{hint}", field=name)
    number = int(value)
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{name} must be {bound}; got {number}.{hint}", field=name)
    return number


def validate_tuning(
    *,
    models: Sequence[str] | str | None,
    n_trials: int | None,
    timeout_seconds: float | None,
    folds: int,
    sampler: str,
    pruner: str,
    workers: int,
    seed: int,
    metric: str,
    task_type: str,
    y_train: Any = None,
) -> TuningConfig:
    """Check every tuning setting before anything starts.

    ``y_train`` (the train split's target) lets the folds be checked against the smallest
    class. Raises :class:`InvalidInput` whose ``field`` names the setting at fault.
    """
    from workbench.evaluation.metrics import METRICS

    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    chosen = tuple(dict.fromkeys(models or ()))
    if not chosen:
        raise InvalidInput(
            f"models is empty: choose at least one model family among {', '.join(FAMILY_IDS)}.", field="models"
        )
    for family_id in chosen:
        get_family(family_id)
    timeout = None if timeout_seconds in (None, "", 0) else timeout_seconds
    if timeout is not None:
        numeric = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if not numeric or not math.isfinite(timeout) or timeout < 0:
            raise InvalidInput(
                f"timeout_seconds must be a positive number of seconds; got {timeout_seconds!r}.",
                field="timeout_seconds",
            )
        timeout = float(timeout)
    if n_trials is None or n_trials == 0:
        if timeout is None:
            raise InvalidInput(
                f"n_trials is {n_trials or 0} and there is no time budget, so the study would not run any trial. "
                "Set n_trials to at least 1, or give timeout_seconds.",
                field="n_trials",
            )
        trials: int | None = None
    else:
        trials = _int_field("n_trials", n_trials, low=1, high=100_000)
    check_choice("sampler", sampler, SAMPLERS)
    check_choice("pruner", pruner, PRUNERS)
    fold_count = _int_field("folds", folds, low=2, high=MAX_FOLDS, hint=" Use 3 to 5 folds.")
    worker_count = _int_field("workers", workers, low=1, high=MAX_WORKERS)
    seed_value = _int_field("seed", seed, low=0, high=2**32 - 1)
    if metric not in METRICS:
        raise InvalidInput(f"metric must be one of {', '.join(METRICS)}; got {metric!r}.", field="metric")
    spec = METRICS[metric]
    if spec.task_type != task_type:
        fitting = [m.name for m in METRICS.values() if m.task_type == task_type]
        raise InvalidInput(
            f"metric {metric!r} is a {spec.task_type} metric but the project is {task_type}; "
            f"use one of {', '.join(fitting)} (set it in the ML Canvas, Impact Simulation).",
            field="metric",
        )
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
    if task_type == "classification" and y_train is not None:
        import pandas as pd

        counts = pd.Series(y_train).value_counts()
        if len(counts) < 2:
            raise InvalidInput(
                "The train split holds a single class, so there is nothing to learn; check the target.",
                field="target",
            )
        smallest = int(counts.min())
        if fold_count > smallest:
            raise InvalidInput(
                f"folds must be at most {smallest}: the smallest class ({counts.idxmin()!r}) has only "
                f"{smallest} rows in the train split; got {fold_count}. Use fewer folds.",
                field="folds",
            )
    elif y_train is not None and fold_count > len(y_train):
        raise InvalidInput(
            f"folds must be at most {len(y_train)} (the rows of the train split); got {fold_count}.", field="folds"
        )
    return TuningConfig(
        models=chosen,
        n_trials=trials,
        timeout_seconds=timeout,
        folds=fold_count,
        sampler=sampler,
        pruner=pruner,
        workers=worker_count,
        seed=seed_value,
        metric=metric,
        direction=spec.direction,
        task_type=task_type,
    )


# --------------------------------------------------------------------------- the study


def study_name(project_slug: str, job_id: str) -> str:
    """The Optuna study name of a tuning job."""
    return f"{project_slug}/{job_id}"


def make_sampler(config: TuningConfig) -> optuna.samplers.BaseSampler:
    """The sampler a config names, seeded."""
    import optuna

    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=config.seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=min(10, max(2, (config.n_trials or 20) // 3)))


def make_pruner(config: TuningConfig) -> optuna.pruners.BasePruner:
    """The pruner a config names (NopPruner for 'none')."""
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if config.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_study(
    *, name: str, config: TuningConfig, settings: Settings, create: bool = True
) -> optuna.Study:
    """Create (or load) the study ``name`` on the settings' Optuna storage."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from workbench.training.optuna_storage import open_storage

    storage = open_storage(settings.optuna_storage, heartbeat_seconds=settings.heartbeat_seconds)
    if not create:
        try:
            return optuna.load_study(
                study_name=name, storage=storage, sampler=make_sampler(config), pruner=make_pruner(config)
            )
        except KeyError:
            from workbench.errors import NotFound

            raise NotFound(f"No Optuna study named {name!r} in {settings.optuna_storage}.") from None
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(config),
        pruner=make_pruner(config),
        direction="maximize" if config.direction == "maximize" else "minimize",
        load_if_exists=True,
    )
    study.set_user_attr("workbench.config", config.as_dict())
    return study


def config_from_study(name: str, *, settings: Settings) -> TuningConfig:
    """The tuning config stored on study ``name`` by the job that created it (for workers)."""
    import optuna

    from workbench.errors import NotFound
    from workbench.training.optuna_storage import open_storage

    storage = open_storage(settings.optuna_storage, heartbeat_seconds=settings.heartbeat_seconds)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise NotFound(f"No Optuna study named {name!r} in {settings.optuna_storage}.") from None
    data = study.user_attrs.get("workbench.config")
    if not data:
        raise InvalidInput(f"Study {name!r} was not created by a workbench job.", field="job_id")
    data = dict(data)
    data["models"] = tuple(data["models"])
    return TuningConfig(**data)


FINISHED_STATES = ("COMPLETE", "PRUNED")


def study_counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state name (COMPLETE, PRUNED, RUNNING, WAITING, FAIL)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def finished_trials(study: optuna.Study) -> int:
    counts = study_counts(study)
    return sum(counts.get(state, 0) for state in FINISHED_STATES)


def best_trial_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def fail_orphaned_trials(study: optuna.Study) -> int:
    """Fail RUNNING trials on a storage without heartbeats (their worker is known to be dead).

    Called when resuming a lost or cancelled job: on an RDB storage the heartbeat does this,
    and the failed trial is retried.
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    if is_heartbeat_enabled(study._storage):
        return 0
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"workbench.retry_of": trial.number})
    return len(orphans)


class StudyProgress:
    """An Optuna callback that keeps ``(finished trials, best value)`` of the whole study for progress.

    It counts this process's trials locally and re-reads the study-wide figures (every
    worker's trials) from the storage at most every ``interval`` seconds, so reporting
    progress adds no storage query to most trials. ``report(done, best)`` gets the figures.
    """

    def __init__(
        self, report: Callable[[int, float | None], None], *, direction: str, done: int = 0, interval: float = 0.5
    ) -> None:
        self.report = report
        self.maximize = direction == "maximize"
        self.done = done
        self.best: float | None = None
        self.interval = interval
        self._refreshed = 0.0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get(ATTR_SURPLUS):
            return
        if trial.state.name in FINISHED_STATES:
            self.done += 1
        if trial.state.name == "COMPLETE" and trial.value is not None and (
            self.best is None or (trial.value > self.best if self.maximize else trial.value < self.best)
        ):
            self.best = float(trial.value)
        now = time.monotonic()
        if now - self._refreshed >= self.interval:
            self._refreshed = now
            self.done = finished_trials(study)
            best = best_trial_or_none(study)
            self.best = float(best.value) if best is not None and best.value is not None else self.best
        self.report(self.done, self.best)


class _Surplus(Exception):
    """A trial started after the study's budget was already taken by other workers."""


def _guard(objective: Callable[[Any], float], n_trials: int | None) -> Callable[[Any], float]:
    """Fail (and stop) a trial that would exceed the budget; makes the total exact under races."""
    if n_trials is None:
        return objective

    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)

    def guarded(trial: Any) -> float:
        # A trial numbered below the budget cannot be surplus (its rank is at most its number),
        # so the storage is only asked near the end of the study.
        if trial.number < n_trials:
            return objective(trial)
        before = [t for t in trial.study.get_trials(deepcopy=False, states=live) if t.number < trial.number]
        if len(before) >= n_trials:
            trial.set_user_attr(ATTR_SURPLUS, True)
            trial.study.stop()
            raise _Surplus(f"trial {trial.number} is beyond the budget of {n_trials}")
        return objective(trial)

    return guarded


def run_study(
    study: optuna.Study,
    objective: Callable[[Any], float],
    *,
    n_trials: int | None,
    timeout_seconds: float | None,
    cancel_event: threading.Event | None = None,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    poll_seconds: float = 0.2,
) -> str:
    """Run trials until the study holds ``n_trials`` finished trials, time runs out or a cancel.

    Several processes may run this on the same study at once: they share the budget. Returns
    why it stopped: ``"budget"``, ``"timeout"`` or ``"cancelled"``.
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    started = time.monotonic()
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = []
    if n_trials is not None:
        callbacks.append(MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    if on_trial is not None:
        callbacks.append(on_trial)
    guarded = _guard(objective, n_trials)
    # Highest trial number seen here; while the next number stays below the budget the budget
    # cannot be spent yet, so the counts are read from the storage only near the end.
    last_number: int | None = None

    def remember(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal last_number
        last_number = max(trial.number, last_number if last_number is not None else -1)

    callbacks.insert(0, remember)
    while True:
        if cancel_event is not None and cancel_event.is_set():
            return "cancelled"
        remaining = None if timeout_seconds is None else timeout_seconds - (time.monotonic() - started)
        if remaining is not None and remaining <= 0:
            return "timeout"
        if n_trials is not None and (last_number is None or last_number + 1 >= n_trials):
            counts = study_counts(study)
            done = sum(counts.get(state, 0) for state in FINISHED_STATES)
            if done >= n_trials:
                return "budget"
            if done + counts.get("RUNNING", 0) >= n_trials:
                # Other workers hold the rest of the budget; wait, in case one of them dies and
                # its trial comes back (failed by its stale heartbeat, then retried).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                time.sleep(poll_seconds)
                continue
        study.optimize(guarded, n_trials=1, callbacks=callbacks, catch=(_Surplus,), gc_after_trial=False)


# --------------------------------------------------------------------------- the objective


def _proba_for(pipeline: Any, X: pd.DataFrame, classes: list[Any]) -> Any:
    """predict_proba aligned to ``classes`` (a fold may miss a class the model never saw)."""
    import numpy as np

    proba = pipeline.predict_proba(X)
    fitted = list(pipeline.classes_)
    if fitted == classes:
        return proba
    aligned = np.zeros((len(X), len(classes)))
    for column, label in enumerate(fitted):
        aligned[:, classes.index(label)] = proba[:, column]
    return aligned


def score_pipeline(
    pipeline: Any, X: pd.DataFrame, y: pd.Series, *, task_type: str, classes: list[Any] | None
) -> dict[str, float]:
    """All standard metrics of a fitted pipeline on ``(X, y)``."""
    from workbench.evaluation.metrics import compute_metrics

    y_pred = pipeline.predict(X)
    y_proba = None
    if task_type == "classification" and hasattr(pipeline, "predict_proba") and classes is not None:
        y_proba = _proba_for(pipeline, X, classes)
    return compute_metrics(task_type=task_type, y_true=y, y_pred=y_pred, y_proba=y_proba, classes=classes)


class CVObjective:
    """Cross-validated score of one trial's pipeline on the train split.

    Reports the running CV mean after each fold (so a pruner can stop a poor trial) for
    families that support pruning, and records CV mean, std and fit time as user attrs.
    """

    def __init__(self, *, X: pd.DataFrame, y: pd.Series, config: TuningConfig, worker: str = "job") -> None:
        from sklearn.model_selection import KFold, StratifiedKFold

        self.X = X
        self.y = y
        self.config = config
        self.worker = worker
        self.classes: list[Any] | None = (
            sorted(y.unique().tolist(), key=str) if config.task_type == "classification" else None
        )
        splitter: Any = (
            StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
            if config.task_type == "classification"
            else KFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
        )
        # Folds are fixed per study, so every trial is scored on the same rows.
        self.folds = list(splitter.split(X, y))

    def __call__(self, trial: optuna.Trial) -> float:
        import numpy as np
        import optuna

        from workbench.training.model_families import build_pipeline, suggest_params

        family_id, params = suggest_params(trial, self.config.models)
        family = FAMILIES[family_id]
        report = self.config.pruning and family.supports_pruning
        scores: list[float] = []
        fit_seconds = 0.0
        for step, (train_rows, valid_rows) in enumerate(self.folds):
            pipeline = build_pipeline(
                family, params, self.X, self.config.task_type, seed=self.config.seed, n_rows=len(train_rows)
            )
            started = time.perf_counter()
            pipeline.fit(self.X.iloc[train_rows], self.y.iloc[train_rows])
            fit_seconds += time.perf_counter() - started
            metrics = score_pipeline(
                pipeline,
                self.X.iloc[valid_rows],
                self.y.iloc[valid_rows],
                task_type=self.config.task_type,
                classes=self.classes,
            )
            if self.config.metric not in metrics:
                raise InvalidInput(
                    f"metric {self.config.metric!r} is undefined on a CV fold (for example a fold with one class).",
                    field="metric",
                )
            scores.append(metrics[self.config.metric])
            if report:
                trial.report(float(np.mean(scores)), step)
                if trial.should_prune():
                    self._record(trial, family_id, scores, fit_seconds)
                    raise optuna.TrialPruned()
        return self._record(trial, family_id, scores, fit_seconds)

    def _record(self, trial: optuna.Trial, family_id: str, scores: list[float], fit_seconds: float) -> float:
        import numpy as np

        mean = float(np.mean(scores))
        trial.set_user_attr(ATTR_CV_MEAN, mean)
        trial.set_user_attr(ATTR_CV_STD, float(np.std(scores)))
        trial.set_user_attr(ATTR_FIT_SECONDS, round(fit_seconds, 4))
        trial.set_user_attr(ATTR_FAMILY, family_id)
        trial.set_user_attr(ATTR_WORKER, self.worker)
        return mean


# --------------------------------------------------------------------------- refit and register


@dataclass(frozen=True)
class RegistrationResult:
    """What :func:`refit_and_register` produced."""

    holdout_metrics: dict[str, float]
    model_name: str
    model_version: str
    champion: bool
    flag: str | None
    beat_baseline: bool | None
    bar: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a model's behaviour."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("scikit-learn", "optuna", "mlflow", "pandas", "numpy", "skops", "mlops-workbench"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def model_requirements() -> list[str]:
    """Pinned requirements of a logged Pipeline (its preprocessing lives in the workbench package)."""
    versions = package_versions()
    return [f"{name}=={versions[name]}" for name in ("mlflow", "scikit-learn", "skops", "pandas", "numpy")
            if name in versions]


def git_commit() -> str | None:
    """The git commit of the working folder's repository, when there is one."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def _feature_importance(pipeline: Any, X: pd.DataFrame, y: pd.Series, *, seed: int, scoring: str | None) -> Any:
    """Feature importance as a frame (feature, importance, method): native when the model has it."""
    import numpy as np
    import pandas as pd

    model = pipeline.named_steps["model"]
    native = getattr(model, "feature_importances_", None)
    if native is None and getattr(model, "coef_", None) is not None:
        coef = np.asarray(model.coef_)
        native = np.abs(coef).mean(axis=0) if coef.ndim == 2 else np.abs(coef)
    if native is not None:
        try:
            names = list(pipeline.named_steps["preprocess"].get_feature_names_out())
        except Exception:  # a transformer without feature names: number the columns
            names = [f"x{i}" for i in range(len(native))]
        if len(names) == len(native):
            frame = pd.DataFrame({"feature": names, "importance": np.asarray(native, dtype=float)})
            frame["method"] = "native"
            return frame.sort_values("importance", ascending=False, ignore_index=True)
    from sklearn.inspection import permutation_importance

    rows = X.iloc[:1000]
    result = permutation_importance(
        pipeline, rows, y.iloc[:1000], n_repeats=5, random_state=seed, scoring=scoring, n_jobs=1
    )
    frame = pd.DataFrame({"feature": list(X.columns), "importance": result.importances_mean})
    frame["method"] = "permutation"
    return frame.sort_values("importance", ascending=False, ignore_index=True)


def _evaluation_figures(
    pipeline: Any, X: pd.DataFrame, y: pd.Series, *, task_type: str, classes: list[Any] | None
) -> dict[str, Any]:
    """Plotly figures: confusion matrix and ROC curve, or residual plots."""
    import numpy as np
    import plotly.graph_objects as go

    figures: dict[str, Any] = {}
    y_pred = pipeline.predict(X)
    if task_type == "classification" and classes is not None:
        from workbench.evaluation.metrics import confusion

        matrix = confusion(y, y_pred, classes)
        labels = [str(c) for c in classes]
        figures["confusion_matrix"] = go.Figure(
            go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", text=matrix, texttemplate="%{text}"),
            layout={"title": "Confusion matrix (holdout)", "xaxis_title": "predicted", "yaxis_title": "true"},
        )
        if hasattr(pipeline, "predict_proba"):
            from sklearn.metrics import roc_curve

            proba = _proba_for(pipeline, X, classes)
            roc = go.Figure(layout={"title": "ROC curve (holdout)", "xaxis_title": "false positive rate",
                                    "yaxis_title": "true positive rate"})
            positives = [len(classes) - 1] if len(classes) == 2 else range(len(classes))
            for column in positives:
                truth = np.asarray(y) == classes[column]
                if truth.all() or not truth.any():
                    continue
                fpr, tpr, _ = roc_curve(truth, proba[:, column])
                roc.add_scatter(x=fpr, y=tpr, mode="lines", name=str(classes[column]))
            roc.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, name="chance")
            figures["roc_curve"] = roc
    else:
        residuals = np.asarray(y, dtype=float) - np.asarray(y_pred, dtype=float)
        figures["residuals_vs_predicted"] = go.Figure(
            go.Scatter(x=y_pred, y=residuals, mode="markers"),
            layout={"title": "Residuals vs predicted (holdout)", "xaxis_title": "predicted", "yaxis_title": "residual"},
        )
        figures["residuals_histogram"] = go.Figure(
            go.Histogram(x=residuals), layout={"title": "Residuals (holdout)", "xaxis_title": "residual"}
        )
    return figures


def _skops_trusted_types(pipeline: Any) -> list[str]:
    """The non-default types skops must trust to load ``pipeline`` (so the saved model loads)."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))


def _ensure_registered_model(client: MlflowClient, name: str, project_slug: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, tags={"workbench.project": project_slug})
        except MlflowException as exc:  # created by another process meanwhile
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise


def current_champion(client: MlflowClient, name: str) -> str | None:
    """The version the ``champion`` alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def refit_and_register(
    *,
    client: MlflowClient,
    run_id: str,
    project_slug: str,
    frames: Any,
    config: TuningConfig,
    family_id: str,
    params: dict[str, Any],
    bar: Any,
    min_uplift: float,
    extra_config: dict[str, Any] | None = None,
) -> RegistrationResult:
    """Refit the best params on the train split, evaluate on the holdout, log and register.

    ``frames`` is :class:`workbench.data.splits.SplitFrames`; ``bar`` the project's bar to beat
    (``workbench.design.baselines.BarToBeat`` or None). The model is saved with
    ``mlflow.sklearn.save_model`` into a temporary folder and uploaded to ``run_id`` with
    ``client.log_artifacts``, so no fluent MLflow state is touched.
    """
    import tempfile
    from pathlib import Path

    import mlflow.data
    import mlflow.sklearn
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.models import infer_signature

    from workbench.evaluation.metrics import beats
    from workbench.tracking import log_run_batch
    from workbench.training.model_families import build_pipeline

    X_train, y_train = frames.X_train, frames.y_train
    X_holdout, y_holdout = frames.X_holdout, frames.y_holdout
    classes = sorted(y_train.unique().tolist(), key=str) if config.task_type == "classification" else None
    pipeline = build_pipeline(family_id, params, X_train, config.task_type, seed=config.seed, n_rows=len(X_train))
    started = time.perf_counter()
    pipeline.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - started
    holdout = score_pipeline(pipeline, X_holdout, y_holdout, task_type=config.task_type, classes=classes)
    dataset = frames.dataset
    versions = package_versions()
    commit = git_commit()
    full_config = {
        "tuning": config.as_dict(),
        "family": family_id,
        "params": params,
        "seed": config.seed,
        "dataset": {"id": dataset.id, "version": dataset.version, "content_hash": dataset.content_hash},
        "split": {"id": frames.split.id, "strategy": frames.split.strategy, "seed": frames.split.seed,
                  "holdout_fraction": frames.split.holdout_fraction},
        "features": list(frames.feature_columns),
        "target": frames.target,
        "package_versions": versions,
        "git_commit": commit,
        **(extra_config or {}),
    }
    tags = {
        "workbench.family": family_id,
        "workbench.dataset_hash": dataset.content_hash,
        "workbench.reference_artifact": "reference/reference.parquet",
        **{f"workbench.version.{k}": v for k, v in versions.items()},
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit
    log_run_batch(
        client,
        run_id,
        params={"family": family_id, "seed": config.seed, "folds": config.folds, "sampler": config.sampler,
                "metric": config.metric, **{f"best.{k}": v for k, v in params.items()}},
        metrics={**{f"holdout_{k}": v for k, v in holdout.items()}, "refit_seconds": fit_seconds},
        tags=tags,
    )
    # The dataset's content hash as an MLflow dataset input (digest is capped at 36 chars by MLflow).
    reference = frames.train.sample(n=min(REFERENCE_ROWS, len(frames.train)), random_state=config.seed)
    ml_dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        reference, name=f"{project_slug}-v{dataset.version}", targets=frames.target,
        digest=dataset.content_hash[:36],
    )
    client.log_inputs(
        run_id,
        datasets=[DatasetInput(ml_dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")])],
    )
    importance = _feature_importance(
        pipeline, X_holdout, y_holdout, seed=config.seed,
        scoring=None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = root / "model"
        sample = X_train.head(5)
        signature = infer_signature(sample, pipeline.predict(sample))
        mlflow.sklearn.save_model(
            pipeline,
            str(model_dir),
            signature=signature,
            input_example=sample,
            serialization_format="skops",
            # Given explicitly: MLflow's inference runs the model in a subprocess (15+ s).
            pip_requirements=model_requirements(),
            skops_trusted_types=_skops_trusted_types(pipeline),
            metadata={"workbench.project": project_slug, "workbench.family": family_id},
        )
        client.log_artifacts(run_id, str(model_dir), "model")
        extras = root / "extras"
        (extras / "reference").mkdir(parents=True)
        (extras / "evaluation").mkdir()
        # Reference sample for monitoring: the features and the target of train rows, plus the
        # model's prediction on them.
        ref = reference[[*frames.feature_columns, frames.target]].copy()
        ref["prediction"] = pipeline.predict(reference[frames.feature_columns])
        ref.to_parquet(extras / "reference" / "reference.parquet", index=False)
        importance.to_csv(extras / "evaluation" / "feature_importance.csv", index=False)
        (extras / "config.json").write_text(json.dumps(full_config, indent=2, default=str, sort_keys=True))
        (extras / "evaluation" / "holdout_metrics.json").write_text(json.dumps(holdout, indent=2, sort_keys=True))
        for name, figure in _evaluation_figures(
            pipeline, X_holdout, y_holdout, task_type=config.task_type, classes=classes
        ).items():
            (extras / "evaluation" / f"{name}.json").write_text(figure.to_json())
            (extras / "evaluation" / f"{name}.html").write_text(figure.to_html(include_plotlyjs="cdn"))
        client.log_artifacts(run_id, str(extras))
    # Register a new version of the project's model.
    name = project_slug
    _ensure_registered_model(client, name, project_slug)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(
        name, source=source, run_id=run_id,
        tags={"workbench.family": family_id, "workbench.dataset_hash": dataset.content_hash,
              f"holdout.{config.metric}": str(holdout.get(config.metric))},
    )
    value = holdout.get(config.metric)
    bar_dict: dict[str, Any] | None = None
    beat: bool | None = None
    if bar is not None:
        bar_dict = bar.as_dict() if hasattr(bar, "as_dict") else {
            "metric": bar.metric, "value": bar.value, "direction": bar.direction}
        bar_value = holdout.get(bar.metric)
        beat = bar_value is not None and beats(bar_value, bar.value, direction=bar.direction, min_uplift=min_uplift)
    champion_version = current_champion(client, name)
    flag: str | None = None
    if champion_version is not None:
        flag = f"version {champion_version} is already the champion; compare them before promoting this one"
    elif bar is None:
        flag = "there is no bar to beat yet (run the baselines), so it was not made champion"
    elif not beat:
        flag = (
            f"holdout {bar.metric} {holdout.get(bar.metric, float('nan')):.4f} does not beat the bar "
            f"{bar.value:.4f} by the minimum uplift {min_uplift:g}"
        )
    elif value is None:
        flag = f"holdout {config.metric} is undefined"
    champion = flag is None
    if champion:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    else:
        assert flag is not None
        client.set_model_version_tag(name, version.version, TAG_FLAG, flag)
    return RegistrationResult(
        holdout_metrics=holdout,
        model_name=name,
        model_version=str(version.version),
        champion=champion,
        flag=flag,
        beat_baseline=beat,
        bar=bar_dict,
    )


def history_frame(study: optuna.Study) -> pd.DataFrame:
    """Every finished trial of the study (all workers): number, value, best so far, family, worker."""
    import pandas as pd

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name != "COMPLETE" or trial.value is None:
            continue
        rows.append(
            {
                "number": trial.number,
                "value": float(trial.value),
                "family": trial.user_attrs.get(ATTR_FAMILY, ""),
                "worker": trial.user_attrs.get(ATTR_WORKER, ""),
                "completed_at": trial.datetime_complete,
            }
        )
    frame = pd.DataFrame(rows, columns=["number", "value", "family", "worker", "completed_at"])
    if frame.empty:
        frame["best"] = []
        return frame
    frame = frame.sort_values("number", ignore_index=True)
    maximize = study.direction.name == "MAXIMIZE"
    frame["best"] = frame["value"].cummax() if maximize else frame["value"].cummin()
    return frame
