"""`workbench project create` and `workbench data add|list|profile` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.bad_inputs import CASES, BadCase, good_csv
from tests.conftest import reset_workbench_caches
from workbench.cli import main


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_project_create_bad_input_prints_one_line_and_exits_2(
    case: BadCase, workbench_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    reset_workbench_caches()
    path = tmp_path / case.filename
    path.write_bytes(case.content)
    result = _run("project", "create", "Bad", "--dataset", str(path), "--target", case.target, "--task", case.task)
    _assert_one_line_error(result, case.message)
    listed = _run("project", "list", "--json")
    assert json.loads(listed.stdout) == []


FILE_CASES = [c for c in CASES if c.target == "label" and c.task == "classification"]


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_data_add_bad_input_prints_one_line_and_adds_nothing(
    case: BadCase, workbench_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "good.csv"
    good.write_bytes(good_csv())
    created = _run("project", "create", "P", "--dataset", str(good), "--target", "label", "--task", "classification")
    assert created.exit_code == 0, created.output
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    reset_workbench_caches()
    path = tmp_path / case.filename
    path.write_bytes(case.content)
    _assert_one_line_error(_run("data", "add", "p", str(path)), case.message)
    versions = json.loads(_run("data", "list", "p", "--json").stdout)
    assert [v["version"] for v in versions] == [1]


def test_create_json_add_and_list(workbench_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "sales data.csv"
    path.write_bytes(good_csv(30))
    result = _run(
        "project", "create", "Sales Forecast", "--dataset", str(path), "--target", "amount",
        "--task", "regression", "--time-col", "day", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["slug"] == "sales-forecast"
    assert (data["target"], data["task_type"], data["time_column"]) == ("amount", "regression", "day")
    assert data["dataset"]["n_rows"] == 30 and data["dataset"]["version"] == 1

    added = _run("data", "add", "sales-forecast", str(path), "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["version"] == 2
    listed = json.loads(_run("data", "list", "sales-forecast", "--json").stdout)
    assert [v["version"] for v in listed] == [2, 1]
    # The same content gives the same hash.
    assert listed[0]["content_hash"] == listed[1]["content_hash"]
    text = _run("data", "list", "sales-forecast")
    assert "v2" in text.stdout and "30 rows" in text.stdout


def test_other_bad_arguments(workbench_home: Path, tmp_path: Path) -> None:
    _assert_one_line_error(
        _run("project", "create", "X", "--dataset", "builtin:iris", "--target", "target", "--task", "ranking"),
        "task_type must be one of 'classification', 'regression'; got 'ranking'",
    )
    _assert_one_line_error(
        _run("project", "create", "X", "--dataset", "builtin:nope", "--target", "target", "--task", "regression"),
        "builtin dataset must be one of",
    )
    _assert_one_line_error(
        _run("project", "create", "X", "--dataset", str(tmp_path / "missing.csv"), "--target", "t", "--task",
             "regression"),
        "not a file",
    )  # fmt: skip
    _assert_one_line_error(_run("data", "list", "ghost"), "No project with slug 'ghost'")
    _assert_one_line_error(_run("data", "add", "ghost", "builtin:iris"), "No project with slug 'ghost'")
    ok = _run("project", "create", "Iris", "--dataset", "builtin:iris", "--target", "target", "--task",
              "classification")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    _assert_one_line_error(
        _run("project", "create", "IRIS", "--dataset", "builtin:iris", "--target", "target", "--task",
             "classification"),
        "already exists",
    )  # fmt: skip
    # New versions must still fit the project's target.
    _assert_one_line_error(_run("data", "add", "iris", "synthetic:demand?rows=50"), "does not exist")


def test_data_profile_runs_the_job_and_waits(workbench_home: Path) -> None:
    created = _run(
        "project", "create", "Churn", "--dataset", "synthetic:churn?rows=3000&missing=0.1", "--target", "churned",
        "--task", "classification", "--time-col", "timestamp",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    result = _run("data", "profile", "churn", "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["status"] == "succeeded" and job["kind"] == "profile"
    profile = json.loads(Path(job["result"]["profile_path"]).read_text())
    assert profile["n_rows"] == 3000
    by_name = {c["name"]: c for c in profile["columns"]}
    assert 0.05 < by_name["tenure_months"]["missing_share"] < 0.15
    assert job["result"]["missing_cells"] == profile["missing_cells"] > 0
    text = _run("data", "profile", "churn")
    assert text.exit_code == 0 and "contract" in text.stdout and "categorical" in text.stdout
    detached = _run("data", "profile", "churn", "--detach", "--json")
    job_id = json.loads(detached.stdout)["job_id"]
    # Detached means the command returned before the job ended; wait so it does not outlive the test.
    shown = _run("jobs", "show", job_id, "--wait", "--json")
    assert json.loads(shown.stdout)["status"] == "succeeded"
