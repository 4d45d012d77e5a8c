"""Baselines: the simple models every real model must beat, declared as data.

:func:`run_baselines` fits each baseline of :func:`baseline_specs` on the project's train
rows, scores it on the recorded holdout with :func:`workbench.evaluation.metrics.compute_metrics` and
logs it as an MLflow run (tag ``workbench.kind=baseline``) with its plots. The best one by the
canvas's primary metric is the project's **bar to beat**; :func:`bar_to_beat` reads it back
from the newest succeeded baseline job, so no extra table is needed.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from workbench.db.models import Project
from workbench.errors import InvalidInput, WorkbenchError, check_choice

if TYPE_CHECKING:
    import numpy as np

    from workbench.data.splits import SplitFrames
    from workbench.design.project_config import ProjectConfig
    from workbench.settings import Settings

KINDS = ("dummy", "linear", "heuristic", "persistence")
SEED = 42


@dataclass(frozen=True)
class BaselineSpec:
    """One baseline: an estimator class with its parameters, or a built-in rule (heuristic, persistence)."""

    name: str
    label: str
    kind: str
    estimator: str | None = None  # "module:Class"
    params: dict[str, Any] = field(default_factory=dict)
    preprocess: bool = False

    def as_params(self) -> dict[str, Any]:
        """What is logged as the run's MLflow params."""
        out: dict[str, Any] = {"baseline": self.name, "baseline_kind": self.kind}
        if self.estimator:
            out["estimator"] = self.estimator.split(":")[-1]
        out.update({f"model.{k}": v for k, v in self.params.items()})
        if self.preprocess:
            out["preprocessing"] = "impute+onehot+scale"
        return out


CLASSIFICATION_SPECS = (
    BaselineSpec("dummy_prior", "Class prior (most frequent)", "dummy", "sklearn.dummy:DummyClassifier",
                 {"strategy": "prior"}),
    BaselineSpec("dummy_stratified", "Random by class share", "dummy", "sklearn.dummy:DummyClassifier",
                 {"strategy": "stratified", "random_state": SEED}),
    BaselineSpec("logistic_regression", "Logistic regression", "linear", "sklearn.linear_model:LogisticRegression",
                 {"max_iter": 1000, "C": 1.0}, preprocess=True),
)
REGRESSION_SPECS = (
    BaselineSpec("dummy_mean", "Mean", "dummy", "sklearn.dummy:DummyRegressor", {"strategy": "mean"}),
    BaselineSpec("dummy_median", "Median", "dummy", "sklearn.dummy:DummyRegressor", {"strategy": "median"}),
    BaselineSpec("ridge", "Ridge regression", "linear", "sklearn.linear_model:Ridge", {"alpha": 1.0},
                 preprocess=True),
)
HEURISTIC_SPEC = BaselineSpec("heuristic", "Canvas rule (heuristic)", "heuristic")
PERSISTENCE_SPEC = BaselineSpec("persistence", "Persistence (last value)", "persistence")


def baseline_specs(task_type: str, *, has_time: bool, has_heuristic: bool) -> list[BaselineSpec]:
    """The baselines that apply to a project, in the order they run and are shown."""
    check_choice("task_type", task_type, ("classification", "regression"))
    specs = list(CLASSIFICATION_SPECS if task_type == "classification" else REGRESSION_SPECS)
    if has_heuristic:
        specs.append(HEURISTIC_SPEC)
    if task_type == "regression" and has_time:
        specs.append(PERSISTENCE_SPEC)
    return specs


@dataclass(frozen=True)
class BarToBeat:
    """The best baseline's score on the project's primary metric: what a model must beat."""

    metric: str
    value: float
    direction: str
    baseline: str
    run_id: str | None
    job_id: str
    label: str = ""
    min_uplift: float = 0.0
    split_id: int | None = None
    dataset_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def _make_estimator(spec: BaselineSpec, frames: SplitFrames) -> Any:
    from sklearn.pipeline import Pipeline

    from workbench.data.preprocessing import build_preprocessor

    assert spec.estimator is not None
    module_name, class_name = spec.estimator.split(":")
    estimator = getattr(importlib.import_module(module_name), class_name)(**spec.params)
    if not spec.preprocess:
        return estimator
    preprocessor = build_preprocessor(frames.dataset.columns, scale=True, features=frames.feature_columns)
    return Pipeline([("preprocess", preprocessor), ("model", estimator)])


