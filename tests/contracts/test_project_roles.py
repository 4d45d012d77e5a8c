"""Project roles on SQLite and PostgreSQL, at the service level (no UI): every rule of workbench.access.roles.

A viewer may open a project but every service that changes it refuses them (canvas save, job launch,
deploy, promote, acknowledge, ...); an editor may change it but not manage its members; an owner may;
a non-member does not even see it; admins, the operator (CLI, ``principal=None``) and anonymous mode
follow their own rules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from workbench.access.roles import (
    Principal,
    can,
    list_members,
    remove_member,
    require,
    role_of,
    set_member,
    visible_projects,
)
from workbench.db import session_scope
from workbench.db.engine import make_engine
from workbench.db.migrate import upgrade
from workbench.db.models import Alert, ProjectMember
from workbench.design.canvases.content import empty_content
from workbench.errors import Conflict, Forbidden, NotFound
from workbench.projects import create_project, get_project

OWNER = Principal("olga@example.com")
EDITOR = Principal("ed@example.com")
VIEWER = Principal("vi@example.com")
STRANGER = Principal("stranger@example.com")
ADMIN = Principal("root@example.com", is_admin=True)
ANONYMOUS = Principal("anyone", anonymous=True)


def _setup(slug_name: str = "Churn") -> str:
    """A project made by OWNER, with EDITOR and VIEWER added; returns its slug."""
    with session_scope() as session:
        project = create_project(
            session, name=slug_name, task_type="classification", target="churned", actor=OWNER.name
        )
        set_member(session, project=project, user=EDITOR.name, role="editor", principal=OWNER, actor=OWNER.name)
        set_member(session, project=project, user=VIEWER.name, role="viewer", principal=OWNER, actor=OWNER.name)
        return project.slug


def _in_session(call: Callable[..., object]) -> Callable[[Principal], object]:
    def run(principal: Principal) -> object:
        with session_scope() as session:
            return call(session, get_project(session, slug="churn"), principal)

    return run


def _job_id() -> str:
    from workbench.jobs import create_job

    with session_scope() as session:
        return create_job(session, kind="baseline", project=get_project(session, slug="churn"), actor="op").id


def _deployment_id() -> int:
    from workbench.serving.deployments import create_deployment

    with session_scope() as session:
        return create_deployment(session, project=get_project(session, slug="churn"), mode="web").id


def _alert_id() -> int:
    with session_scope() as session:
        alert = Alert(project_id=get_project(session, slug="churn").id, check="data_drift", status="fail")
        session.add(alert)
        session.flush()
        return alert.id


def _changes() -> dict[str, Callable[[Principal], object]]:
    """Every service the browser calls to change a project, called as a given principal."""
    from workbench.data.datasets import add_dataset, set_project_setup
    from workbench.design.canvases.markdown import import_markdown
    from workbench.design.canvases.store import restore, save_canvas
    from workbench.design.heuristics import set_heuristic
    from workbench.experiments.runs import save_view
    from workbench.jobs import cancel, launch
    from workbench.monitoring.cycle import check_and_apply_policy
    from workbench.monitoring.service import acknowledge_alert
    from workbench.registry import log_model_card, promote, rollback
    from workbench.serving.deployments import (
        launch_browser_batch,
        launch_deployment,
        stop_deployment,
        store_browser_upload,
    )
    from workbench.serving.stream import send_records
    from workbench.training.retraining import start_retrain

    return {
        "save canvas": _in_session(lambda s, p, who: save_canvas(
            s, project=p, kind="ml_canvas", content=empty_content("ml_canvas"), base_revision=0, author=who.name,
            principal=who)),
        "restore canvas": _in_session(lambda s, p, who: restore(
            s, project=p, kind="ml_canvas", revision=1, author=who.name, principal=who)),
        "import canvases": _in_session(lambda s, p, who: import_markdown(
            s, project=p, text="# nothing", author=who.name, principal=who)),
        "baseline rule": _in_session(lambda s, p, who: set_heuristic(s, project=p, rule=None, principal=who)),
        "add dataset": _in_session(lambda s, p, who: add_dataset(
            s, project=p, frame=pd.DataFrame({"churned": [0, 1]}), source="t", principal=who)),
        "project setup": _in_session(lambda s, p, who: set_project_setup(
            s, project=p, target="churned", task_type="classification", principal=who)),
        "saved view": _in_session(lambda s, p, who: save_view(
            s, project=p, name="mine", filter_expr="", principal=who)),
        "launch job": lambda who: launch(kind="baseline", project_slug="churn", principal=who),
        "cancel job": lambda who: _cancel(cancel, who),
        "deploy": lambda who: launch_deployment(project_slug="churn", mode="web", principal=who),
        "stop deployment": lambda who: _stop(stop_deployment, who),
        "batch scoring": lambda who: launch_browser_batch(
            project_slug="churn", input_path="in.csv", output_name="out.csv", principal=who),
        "batch upload": lambda who: store_browser_upload(
            project_slug="churn", name="in.csv", data=b"x\n1\n", principal=who),
        "stream replay": lambda who: send_records(  # refused before connecting: no broker at this URL
            "churn", [{"x": 1}], nats_url="nats://127.0.0.1:9", principal=who),
        "store profile": _store_profile,
        "monitoring check": lambda who: check_and_apply_policy(project_slug="churn", principal=who),
        "retrain": lambda who: start_retrain(project_slug="churn", actor=who.name, principal=who),
        "promote": _in_session(lambda s, p, who: promote(
            s, project=p, version=1, reason="better", actor=who.name, principal=who)),
        "roll back": _in_session(lambda s, p, who: rollback(s, project=p, reason="worse", actor=who.name,
                                                           principal=who)),
        "model card": _in_session(lambda s, p, who: log_model_card(s, project=p, principal=who)),
        "acknowledge": lambda who: _acknowledge(acknowledge_alert, who),
    }


def _store_profile(who: Principal) -> object:
    from workbench.data.datasets import add_dataset
    from workbench.data.profiling import profile_frame, save_profile

    frame = pd.DataFrame({"churned": [0, 1]})
    with session_scope() as session:  # added by the operator; the profile is stored as ``who``
        dataset = add_dataset(session, project=get_project(session, slug="churn"), frame=frame, source="t")
    return save_profile(dataset, profile_frame(frame), principal=who)


def _cancel(cancel: Callable[..., object], who: Principal) -> object:
    job_id = _job_id()
    with session_scope() as session:
        return cancel(session, job_id=job_id, principal=who)


def _stop(stop: Callable[..., object], who: Principal) -> object:
    deployment_id = _deployment_id()
    with session_scope() as session:
        return stop(session, deployment_id=deployment_id, principal=who)


def _acknowledge(acknowledge: Callable[..., object], who: Principal) -> object:
    alert_id = _alert_id()
    with session_scope() as session:
        return acknowledge(session, alert_id=alert_id, actor=who.name, principal=who)


CHANGES = list(_changes())


@pytest.mark.parametrize("change", CHANGES)
def test_a_viewer_is_refused_every_change(db_url: str, change: str) -> None:
    _setup()
    with pytest.raises(Forbidden) as refused:
        _changes()[change](VIEWER)
    message = str(refused.value)
    # What was refused, why, and how to fix it (the owner to ask, the role to ask for).
    assert "vi@example.com may not" in message and "'churn'" in message
    assert "you are a viewer there" in message
    assert message.endswith(f"Ask an owner of project 'churn' ({OWNER.name}) to make you an editor.")


@pytest.mark.parametrize("change", CHANGES)
def test_a_non_member_is_refused_every_change(db_url: str, change: str) -> None:
    _setup()
    with pytest.raises(Forbidden, match="you are not a member"):
        _changes()[change](STRANGER)


def test_the_refusal_changed_nothing(db_url: str) -> None:
    from workbench.design.canvases.store import history

    _setup()
    with pytest.raises(Forbidden):
        _changes()["save canvas"](VIEWER)
    alert_id = _alert_id()
    from workbench.monitoring.service import acknowledge_alert

    with pytest.raises(Forbidden), session_scope() as session:
        acknowledge_alert(session, alert_id=alert_id, actor=VIEWER.name, principal=VIEWER)
    with session_scope() as session:
        project = get_project(session, slug="churn")
        assert history(session, project=project, kind="ml_canvas") == []
        alert = session.get(Alert, alert_id)
        assert alert is not None and alert.acknowledged_at is None


def test_a_refused_upload_writes_no_file(db_url: str) -> None:
    from workbench.serving.deployments import store_browser_upload
    from workbench.settings import get_settings

    _setup()
    uploads = get_settings().home / "uploads" / "churn"
    for who in (VIEWER, STRANGER):
        with pytest.raises(Forbidden):
            store_browser_upload(project_slug="churn", name="batch.csv", data=b"x\n1\n", principal=who)
    assert not uploads.exists() or list(uploads.iterdir()) == []
    kept = store_browser_upload(project_slug="churn", name="../batch.csv", data=b"x\n1\n", principal=EDITOR)
    assert Path(kept) == uploads.resolve() / "batch.csv" and Path(kept).read_bytes() == b"x\n1\n"


def test_an_editor_changes_the_project(db_url: str) -> None:
    from workbench.design.canvases.store import history

    _setup()
    changes = _changes()
    changes["save canvas"](EDITOR)
    alert = changes["acknowledge"](EDITOR)
    job = changes["cancel job"](EDITOR)
    changes["stop deployment"](EDITOR)
    with session_scope() as session:
        project = get_project(session, slug="churn")
        assert [row.author for row in history(session, project=project, kind="ml_canvas")] == [EDITOR.name]
    assert alert.acknowledged_by == EDITOR.name
    assert job.status == "cancelled"


@pytest.mark.parametrize("who", [EDITOR, VIEWER, STRANGER, ANONYMOUS], ids=lambda p: p.name)
def test_only_owners_and_admins_manage_members(db_url: str, who: Principal) -> None:
    _setup()
    with session_scope() as session:
        project = get_project(session, slug="churn")
        with pytest.raises(Forbidden, match=r"manage the members of project 'churn'.*owner role"):
            set_member(session, project=project, user="new@example.com", role="viewer", principal=who)
        with pytest.raises(Forbidden):
            remove_member(session, project=project, user=VIEWER.name, principal=who)


@pytest.mark.parametrize("manager", [OWNER, ADMIN, None], ids=["owner", "admin", "operator"])
def test_owners_admins_and_the_operator_add_change_and_remove_members(db_url: str, manager: Principal | None) -> None:
    _setup()
    with session_scope() as session:
        project = get_project(session, slug="churn")
        set_member(session, project=project, user="New@Example.com", role="viewer", principal=manager)
        set_member(session, project=project, user="new@example.com", role="editor", principal=manager)  # any case
        remove_member(session, project=project, user=VIEWER.name, principal=manager)
    with session_scope() as session:
        project = get_project(session, slug="churn")
        assert [(m.user, m.role) for m in list_members(session, project=project)] == [
            (OWNER.name, "owner"), (EDITOR.name, "editor"), ("New@Example.com", "editor")
        ]
        assert role_of(session, project=project, principal=VIEWER) is None


def test_the_last_owner_stays(db_url: str) -> None:
    _setup()
    with session_scope() as session:
        project = get_project(session, slug="churn")
        with pytest.raises(Conflict, match="only owner"):
            set_member(session, project=project, user=OWNER.name, role="editor", principal=OWNER)
        with pytest.raises(Conflict, match="only owner"):
            remove_member(session, project=project, user=OWNER.name, principal=ADMIN)
        # With a second owner, the first may step down.
        set_member(session, project=project, user=EDITOR.name, role="owner", principal=OWNER)
        set_member(session, project=project, user=OWNER.name, role="viewer", principal=OWNER)
        assert role_of(session, project=project, principal=OWNER) == "viewer"
        with pytest.raises(NotFound, match="not a member"):
            remove_member(session, project=project, user="ghost@example.com", principal=ADMIN)


def test_member_input_is_checked(db_url: str) -> None:
    from workbench.errors import InvalidInput

    _setup()
    with session_scope() as session:
        project = get_project(session, slug="churn")
        with pytest.raises(InvalidInput, match="role must be one of"):
            set_member(session, project=project, user="x@example.com", role="boss", principal=OWNER)
        with pytest.raises(InvalidInput, match="user must be"):
            set_member(session, project=project, user="  ", role="viewer", principal=OWNER)


def test_the_creator_owns_the_project_and_roles_rank(db_url: str) -> None:
    _setup()
    with session_scope() as session:
        project = get_project(session, slug="churn")
        expected = {
            OWNER: ("owner", {"view", "edit", "launch_job", "deploy", "promote", "acknowledge", "manage_members"}),
            EDITOR: ("editor", {"view", "edit", "launch_job", "deploy", "promote", "acknowledge"}),
            VIEWER: ("viewer", {"view"}),
            STRANGER: (None, set()),
            ADMIN: ("admin", {"view", "edit", "launch_job", "deploy", "promote", "acknowledge", "manage_members"}),
            ANONYMOUS: ("editor", {"view", "edit", "launch_job", "deploy", "promote", "acknowledge"}),
        }
        from workbench.access.roles import ACTIONS

        for who, (role, allowed) in expected.items():
            assert role_of(session, project=project, principal=who) == role, who
            assert {a for a in ACTIONS if can(session, project=project, principal=who, action=a)} == allowed, who
        # The operator (CLI, jobs): no principal, everything.
        require(session, project=project, principal=None, action="manage_members")


def test_a_non_member_does_not_see_the_project(db_url: str) -> None:
    _setup("Churn")
    with session_scope() as session:
        create_project(session, name="Fraud", task_type="classification", target="fraud", actor=STRANGER.name)
        archived = create_project(session, name="Old", task_type="regression", target="y", actor=VIEWER.name)
        archived.archived = True

    def slugs(who: Principal | None, **kwargs: bool) -> list[str]:
        with session_scope() as session:
            return [p.slug for p in visible_projects(session, principal=who, **kwargs)]

    assert slugs(VIEWER) == ["churn"]
    assert slugs(VIEWER, include_archived=True) == ["churn", "old"]
    assert slugs(STRANGER) == ["fraud"]
    assert slugs(Principal("STRANGER@example.com")) == ["fraud"]  # identities compare without case
    assert slugs(Principal("nobody@example.com")) == []
    assert slugs(ADMIN) == slugs(ANONYMOUS) == slugs(None) == ["churn", "fraud"]
    with session_scope() as session:
        churn = get_project(session, slug="churn")
        assert not can(session, project=churn, principal=STRANGER, action="view")


def _migrate_existing_projects(url: str) -> list[tuple[str, str, str]]:
    engine = make_engine(url)
    try:
        upgrade(engine, "0002")
        with engine.begin() as connection:
            for slug, creator in (("made", "ada@example.com"), ("unowned", "")):
                connection.execute(
                    text(
                        "INSERT INTO projects (slug, name, task_type, target, archived, created_at, created_by, "
                        "updated_at, updated_by) VALUES (:slug, :slug, 'regression', 'y', false, "
                        "CURRENT_TIMESTAMP, :creator, CURRENT_TIMESTAMP, '')"
                    ),
                    {"slug": slug, "creator": creator},
                )
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                text('SELECT p.slug, m."user", m.role FROM project_members m JOIN projects p ON p.id = m.project_id')
            ).all()
        return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def test_migration_0003_makes_each_existing_creator_owner(db_url: str, workbench_home: Path) -> None:
    url = db_url
    if url.startswith("sqlite"):
        url = f"sqlite:///{workbench_home / 'old.db'}"  # db_url's own file may already be at head
    else:
        with make_engine(url).begin() as connection:  # db_url's PostgreSQL DB is migrated: start it over
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    assert _migrate_existing_projects(url) == [("made", "ada@example.com", "owner")]


def test_members_survive_a_reread_and_are_unique(db_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    _setup()
    with pytest.raises(IntegrityError), session_scope() as session:
        project = get_project(session, slug="churn")
        session.add(ProjectMember(project_id=project.id, user=VIEWER.name, role="editor"))
        session.flush()
