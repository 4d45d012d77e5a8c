"""Outages are one line (issue 12 item 9): an unreachable store gives one ``Error:`` line and exit status 2.

The real ``workbench`` command runs in a subprocess against ports where nothing listens (connection
refused) and against a socket that accepts connections but never answers (only a timeout ends the
wait). Each store URL carries a password, which must never be printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.errors import StoreUnavailable, redact_url

PASSWORD = "s3cret-Pw"
WORKBENCH = Path(sys.executable).parent / "workbench"
# A generous bound: the configured timeout (2 s) plus interpreter start-up and one retry on a busy machine.
BOUND_SECONDS = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def silent_port() -> Iterator[int]:
    """A port whose socket completes TCP handshakes (the kernel's backlog) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def _run(args: list[str], home: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_TRACKING"))}
    environ.update({"WORKBENCH_HOME": str(home), "WORKBENCH_CONFIG": str(home.parent / "absent.toml"),
                    "WORKBENCH_STORE_TIMEOUT": "2", "MLFLOW_DISABLE_TELEMETRY": "true", **env})
    started = time.monotonic()
    try:
        result = subprocess.run([str(WORKBENCH), *args], env=environ, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"workbench {' '.join(args)} still waited after {exc.timeout} s (no store timeout)")
    return result, time.monotonic() - started


def _assert_one_line(result: subprocess.CompletedProcess[str], elapsed: float, *, store: str, url: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{result.stderr[-3000:]}"
    line = lines[0]
    assert line.startswith("Error: "), line
    assert store in line, line
    assert redact_url(url) in line, line
    assert PASSWORD not in result.stderr + result.stdout
    assert result.returncode == 2, (result.returncode, line)
    assert elapsed < BOUND_SECONDS, f"took {elapsed:.1f} s"
    return line


def _pg_url(port: int) -> str:
    return f"postgresql://wb:{PASSWORD}@127.0.0.1:{port}/workbench"


def test_workbench_db_refused_is_one_line(tmp_path: Path) -> None:
    url = _pg_url(_free_port())
    result, elapsed = _run(["project", "list"], tmp_path / "home", WORKBENCH_DB_URL=url)
    line = _assert_one_line(result, elapsed, store="workbench DB", url=url)
    assert "WORKBENCH_DB_URL" in line  # what to check


def test_workbench_db_that_never_answers_times_out(tmp_path: Path, silent_port: int) -> None:
    url = _pg_url(silent_port)
    result, elapsed = _run(["jobs", "list"], tmp_path / "home", WORKBENCH_DB_URL=url)
    line = _assert_one_line(result, elapsed, store="workbench DB", url=url)
    assert "timed out" in line


def _home_with_project(workbench_home: Path) -> Path:
    """A home whose (embedded) workbench DB holds project ``churn``; its MLflow store is pointed elsewhere later."""
    from workbench.db import session_scope
    from workbench.projects import create_project
    from workbench.settings import get_settings

    get_settings().ensure_home()
    with session_scope() as session:
        create_project(session, name="Churn", task_type="classification", target="churned", actor="t")
    return workbench_home


def test_mlflow_store_refused_is_one_line(workbench_home: Path) -> None:
    home = _home_with_project(workbench_home)
    url = f"http://wb:{PASSWORD}@127.0.0.1:{_free_port()}"
    result, elapsed = _run(["runs", "churn"], home, MLFLOW_TRACKING_URI=url)
    line = _assert_one_line(result, elapsed, store="MLflow store", url=url)
    assert "MLFLOW_TRACKING_URI" in line


def test_mlflow_store_that_never_answers_times_out(workbench_home: Path, silent_port: int) -> None:
    home = _home_with_project(workbench_home)
    url = f"http://wb:{PASSWORD}@127.0.0.1:{silent_port}"
    result, elapsed = _run(["runs", "churn", "--json"], home, MLFLOW_TRACKING_URI=url)
    line = _assert_one_line(result, elapsed, store="MLflow store", url=url)
    assert "timed out" in line


def test_optuna_storage_refused_is_one_line_and_starts_no_job(workbench_home: Path) -> None:
    home = workbench_home
    seeded, _ = _run(["demo", "seed", "--minimal"], home)  # a project with a dataset, so the settings validate
    assert seeded.returncode == 0, seeded.stderr
    url = _pg_url(_free_port())
    result, elapsed = _run(["train", "demo-churn", "--trials", "1"], home, WORKBENCH_OPTUNA_STORAGE=url)
    line = _assert_one_line(result, elapsed, store="Optuna storage", url=url)
    assert "WORKBENCH_OPTUNA_STORAGE" in line
    jobs, _ = _run(["jobs", "list", "--json"], home)
    assert jobs.returncode == 0 and "train" not in jobs.stdout  # refused before any job row was written


def test_optuna_storage_that_never_answers_times_out_for_a_tune_worker(workbench_home: Path, silent_port: int) -> None:
    home = _home_with_project(workbench_home)
    url = _pg_url(silent_port)
    result, elapsed = _run(["tune-worker", "no-such-job"], home, WORKBENCH_OPTUNA_STORAGE=url)
    line = _assert_one_line(result, elapsed, store="Optuna storage", url=url)
    assert "timed out" in line


def test_nats_refused_is_one_line(workbench_home: Path, tmp_path: Path) -> None:
    home = _home_with_project(workbench_home)
    events = tmp_path / "events.csv"
    events.write_text("tenure,plan\n3,basic\n")
    url = f"nats://wb:{PASSWORD}@127.0.0.1:{_free_port()}"
    result, elapsed = _run(["stream", "send", "churn", str(events), "--nats", url], home)
    line = _assert_one_line(result, elapsed, store="NATS server", url=url)
    assert "--nats" in line


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://wb:{PASSWORD}@db.example:5432/wb",
        f"postgresql+psycopg://wb:{PASSWORD}@db.example/wb?sslmode=require",
        f"http://wb:{PASSWORD}@mlflow.example:5000",
        f"nats://wb:{PASSWORD}@127.0.0.1:4222",
        f"postgresql://:{PASSWORD}@db.example/wb",
        f"postgresql://wb@db.example/wb?password={PASSWORD}",
        f"postgresql://wb:{PASSWORD}@db.example/wb?sslmode=require&password={PASSWORD}",
        f"nats://tok:{PASSWORD}@a.example:4222,nats://b.example:4222",
    ],
)
def test_the_message_never_includes_the_password(url: str) -> None:
    error = StoreUnavailable("workbench DB", url, env="WORKBENCH_DB_URL", reason="connection refused")
    assert PASSWORD not in str(error)
    assert PASSWORD not in redact_url(url)
    assert "db.example" in str(error) or "mlflow.example" in str(error) or "127.0.0.1" in str(error) or \
        "a.example" in str(error)
    assert "\n" not in str(error)


def test_a_url_without_a_password_is_shown_as_is() -> None:
    assert redact_url("postgresql://wb@db.example:5432/wb") == "postgresql://wb@db.example:5432/wb"
    assert redact_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
