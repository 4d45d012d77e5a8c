"""Registered model versions for the rollout tests: real sklearn Pipelines on messy data, one slow, one failing.

The slow and failing versions are honest models: the same preprocessing and estimator as the
others with one more fitted step (:class:`Hesitant`) that sleeps or raises when it transforms,
saved through skops with its trusted type, as the train pipeline saves any model. The step only
misbehaves once armed after fitting, so registration (which predicts to infer the signature)
stays quick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from tests.helpers.messy_data import SPACED_COLUMN, TARGET, messy_tips

if TYPE_CHECKING:
    from workbench.rollouts import RolloutPlan

#: The messy columns the rollout models read (the date column left out: not needed to route).
FEATURES = (SPACED_COLUMN, "sex", "smoker", "day", "time", "size", "party_age")
#: The request field the canary routes on (not a model feature).
KEY_COLUMN = "customer"


class Hesitant(TransformerMixin, BaseEstimator):
    """A pass-through step that, once armed, sleeps ``sleep`` seconds or raises when ``fail``."""

    def __init__(self, sleep: float = 0.0, fail: bool = False) -> None:
        self.sleep = sleep
        self.fail = fail

    def fit(self, x: Any, y: Any = None) -> Hesitant:
        self.armed_ = False
        return self

    def transform(self, x: Any) -> Any:
        if getattr(self, "armed_", False):
            if self.fail:
                raise RuntimeError("the challenger's hesitant step failed on purpose")
            time.sleep(self.sleep)
        return x


def arm(pipeline: Any) -> None:
    """Make the fitted Pipeline's :class:`Hesitant` step misbehave from now on (``after_fit``)."""
    pipeline.named_steps["hesitant"].armed_ = True


def messy_pipeline(*, c: float = 1.0, sleep: float = 0.0, fail: bool = False) -> Any:
    """Imputing preprocessing (numbers: median, strings: "missing" then one-hot) and a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = [SPACED_COLUMN, "size", "party_age"]
    strings = ["sex", "smoker", "day", "time"]
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                              OneHotEncoder(handle_unknown="ignore")), strings),
    ])
    steps: list[tuple[str, Any]] = [("pre", pre)]
    if sleep or fail:
        steps.append(("hesitant", Hesitant(sleep=sleep, fail=fail)))
    steps.append(("model", LogisticRegression(C=c, max_iter=500)))
    return Pipeline(steps)


def messy_frame(n: int = 600, *, seed: int = 3) -> pd.DataFrame:
    """The training frame: :func:`~tests.helpers.messy_data.messy_tips` with the rollout features and target."""
    return messy_tips(n, seed=seed)[[*FEATURES, TARGET]]


def messy_requests(n: int, *, seed: int = 5, customers: int | None = None) -> list[dict[str, Any]]:
    """JSON request records from fresh messy rows (missing values as null, string categories), with a
    ``customer`` key (``customers`` distinct ones, default one per record)."""
    frame = messy_tips(n, seed=seed)[list(FEATURES)]
    records = []
    for i, row in enumerate(frame.to_dict("records")):
        record = {k: (None if isinstance(v, float) and np.isnan(v) else (v.item() if hasattr(v, "item") else v))
                  for k, v in row.items()}
        record[KEY_COLUMN] = f"c{i % customers if customers else i}"
        records.append(record)
    return records


@dataclass(frozen=True)
class RolloutVersions:
    """A project with four registered versions: champion, challenger, a slow one and a failing one."""

    slug: str
    champion: str
    challenger: str
    slow: str
    failing: str


def register_version(slug: str, pipeline: Any, alias: str | None = None, after_fit: Any = None) -> str:
    """Fit ``pipeline`` on the messy training frame and register it as a version of ``slug``; the version."""
    from tests.helpers.registered_model import register_model
    from workbench.settings import get_settings

    settings = get_settings()
    return register_model(slug, tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                          frame=messy_frame(), features=FEATURES, target=TARGET, pipeline=pipeline, alias=alias,
                          after_fit=after_fit).version


def register_rollout_versions(name: str, *, slow_seconds: float = 1.5) -> RolloutVersions:
    """Create project ``name`` in the current home and register its four versions (aliases champion, challenger)."""
    from workbench.db import session_scope
    from workbench.projects import create_project
    from workbench.settings import get_settings

    get_settings().ensure_home()
    with session_scope() as session:
        slug = create_project(session, name=name, task_type="classification", target=TARGET, actor="test").slug

    def register(pipeline: Any, alias: str | None, after_fit: Any = None) -> str:
        return register_version(slug, pipeline, alias, after_fit)

    return RolloutVersions(
        slug=slug,
        champion=register(messy_pipeline(c=1.0), "champion"),
        # A much stronger regularisation: the two versions disagree on some records.
        challenger=register(messy_pipeline(c=0.005), "challenger"),
        slow=register(messy_pipeline(c=0.005, sleep=slow_seconds), None, arm),
        failing=register(messy_pipeline(c=0.005, fail=True), None, arm),
    )


def shadow_rollout_row(versions: RolloutVersions, challenger: str) -> tuple[RolloutPlan, int]:
    """A running shadow rollout on a new web deployment, as the service API records one."""
    from sqlalchemy import select

    from workbench.db import session_scope
    from workbench.db.models import Project, Rollout
    from workbench.rollouts import RolloutPlan
    from workbench.serving.deployments import create_deployment

    with session_scope() as session:
        project = session.scalars(select(Project).where(Project.slug == versions.slug)).one()
        deployment_id = create_deployment(session, project=project, mode="web", status="running").id
        row = Rollout(project_id=project.id, deployment_id=deployment_id, mode="shadow", share=0.0,
                      champion_version=versions.champion, challenger_version=challenger, status="running",
                      settings={}, started_by="test")
        session.add(row)
        session.flush()
        plan = RolloutPlan(rollout_id=int(row.id), deployment_id=deployment_id, mode="shadow", share=0.0,
                           champion_version=versions.champion, challenger_version=challenger, key_column=None)
        return plan, deployment_id
