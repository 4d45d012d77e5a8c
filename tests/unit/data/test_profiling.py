"""The data profile: per-column statistics, distributions, storage and speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.bad_inputs import good_frame
from workbench.data.datasets import create_project_with_dataset, latest_dataset
from workbench.data.profiling import (
    load_profile,
    missing_table,
    profile_frame,
    profile_path,
    project_has_profile,
    save_profile,
)
from workbench.db import session_scope


def test_profile_columns_match_the_data() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(10, 2, 500)
    values[:50] = np.nan
    frame = pd.DataFrame(
        {
            "v": values,
            "c": rng.choice(["a", "b", "c"], 500, p=[0.6, 0.3, 0.1]),
            "flag": rng.random(500) < 0.25,
            "when": pd.date_range("2024-01-01", periods=500, freq="h"),
        }
    )
    seen: list[tuple[int, int, str]] = []
    profile = profile_frame(frame, on_column=lambda done, total, name: seen.append((done, total, name)))
    assert seen == [(1, 4, "v"), (2, 4, "c"), (3, 4, "flag"), (4, 4, "when")]
    assert profile["n_rows"] == 500 and profile["missing_cells"] == 50
    v, c, flag, when = profile["columns"]
    assert (v["kind"], v["missing"], v["missing_share"]) == ("numeric", 50, 0.1)
    assert v["stats"]["mean"] == pytest.approx(np.nanmean(values))
    assert v["stats"]["median"] == pytest.approx(np.nanmedian(values))
    assert sum(v["histogram"]["counts"]) == 450
    assert len(v["histogram"]["edges"]) == len(v["histogram"]["counts"]) + 1
    assert c["kind"] == "categorical" and c["unique"] == 3
    assert [t["value"] for t in c["top"]] == ["a", "b", "c"]
    assert sum(t["count"] for t in c["top"]) == 500
    assert flag["kind"] == "boolean" and {t["value"] for t in flag["top"]} == {"True", "False"}
    assert when["kind"] == "datetime" and sum(when["histogram"]["counts"]) == 500
    assert when["stats"]["min"].startswith("2024-01-01")
    table = missing_table(profile)
    assert table.set_index("column").loc["v", "missing"] == 50


def test_constant_and_empty_columns_and_many_categories() -> None:
    frame = pd.DataFrame(
        {
            "const": [3.0] * 10,
            "empty": [np.nan] * 10,
            "cat": [f"k{i}" for i in range(10)],
        }
    )
    profile = profile_frame(frame)
    const, empty, cat = profile["columns"]
    assert const["histogram"]["counts"] == [10] and const["stats"]["std"] == 0.0
    assert empty["missing_share"] == 1.0 and empty["histogram"] is None
    assert cat["unique"] == 10 and cat["kind"] == "categorical"
    many = pd.DataFrame({"cat": [f"k{i % 30}" for i in range(300)]})
    top = profile_frame(many)["columns"][0]
    assert len(top["top"]) == 20 and top["other_count"] == 100


def test_profile_of_a_million_rows_takes_a_few_seconds() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 1000, n),
            "cat": rng.choice(["x", "y", "z", "w"], n),
            "flag": rng.random(n) < 0.5,
            "t": pd.date_range("2020-01-01", periods=n, freq="min"),
        }
    )
    started = time.perf_counter()
    profile = profile_frame(frame)
    elapsed = time.perf_counter() - started
    assert profile["n_rows"] == n
    # Generous bound for a shared 2-core machine; on an idle one it takes about 1 s.
    assert elapsed < 8, f"profiling 1M rows took {elapsed:.1f}s"


def test_profile_is_stored_beside_the_dataset(workbench_home: Path) -> None:
    with session_scope() as session:
        project = create_project_with_dataset(
            session, name="Prof", dataset_spec_or_frame=good_frame(), target="label", task_type="classification"
        )
        dataset = latest_dataset(session, project=project)
        assert not project_has_profile(session, project=project)
    assert load_profile(dataset) is None
    path = save_profile(dataset, profile_frame(good_frame()))
    assert path == profile_path(dataset) and path.parent == Path(dataset.path).parent
    loaded = load_profile(dataset)
    assert loaded is not None and loaded["n_cols"] == 6 and loaded["content_hash"] == dataset.content_hash
    with session_scope() as session:
        assert project_has_profile(session, project=project)
    # A profile that does not belong to this content is ignored.
    dataset.content_hash = "0" * 64
    assert load_profile(dataset) is None
