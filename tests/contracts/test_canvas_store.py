"""Canvas revisions on SQLite and PostgreSQL: save, history, restore, stale conflicts, diff."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from workbench.db import session_scope
from workbench.db.models import Dataset, Job, Project
from workbench.design.canvases.content import empty_content
from workbench.design.canvases.store import (
    CanvasConflict,
    artefact_suggestions,
    diff_revisions,
    get_revision,
    history,
    load_canvas,
    restore,
    save_canvas,
    suggestions_for_task,
)
from workbench.errors import InvalidInput, NotFound
from workbench.projects import create_project, get_project


def _project(slug_name: str = "Churn") -> None:
    with session_scope() as session:
        create_project(session, name=slug_name, task_type="classification", target="churned", actor="t")


def _with_text(content: dict[str, Any], box: str, text: str) -> dict[str, Any]:
    content["boxes"][box]["text"] = text
    return content


def _save(kind: str, content: dict[str, Any], base: int | None, author: str) -> int:
    with session_scope() as session:
        project = get_project(session, slug="churn")
        return save_canvas(
            session, project=project, kind=kind, content=content, base_revision=base, author=author
        ).revision


def test_save_load_history_and_restore(db_url: str) -> None:
    _project()
    with session_scope() as session:
        project = get_project(session, slug="churn")
        assert load_canvas(session, project=project, kind="ml_canvas") == (0, empty_content("ml_canvas"))
    first = _with_text(empty_content("ml_canvas"), "value_proposition", "Keep customers")
    first["boxes"]["impact_simulation"]["fields"]["primary_metric"] = "f1"
    assert _save("ml_canvas", first, 0, "ann") == 1
    second = _with_text(load_canvas_content(), "features", "tenure\nplan")
    assert _save("ml_canvas", second, 1, "bo") == 2
    # saving the same content again creates nothing
    assert _save("ml_canvas", second, 2, "bo") == 2
    with session_scope() as session:
        project = get_project(session, slug="churn")
        rows = history(session, project=project, kind="ml_canvas")
        assert [(r.revision, r.author) for r in rows] == [(2, "bo"), (1, "ann")]
        changes = diff_revisions(rows[1], rows[0])
        assert [c.unit for c in changes] == ["features"]
        assert changes[0].parts == ("text",)
        assert changes[0].after["text"] == "tenure\nplan"
        restored = restore(session, project=project, kind="ml_canvas", revision=1, author="cy")
        assert restored.revision == 3 and restored.note == "Restored revision 1"
        revision, content = load_canvas(session, project=project, kind="ml_canvas")
        assert revision == 3
        assert content == get_revision(session, project=project, kind="ml_canvas", revision=1).content
        assert content["boxes"]["features"]["text"] == ""
        # the revisions in between stay in the history
        assert [r.revision for r in history(session, project=project, kind="ml_canvas")] == [3, 2, 1]
        with pytest.raises(NotFound, match="has no revision 9"):
            get_revision(session, project=project, kind="ml_canvas", revision=9)


def load_canvas_content(kind: str = "ml_canvas") -> dict[str, Any]:
    with session_scope() as session:
        return load_canvas(session, project=get_project(session, slug="churn"), kind=kind)[1]


def test_stale_save_is_refused_with_the_other_persons_changes(db_url: str) -> None:
    _project()
    base = _with_text(empty_content("mlops_stack"), "value_proposition", "Faster churn calls")
    assert _save("mlops_stack", base, 0, "ann") == 1
    # Ann and Bo both start from revision 1. Bo saves first.
    theirs = _with_text(load_canvas_content("mlops_stack"), "model_registry", "MLflow registry")
    theirs = _with_text(theirs, "value_proposition", "Faster and cheaper churn calls")
    assert _save("mlops_stack", theirs, 1, "bo") == 2
    mine = _with_text(empty_content("mlops_stack"), "value_proposition", "Faster churn calls")
    mine = _with_text(mine, "foundations", "git + CI")
    with pytest.raises(CanvasConflict) as info:
        _save("mlops_stack", mine, 1, "ann")
    conflict = info.value
    assert conflict.base_revision == 1 and conflict.current_revision == 2 and conflict.current_author == "bo"
    assert [c.unit for c in conflict.their_changes] == ["value_proposition", "model_registry"]
    assert [c.unit for c in conflict.my_changes] == ["foundations"]
    assert "bo saved revision 2" in str(conflict)
    # nothing was saved by the refused attempt
    with session_scope() as session:
        assert load_canvas(session, project=get_project(session, slug="churn"), kind="mlops_stack")[0] == 2
    merged = conflict.merged()
    assert merged.conflicts == ()
    assert merged.content["boxes"]["model_registry"]["text"] == "MLflow registry"
    assert merged.content["boxes"]["foundations"]["text"] == "git + CI"
    assert merged.content["boxes"]["value_proposition"]["text"] == "Faster and cheaper churn calls"
    assert _save("mlops_stack", merged.content, conflict.current_revision, "ann") == 3


def test_merge_keeps_mine_where_both_changed_and_reports_it(db_url: str) -> None:
    _project()
    assert _save("ml_canvas", _with_text(empty_content("ml_canvas"), "features", "a"), 0, "ann") == 1
    assert _save("ml_canvas", _with_text(empty_content("ml_canvas"), "features", "theirs"), 1, "bo") == 2
    with pytest.raises(CanvasConflict) as info:
        _save("ml_canvas", _with_text(empty_content("ml_canvas"), "features", "mine"), 1, "ann")
    merged = info.value.merged()
    assert merged.conflicts == ("features.text",)
    assert merged.content["boxes"]["features"]["text"] == "mine"


def test_concurrent_saves_from_one_base_let_exactly_one_win(db_url: str) -> None:
    _project()
    assert _save("ml_canvas", empty_content("ml_canvas"), 0, "ann") == 1
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def attempt(name: str) -> None:
        content = _with_text(empty_content("ml_canvas"), "features", f"by {name}")
        barrier.wait()
        try:
            _save("ml_canvas", content, 1, name)
            outcomes.append("saved")
        except CanvasConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in ("ann", "bo")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Whether the two saves overlap or not, one wins and the other gets the conflict: never two revisions 2.
    assert sorted(outcomes) == ["conflict", "saved"]
    with session_scope() as session:
        rows = history(session, project=get_project(session, slug="churn"), kind="ml_canvas")
    assert [r.revision for r in rows] == [2, 1]


def test_structured_fields_are_validated_naming_the_field(db_url: str) -> None:
    _project()
    content = empty_content("ml_canvas")
    content["boxes"]["impact_simulation"]["fields"]["primary_metric"] = "rmse"
    with pytest.raises(InvalidInput) as info:
        _save("ml_canvas", content, 0, "ann")
    assert info.value.field == "impact_simulation.primary_metric"
    content = empty_content("ml_canvas")
    content["boxes"]["decisions"]["fields"]["decision_threshold"] = 1.5
    with pytest.raises(InvalidInput) as info:
        _save("ml_canvas", content, 0, "ann")
    assert info.value.field == "decisions.decision_threshold"
    with pytest.raises(InvalidInput, match="box must be one of"):
        _save("ml_canvas", {"boxes": {"budget": {"text": "x"}}}, 0, "ann")
    with pytest.raises(InvalidInput, match="base_revision 5 does not exist"):
        _save("ml_canvas", empty_content("ml_canvas"), 5, "ann")


def test_artefact_suggestions_list_succeeded_jobs_and_datasets(db_url: str) -> None:
    _project()
    with session_scope() as session:
        project = session.query(Project).filter_by(slug="churn").one()
        session.add(
            Dataset(
                project_id=project.id,
                version=1,
                source="upload",
                path="x",
                content_hash="h",
                n_rows=10,
                n_cols=3,
                columns=[],
            )
        )
        session.add(Job(id="p1", project_id=project.id, kind="profile", status="succeeded"))
        session.add(Job(id="p2", project_id=project.id, kind="profile", status="failed"))
        session.add(Job(id="b1", project_id=project.id, kind="baseline", status="succeeded"))
    with session_scope() as session:
        project = get_project(session, slug="churn")
        found = artefact_suggestions(session, project=project)
        refs = {(a.kind, a.ref) for a in found}
        assert refs == {("profile", "job:p1"), ("baseline", "job:b1"), ("dataset", "dataset:v1")}
        assert {a.ref for a in suggestions_for_task("verify_data_quality", found)} == {"job:p1"}
        assert {a.ref for a in suggestions_for_task("generate_test_design", found)} == {"job:b1"}
        tracker = empty_content("crisp_dm")
        tracker["tasks"]["describe_data"]["links"] = [found[0].as_link()]
        tracker["tasks"]["describe_data"]["status"] = "done"
        row = save_canvas(session, project=project, kind="crisp_dm", content=tracker, base_revision=0, author="ann")
        assert row.content["tasks"]["describe_data"]["links"] == [found[0].as_link()]


def test_home_journey_uses_completeness(db_url: str) -> None:
    from workbench.design.canvases.definitions import ML_CANVAS, MLOPS_STACK
    from workbench.projects.journey import journey

    _project()

    def step() -> tuple[bool, str]:
        with session_scope() as session:
            found = next(s for s in journey(session, project=get_project(session, slug="churn")) if s.id == "canvases")
            return found.done, found.detail

    assert step() == (False, "ML Canvas 0/10 · MLOps Stack 0/12 · CRISP-DM 0/24")
    ml = empty_content("ml_canvas")
    for box in ML_CANVAS.boxes:
        ml["boxes"][box.id]["text"] = f"about {box.id}"
    _save("ml_canvas", ml, 0, "ann")
    stack = empty_content("mlops_stack")
    for box in MLOPS_STACK.boxes[:-1]:
        stack["boxes"][box.id]["text"] = "x"
    _save("mlops_stack", stack, 0, "ann")
    assert step() == (False, "ML Canvas 10/10 · MLOps Stack 11/12 · CRISP-DM 0/24")
    stack["boxes"][MLOPS_STACK.boxes[-1].id]["text"] = "x"
    _save("mlops_stack", stack, 1, "ann")
    assert step()[0] is True


# --- Markdown import of a stale export (issue 11) ----------------------------------------------


def _export(kind: str = "ml_canvas") -> str:
    from workbench.design.canvases.markdown import canvas_markdown

    with session_scope() as session:
        return canvas_markdown(session, project=get_project(session, slug="churn"), kind=kind)


def _import(text: str, *, force: bool | None = None) -> list[Any]:
    from workbench.design.canvases.markdown import import_markdown

    extra = {} if force is None else {"force": force}
    with session_scope() as session:
        project = get_project(session, slug="churn")
        return import_markdown(session, project=project, text=text, author="cy", source="old.md", **extra)


def test_import_of_a_stale_export_is_refused_like_a_stale_save_unless_forced(db_url: str) -> None:
    from workbench.errors import Conflict

    _project()
    assert _save("ml_canvas", _with_text(empty_content("ml_canvas"), "value_proposition", "Keep customers"), 0, "ann")
    stale = _export()
    assert "- Revision: 1\n" in stale
    # Bo saves revision 2 after the export was made.
    assert _save("ml_canvas", _with_text(load_canvas_content(), "features", "tenure\nplan"), 1, "bo") == 2
    edited = stale.replace("Keep customers", "Keep customers longer")
    with pytest.raises(Conflict) as caught:
        _import(edited)
    message = str(caught.value)
    assert "revision 1" in message and "revision 2" in message and "--force" in message
    assert "Machine Learning Canvas" in message and "Features" in message  # what would be overwritten
    # nothing was saved: Bo's revision is still the newest
    assert load_canvas_content()["boxes"]["features"]["text"] == "tenure\nplan"
    with session_scope() as session:
        assert load_canvas(session, project=get_project(session, slug="churn"), kind="ml_canvas")[0] == 2
    # forced, the import overwrites (Bo's revision stays in the history)
    [result] = _import(edited, force=True)
    assert (result.previous_revision, result.revision) == (2, 3)
    assert load_canvas_content()["boxes"]["features"]["text"] == ""
    # an export of the current revision imports without force
    fresh = _export().replace("Keep customers longer", "Keep customers for years")
    [result] = _import(fresh)
    assert result.revision == 4
    # a stale export whose content equals the current one changes nothing and is not an error
    assert _import(fresh)[0].changed is False


def test_a_bundle_with_one_stale_canvas_saves_nothing(db_url: str) -> None:
    from workbench.design.canvases.markdown import bundle_markdown
    from workbench.errors import Conflict

    _project()
    _save("mlops_stack", _with_text(empty_content("mlops_stack"), "value_proposition", "v1"), 0, "ann")
    with session_scope() as session:
        bundle = bundle_markdown(session, project=get_project(session, slug="churn"))
    _save("mlops_stack", _with_text(load_canvas_content("mlops_stack"), "value_proposition", "v2"), 1, "bo")
    # the ML Canvas part (never saved, revision 0 on both sides) is fresh; the MLOps Stack part is stale
    edited = bundle.replace("```text\n```", "```text\nnew answer\n```", 1)
    with pytest.raises(Conflict, match=r"MLOps Stack Canvas.*revision 1.*revision 2"):
        _import(edited)
    with session_scope() as session:
        project = get_project(session, slug="churn")
        assert load_canvas(session, project=project, kind="ml_canvas")[0] == 0
        assert load_canvas(session, project=project, kind="mlops_stack")[0] == 2


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("| Owner |  |", "| Owner | Bo \\u{d800} |", "lone surrogate"),  # stored, every export would fail
        ("| Owner |  |", "| Owner | " + "\\u{41}" * 100_001 + " |", "at most 100000 characters"),
        ("| Owner |  |", "| Owner | x |\n" + "| Owner | y |\n" * 700_000, "over the import limit"),
    ],
)
def test_a_hostile_bundle_leaves_nothing_half_written(db_url: str, old: str, new: str, message: str) -> None:
    from workbench.design.canvases.markdown import bundle_markdown

    _project()
    with session_scope() as session:
        bundle = bundle_markdown(session, project=get_project(session, slug="churn"))
    # the first canvas is valid and changed; the tracker, last in the bundle, is hostile
    edited = bundle.replace("```text\n```", "```text\na real answer\n```", 1)
    assert old in edited
    edited = edited.replace(old, new, 1)
    with pytest.raises(InvalidInput, match=message):
        _import(edited)
    with session_scope() as session:
        project = get_project(session, slug="churn")
        for kind in ("ml_canvas", "mlops_stack", "crisp_dm"):
            assert load_canvas(session, project=project, kind=kind)[0] == 0


def test_an_export_of_another_project_is_not_compared_by_revision(db_url: str) -> None:
    # Revision numbers count one project's canvas: copying another project's canvas works as before.
    _project()
    _project("Other")
    for text in ("one", "two", "three"):
        content = _with_text(load_canvas_content(), "features", text)
        with session_scope() as session:
            project = get_project(session, slug="churn")
            base = load_canvas(session, project=project, kind="ml_canvas")[0]
            save_canvas(session, project=project, kind="ml_canvas", content=content, base_revision=base, author="a")
    from workbench.design.canvases.markdown import canvas_markdown

    with session_scope() as session:
        other = get_project(session, slug="other")
        save_canvas(
            session,
            project=other,
            kind="ml_canvas",
            content=_with_text(empty_content("ml_canvas"), "features", "copied"),
            base_revision=0,
            author="b",
        )
        foreign = canvas_markdown(session, project=other, kind="ml_canvas")
    assert "- Project: other\n" in foreign and "- Revision: 1\n" in foreign
    [result] = _import(foreign)
    assert (result.previous_revision, result.revision) == (3, 4)
    assert load_canvas_content()["boxes"]["features"]["text"] == "copied"
