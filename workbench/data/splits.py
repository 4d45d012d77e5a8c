"""The project's one train/holdout split per dataset version, recorded and reused.

Every baseline, tuning trial and challenger is scored on the same holdout, so comparisons
are fair. The split is computed once (fixed seed), its holdout row positions are written as
a Parquet file beside the dataset and a ``splits`` row records it; afterwards it never
changes, whatever seed or fraction a later caller passes.

Strategies, chosen from the project:
- ``time``: the project has a time column; the latest ``holdout_fraction`` of the rows (by
  time) form the holdout, so a model is always judged on the future.
- ``stratified``: classification; class proportions are the same in train and holdout.
- ``random``: regression without time, or a classification whose rarest class is too small
  to stratify.
Rows whose target is missing are in neither part.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.data.datasets import latest_dataset, load_frame
from workbench.db.models import Dataset, Project, Split
from workbench.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

STRATEGIES = ("stratified", "time", "random")
HOLDOUT_COLUMN = "row"
MIN_ROWS = 4


@dataclass
class SplitFrames:
    """The train and holdout rows of a project's dataset, ready for fitting and scoring.

    ``feature_columns`` excludes the target and the time column; the time column stays in
    the frames so that time-aware baselines (persistence) and plots can use it. The frames
    keep the dataset's row positions as their index. For a ``time`` split both frames are
    in time order.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    split: Split
    dataset: Dataset
    feature_columns: list[str]
    target: str
    time_column: str | None = None

    @property
    def X_train(self) -> pd.DataFrame:
        """The model inputs of the train rows (scikit-learn's naming)."""
        return self.train[self.feature_columns]

    @property
    def X_holdout(self) -> pd.DataFrame:
        """The model inputs of the holdout rows."""
        return self.holdout[self.feature_columns]

    @property
    def y_train(self) -> pd.Series:
        return self.train[self.target]

    @property
    def y_holdout(self) -> pd.Series:
        return self.holdout[self.target]


def _holdout_path(dataset: Dataset, *, seed: int) -> Path:
    path = Path(dataset.path)
    return path.with_name(f"{path.stem}.holdout-seed{seed}.parquet")


def _time_order(values: pd.Series) -> np.ndarray:
    """Row positions sorted by time (stable; unparseable times first, so they train)."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        keys = values
    else:
        keys = pd.to_datetime(values, errors="coerce", utc=True)
    order = pd.Series(keys).reset_index(drop=True).sort_values(kind="mergesort", na_position="first")
    return np.asarray(order.index, dtype=np.int64)


def _can_stratify(y: pd.Series, n_holdout: int) -> bool:
    counts = y.value_counts()
    # train_test_split needs two members per class and room for every class on both sides.
    enough = counts.min() >= 2 and n_holdout >= len(counts) and len(y) - n_holdout >= len(counts)
    return bool(len(counts) >= 2 and enough)


def compute_holdout(
    frame: pd.DataFrame,
    *,
    task_type: str,
    target: str,
    time_column: str | None,
    seed: int,
    holdout_fraction: float,
) -> tuple[str, np.ndarray, int]:
    """Pick the holdout rows: ``(strategy, holdout positions, number of labelled rows)``. Pure."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    if target not in frame.columns:
        raise InvalidInput(
            f"The target column {target!r} is not in the dataset; columns are {', '.join(map(str, frame.columns))}.",
            field="target",
        )
    labelled = np.flatnonzero(frame[target].notna().to_numpy())
    n = len(labelled)
    if n < MIN_ROWS:
        raise InvalidInput(
            f"The dataset has {n} rows with a target value; a train/holdout split needs at least {MIN_ROWS}.",
            field="dataset",
        )
    n_holdout = min(n - 1, max(1, math.ceil(n * holdout_fraction)))
    if time_column:
        if time_column not in frame.columns:
            raise InvalidInput(
                f"The time column {time_column!r} is not in the dataset; fix the project's time column.",
                field="time_column",
            )
        order = _time_order(frame[time_column].iloc[labelled])
        return "time", np.sort(labelled[order[-n_holdout:]]), n
    y = frame[target].iloc[labelled]
    stratify = y if task_type == "classification" and _can_stratify(y, n_holdout) else None
    _, holdout = train_test_split(labelled, test_size=n_holdout, random_state=seed, shuffle=True, stratify=stratify)
    return ("stratified" if stratify is not None else "random"), np.sort(np.asarray(holdout, dtype=np.int64)), n


def _write_positions(path: Path, positions: np.ndarray) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent reader never sees half a file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pd.DataFrame({HOLDOUT_COLUMN: positions.astype("int64")}).to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _existing(session: Session, *, project: Project, dataset: Dataset) -> Split | None:
    return session.scalar(
        select(Split).where(Split.project_id == project.id, Split.dataset_id == dataset.id).limit(1)
    )


