"""Register a small real sklearn Pipeline in a test home's MLflow registry, with the alias ``champion``.

The model is what the train pipeline registers: a whole Pipeline (preprocessing + estimator),
saved with a signature through skops. Everything goes through an ``MlflowClient`` with an
explicit tracking URI, so no global MLflow state leaks between tests.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ("age", "plan", "monthly_fee")
PLANS = ("basic", "plus", "pro")


@dataclass(frozen=True)
class RegisteredModel:
    """What a test needs to know about the model it registered."""

    name: str
    version: str
    run_id: str
    tracking_uri: str
    frame: pd.DataFrame  # the training frame, target included
    target: str


def tiny_frame(n: int = 120, *, seed: int = 0, task: str = "classification") -> pd.DataFrame:
    """A small, deterministic churn-like frame: two numeric columns, one categorical, a target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, size=n).astype("int64"),
            "plan": rng.choice(PLANS, size=n),
            "monthly_fee": rng.normal(30.0, 10.0, size=n).round(2),
        }
    )
    score = (frame["age"] < 35).astype(int) + (frame["plan"] == "basic").astype(int)
    if task == "classification":
        frame["churned"] = np.where(score + rng.random(n) > 1.2, "yes", "no")
    else:
        frame["churned"] = frame["monthly_fee"] * 2 + frame["age"] * 0.1 + rng.normal(0, 1, n)
    return frame


def build_pipeline(task: str = "classification", *, variant: int = 0) -> Any:
    """A preprocessing + estimator Pipeline; ``variant`` changes the estimator so versions differ."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "monthly_fee"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    if task == "classification":
        estimator: Any = LogisticRegression(C=1.0 if variant == 0 else 0.01, max_iter=200)
    else:
        estimator = LinearRegression(fit_intercept=variant == 0)
    return Pipeline([("pre", pre), ("model", estimator)])


def _mlflow_template() -> Path:
    """An empty, migrated MLflow SQLite DB, built once per machine and MLflow version.

    Creating MLflow's tables runs its whole Alembic history (about ten seconds on a busy
    machine); copying a ready file is instant, and the copy is still a real MLflow store.
    """
    import os

    import mlflow
    from mlflow import MlflowClient

    template = Path(tempfile.gettempdir()) / f"workbench-test-mlflow-{mlflow.__version__}.db"
    if not template.exists():
        scratch = template.with_name(f"{template.name}.{os.getpid()}.tmp")
        MlflowClient(tracking_uri=f"sqlite:///{scratch}").search_experiments()
        os.replace(scratch, template)  # atomic: parallel test processes never see a half-built file
    return template


def seed_mlflow_store(tracking_uri: str) -> None:
    """Copy the template DB to ``tracking_uri``'s SQLite file when that file does not exist yet."""
    import shutil

    if not tracking_uri.startswith("sqlite:///"):
        return
    target = Path(tracking_uri[len("sqlite:///") :])
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_mlflow_template(), target)


def _client_and_experiment(tracking_uri: str, name: str, artifacts_dir: Path) -> tuple[Any, str]:
    try:  # the shared tracking helpers (workbench.tracking) when present
        from dataclasses import replace

        from workbench.settings import get_settings
        from workbench.tracking import ensure_experiment, get_client

        settings = replace(get_settings(), mlflow_tracking_uri=tracking_uri)
        return get_client(settings), ensure_experiment(project_slug=name, settings=settings)
    except ImportError:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment = client.get_experiment_by_name(f"workbench/{name}")
        if experiment is not None:
            return client, experiment.experiment_id
        location = (artifacts_dir / name).resolve().as_uri()
        return client, client.create_experiment(f"workbench/{name}", artifact_location=location)


