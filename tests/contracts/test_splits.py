"""The project's one split, recorded and reused, over SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from workbench.data.datasets import add_dataset, create_project_with_dataset
from workbench.data.splits import get_or_create_split, holdout_positions, load_split_frames, split_dict
from workbench.db import session_scope
from workbench.db.models import Split
from workbench.errors import InvalidInput
from workbench.projects import get_project


def _classification_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    # 25% positives, so stratification is visible against a random split.
    label = np.where(np.arange(n) % 4 == 0, "yes", "no")
    return pd.DataFrame({"x": rng.normal(size=n), "colour": rng.choice(["r", "g"], n), "label": label})


def _time_frame(n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    times = pd.date_range("2024-01-01", periods=n, freq="D")
    order = rng.permutation(n)  # stored out of time order on purpose
    return pd.DataFrame({"when": times[order], "x": rng.normal(size=n), "y": np.arange(n, dtype=float)[order]})


def test_stratified_split_keeps_class_proportions_and_is_reused(db_url: str) -> None:
    with session_scope(db_url) as session:
        project = create_project_with_dataset(
            session, name="Strat", dataset_spec_or_frame=_classification_frame(), target="label",
            task_type="classification",
        )
        split = get_or_create_split(session, project=project)
        assert split.strategy == "stratified"
        assert (split.n_train, split.n_holdout) == (160, 40)
        first_rows = holdout_positions(split).tolist()
    with session_scope(db_url) as session:
        project = get_project(session, slug="strat")
        frames = load_split_frames(session, project=project)
        assert frames.y_holdout.eq("yes").mean() == pytest.approx(0.25)
        assert frames.y_train.eq("yes").mean() == pytest.approx(0.25)
        assert frames.feature_columns == ["x", "colour"]
        assert not set(frames.train.index) & set(frames.holdout.index)
        # Stable: another call, even with another seed, returns the recorded split.
        again = get_or_create_split(session, project=project, seed=7, holdout_fraction=0.5)
        assert again.id == frames.split.id and again.seed == 42
        assert holdout_positions(again).tolist() == first_rows
        assert session.scalar(select(func.count()).select_from(Split)) == 1
        data = split_dict(again)
        assert data["strategy"] == "stratified" and data["n_holdout"] == 40


def test_time_column_puts_the_latest_rows_in_the_holdout(db_url: str) -> None:
    with session_scope(db_url) as session:
        project = create_project_with_dataset(
            session, name="Timed", dataset_spec_or_frame=_time_frame(), target="y", task_type="regression",
            time_column="when",
        )
        frames = load_split_frames(session, project=project)
        assert frames.split.strategy == "time"
        assert len(frames.holdout) == 20 and len(frames.train) == 80
        assert frames.train["when"].max() < frames.holdout["when"].min()
        # Both frames come in time order, and the time column is not a feature.
        assert frames.holdout["when"].is_monotonic_increasing and frames.train["when"].is_monotonic_increasing
        assert frames.holdout["y"].tolist() == [float(v) for v in range(80, 100)]
        assert "when" not in frames.feature_columns and "when" in frames.holdout.columns


def test_random_split_for_regression_and_one_split_per_dataset_version(db_url: str) -> None:
    frame = pd.DataFrame({"x": np.arange(50.0), "y": np.arange(50.0) * 2})
    with session_scope(db_url) as session:
        project = create_project_with_dataset(
            session, name="Reg", dataset_spec_or_frame=frame, target="y", task_type="regression"
        )
        first = get_or_create_split(session, project=project, holdout_fraction=0.3)
        assert first.strategy == "random" and first.n_holdout == 15
        add_dataset(session, project=project, frame=frame.assign(x=frame.x + 1), source="v2")
        second = get_or_create_split(session, project=project)
        assert second.id != first.id and second.dataset_id != first.dataset_id
        with pytest.raises(InvalidInput) as err:
            get_or_create_split(session, project=project, holdout_fraction=1.5)
        assert err.value.field == "holdout_fraction"


def test_missing_holdout_file_is_recreated_identically(db_url: str) -> None:
    from pathlib import Path

    with session_scope(db_url) as session:
        project = create_project_with_dataset(
            session, name="Lost", dataset_spec_or_frame=_classification_frame(60), target="label",
            task_type="classification",
        )
        split = get_or_create_split(session, project=project, seed=3)
        rows = holdout_positions(split).tolist()
        Path(split.holdout_path).unlink()
        again = get_or_create_split(session, project=project)
        assert again.id == split.id and holdout_positions(again).tolist() == rows
