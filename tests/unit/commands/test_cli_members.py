"""`workbench member list|set|remove` through click's CliRunner, on a real SQLite store: the CLI acts as an admin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from workbench.cli import main
from workbench.db import session_scope
from workbench.projects import create_project


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env={"WORKBENCH_USER": "ops"})


@pytest.fixture()
def project(workbench_home: Path) -> str:
    with session_scope() as session:
        # Made in anonymous mode before roles: nobody who signs in owns it.
        create_project(session, name="Churn", task_type="classification", target="churned", actor="")
    return "churn"


def test_the_cli_adds_changes_lists_and_removes_members_of_any_project(project: str) -> None:
    empty = _run("member", "list", project)
    assert empty.exit_code == 0 and "has no members" in empty.stdout
    added = _run("member", "set", project, "ada@example.com", "owner", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["role"] == "owner" and json.loads(added.stdout)["added_by"] == "ops"
    assert _run("member", "set", project, "vi@example.com", "viewer").stdout.strip() == (
        "vi@example.com is now viewer of churn."
    )
    listed = json.loads(_run("member", "list", project, "--json").stdout)
    assert [(m["user"], m["role"]) for m in listed] == [("ada@example.com", "owner"), ("vi@example.com", "viewer")]
    assert _run("member", "remove", project, "vi@example.com").exit_code == 0
    assert [m["user"] for m in json.loads(_run("member", "list", project, "--json").stdout)] == ["ada@example.com"]


def test_refusals_are_one_line_errors(project: str) -> None:
    assert _run("member", "set", project, "ada@example.com", "owner").exit_code == 0
    last_owner = _run("member", "remove", project, "ada@example.com")
    assert last_owner.exit_code == 2
    assert "only owner of project 'churn'" in last_owner.stderr and "Traceback" not in last_owner.stderr
    bad_role = _run("member", "set", project, "x@example.com", "boss")
    assert bad_role.exit_code == 2 and "'boss' is not one of" in bad_role.stderr
