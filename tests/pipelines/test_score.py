"""Batch scoring end to end: a real registered Pipeline, real files, the real prediction log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from tests.helpers.registered_model import FEATURES, RegisteredModel, create_project_with_model, module_home
from workbench.db import session_scope
from workbench.db.models import Deployment, Job, PredictionLog, PredictionLogSegment
from workbench.errors import InvalidInput, NotFound
from workbench.jobs import create_job
from workbench.jobs.runner import run_job
from workbench.prediction_log import count_rows, log_frame
from workbench.projects import get_project


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "score"):
        yield create_project_with_model(name="Batch churn")


def _score_job(slug: str, **params: object) -> tuple[str, Job]:
    with session_scope() as session:
        project = get_project(session, slug=slug)
        job_id = create_job(session, kind="score", project=project, params=params, actor="test").id
    status = run_job(job_id)
    with session_scope() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
    return status, job


def _input(model: RegisteredModel, n: int) -> pd.DataFrame:
    frame = pd.concat([model.frame] * (n // len(model.frame) + 1), ignore_index=True).head(n)
    frame = frame[list(FEATURES)].copy()
    frame.insert(0, "customer_id", [f"c{i}" for i in range(n)])  # an extra column: passes through
    return frame


def _raw_pipeline(model: RegisteredModel):  # the same version, loaded independently
    import mlflow.sklearn

    from workbench.serving.model_loader import load_model

    return load_model(model.name).pipeline, mlflow


def test_csv_in_chunks_to_parquet_with_log(model: RegisteredModel, tmp_path: Path) -> None:
    source = _input(model, 250)
    source.to_csv(tmp_path / "in.csv", index=False)
    status, job = _score_job(
        model.name, input_path=str(tmp_path / "in.csv"), output_path=str(tmp_path / "out.parquet"), chunk_rows=100
    )
    assert status == "succeeded", job.error
    assert job.result["rows"] == 250 and job.result["chunks"] == 3
    assert job.result["model_version"] == model.version
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns[:2]) == ["request_id", "customer_id"]
    assert out["customer_id"].tolist() == source["customer_id"].tolist()
    pipeline, _ = _raw_pipeline(model)
    expected = pipeline.predict(source[list(FEATURES)])
    assert out["prediction"].tolist() == expected.tolist()
    expected_proba = pipeline.predict_proba(source[list(FEATURES)])
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].to_numpy(), expected_proba)
    assert out["request_id"].is_unique
    with session_scope() as session:
        deployment = session.get(Deployment, job.result["deployment_id"])
        assert deployment.mode == "batch" and deployment.model_version == model.version
        # One columnar segment per chunk; no row per prediction in prediction_log.
        token = out["request_id"].iloc[0].rsplit("-", 1)[0]
        segments = session.execute(
            select(PredictionLogSegment.first_index, PredictionLogSegment.rows)
            .where(PredictionLogSegment.token == token).order_by(PredictionLogSegment.first_index)
        ).all()
        assert [tuple(s) for s in segments] == [(0, 100), (100, 100), (200, 50)]
        assert session.scalar(select(func.count(PredictionLog.id))) == 0
        in_segments = session.scalar(select(func.sum(PredictionLogSegment.rows))
                                     .where(PredictionLogSegment.deployment_id == deployment.id))
        assert count_rows(session, deployment_id=deployment.id) == in_segments >= 250
        log = log_frame(session, deployment_id=deployment.id)
    log = log[log["request_id"].str.startswith(f"{token}-")].reset_index(drop=True)
    # Every scored row reads back from the log with the values of the output, in scoring order.
    assert log["request_id"].tolist() == out["request_id"].tolist()
    assert log["prediction"].tolist() == out["prediction"].tolist()
    np.testing.assert_allclose(log[["proba_no", "proba_yes"]].to_numpy(), expected_proba)
    pd.testing.assert_frame_equal(log[list(FEATURES)], source[list(FEATURES)].reset_index(drop=True))
    assert "customer_id" not in log.columns  # only the signature's features are logged
    assert (log["deployment_id"] == deployment.id).all() and log["ts"].is_monotonic_increasing
    assert (log["latency_ms"] > 0).all() and log["label"].isna().all()


def test_feedback_on_a_batch_prediction(model: RegisteredModel, tmp_path: Path) -> None:
    from workbench.prediction_log import record_feedback

    _input(model, 30).to_parquet(tmp_path / "in.parquet")
    status, job = _score_job(model.name, input_path=str(tmp_path / "in.parquet"),
                             output_path=str(tmp_path / "out.parquet"), chunk_rows=10)
    assert status == "succeeded", job.error
    out = pd.read_parquet(tmp_path / "out.parquet")
    target = out["request_id"].iloc[17]
    with session_scope() as session:
        labelled = record_feedback(session, request_id=target, label="yes")
        assert labelled.request_id == target and labelled.labelled_at is not None
    with session_scope() as session:
        record_feedback(session, request_id=target, label="no")  # a second label overwrites the first
    with session_scope() as session:
        log = log_frame(session, deployment_id=job.result["deployment_id"]).set_index("request_id")
        with pytest.raises(NotFound, match="No logged prediction"):
            record_feedback(session, request_id=f"{target.rsplit('-', 1)[0]}-30", label="no")  # past the last row
    assert log.loc[target, "label"] == "no" and pd.notna(log.loc[target, "labelled_at"])
    assert log["label"].notna().sum() == 1


def test_batch_deployment_is_reused(model: RegisteredModel, tmp_path: Path) -> None:
    _input(model, 30).to_parquet(tmp_path / "in.parquet")
    status_a, job_a = _score_job(model.name, input_path=str(tmp_path / "in.parquet"),
                                 output_path=str(tmp_path / "a.csv"))
    status_b, job_b = _score_job(model.name, input_path=str(tmp_path / "in.parquet"),
                                 output_path=str(tmp_path / "b.csv"))
    assert status_a == status_b == "succeeded"
    assert job_a.result["deployment_id"] == job_b.result["deployment_id"]
    out = pd.read_csv(tmp_path / "b.csv")
    assert len(out) == 30 and "proba_yes" in out.columns
    # Two runs scored the same rows: each got its own request ids, so both are logged.
    assert set(pd.read_csv(tmp_path / "a.csv")["request_id"]).isdisjoint(out["request_id"])


@pytest.mark.parametrize(
    ("mutate", "column", "message"),
    [
        (lambda f: f.drop(columns=["plan"]), "plan", "missing column 'plan'"),
        (lambda f: f.assign(age=["old"] * len(f)), "age", "Column 'age' must be an integer"),
        (lambda f: f.assign(monthly_fee=[f"{i}x" for i in range(len(f))]), "monthly_fee", "must be a number"),
    ],
)
def test_schema_error_leaves_no_output(model: RegisteredModel, tmp_path: Path, mutate, column: str,
                                       message: str) -> None:
    mutate(_input(model, 40)).to_csv(tmp_path / "bad.csv", index=False)
    status, job = _score_job(model.name, input_path=str(tmp_path / "bad.csv"), output_path=str(tmp_path / "o.parquet"))
    assert status == "failed"
    assert message in job.error and column in job.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # no output, no temp file


def test_late_type_error_removes_partial_output(model: RegisteredModel, tmp_path: Path) -> None:
    from workbench.serving.batch import score_file
    from workbench.serving.model_loader import load_model

    frame = _input(model, 300).astype({"age": "float64"})
    frame.loc[250, "age"] = 33.5  # fractional age only in the third chunk
    frame.to_parquet(tmp_path / "late.parquet")
    served = load_model(model.name)
    with pytest.raises(InvalidInput) as info:
        score_file(served, tmp_path / "late.parquet", tmp_path / "out.csv", chunk_rows=100)
    assert info.value.field == "age"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.parquet"]


def test_a_failed_log_write_leaves_no_output(model: RegisteredModel, tmp_path: Path) -> None:
    from workbench.prediction_log import LogSegment
    from workbench.serving.batch import score_file
    from workbench.serving.model_loader import load_model

    _input(model, 300).to_parquet(tmp_path / "in.parquet")
    seen: list[tuple[int, int]] = []

    def log_segment(segment: LogSegment) -> None:
        seen.append((segment.first_index, segment.rows))
        if len(seen) == 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        score_file(load_model(model.name), tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=100,
                   log_segment=log_segment)
    assert seen == [(0, 100), (100, 100)]  # stopped at the failed chunk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_cli_score_json(model: RegisteredModel, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from workbench.cli import main

    _input(model, 20).to_csv(tmp_path / "in.csv", index=False)
    result = CliRunner().invoke(main, ["score", model.name, str(tmp_path / "in.csv"), "-o",
                                       str(tmp_path / "out.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"] == 20 and data["model_version"] == model.version
    bad = CliRunner().invoke(main, ["score", model.name, str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.txt")])
    assert bad.exit_code == 2 and "output_path must end in .csv, .parquet" in bad.output


def test_cli_a_filesystem_uri_needs_the_spark_engine(model: RegisteredModel, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from workbench.cli import main

    result = CliRunner().invoke(main, ["score", model.name, "s3a://bucket/scores/in.parquet", "-o",
                                       str(tmp_path / "out.parquet")])
    assert result.exit_code == 2, result.output
    assert "'s3a://bucket/scores/in.parquet' is a filesystem URI, which only the Spark engine reads" in result.output
    assert "Traceback" not in result.output and not any(tmp_path.iterdir())