def _hard_proba(pred: np.ndarray, classes: list[Any]) -> np.ndarray:
    """A hard rule's 'probabilities': 1 for the predicted class, so ROC-AUC still means something."""
    import numpy as np

    from workbench.evaluation.probabilities import class_index

    out = np.zeros((len(pred), len(classes)))
    for row, label in enumerate(pred):
        position = class_index(label, classes)
        assert position is not None  # _fit_predict refused predictions outside the classes
        out[row, position] = 1.0
    return out


def _persistence(frames: SplitFrames) -> np.ndarray:
    """One-step persistence: each holdout row predicts the previous row's target in time order."""
    import numpy as np

    y_train = frames.y_train.to_numpy(dtype=float)
    y_holdout = frames.y_holdout.to_numpy(dtype=float)
    if len(y_train) == 0:
        raise InvalidInput("Persistence needs at least one train row before the holdout.", field="split")
    return np.concatenate([[y_train[-1]], y_holdout[:-1]])


@dataclass
class _Outcome:
    pred: Any
    proba: Any = None


def _fit_predict(spec: BaselineSpec, frames: SplitFrames, *, task_type: str, heuristic: dict[str, Any] | None,
                 classes: list[Any] | None) -> _Outcome:
    from workbench.design.heuristics import Rule, apply_rule
    from workbench.evaluation.probabilities import aligned_proba

    if spec.kind == "heuristic":
        if not heuristic:
            raise InvalidInput("The heuristic baseline needs a rule; set one on the Baselines page.", field="rule")
        pred = apply_rule(Rule.from_dict(heuristic), frames.holdout)
        if task_type == "classification":
            assert classes is not None
            unknown = {str(p) for p in pred} - {str(c) for c in classes}
            if unknown:
                raise InvalidInput(
                    f"The rule predicts {sorted(unknown)}, which are not classes of the target "
                    f"({', '.join(map(str, classes))}). Fix the rule's then/else values.",
                    field="then_value",
                )
            return _Outcome(pred=pred, proba=_hard_proba(pred, classes))
        return _Outcome(pred=pred.astype(float))
    if spec.kind == "persistence":
        return _Outcome(pred=_persistence(frames))
    model = _make_estimator(spec, frames)
    model.fit(frames.X_train, frames.y_train)
    pred = model.predict(frames.X_holdout)
    if task_type == "classification":
        assert classes is not None
        return _Outcome(pred=pred, proba=aligned_proba(model, frames.X_holdout, classes))
    return _Outcome(pred=pred)


# --------------------------------------------------------------------------------------
# Running and choosing
# --------------------------------------------------------------------------------------


def choose_best(baselines: list[dict[str, Any]], *, metric: str, direction: str) -> dict[str, Any] | None:
    """The succeeded baseline with the best ``metric`` (the first one on ties), or None."""
    from workbench.evaluation.metrics import is_better

    best: dict[str, Any] | None = None
    for entry in baselines:
        value = (entry.get("metrics") or {}).get(metric)
        if entry.get("status") != "succeeded" or value is None:
            continue
        if best is None or is_better(value, best["metrics"][metric], direction=direction):
            best = entry
    return best


def _best_summary(entry: dict[str, Any], *, metric: str, direction: str) -> dict[str, Any]:
    return {
        "name": entry["name"],
        "label": entry["label"],
        "run_id": entry.get("run_id"),
        "metric": metric,
        "value": entry["metrics"][metric],
        "direction": direction,
    }


