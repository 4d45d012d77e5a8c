"""CLI commands for projects and datasets.

``workbench project create``, ``workbench data add|list|profile``. Bad input raises a
:class:`~workbench.errors.WorkbenchError`, which the root group prints on one line (exit 2).
"""

from __future__ import annotations

import click

from workbench.commands.common import actor, emit, json_option, wait_for_job

TASK_CHOICES = ("classification", "regression")


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def register(main: click.Group) -> None:
    """Add ``project create`` to the ``project`` group and the ``data`` group to ``main``."""
    project_group = main.commands.get("project")
    if not isinstance(project_group, click.Group):
        raise RuntimeError("workbench.cli must define the `project` group before registering data commands")
    project_group.add_command(project_create)
    main.add_command(data)


@click.command("create")
@click.argument("name")
@click.option(
    "--dataset",
    "dataset_spec",
    required=True,
    metavar="SPEC",
    help="A CSV/Parquet path, builtin:NAME (breast_cancer, wine, diabetes, iris) or "
    "synthetic:NAME[?rows=N&drift=X&drift_start=F&seed=S] (churn, demand).",
)
@click.option("--target", required=True, metavar="COL", help="The column to predict.")
@click.option(
    "--task",
    "task_type",
    required=True,
    metavar="classification|regression",
    # Checked by the service rather than click.Choice, so a wrong value gets the one-line error.
    help="classification or regression.",
)
@click.option("--time-col", "time_column", default=None, metavar="COL", help="Optional time column (dates).")
@json_option
def project_create(
    name: str, dataset_spec: str, target: str, task_type: str, time_column: str | None, as_json: bool
) -> None:
    """Create a project NAME with its first dataset version (validated before anything is stored)."""
    from workbench.data.datasets import create_project_with_dataset, dataset_dict, latest_dataset
    from workbench.db import session_scope
    from workbench.projects import project_dict
    from workbench.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    with session_scope() as session:
        project = create_project_with_dataset(
            session,
            name=name,
            dataset_spec_or_frame=dataset_spec,
            target=target,
            task_type=task_type,
            time_column=time_column,
            actor=actor(),
            settings=settings,
        )
        data = project_dict(project)
        dataset = dataset_dict(latest_dataset(session, project=project))
        data["dataset"] = dataset
    emit(
        data,
        as_json=as_json,
        text=(
            f"Created project {data['slug']} ({task_type}, target={target}) with dataset version 1: "
            f"{dataset['n_rows']:,} rows x {dataset['n_cols']} columns."
        ),
    )


@click.group("data")
def data() -> None:
    """Add, list and profile a project's dataset versions."""


@data.command("add")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("file", metavar="FILE")
@json_option
def data_add(project_slug: str, file: str, as_json: bool) -> None:
    """Add FILE (CSV/Parquet path, builtin:NAME or synthetic:NAME) as PROJECT's next dataset version.

    The new data must still fit the project's target, task and time column.
    """
    from workbench.data.datasets import add_dataset, dataset_dict, resolve_spec, validate_target
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.settings import get_settings

    settings = get_settings()
    settings.ensure_home()
    with session_scope() as session:
        project = get_project(session, slug=project_slug)
        frame, source = resolve_spec(file, settings=settings)
        validate_target(
            frame,
            target=project.target,
            task_type=project.task_type,
            time_column=project.time_column,
            settings=settings,
        )
        info = dataset_dict(
            add_dataset(session, project=project, frame=frame, source=source, actor=actor(), settings=settings)
        )
    emit(
        info,
        as_json=as_json,
        text=f"Added dataset version {info['version']} to {project_slug}: "
        f"{info['n_rows']:,} rows x {info['n_cols']} columns (hash {info['content_hash'][:12]}).",
    )


@data.command("list")
@click.argument("project_slug", metavar="PROJECT")
@json_option
def data_list(project_slug: str, as_json: bool) -> None:
    """List PROJECT's dataset versions, newest first."""
    from workbench.data.datasets import dataset_dict, list_datasets
    from workbench.db import session_scope
    from workbench.projects import get_project

    with session_scope() as session:
        rows = [dataset_dict(d) for d in list_datasets(session, project=get_project(session, slug=project_slug))]
    lines = [
        f"v{r['version']:<4} {r['n_rows']:>10,} rows {r['n_cols']:>4} cols {_human_size(r['size_bytes']):>9}  "
        f"{r['content_hash'][:12]}  {r['created_at'][:19]}  {r['source']}"
        for r in rows
    ]
    emit(rows, as_json=as_json, text="\n".join(lines) or f"No datasets in {project_slug} yet.")


@data.command("profile")
@click.argument("project_slug", metavar="PROJECT")
@click.option("--dataset-id", type=int, default=None, help="Dataset id (default: the latest version).")
@click.option("--detach", is_flag=True, help="Start the job and return at once (watch it with `jobs show`).")
@json_option
def data_profile(project_slug: str, dataset_id: int | None, detach: bool, as_json: bool) -> None:
    """Profile PROJECT's data in a background job and wait for it with a progress bar."""
    from workbench.data.datasets import get_dataset
    from workbench.db import session_scope
    from workbench.errors import JobFailed
    from workbench.jobs import launch
    from workbench.projects import get_project

    with session_scope() as session:
        # Fail fast, with the usual hint, when the project or its data does not exist.
        get_dataset(session, project=get_project(session, slug=project_slug), dataset_id=dataset_id)
    params = {"dataset_id": dataset_id} if dataset_id is not None else {}
    job_id = launch(kind="profile", project_slug=project_slug, params=params, actor=actor())
    if detach:
        emit(
            {"job_id": job_id},
            as_json=as_json,
            text=f"Started profile job {job_id}; watch it with `workbench jobs show {job_id} --wait`.",
        )
        return
    job = wait_for_job(job_id, show_progress=not as_json)
    if job["status"] != "succeeded":
        raise JobFailed(f"Profile job {job_id} ended {job['status']}: {job['error'] or job['message']}")
    result = job["result"] or {}
    if as_json:
        emit(job, as_json=True)
        return
    _print_profile_summary(result)


def _print_profile_summary(result: dict[str, object]) -> None:
    """A short table of the stored profile: kind, missing share and a statistic per column."""
    import json
    from pathlib import Path

    path = Path(str(result.get("profile_path", "")))
    profile = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"columns": []}
    click.echo(
        f"Profile of dataset version {result.get('version')}: {result.get('n_rows'):,} rows x "
        f"{result.get('n_cols')} columns, {result.get('missing_cells')} missing cells ({result.get('seconds')}s)."
    )
    for column in profile["columns"]:
        stats = column.get("stats") or {}
        if column["kind"] == "numeric" and stats:
            detail = " ".join(f"{k}={stats[k]:.4g}" for k in ("mean", "min", "max") if stats.get(k) is not None)
        elif column.get("top"):
            detail = "top: " + ", ".join(f"{t['value']} ({t['count']})" for t in column["top"][:3])
        else:
            detail = ""
        click.echo(
            f"  {column['name'][:28]:<28} {column['kind']:<11} missing {column['missing_share']:6.1%}  "
            f"unique {column['unique']:>8,}  {detail}"
        )
    click.echo(f"Stored at {path}")
