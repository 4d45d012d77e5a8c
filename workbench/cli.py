"""The ``workbench`` command: the composition root of the CLI.

Every command takes ``--json``. A :class:`~workbench.errors.WorkbenchError` prints one line
and exits with status 2, without a traceback. Heavy libraries are imported inside commands,
so ``workbench --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from workbench.commands.common import actor, emit, json_option, wait_for_job
from workbench.errors import WorkbenchError


class WorkbenchGroup(click.Group):
    """A click group that turns workbench errors and store outages into one clear line and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WorkbenchError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:
            # A store that cannot be reached (a driver's or MLflow's error) is one line too, not a traceback.
            from workbench.db._outage import as_store_outage

            outage = as_store_outage(exc)
            if outage is None:
                raise
            click.echo(f"Error: {outage}", err=True)
            sys.exit(2)


@click.group(cls=WorkbenchGroup)
@click.version_option(package_name="mlops-workbench")
def main() -> None:
    """MLOps Workbench: design, train and operate an ML project from one place."""


@main.command()
@json_option
def up(as_json: bool) -> None:
    """Create the home folder and bring every store's schema up to date."""
    from workbench.db import get_engine
    from workbench.db.migrate import current_revision
    from workbench.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    revision = current_revision(get_engine()) if settings.embedded_db else None
    if not settings.embedded_db:
        from workbench.db.engine import make_engine
        from workbench.db.migrate import upgrade

        revision = upgrade(make_engine(settings.db_url))
    data = {"settings": settings.public_dict(), "db_revision": revision}
    emit(data, as_json=as_json, text=f"Workbench ready at {settings.home} (DB at migration {revision}).")


@main.group()
def db() -> None:
    """The workbench DB."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target migration.")
@json_option
def db_upgrade(revision: str, as_json: bool) -> None:
    """Migrate the workbench DB (SQLite or PostgreSQL) to the newest schema."""
    from workbench.db.engine import make_engine
    from workbench.db.migrate import current_revision, upgrade
    from workbench.settings import get_settings

    engine = make_engine(get_settings().db_url)
    before = current_revision(engine)
    after = upgrade(engine, revision)
    emit(
        {"from": before, "to": after},
        as_json=as_json,
        text=f"Workbench DB migrated from {before or 'empty'} to {after}.",
    )


@main.group()
def project() -> None:
    """Create, list, rename and archive projects."""


@project.command("list")
@click.option("--all", "include_archived", is_flag=True, help="Include archived projects.")
@json_option
def project_list(include_archived: bool, as_json: bool) -> None:
    """List projects."""
    from workbench.db import session_scope
    from workbench.projects import list_projects, project_dict

    with session_scope() as session:
        rows = [project_dict(p) for p in list_projects(session, include_archived=include_archived)]
    lines = [f"{r['slug']:<30} {r['task_type']:<15} target={r['target']}" for r in rows]
    emit(rows, as_json=as_json, text="\n".join(lines) or "No projects yet.")


@project.command("rename")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("new_name")
@json_option
def project_rename(project_slug: str, new_name: str, as_json: bool) -> None:
    """Rename a project (its slug stays the same)."""
    from workbench.db import session_scope
    from workbench.projects import project_dict, rename_project

    with session_scope() as session:
        data = project_dict(rename_project(session, slug=project_slug, new_name=new_name, actor=actor()))
    emit(data, as_json=as_json, text=f"Renamed {project_slug} to {new_name!r}.")


@project.command("archive")
@click.argument("project_slug", metavar="PROJECT")
@click.option("--restore", is_flag=True, help="Bring an archived project back.")
@json_option
def project_archive(project_slug: str, restore: bool, as_json: bool) -> None:
    """Archive a project (hidden from the picker), or restore it."""
    from workbench.db import session_scope
    from workbench.projects import archive_project, project_dict

    with session_scope() as session:
        data = project_dict(archive_project(session, slug=project_slug, archived=not restore, actor=actor()))
    emit(data, as_json=as_json, text=f"{'Restored' if restore else 'Archived'} {project_slug}.")


@main.group()
def jobs() -> None:
    """Background jobs: list, show and cancel."""


@jobs.command("list")
@click.option("--project", "project_slug", default=None, help="Only this project's jobs.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@json_option
def jobs_list(project_slug: str | None, limit: int, as_json: bool) -> None:
    """List recent jobs, newest first."""
    from workbench.db import session_scope
    from workbench.jobs import job_dict, list_jobs
    from workbench.projects import get_project

    with session_scope() as session:
        project_row = get_project(session, slug=project_slug) if project_slug else None
        rows = [job_dict(j) for j in list_jobs(session, project=project_row, limit=limit)]
    lines = [f"{r['id']}  {r['kind']:<10} {r['status']:<10} {r['progress']:6.1%}  {r['message']}" for r in rows]
    emit(rows, as_json=as_json, text="\n".join(lines) or "No jobs yet.")


@jobs.command("show")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Wait until the job ends, with a progress bar.")
@json_option
def jobs_show(job_id: str, wait: bool, as_json: bool) -> None:
    """Show one job (with the tail of its log)."""
    from workbench.db import session_scope
    from workbench.jobs import get_job, job_dict, log_tail

    if wait:
        wait_for_job(job_id, show_progress=not as_json)
    with session_scope() as session:
        job = get_job(session, job_id=job_id)
        data = job_dict(job)
        tail = log_tail(job)
    text = "\n".join(f"{k:>13}: {v}" for k, v in data.items()) + ("\n--- log ---\n" + tail if tail else "")
    emit(data, as_json=as_json, text=text)


@jobs.command("cancel")
@click.argument("job_id")
@json_option
def jobs_cancel(job_id: str, as_json: bool) -> None:
    """Cancel a queued or running job (it stops after its current step)."""
    from workbench.db import session_scope
    from workbench.jobs import cancel, job_dict

    with session_scope() as session:
        data = job_dict(cancel(session, job_id=job_id))
    emit(data, as_json=as_json, text=f"Job {job_id}: {data['message']}")


# Command groups that live in their own modules (one per area).
from workbench.commands import data as _data_commands  # noqa: E402

_data_commands.register(main)
from workbench.commands import demo as _demo_commands  # noqa: E402

_demo_commands.register(main)
from workbench.commands import baseline as _baseline_commands  # noqa: E402

_baseline_commands.register(main)
from workbench.commands import serving as _serving_commands  # noqa: E402

_serving_commands.register(main)
from workbench.commands import train as _train_commands  # noqa: E402

_train_commands.register(main)
from workbench.commands import canvas as _canvas_commands  # noqa: E402

_canvas_commands.register(main)
from workbench.commands import monitor as _monitor_commands  # noqa: E402

_monitor_commands.register(main)
from workbench.commands import retrain as _retrain_commands  # noqa: E402

_retrain_commands.register(main)
from workbench.commands import registry as _registry_commands  # noqa: E402

_registry_commands.register(main)
from workbench.commands import members as _member_commands  # noqa: E402

_member_commands.register(main)
from workbench.commands import rollout as _rollout_commands  # noqa: E402

_rollout_commands.register(main)

if __name__ == "__main__":
    main()