def run_baselines(
    frames: SplitFrames,
    *,
    project_slug: str,
    task_type: str,
    config: ProjectConfig,
    heuristic: dict[str, Any] | None = None,
    job_id: str | None = None,
    settings: Settings | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """Fit, score and log every baseline; return the result JSON (every baseline and the best).

    ``progress(fraction, message)`` is called before each baseline (a job's cancellation
    point). A baseline that fails is recorded with its error and the others still run; when
    none succeeds, :class:`WorkbenchError` is raised.
    """
    from workbench.data.splits import split_dict
    from workbench.evaluation.figures import confusion_figure, pr_figure, residual_figure, roc_figure
    from workbench.evaluation.metrics import compute_metrics, confusion
    from workbench.settings import get_settings
    from workbench.tracking import (
        TAG_JOB,
        TAG_KIND,
        TAG_PROJECT,
        ensure_experiment,
        get_client,
        log_figure_artifact,
        log_json_artifact,
        log_run_batch,
    )

    settings = settings or get_settings()
    client = get_client(settings)
    experiment_id = ensure_experiment(project_slug=project_slug, settings=settings)
    specs = baseline_specs(task_type, has_time=frames.split.strategy == "time", has_heuristic=bool(heuristic))
    classes: list[Any] | None = None
    if task_type == "classification":
        from workbench.evaluation.probabilities import class_order

        # The order a fitted model's classes_ has, so baselines and tuned versions draw the same matrix.
        classes = class_order(frames.y_train, frames.y_holdout)
    common_params = {
        "split_id": frames.split.id,
        "split_strategy": frames.split.strategy,
        "split_seed": frames.split.seed,
        "holdout_fraction": frames.split.holdout_fraction,
        "n_train": len(frames.train),
        "n_holdout": len(frames.holdout),
        "dataset_id": frames.dataset.id,
        "dataset_version": frames.dataset.version,
        "dataset_hash": frames.dataset.content_hash,
        "target": frames.target,
        "task_type": task_type,
        "primary_metric": config.primary_metric,
    }
    binary = classes is not None and len(classes) == 2
    threshold = float(config.decision_threshold) if binary else None
    results: list[dict[str, Any]] = []
    for index, spec in enumerate(specs):
        if progress is not None:
            progress(0.1 + 0.85 * index / len(specs), f"baseline {index + 1}/{len(specs)}: {spec.label}")
        tags = {TAG_PROJECT: project_slug, TAG_KIND: "baseline", "workbench.baseline": spec.name}
        if job_id:
            tags[TAG_JOB] = job_id
        run = client.create_run(experiment_id, run_name=f"baseline-{spec.name}", tags=tags)
        run_id = run.info.run_id
        entry: dict[str, Any] = {"name": spec.name, "label": spec.label, "kind": spec.kind, "run_id": run_id}
        started = time.perf_counter()
        try:
            params = {**common_params, **spec.as_params()}
            if spec.kind == "heuristic" and heuristic:
                from workbench.design.heuristics import Rule

                params["rule"] = Rule.from_dict(heuristic).describe()
            outcome = _fit_predict(spec, frames, task_type=task_type, heuristic=heuristic, classes=classes)
            if threshold is not None and spec.kind != "heuristic" and outcome.proba is not None:
                from workbench.serving.signature import apply_threshold

                # The labels a served binary model gives (the canvas's decision threshold), so the bar
                # is measured like the tuned versions' holdout metrics; a rule's labels stay the rule's.
                outcome = _Outcome(pred=apply_threshold(outcome.proba, classes or [], threshold), proba=outcome.proba)
                params["decision_threshold"] = threshold
            metrics = compute_metrics(
                task_type=task_type, y_true=frames.y_holdout.to_numpy(), y_pred=outcome.pred,
                y_proba=outcome.proba, classes=classes,
            )
            entry["seconds"] = round(time.perf_counter() - started, 3)
            # ``holdout_<metric>``: the names a tuned version logs for the same holdout, so Compare lines
            # them up; the plain names stay for the filters and views written against them.
            logged = {**metrics, **{f"holdout_{k}": v for k, v in metrics.items()}, "fit_seconds": entry["seconds"]}
            log_run_batch(client, run_id, params=params, metrics=logged,
                          tags={"mlflow.note.content": f"Baseline {spec.label} on the project holdout."})
            title = f"{spec.label} · holdout"
            if task_type == "classification":
                assert classes is not None
                matrix = confusion(frames.y_holdout.to_numpy(), outcome.pred, classes)
                log_figure_artifact(client, run_id, confusion_figure(matrix, classes, title=title), "confusion_matrix")
                log_json_artifact(client, run_id, {"classes": classes, "matrix": matrix}, "confusion_matrix")
                if outcome.proba is not None:
                    log_figure_artifact(
                        client, run_id, roc_figure(frames.y_holdout.to_numpy(), outcome.proba, classes, title=title),
                        "roc",
                    )
                    if len(classes) == 2:  # the PR curve beside ROC, as a refit binary model logs it
                        log_figure_artifact(
                            client, run_id,
                            pr_figure(frames.y_holdout.to_numpy(), outcome.proba, classes, title=title), "pr",
                        )
                entry["confusion"] = matrix
            else:
                log_figure_artifact(
                    client, run_id, residual_figure(frames.y_holdout.to_numpy(), outcome.pred, title=title), "residuals"
                )
            client.set_terminated(run_id, "FINISHED")
            entry.update(status="succeeded", metrics=metrics, params=spec.as_params())
        except WorkbenchError as exc:
            # JobCancelled is a WorkbenchError too: close the run as killed and stop.
            from workbench.errors import JobCancelled

            if isinstance(exc, JobCancelled):
                client.set_terminated(run_id, "KILLED")
                raise
            client.set_tag(run_id, "workbench.error", str(exc)[:5000])
            client.set_terminated(run_id, "FAILED")
            entry.update(status="failed", error=str(exc), metrics={})
        except Exception as exc:  # one broken baseline must not hide the others
            client.set_tag(run_id, "workbench.error", traceback.format_exc()[-5000:])
            client.set_terminated(run_id, "FAILED")
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}", metrics={})
        results.append(entry)
    best = choose_best(results, metric=config.primary_metric, direction=config.metric_direction)
    if best is None:
        errors = "; ".join(f"{r['name']}: {r.get('error', 'no ' + config.primary_metric)}" for r in results)
        raise WorkbenchError(
            f"No baseline produced the primary metric {config.primary_metric!r} on the holdout ({errors})."
        )
    client.set_tag(best["run_id"], "workbench.best_baseline", "true")
    return {
        "project": project_slug,
        "task_type": task_type,
        "target": frames.target,
        "primary_metric": config.primary_metric,
        "metric_direction": config.metric_direction,
        "min_uplift": config.min_uplift,
        "experiment_id": experiment_id,
        "split": split_dict(frames.split),
        "dataset": {"id": frames.dataset.id, "version": frames.dataset.version,
                    "content_hash": frames.dataset.content_hash},
        "classes": classes,
        "baselines": results,
        "best": _best_summary(best, metric=config.primary_metric, direction=config.metric_direction),
    }


