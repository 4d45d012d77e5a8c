"""Where a dataset's profile is stored and whether a current one is: no pandas here, so Home's journey
(which asks whether the data was profiled) does not pay for importing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Dataset, Project

PROFILE_VERSION = 2  # 2: low-cardinality integers are categorical (analysis_kind)


def profile_path(dataset: Dataset) -> Path:
    """Where the profile of ``dataset`` is stored: beside its Parquet file."""
    return Path(dataset.path).with_suffix(".profile.json")


def load_profile(dataset: Dataset) -> dict[str, Any] | None:
    """The stored profile of ``dataset``, or None when it was not computed yet (or is stale)."""
    path = profile_path(dataset)
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("content_hash") != dataset.content_hash or data.get("profile_version") != PROFILE_VERSION:
        return None
    return data


def has_profile(dataset: Dataset) -> bool:
    """True when a current profile of ``dataset`` is stored."""
    return load_profile(dataset) is not None


def project_has_profile(session: Session, *, project: Project) -> bool:
    """True when the project's latest dataset version has a stored, current profile."""
    # The newest version, as workbench.data.datasets.latest_dataset picks it (that module needs pandas).
    dataset = session.scalar(
        select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.version.desc()).limit(1)
    )
    return dataset is not None and has_profile(dataset)
