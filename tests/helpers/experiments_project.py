"""A project with real runs for the Experiments and Registry tests: a real baseline job and two real,
tiny tuning jobs (k-NN, a few trials), so the page sees baselines, trials, best runs, an Optuna study,
two registered versions (v1 champion) and evaluation plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.helpers.jobs import run_job_ok

TRAIN_PARAMS: dict[str, Any] = {"models": ["hist_gradient_boosting"], "n_trials": 4, "folds": 2, "seed": 3}


def xor_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A target no linear model learns (XOR of two signs): tuned k-NN beats the baselines."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    return pd.DataFrame({"x1": x1.round(4), "x2": x2.round(4), "colour": rng.choice(["red", "green", "blue"], n),
                         "label": np.where((x1 > 0) ^ (x2 > 0), "yes", "no")})


def seed_experiments_project(home: Path, *, name: str = "Xor", train_jobs: int = 2) -> dict[str, Any]:
    """Create the project and run its jobs; returns ``{"slug", "baseline", "train": [...]}``."""
    from tests.helpers.mlflow_store import seed_mlflow_store
    from workbench.data.datasets import create_project_with_dataset
    from workbench.db import session_scope

    seed_mlflow_store(home)
    with session_scope() as session:
        slug = create_project_with_dataset(session, name=name, dataset_spec_or_frame=xor_frame(), target="label",
                                           task_type="classification").slug
    baseline = run_job_ok(slug, "baseline")
    train = [run_job_ok(slug, "train", {**TRAIN_PARAMS, "seed": TRAIN_PARAMS["seed"] + i}) for i in range(train_jobs)]
    return {"slug": slug, "baseline": baseline, "train": train}