def latest_baseline_result(session: Session, *, project: Project) -> tuple[str, dict[str, Any]] | None:
    """``(job id, result)`` of the project's newest succeeded baseline job, or None."""
    from workbench.jobs import list_jobs

    jobs = list_jobs(session, project=project, kind="baseline", statuses=("succeeded",), limit=1)
    if not jobs or not jobs[0].result:
        return None
    return jobs[0].id, dict(jobs[0].result)


def bar_to_beat(session: Session, *, project: Project) -> BarToBeat | None:
    """The bar to beat: the best baseline of the newest succeeded baseline job, by today's primary metric.

    The metric comes from :func:`workbench.design.project_config.project_config`, so changing the
    primary metric in the canvas moves the bar without re-running the baselines (every
    baseline's metrics are in the job result). None when no baseline job has succeeded.
    """
    from workbench.design.project_config import project_config

    latest = latest_baseline_result(session, project=project)
    if latest is None:
        return None
    job_id, result = latest
    config = project_config(session, project=project)
    metric, direction = config.primary_metric, config.metric_direction
    best = choose_best(result.get("baselines", []), metric=metric, direction=direction)
    if best is None:
        stored = result.get("best")
        if not stored:
            return None
        summary = stored
    else:
        summary = _best_summary(best, metric=metric, direction=direction)
    split = result.get("split") or {}
    return BarToBeat(
        metric=summary["metric"],
        value=float(summary["value"]),
        direction=summary["direction"],
        baseline=summary["name"],
        run_id=summary.get("run_id"),
        job_id=job_id,
        label=summary.get("label", summary["name"]),
        min_uplift=float(config.min_uplift),
        split_id=split.get("id"),
        dataset_id=(result.get("dataset") or {}).get("id"),
    )
