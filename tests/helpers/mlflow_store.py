"""A ready MLflow tracking DB for a test home, copied from a per-process template.

Creating MLflow's SQLite schema runs dozens of migrations (10-20 s on a busy machine). A
test that only needs an empty store calls :func:`seed_mlflow_store` before anything opens
``<home>/mlflow.db``; the copy is a real, fully migrated MLflow DB.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _template() -> Path:
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="wb-mlflow-template-"))
    path = folder / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def seed_mlflow_store(home: Path) -> Path:
    """Put an empty, migrated ``mlflow.db`` into ``home`` (the default tracking URI's file)."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "mlflow.db"
    if not target.exists():
        shutil.copyfile(_template(), target)
    return target
