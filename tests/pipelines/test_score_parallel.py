"""Batch scoring on several predict workers (issue 16 item 3): the same output, in order, logged once.

A real champion trained by the real pipelines on the messy tips data (tests/helpers/messy_data.py:
gaps, string categories, a date, a column name with a trailing space) scores the same file with one
worker and with two; the outputs, the probabilities and the prediction log must agree bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.helpers.messy_data import train_messy_champion, write_messy_csv
from tests.helpers.registered_model import module_home, seed_mlflow_store
from workbench.errors import InvalidInput


@dataclass(frozen=True)
class Champion:
    slug: str
    folder: Path


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Champion]:
    from workbench.settings import get_settings

    with module_home(tmp_path_factory, "parallel") as home:
        get_settings().ensure_home()
        seed_mlflow_store(get_settings().mlflow_tracking_uri)
        slug = train_messy_champion(home.parent, name="Tips parallel", n=1500, seed=4)
        yield Champion(slug=slug, folder=home.parent)


def _score(champion: Champion, source: Path, output: Path, *, workers: int, chunk_rows: int = 311):
    """score_file with ``workers`` predict threads; returns the result and the log segments in arrival order."""
    from workbench.prediction_log import LogSegment
    from workbench.serving.batch import score_file
    from workbench.serving.model_loader import load_model

    segments: list[LogSegment] = []
    result = score_file(load_model(champion.slug), source, output, chunk_rows=chunk_rows, workers=workers,
                        log_segment=segments.append)
    return result, segments


def _row_index(request_ids: pd.Series) -> np.ndarray:
    """The row number each request id carries (``<token>-<index>``; the token differs per run)."""
    return request_ids.str.rsplit("-", n=1).str[1].astype(np.int64).to_numpy()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_two_workers_give_the_single_thread_output_in_order_on_messy_data(
    champion: Champion, tmp_path: Path, suffix: str
) -> None:
    source = tmp_path / "tips.csv"
    frame = write_messy_csv(source, n=4000, seed=11)
    outputs = {}
    for workers in (1, 2):
        result, segments = _score(champion, source, tmp_path / f"out-{workers}{suffix}", workers=workers)
        assert result.rows == len(frame) and result.chunks == -(-len(frame) // 311)
        read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
        out = read(tmp_path / f"out-{workers}{suffix}")
        # In input order: the i-th output row is the i-th input row, and carries request id i.
        assert np.array_equal(_row_index(out["request_id"]), np.arange(len(frame)))
        assert out["total bill "].equals(frame["total bill "]) and out["day"].equals(frame["day"])
        # The log: every row exactly once, each segment's rows those of its place in the file.
        firsts = sorted(s.first_index for s in segments)
        assert firsts == list(range(0, len(frame), 311)) and sum(s.rows for s in segments) == len(frame)
        assert [s.first_index for s in segments] == firsts  # written in input order too
        logged = pd.concat([s.table.to_pandas() for s in segments], ignore_index=True)
        assert np.array_equal(_row_index(logged["request_id"]), np.arange(len(frame)))
        assert logged["ts"].is_monotonic_increasing  # times never go back, whichever worker finished first
        assert logged["prediction"].astype(str).tolist() == out["prediction"].astype(str).tolist()
        outputs[workers] = out
    one, two = outputs[1], outputs[2]
    proba = [c for c in one.columns if c.startswith("proba_")]
    assert proba and one["prediction"].nunique() == 2  # a real classifier, both classes predicted
    assert one.drop(columns=["request_id"]).equals(two.drop(columns=["request_id"]))  # bit for bit
    assert all(np.array_equal(one[c].to_numpy(), two[c].to_numpy()) for c in proba)


def test_a_score_job_on_two_workers_logs_every_row_once(champion: Champion, tmp_path: Path) -> None:
    from workbench.db import session_scope
    from workbench.jobs import create_job
    from workbench.jobs.runner import run_job
    from workbench.prediction_log import count_rows, log_frame
    from workbench.projects import get_project
    from workbench.serving.batch import default_workers
    from workbench.serving.deployments import batch_deployment

    assert default_workers() == 2  # the machine has two cores: the job below predicts on two threads
    source = tmp_path / "tips.csv"
    frame = write_messy_csv(source, n=2500, seed=12)
    with session_scope() as session:
        project = get_project(session, slug=champion.slug)
        job_id = create_job(session, kind="score", project=project, actor="test", params={
            "input_path": str(source), "output_path": str(tmp_path / "out.parquet"), "chunk_rows": 200}).id
    assert run_job(job_id) == "succeeded"
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    with session_scope() as session:
        project = get_project(session, slug=champion.slug)
        deployment_id = batch_deployment(session, project=project, alias="champion", actor="test").id
        assert count_rows(session, deployment_id=deployment_id) >= len(frame)
        log = log_frame(session, deployment_id=deployment_id, limit=10**6)
    mine = log[log["request_id"].isin(set(out["request_id"]))]
    assert len(mine) == len(frame) and mine["request_id"].is_unique
    by_id = mine.set_index("request_id").loc[out["request_id"]]
    assert by_id["prediction"].astype(str).tolist() == out["prediction"].astype(str).tolist()


def test_a_failing_chunk_fails_the_job_cleanly(champion: Champion, tmp_path: Path) -> None:
    """A bad value in the fourth chunk: nothing from it or after it is logged, and no output is left."""
    source = tmp_path / "tips.csv"
    frame = write_messy_csv(source, n=2000, seed=13)
    frame["size"] = frame["size"].astype(float)
    frame.loc[3 * 311 + 5, "size"] = 2.5  # the party size is an integer in the signature
    frame.to_csv(source, index=False, date_format="%Y-%m-%d")
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidInput) as info:
        _score(champion, source, tmp_path / "out" / "scored.parquet", workers=2)
    assert info.value.field == "size" and "2.5" in str(info.value)
    assert list((tmp_path / "out").iterdir()) == []  # no output, no temporary file

    from workbench.prediction_log import LogSegment
    from workbench.serving.batch import score_file
    from workbench.serving.model_loader import load_model

    logged: list[LogSegment] = []
    with pytest.raises(InvalidInput):
        score_file(load_model(champion.slug), source, tmp_path / "out" / "scored.csv", chunk_rows=311, workers=2,
                   log_segment=logged.append)
    assert [s.first_index for s in logged] == [0, 311, 622]  # the chunks before the bad one, once each
    assert list((tmp_path / "out").iterdir()) == []


def test_the_batch_workers_setting_chooses_the_worker_count(tmp_path: Path) -> None:
    from workbench.serving.batch import default_workers
    from workbench.settings import load_settings

    base = {"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_CONFIG": str(tmp_path / "none.toml")}
    assert default_workers(load_settings({**base, "WORKBENCH_BATCH_WORKERS": "1"})) == 1
    assert default_workers(load_settings({**base, "WORKBENCH_BATCH_WORKERS": "3"})) == 3
    assert default_workers(load_settings(base)) == min(2, len(os.sched_getaffinity(0)))
