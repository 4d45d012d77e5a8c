"""A messy, real-world dataset for tests: plotly's bundled restaurant ``tips`` survey, enlarged.

The clean ``builtin:`` sets hide the defects real data shows (issue 11), so this frame has what a
new user's survey export has: missing values (5-10 %) in numeric and categorical columns, string
categories, a date column, a low-cardinality integer column, a trailing space in a column name and
a binary string target. Everything is seeded: the same ``seed`` gives the same frame, row for row.

The source is ``plotly.data.tips()``, a CSV that the plotly package ships on disk (no network).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: The target column: did the party tip more than 16 % of the bill (plus survey noise)?
TARGET = "generous"
#: The column whose name has a trailing space, as a spreadsheet export often has.
SPACED_COLUMN = "total bill "
#: Its name once normalised at ingest (surrounding whitespace stripped).
SPACED_COLUMN_NORMALISED = "total bill"
NUMERIC_WITH_GAPS = (SPACED_COLUMN, "party_age")
CATEGORICAL_WITH_GAPS = ("sex", "smoker", "time")
CATEGORICAL = ("sex", "smoker", "day", "time")
LOW_CARDINALITY_INT = "size"
DATE_COLUMN = "visit_date"
#: Every feature column, in the frame's order (the target excluded).
FEATURES = (SPACED_COLUMN, "sex", "smoker", "day", "time", "size", "party_age", DATE_COLUMN)
#: The share of missing values put in each column of NUMERIC_WITH_GAPS and CATEGORICAL_WITH_GAPS.
MISSING_SHARES = {SPACED_COLUMN: 0.07, "party_age": 0.09, "sex": 0.06, "smoker": 0.05, "time": 0.08}


def messy_tips(n: int = 3000, *, seed: int = 0) -> pd.DataFrame:
    """The messy frame: ``n`` rows resampled from plotly's tips with seeded jitter and gaps.

    Columns: ``"total bill "`` (float, trailing space in the name, 7 % missing), ``sex``,
    ``smoker``, ``time`` (strings, 5-8 % missing), ``day`` (string, complete), ``size``
    (int64, 1-6, complete), ``party_age`` (float, 9 % missing), ``visit_date`` (datetime64, a day
    in 2024) and ``generous`` ("yes" / "no"). The tip itself is dropped (it would leak the target).
    """
    import plotly.data

    source = plotly.data.tips()
    rng = np.random.default_rng(seed)
    rows = source.iloc[rng.integers(0, len(source), size=n)].reset_index(drop=True)
    bill = (rows["total_bill"] * rng.uniform(0.9, 1.1, size=n)).round(2)
    rate = rows["tip"] / rows["total_bill"] + rng.normal(0.0, 0.03, size=n)
    frame = pd.DataFrame(
        {
            SPACED_COLUMN: bill.astype("float64"),
            "sex": rows["sex"].astype(object),
            "smoker": rows["smoker"].astype(object),
            "day": rows["day"].astype(object),
            "time": rows["time"].astype(object),
            "size": rows["size"].astype("int64"),
            "party_age": rng.normal(40.0, 12.0, size=n).clip(18, 90).round(0),
            DATE_COLUMN: pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 366, size=n), unit="D"),
        }
    )
    # Older parties and smaller ones tip a bit more here, so several columns carry signal.
    rate = rate + (frame["party_age"] - 40.0) * 0.001 - (frame["size"] - 2) * 0.004
    frame[TARGET] = np.where(rate > 0.16, "yes", "no")
    for column, share in MISSING_SHARES.items():
        holes = rng.random(n) < share
        frame.loc[holes, column] = np.nan if column in NUMERIC_WITH_GAPS else None
    return frame


def write_messy_csv(path: Path, n: int = 3000, *, seed: int = 0) -> pd.DataFrame:
    """Write :func:`messy_tips` to ``path`` as CSV (empty cells for the gaps); return the frame."""
    frame = messy_tips(n, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, date_format="%Y-%m-%d")
    return frame


def train_messy_champion(
    folder: Path, *, name: str, n: int, seed: int, canvas_fields: dict[tuple[str, str], object] | None = None
) -> str:
    """A classification project on the messy CSV, baselined and tuned by the real pipelines; its slug.

    The CSV is written into ``folder``; ``canvas_fields`` (box, field) are set on the ML Canvas before
    training. The tuned version is made champion even when the gate flags it (close to the baselines),
    since the callers need a model to serve, not a verdict.
    """
    from tests.helpers.drifted_churn import set_canvas_fields
    from tests.helpers.jobs import run_job_ok
    from workbench.data.datasets import create_project_with_dataset
    from workbench.db import session_scope
    from workbench.settings import get_settings
    from workbench.tracking import get_client

    path = folder / "tips messy.csv"
    write_messy_csv(path, n=n, seed=seed)
    with session_scope() as session:
        slug = create_project_with_dataset(session, name=name, dataset_spec_or_frame=str(path), target=TARGET,
                                           task_type="classification").slug
    if canvas_fields:
        set_canvas_fields(slug, canvas_fields)
    run_job_ok(slug, "baseline")
    result = run_job_ok(slug, "train", {"models": ["linear"], "n_trials": 2, "folds": 3, "seed": 7})["result"]
    if not result["champion"]:
        get_client(get_settings()).set_registered_model_alias(slug, "champion", result["model_version"])
    return slug
