"""The three canvas pages in AppTest: fill, save, reload, history, restore, conflict, unsaved banner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from workbench.db import session_scope
from workbench.db.models import Job, Project
from workbench.design.canvases.store import history, load_canvas, save_canvas
from workbench.projects import create_project, get_project

ROOT = Path(__file__).resolve().parents[2]
SLUG = "churn"


@pytest.fixture()
def project(workbench_home: Path) -> str:
    with session_scope() as session:
        create_project(session, name="Churn", task_type="classification", target="churned", actor="t")
    return SLUG


def _page(kind: str, *, name: str = "ann") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app_pages" / f"{kind}.py"), default_timeout=30)
    at.session_state["shell.project"] = SLUG
    at.session_state["shell.display_name"] = name
    at.query_params["project"] = SLUG
    return at.run()


def _open_phase(at: AppTest, label: str) -> None:
    """Open the CRISP-DM tab ``label`` (what a click on it does: its state changes and the page reruns)."""
    at.session_state[f"crisp_dm.{SLUG}.phase"] = label
    at.run()
    assert not at.exception, at.exception


def _w(kind: str, unit: str, part: str) -> str:
    return f"{kind}.{SLUG}.w.{unit}.{part}"


def _texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for kind_ in (at.success, at.error, at.warning, at.info) for e in kind_]


def _saved(kind: str) -> tuple[int, dict[str, Any]]:
    with session_scope() as session:
        return load_canvas(session, project=get_project(session, slug=SLUG), kind=kind)


def _save_as(kind: str, author: str, edit: dict[str, str], base: int) -> int:
    """The other person saves through the service (as their own browser session would)."""
    with session_scope() as session:
        project = get_project(session, slug=SLUG)
        _, content = load_canvas(session, project=project, kind=kind)
        for box, text in edit.items():
            content["boxes"][box]["text"] = text
        return save_canvas(
            session, project=project, kind=kind, content=content, base_revision=base, author=author
        ).revision


def test_ml_canvas_fill_save_reload_history_restore(project: str) -> None:
    at = _page("ml_canvas")
    assert not at.exception
    assert [ta.label for ta in at.text_area][:2] == ["Prediction Task", "Impact Simulation"]
    assert at.text_area(key=_w("ml_canvas", "value_proposition", "text")).help  # prompts are help text
    at.text_area(key=_w("ml_canvas", "value_proposition", "text")).input("Keep customers\nwho may leave")
    at.selectbox(key=_w("ml_canvas", "impact_simulation", "fields.primary_metric")).select("f1")
    at.number_input(key=_w("ml_canvas", "decisions", "fields.decision_threshold")).set_value(0.4)
    at.button(key=f"ml_canvas.{SLUG}.save").click().run()
    assert not at.exception
    assert "Saved revision 1." in _texts(at, "ml_canvas")
    revision, content = _saved("ml_canvas")
    assert revision == 1
    assert content["boxes"]["value_proposition"]["text"] == "Keep customers\nwho may leave"
    assert content["boxes"]["impact_simulation"]["fields"]["primary_metric"] == "f1"
    assert content["boxes"]["decisions"]["fields"]["decision_threshold"] == 0.4
    assert any("3 of 10 boxes filled" in str(p.proto.text) for p in at.get("progress"))

    # a second edit, then a fresh session (reload) shows the saved content
    at.text_area(key=_w("ml_canvas", "features", "text")).input("tenure, plan")
    at.button(key=f"ml_canvas.{SLUG}.save").click().run()
    assert _saved("ml_canvas")[0] == 2
    reloaded = _page("ml_canvas", name="bo")
    assert reloaded.text_area(key=_w("ml_canvas", "features", "text")).value == "tenure, plan"
    assert reloaded.selectbox(key=_w("ml_canvas", "impact_simulation", "fields.primary_metric")).value == "f1"
    assert not [w for w in reloaded.warning if "unsaved" in str(w.value)]

    # history: two revisions; the diff between them names the Features box; restore revision 1
    assert any("History (2 revisions)" in e.label for e in reloaded.expander)
    assert reloaded.selectbox(key=f"ml_canvas.{SLUG}.diff_a").value == 1
    assert any("tenure, plan" in str(code.value) for code in reloaded.code)
    reloaded.selectbox(key=f"ml_canvas.{SLUG}.restore_rev").select(1)
    reloaded.button(key=f"ml_canvas.{SLUG}.restore").click().run()
    assert not reloaded.exception
    assert "Restored revision 1 as revision 3." in _texts(reloaded, "ml_canvas")
    revision, content = _saved("ml_canvas")
    assert revision == 3 and content["boxes"]["features"]["text"] == ""
    assert reloaded.text_area(key=_w("ml_canvas", "features", "text")).value == ""
    with session_scope() as session:
        rows = history(session, project=get_project(session, slug=SLUG), kind="ml_canvas")
    assert [(r.revision, r.author) for r in rows] == [(3, "bo"), (2, "ann"), (1, "ann")]


def test_invalid_structured_field_is_refused_naming_the_field(project: str) -> None:
    at = _page("ml_canvas")
    at.selectbox(key=_w("ml_canvas", "impact_simulation", "fields.primary_metric")).select("rmse")
    at.button(key=f"ml_canvas.{SLUG}.save").click().run()
    errors = [str(e.value) for e in at.error]
    assert any("impact_simulation.primary_metric" in e and "regression metric" in e for e in errors), errors
    assert _saved("ml_canvas")[0] == 0
    assert any("unsaved changes" in str(w.value) for w in at.warning)


def test_conflict_shows_their_changes_and_merges(project: str) -> None:
    kind = "mlops_stack"
    at = _page(kind)
    at.text_area(key=_w(kind, "value_proposition", "text")).input("Faster churn calls")
    at.button(key=f"{kind}.{SLUG}.save").click().run()
    assert _saved(kind)[0] == 1
    # I keep editing; meanwhile Bo saves revision 2 from his own session.
    at.text_area(key=_w(kind, "foundations", "text")).input("git + CI")
    at.run()
    assert _save_as(kind, "bo", {"model_registry": "MLflow registry"}, base=1) == 2
    at.button(key=f"{kind}.{SLUG}.save").click().run()
    assert not at.exception
    errors = [str(e.value) for e in at.error]
    assert any("bo saved revision 2" in e for e in errors), errors
    assert _saved(kind)[0] == 2  # nothing of mine was written yet
    markdown = " ".join(str(m.value) for m in at.markdown)
    assert "7. Model Registry & Versioning" in markdown  # their change, box by box
    assert "5. Foundations (DevOps)" in markdown  # mine
    assert any("MLflow registry" in str(code.value) for code in at.code)
    at.button(key=f"{kind}.{SLUG}.merge").click().run()
    assert not at.exception
    revision, content = _saved(kind)
    assert revision == 3
    assert content["boxes"]["model_registry"]["text"] == "MLflow registry"
    assert content["boxes"]["foundations"]["text"] == "git + CI"
    assert content["boxes"]["value_proposition"]["text"] == "Faster churn calls"
    assert at.text_area(key=_w(kind, "model_registry", "text")).value == "MLflow registry"
    assert not [b for b in at.button if b.key == f"{kind}.{SLUG}.merge"]


def test_conflict_overwrite_and_discard(project: str) -> None:
    kind = "ml_canvas"
    at = _page(kind)
    at.text_area(key=_w(kind, "features", "text")).input("mine")
    assert _save_as(kind, "bo", {"features": "theirs"}, base=0) == 1
    at.button(key=f"{kind}.{SLUG}.save").click().run()
    at.button(key=f"{kind}.{SLUG}.overwrite").click().run()
    revision, content = _saved(kind)
    assert revision == 2 and content["boxes"]["features"]["text"] == "mine"
    # and the other way round: Bo saves again, I discard my edit and get his text
    at.text_area(key=_w(kind, "features", "text")).input("mine again")
    assert _save_as(kind, "bo", {"features": "theirs again"}, base=2) == 3
    at.button(key=f"{kind}.{SLUG}.save").click().run()
    at.button(key=f"{kind}.{SLUG}.discard").click().run()
    assert _saved(kind)[0] == 3
    assert at.text_area(key=_w(kind, "features", "text")).value == "theirs again"
    assert not [w for w in at.warning if "unsaved" in str(w.value)]


def test_unsaved_edits_survive_a_page_switch_with_a_banner(project: str) -> None:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30)
    at.session_state["shell.project"] = SLUG
    at.query_params["project"] = SLUG
    at.run()
    at.switch_page("app_pages/ml_canvas.py").run()
    assert not at.exception
    at.text_area(key=_w("ml_canvas", "data_sources", "text")).input("CRM tables")
    at.run()
    at.switch_page("app_pages/home.py").run()
    assert not at.exception
    at.switch_page("app_pages/ml_canvas.py").run()
    assert at.text_area(key=_w("ml_canvas", "data_sources", "text")).value == "CRM tables"
    assert any("You have unsaved changes" in str(w.value) for w in at.warning)
    assert _saved("ml_canvas")[0] == 0


def test_crisp_dm_tracker_links_artefacts_and_saves(project: str) -> None:
    with session_scope() as session:
        row = session.query(Project).filter_by(slug=SLUG).one()
        session.add(Job(id="prof1234abcd", project_id=row.id, kind="profile", status="succeeded"))
    kind = "crisp_dm"
    at = _page(kind)
    assert not at.exception
    assert len(at.tabs) == 6
    # Only the open tab's tasks are drawn (issue 15): phase 2's widgets wait until its tab is opened.
    assert not [m for m in at.multiselect if "verify_data_quality" in str(m.key)]
    _open_phase(at, "2. Data Understanding")
    assert any("could be linked" in str(c.value) for c in at.caption)
    links = at.multiselect(key=_w(kind, "verify_data_quality", "links"))
    assert links.options and "Data profile" in links.options[0]
    links.select("profile|job:prof1234abcd")
    at.selectbox(key=_w(kind, "verify_data_quality", "status")).select("done")
    at.text_input(key=_w(kind, "verify_data_quality", "owner")).input("Ann")
    at.text_area(key=_w(kind, "verify_data_quality", "notes")).input("No missing targets.")
    # Another tab before saving: the edits of the tab left behind are kept in the draft and saved.
    _open_phase(at, "4. Modeling")
    at.text_input(key=_w(kind, "build_model", "owner")).input("Bo")
    at.button(key=f"{kind}.{SLUG}.save").click().run()
    assert not at.exception
    revision, content = _saved(kind)
    task = content["tasks"]["verify_data_quality"]
    assert revision == 1
    assert task["status"] == "done" and task["owner"] == "Ann" and task["notes"] == "No missing targets."
    assert task["links"] == [{"kind": "profile", "ref": "job:prof1234abcd", "label": task["links"][0]["label"]}]
    assert content["tasks"]["build_model"]["owner"] == "Bo"
    assert any("1 of 24 tasks done" in str(p.proto.text) for p in at.get("progress"))
    _open_phase(at, "2. Data Understanding")  # back on the first tab edited: its widgets show the saved values
    assert at.text_input(key=_w(kind, "verify_data_quality", "owner")).value == "Ann"
    reloaded = _page(kind, name="bo")
    _open_phase(reloaded, "2. Data Understanding")
    assert reloaded.multiselect(key=_w(kind, "verify_data_quality", "links")).value == ["profile|job:prof1234abcd"]


def _diff_pair(at: AppTest, kind: str) -> tuple[int, int]:
    return at.selectbox(key=f"{kind}.{SLUG}.diff_a").value, at.selectbox(key=f"{kind}.{SLUG}.diff_b").value


def test_history_defaults_follow_the_newest_revision_after_a_save(project: str) -> None:
    """After each save in the same session the diff compares the newest revision with the one before."""
    at = _page("ml_canvas")
    at.text_area(key=_w("ml_canvas", "value_proposition", "text")).input("Keep customers")
    at.button(key=f"ml_canvas.{SLUG}.save").click().run()
    assert "Saved revision 1." in _texts(at, "ml_canvas")
    assert _diff_pair(at, "ml_canvas") == (1, 1)  # one revision: nothing else to compare with

    at.text_area(key=_w("ml_canvas", "features", "text")).input("tenure, plan")
    at.button(key=f"ml_canvas.{SLUG}.save").click().run()
    assert not at.exception, at.exception
    assert "Saved revision 2." in _texts(at, "ml_canvas")
    assert _diff_pair(at, "ml_canvas") == (1, 2)
    assert any("tenure, plan" in str(code.value) for code in at.code)
    assert "No box differs." not in [str(c.value) for c in at.caption]
    assert at.selectbox(key=f"ml_canvas.{SLUG}.restore_rev").value == 1

    # someone else saves revision 3: the next run shows it as the newest side of the diff
    _save_as("ml_canvas", "bo", {"data_sources": "CRM tables"}, base=2)
    at.run()
    assert _diff_pair(at, "ml_canvas") == (2, 3)
    assert any("CRM tables" in str(code.value) for code in at.code)
    assert at.selectbox(key=f"ml_canvas.{SLUG}.restore_rev").value == 2

    # a pair the user picks stays picked while no new revision arrives
    at.selectbox(key=f"ml_canvas.{SLUG}.diff_a").select(1).run()
    assert _diff_pair(at, "ml_canvas") == (1, 3)
    at.run()
    assert _diff_pair(at, "ml_canvas") == (1, 3)


def test_the_decisions_panel_says_the_threshold_is_for_binary_classifiers_only(project: str) -> None:
    """A multiclass model predicts the most probable class; the canvas says so beside the threshold it shows."""
    at = _page("ml_canvas")
    assert not at.exception, at.exception
    captions = [str(c.value) for c in at.caption]
    assert any("binary" in c and "multiclass" in c and "decision_threshold" in c for c in captions), captions