def register_model(
    name: str,
    *,
    tracking_uri: str,
    artifacts_dir: Path,
    task: str = "classification",
    variant: int = 0,
    alias: str | None = "champion",
    frame: pd.DataFrame | None = None,
    pipeline: Any = None,
    features: tuple[str, ...] | list[str] = FEATURES,
    target: str = "churned",
    after_fit: Any = None,
) -> RegisteredModel:
    """Fit a Pipeline (default: a tiny one), log it with a signature, create a version, point ``alias`` at it.

    ``pipeline`` is an unfitted sklearn Pipeline to use instead (the benchmarks pass bigger models).
    ``after_fit(pipeline)`` runs on the fitted Pipeline once its signature is inferred, before it
    is saved (the rollout tests make a fitted step slow or failing from then on).
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    frame = tiny_frame(task=task) if frame is None else frame
    x = frame[list(features)]
    y = frame[target]
    pipeline = (pipeline if pipeline is not None else build_pipeline(task, variant=variant)).fit(x, y)
    signature = infer_signature(x, pipeline.predict(x))
    if after_fit is not None:
        after_fit(pipeline)
    import skops.io

    # skops refuses to load types it does not trust (random forests' trees, for example);
    # MLflow records this list in the MLmodel file and passes it back at load time.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)) or None
    seed_mlflow_store(tracking_uri)
    client, experiment_id = _client_and_experiment(tracking_uri, name, artifacts_dir)
    run = client.create_run(experiment_id, tags={"workbench.project": name, "workbench.kind": "best"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        import sklearn

        # Explicit requirements: inferring them starts a subprocess that re-imports the model (20 s+).
        mlflow.sklearn.save_model(
            pipeline, str(path), signature=signature, pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            skops_trusted_types=trusted,
        )
        client.log_artifacts(run.info.run_id, str(path), "model")
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except Exception as exc:  # already registered by an earlier call in the same test
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    source = f"{client.get_run(run.info.run_id).info.artifact_uri}/model"
    version = client.create_model_version(name, source=source, run_id=run.info.run_id)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return RegisteredModel(
        name=name,
        version=str(version.version),
        run_id=run.info.run_id,
        tracking_uri=tracking_uri,
        frame=frame,
        target=target,
    )


def set_alias(model: RegisteredModel, alias: str, version: str) -> None:
    """Move ``alias`` of the model to ``version`` (what a promotion does)."""
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=model.tracking_uri, registry_uri=model.tracking_uri).set_registered_model_alias(
        model.name, alias, version
    )


def create_project_with_model(
    *, name: str = "Churn", task: str = "classification", variant: int = 0, with_dataset: bool = False
) -> RegisteredModel:
    """Create a project in the current test home and register its champion (named after the slug).

    ``with_dataset`` gives the project :func:`tiny_frame` as its dataset (and its split, so a
    page can replay the holdout), and trains the model on that same frame.
    """
    from workbench.data.datasets import create_project_with_dataset
    from workbench.db import session_scope
    from workbench.projects import create_project
    from workbench.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    frame = tiny_frame(task=task) if with_dataset else None
    with session_scope() as session:
        if frame is not None:
            project = create_project_with_dataset(
                session, name=name, dataset_spec_or_frame=frame, target="churned", task_type=task
            )
        else:
            project = create_project(session, name=name, task_type=task, target="churned", actor="test")
        slug = project.slug
    return register_model(
        slug,
        tracking_uri=settings.mlflow_tracking_uri,
        artifacts_dir=settings.artifacts_dir,
        task=task,
        variant=variant,
        frame=frame,
    )


def module_home(tmp_path_factory: Any, name: str = "home") -> Any:
    """A context manager: a workbench home for a whole test module (registering a model costs seconds).

    Usage in a module-scoped fixture::

        with module_home(tmp_path_factory) as home: yield home
    """
    import contextlib
    import os

    import pytest

    @contextlib.contextmanager
    def _home() -> Any:
        from tests.conftest import reset_workbench_caches  # the same reset the function-scoped fixture uses

        base = tmp_path_factory.mktemp(name)
        with pytest.MonkeyPatch.context() as patch:
            for variable in ("WORKBENCH_DB_URL", "MLFLOW_TRACKING_URI", "WORKBENCH_OPTUNA_STORAGE",
                             "WORKBENCH_NATS_URL"):
                patch.delenv(variable, raising=False)
            patch.setenv("WORKBENCH_HOME", str(base / "home"))
            patch.setenv("WORKBENCH_CONFIG", str(base / "absent-workbench.toml"))
            patch.setenv("MLFLOW_DISABLE_TELEMETRY", os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"))
            reset_workbench_caches()
            try:
                yield base / "home"
            finally:
                reset_workbench_caches()

    return _home()


def log_reference(model: RegisteredModel) -> None:
    """Log the reference sample the train pipeline logs with a model (features, target, prediction) on its run."""
    from mlflow import MlflowClient

    frame = model.frame
    pipeline = build_pipeline().fit(frame[list(FEATURES)], frame["churned"])
    reference = frame.copy()
    reference["prediction"] = pipeline.predict(frame[list(FEATURES)])
    client = MlflowClient(tracking_uri=model.tracking_uri, registry_uri=model.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.parquet"
        reference.to_parquet(path, index=False)
        client.log_artifact(model.run_id, str(path), "reference")
