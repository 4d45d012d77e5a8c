"""Home through AppTest: the create-project form (upload or named dataset, every bad input), the journey's
"Next:" link from any working folder, the one page registry, and the scheduler start in the entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.bad_inputs import CASES, BadCase, good_csv
from tests.conftest import REPO_ROOT, reset_workbench_caches
from workbench.data.datasets import create_project_with_dataset, latest_dataset, load_frame
from workbench.db import session_scope
from workbench.projects import get_project, list_projects
from workbench.projects.journey import journey
from workbench.ui.home import SOURCE_NAMED, SOURCE_UPLOAD
from workbench.ui.pages import PAGES, app_page

APP = str(REPO_ROOT / "streamlit_app.py")


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def _fill(
    at: AppTest,
    *,
    name: str,
    upload: tuple[str, bytes] | None = None,
    spec: str | None = None,
    params: str = "",
    target: str = "",
    task: str | None = None,
    time_column: str = "",
) -> AppTest:
    at.text_input(key="home.name").input(name)
    at.radio(key="home.source").set_value(SOURCE_UPLOAD if spec is None else SOURCE_NAMED)
    if upload is not None:
        at.file_uploader(key="home.upload").set_value((upload[0], upload[1], "text/csv"))
    if spec is not None:
        at.selectbox(key="home.spec").set_value(spec)
    at.text_input(key="home.params").input(params)
    at.text_input(key="home.target").input(target)
    at.selectbox(key="home.task").set_value(task)
    at.text_input(key="home.time_column").input(time_column)
    next(b for b in at.button if b.label == "Create project").click()
    at.run()
    assert not at.exception, at.exception
    return at


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_create_project_by_uploading_a_csv(workbench_home: Path) -> None:
    at = _fill(
        _app(),
        name="Upload Demo",
        upload=("sales.csv", good_csv(40)),
        target="label",
        task="classification",
        time_column="day",
    )
    assert _errors(at) == []
    assert any("upload-demo" in s.value for s in at.success)
    assert at.session_state["shell.project"] == "upload-demo"
    assert at.query_params["project"] == ["upload-demo"] or at.query_params["project"] == "upload-demo"
    # The page now shows the new project and its journey.
    assert any(h.value == "Upload Demo" for h in at.header)
    with session_scope() as session:
        project = get_project(session, slug="upload-demo")
        dataset = latest_dataset(session, project=project)
    assert (project.target, project.task_type, project.time_column) == ("label", "classification", "day")
    assert dataset.source == "upload:sales.csv" and len(load_frame(dataset)) == 40


def test_create_project_from_a_synthetic_dataset_uses_its_setup(workbench_home: Path) -> None:
    at = _fill(_app(), name="Synthetic demand", spec="synthetic:demand", params="rows=300&drift=0.5")
    assert _errors(at) == []
    with session_scope() as session:
        project = get_project(session, slug="synthetic-demand")
        dataset = latest_dataset(session, project=project)
    assert (project.target, project.task_type, project.time_column) == ("units_sold", "regression", "timestamp")
    assert dataset.n_rows == 300 and dataset.source == "synthetic:demand?rows=300&drift=0.5"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_bad_upload_shows_its_message(
    case: BadCase, workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    reset_workbench_caches()
    at = _fill(_app(), name="Bad", upload=(case.filename, case.content), target=case.target, task=case.task)
    errors = _errors(at)
    assert len(errors) == 1 and case.message in errors[0], errors
    with session_scope() as session:
        assert list_projects(session, include_archived=True) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "  ", "spec": "builtin:iris"}, "name must not be empty"),
        ({"name": "No file", "target": "label", "task": "classification"}, "choose a CSV or Parquet file"),
        ({"name": "Iris", "spec": "builtin:iris", "params": "rows=5"}, "only synthetic datasets take parameters"),
        ({"name": "Churn", "spec": "synthetic:churn", "params": "rows=lots"}, "rows must be a whole number"),
        ({"name": "No task", "upload": ("a.csv", good_csv()), "target": "label"}, "choose classification or"),
        (
            {"name": "Bad time", "upload": ("a.csv", good_csv()), "target": "label", "task": "classification",
             "time_column": "colour"},
            "does not parse as dates",
        ),
    ],
)  # fmt: skip
def test_other_bad_form_input_shows_its_message(fields: dict, message: str, workbench_home: Path) -> None:
    at = _fill(_app(), **fields)
    errors = _errors(at)
    assert len(errors) == 1 and message in errors[0], errors


def test_duplicate_name_shows_a_conflict(workbench_home: Path) -> None:
    at = _fill(_app(), name="Iris", spec="builtin:iris")
    assert _errors(at) == []
    at = _fill(at, name="IRIS", spec="builtin:iris")
    errors = _errors(at)
    assert len(errors) == 1 and "already exists" in errors[0]


def _links(at: AppTest) -> dict[str, str]:
    """The page links shown, label -> URL path of the page they open."""
    return {link.proto.label: link.proto.page for link in at.get("page_link")}


def test_the_next_link_shows_and_resolves_whatever_the_working_folder(
    workbench_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as session:
        create_project_with_dataset(
            session, name="Iris", dataset_spec_or_frame="builtin:iris", source="builtin:iris",
            target="target", task_type="classification",
        )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # started from a folder that has no app_pages/ of its own
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["shell.project"] = "iris"
    at.query_params["project"] = "iris"
    at.run()
    assert not at.exception, at.exception
    links = _links(at)
    assert links.get("Next: Profile the data") == "data", links
    at.switch_page(str(app_page("data").file)).run()
    assert not at.exception, at.exception
    assert any(t.value == "Data · Iris" for t in at.title)


def test_every_page_file_is_registered_and_every_journey_step_names_a_page(workbench_home: Path) -> None:
    files = sorted(path.name for path in (REPO_ROOT / "app_pages").glob("*.py"))
    assert sorted(page.file.name for page in PAGES) == files
    assert all(page.file.is_absolute() and page.file.is_file() for page in PAGES)
    assert [page.key for page in PAGES if page.default] == ["home"]
    with session_scope() as session:
        project = create_project_with_dataset(
            session, name="Iris", dataset_spec_or_frame="builtin:iris", source="builtin:iris",
            target="target", task_type="classification",
        )  # fmt: skip
        steps = journey(session, project=project)
    for step in steps:
        assert app_page(step.page).file.is_file(), step


def test_the_entry_point_starts_the_monitoring_schedule_on_any_page(
    workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.ui import monitoring

    starts: list[int] = []
    # The module is shared with AppTest's script runs, so the entry point calls this stand-in.
    monkeypatch.setattr(monitoring, "monitor_schedule", lambda: starts.append(1))
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    assert starts == [1]
    at.switch_page(str(app_page("data").file)).run()  # not Home: the entry point still starts it
    assert starts == [1, 1]
    home_only = AppTest.from_file(str(app_page("home").file), default_timeout=30).run()
    assert not home_only.exception, home_only.exception
    assert starts == [1, 1], "the Home page itself does not start the schedule"


def _query_project(at: AppTest) -> str:
    value = at.query_params.get("project")
    return value[0] if isinstance(value, list) else str(value)


def test_a_created_project_becomes_current_in_the_picker_header_and_url(workbench_home: Path) -> None:
    """With a project already current, creating another one makes the new one current everywhere."""
    with session_scope() as session:
        create_project_with_dataset(
            session, name="Iris", dataset_spec_or_frame="builtin:iris", source="builtin:iris",
            target="target", task_type="classification",
        )  # fmt: skip
    at = _app()
    assert at.selectbox(key="shell.picker").value == "iris"
    assert any(h.value == "Iris" for h in at.header)

    at = _fill(at, name="Wine", spec="builtin:wine")
    assert _errors(at) == []
    assert any("Created project **wine**" in s.value for s in at.success)
    assert at.selectbox(key="shell.picker").value == "wine"
    assert [h.value for h in at.header] == ["Wine"]
    assert _query_project(at) == "wine"
    assert at.session_state["shell.project"] == "wine"

    at.run()  # the next interaction keeps it, and so does another page
    assert (at.selectbox(key="shell.picker").value, _query_project(at)) == ("wine", "wine")
    at.switch_page(str(app_page("data").file)).run()
    assert not at.exception, at.exception
    assert any(t.value == "Data · Wine" for t in at.title)

    at.selectbox(key="shell.picker").select("iris").run()  # the picker still switches projects
    assert not at.exception, at.exception
    assert any(t.value == "Data · Iris" for t in at.title)
    assert (_query_project(at), at.session_state["shell.project"]) == ("iris", "iris")