def get_or_create_split(
    session: Session,
    *,
    project: Project,
    dataset: Dataset | None = None,
    seed: int = 42,
    holdout_fraction: float = 0.2,
) -> Split:
    """The split of ``project`` on ``dataset`` (default: its newest), created on first use.

    Once created, the split is returned as recorded: ``seed`` and ``holdout_fraction`` only
    apply to the first call, so every later run uses the very same holdout.
    """
    if not isinstance(holdout_fraction, int | float) or not 0.0 < float(holdout_fraction) < 1.0:
        raise InvalidInput(
            f"holdout_fraction must be a number strictly between 0 and 1 (0.2 is usual); got {holdout_fraction!r}.",
            field="holdout_fraction",
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidInput(f"seed must be a non-negative integer; got {seed!r}.", field="seed")
    dataset = dataset or latest_dataset(session, project=project)
    if dataset.project_id != project.id:
        raise InvalidInput(
            f"Dataset {dataset.id} belongs to another project than {project.slug!r}.", field="dataset"
        )
    found = _existing(session, project=project, dataset=dataset)
    if found is not None and Path(found.holdout_path).is_file():
        return found
    frame = load_frame(dataset)
    if found is not None:
        # The row survived but its file vanished (home folder copied without it): recompute
        # with the recorded parameters, which gives the same rows (the split is deterministic).
        _, positions, _ = compute_holdout(
            frame,
            task_type=project.task_type,
            target=project.target,
            time_column=project.time_column,
            seed=found.seed,
            holdout_fraction=found.holdout_fraction,
        )
        _write_positions(Path(found.holdout_path), positions)
        return found
    strategy, positions, n_labelled = compute_holdout(
        frame,
        task_type=project.task_type,
        target=project.target,
        time_column=project.time_column,
        seed=seed,
        holdout_fraction=float(holdout_fraction),
    )
    path = _holdout_path(dataset, seed=seed)
    _write_positions(path, positions)
    split = Split(
        project_id=project.id,
        dataset_id=dataset.id,
        strategy=strategy,
        seed=seed,
        holdout_fraction=float(holdout_fraction),
        holdout_path=str(path),
        n_train=int(n_labelled - len(positions)),
        n_holdout=len(positions),
    )
    try:
        with session.begin_nested():
            session.add(split)
            session.flush()
    except IntegrityError:
        # Another process recorded the split first; theirs wins (it holds the same rows).
        winner = _existing(session, project=project, dataset=dataset)
        if winner is None:
            raise
        return winner
    return split


def holdout_positions(split: Split) -> np.ndarray:
    """The recorded holdout row positions of ``split``."""
    import numpy as np
    import pandas as pd

    path = Path(split.holdout_path)
    if not path.is_file():
        raise NotFound(
            f"The holdout file of split {split.id} is missing at {path}; "
            "run the baselines again to recreate it from the recorded seed."
        )
    return np.asarray(pd.read_parquet(path)[HOLDOUT_COLUMN].to_numpy(), dtype=np.int64)


def feature_columns(columns: list[str], *, target: str, time_column: str | None) -> list[str]:
    """The model inputs: every column but the target and the time column."""
    return [c for c in columns if c != target and c != time_column]


def load_split_frames(
    session: Session,
    *,
    project: Project,
    dataset: Dataset | None = None,
    seed: int = 42,
    holdout_fraction: float = 0.2,
) -> SplitFrames:
    """Train and holdout frames of the project's split (created first if needed)."""
    import numpy as np

    split = get_or_create_split(
        session, project=project, dataset=dataset, seed=seed, holdout_fraction=holdout_fraction
    )
    dataset_row = session.get(Dataset, split.dataset_id)
    if dataset_row is None:
        raise NotFound(f"The dataset of split {split.id} no longer exists.")
    frame = load_frame(dataset_row)
    frame = frame.reset_index(drop=True)
    holdout_rows = holdout_positions(split)
    is_holdout = np.zeros(len(frame), dtype=bool)
    is_holdout[holdout_rows] = True
    labelled = frame[project.target].notna().to_numpy()
    train = frame.loc[labelled & ~is_holdout]
    holdout = frame.loc[is_holdout]
    if split.strategy == "time" and project.time_column:
        train = train.iloc[_time_order(train[project.time_column])]
        holdout = holdout.iloc[_time_order(holdout[project.time_column])]
    columns = [str(c) for c in frame.columns]
    return SplitFrames(
        train=train,
        holdout=holdout,
        split=split,
        dataset=dataset_row,
        feature_columns=feature_columns(columns, target=project.target, time_column=project.time_column),
        target=project.target,
        time_column=project.time_column,
    )


def split_dict(split: Split) -> dict[str, Any]:
    """The split as JSON-ready data (CLI ``--json``, MLflow params, the Baselines page)."""
    return {
        "id": split.id,
        "dataset_id": split.dataset_id,
        "strategy": split.strategy,
        "seed": split.seed,
        "holdout_fraction": split.holdout_fraction,
        "n_train": split.n_train,
        "n_holdout": split.n_holdout,
        "holdout_path": split.holdout_path,
        "created_at": split.created_at.isoformat() if split.created_at else None,
    }
