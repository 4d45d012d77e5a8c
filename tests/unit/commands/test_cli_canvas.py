"""`workbench canvas export|import|show` through click's CliRunner, on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from workbench.cli import main
from workbench.db import session_scope
from workbench.design.canvases.content import empty_content
from workbench.design.canvases.store import history, save_canvas
from workbench.projects import create_project, get_project

TRICKY = "  leading spaces\n## not a heading\n```python\nx = '|'\n```\n\ttab, é 日本 🙂 \\n trailing  \n\n"


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env or {"WORKBENCH_USER": "cli-user"})


@pytest.fixture()
def project(workbench_home: Path) -> str:
    with session_scope() as session:
        project = create_project(session, name="Churn | model", task_type="classification", target="churned")
        content = empty_content("ml_canvas")
        content["boxes"]["value_proposition"]["text"] = TRICKY
        content["boxes"]["impact_simulation"]["fields"]["primary_metric"] = "f1"
        content["boxes"]["decisions"]["fields"]["decision_threshold"] = 0.35
        save_canvas(session, project=project, kind="ml_canvas", content=content, base_revision=0, author="ann")
        tracker = empty_content("crisp_dm")
        tracker["tasks"]["describe_data"].update(status="done", owner="Bo", notes="ok")
        save_canvas(session, project=project, kind="crisp_dm", content=tracker, base_revision=0, author="bo")
    return "churn-model"


def test_export_to_stdout_and_file_are_the_same_text(project: str, tmp_path: Path) -> None:
    stdout = _run("canvas", "export", project, "--kind", "ml_canvas")
    assert stdout.exit_code == 0, stdout.output
    assert stdout.stdout.startswith("# Machine Learning Canvas: Churn \\| model\n")
    assert "- Revision: 1\n" in stdout.stdout and "- Author: ann\n" in stdout.stdout
    target = tmp_path / "ml.md"
    written = _run("canvas", "export", project, "--kind", "ml_canvas", "-o", str(target))
    assert written.exit_code == 0
    assert target.read_bytes().decode("utf-8") == stdout.stdout


def test_export_import_export_is_identical_and_creates_no_empty_revision(project: str, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.md"
    assert _run("canvas", "export", project, "-o", str(bundle)).exit_code == 0
    text = bundle.read_text(encoding="utf-8")
    assert text.startswith("# Project bundle: Churn \\| model\n")
    assert "# MLOps Stack Canvas: Churn \\| model" in text and "# CRISP-DM: Churn \\| model" in text
    imported = _run("canvas", "import", project, str(bundle), "--json")
    assert imported.exit_code == 0, imported.output
    assert [(r["kind"], r["changed"]) for r in json.loads(imported.stdout)] == [
        ("ml_canvas", False),
        ("mlops_stack", False),
        ("crisp_dm", False),
    ]
    again = tmp_path / "again.md"
    assert _run("canvas", "export", project, "--kind", "ml_canvas", "-o", str(again)).exit_code == 0
    first = _run("canvas", "export", project, "--kind", "ml_canvas").stdout
    assert again.read_text(encoding="utf-8") == first


def test_import_of_an_edited_file_creates_new_revisions(project: str, tmp_path: Path) -> None:
    exported = _run("canvas", "export", project, "--kind", "ml_canvas").stdout
    edited = exported.replace(
        "| Primary metric | `primary_metric` | f1 |", "| Primary metric | `primary_metric` | recall |"
    )
    path = tmp_path / "edited.md"
    path.write_bytes(edited.encode("utf-8"))
    result = _run("canvas", "import", project, str(path))
    assert result.exit_code == 0, result.output
    assert "ml_canvas    revision 2 (was 1)" in result.stdout
    shown = json.loads(_run("canvas", "show", project, "--kind", "ml_canvas", "--json").stdout)
    assert shown["revision"] == 2 and shown["author"] == "cli-user"
    assert shown["note"] == "Imported from Markdown: edited.md"
    assert shown["content"]["boxes"]["impact_simulation"]["fields"]["primary_metric"] == "recall"
    assert shown["content"]["boxes"]["value_proposition"]["text"] == TRICKY
    with session_scope() as session:
        rows = history(session, project=get_project(session, slug=project), kind="ml_canvas")
    assert [r.revision for r in rows] == [2, 1]
    # the re-export differs from the first only in its metadata
    after = _run("canvas", "export", project, "--kind", "ml_canvas").stdout
    assert after.split("- Note:")[1].split("\n", 1)[1] == edited.split("- Note:")[1].split("\n", 1)[1]


def test_show_json_and_text(project: str) -> None:
    shown = json.loads(_run("canvas", "show", project, "--kind", "crisp_dm", "--json").stdout)
    assert (shown["kind"], shown["revision"], shown["filled"], shown["total"]) == ("crisp_dm", 1, 1, 24)
    assert shown["content"]["tasks"]["describe_data"]["owner"] == "Bo"
    never = json.loads(_run("canvas", "show", project, "--kind", "mlops_stack", "--json").stdout)
    assert (never["revision"], never["filled"], never["total"]) == (0, 0, 12)
    text = _run("canvas", "show", project, "--kind", "ml_canvas").stdout
    assert "revision 1: 3 of 10 boxes filled" in text


def test_malformed_import_is_one_line_error_naming_the_line_and_saves_nothing(project: str, tmp_path: Path) -> None:
    exported = _run("canvas", "export", project).stdout
    lines = exported.split("\n")
    at = lines.index("## Features (`features`)")
    lines[at:at] = ["## Budget (`budget`)", "", "```text", "ten euros", "```", ""]  # inside the ML Canvas
    path = tmp_path / "bad.md"
    path.write_text("\n".join(lines), encoding="utf-8", newline="")
    result = _run("canvas", "import", project, str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: line {at + 1}: unknown section 'budget'")
    assert len(result.stderr.strip().splitlines()) == 1
    # a bundle whose second canvas cannot be saved (a regression metric on a classification
    # project) fails as a whole: the first canvas, valid and changed, is not saved either
    header = exported.split("\n# Machine Learning Canvas")[0]
    tracker = _run("canvas", "export", project, "--kind", "crisp_dm").stdout.replace("| Owner | Bo |", "| Owner | Cy |")
    canvas = _run("canvas", "export", project, "--kind", "ml_canvas").stdout
    canvas = canvas.replace(
        "| Primary metric | `primary_metric` | f1 |", "| Primary metric | `primary_metric` | rmse |"
    )
    path.write_text(header + "\n" + tracker + "\n" + canvas, encoding="utf-8", newline="")
    result = _run("canvas", "import", project, str(path))
    assert result.exit_code == 2
    assert "impact_simulation.primary_metric" in result.stderr
    shown = json.loads(_run("canvas", "show", project, "--kind", "crisp_dm", "--json").stdout)
    assert shown["revision"] == 1 and shown["content"]["tasks"]["describe_data"]["owner"] == "Bo"


def test_unknown_project_and_non_utf8_file(project: str, tmp_path: Path) -> None:
    result = _run("canvas", "export", "nope")
    assert result.exit_code == 2 and "nope" in result.stderr
    path = tmp_path / "latin1.md"
    path.write_bytes("# Machine Learning Canvas: café".encode("latin-1"))
    result = _run("canvas", "import", project, str(path))
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


def test_import_of_a_stale_export_is_refused_unless_force(project: str, tmp_path: Path) -> None:
    stale = _run("canvas", "export", project, "--kind", "ml_canvas").stdout
    assert "- Revision: 1\n" in stale
    # someone saves revision 2 after the export
    with session_scope() as session:
        p = get_project(session, slug=project)
        content = empty_content("ml_canvas")
        content["boxes"]["value_proposition"]["text"] = TRICKY
        content["boxes"]["impact_simulation"]["fields"]["primary_metric"] = "f1"
        content["boxes"]["decisions"]["fields"]["decision_threshold"] = 0.35
        content["boxes"]["features"]["text"] = "newer work"
        save_canvas(session, project=p, kind="ml_canvas", content=content, base_revision=1, author="bo")
    path = tmp_path / "stale.md"
    path.write_bytes(stale.replace("| f1 |", "| recall |").encode("utf-8"))
    refused = _run("canvas", "import", project, str(path))
    assert refused.exit_code == 2
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("Error: ")
    assert "revision 1" in line and "revision 2" in line and "--force" in line
    shown = json.loads(_run("canvas", "show", project, "--kind", "ml_canvas", "--json").stdout)
    assert shown["revision"] == 2 and shown["content"]["boxes"]["features"]["text"] == "newer work"
    forced = _run("canvas", "import", project, str(path), "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)[0] == {"kind": "ml_canvas", "previous_revision": 2, "revision": 3, "changed": True}
    shown = json.loads(_run("canvas", "show", project, "--kind", "ml_canvas", "--json").stdout)
    assert shown["content"]["boxes"]["impact_simulation"]["fields"]["primary_metric"] == "recall"
    assert shown["content"]["boxes"]["features"]["text"] == ""


def test_an_oversized_file_is_refused_before_it_is_read(project: str, tmp_path: Path) -> None:
    path = tmp_path / "huge.md"
    with path.open("wb") as handle:
        handle.truncate(9 * 1024 * 1024)  # a sparse 9 MB file of NUL bytes
    result = _run("canvas", "import", project, str(path))
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "over the import limit of 8 MB" in line
    shown = json.loads(_run("canvas", "show", project, "--kind", "ml_canvas", "--json").stdout)
    assert shown["revision"] == 1
