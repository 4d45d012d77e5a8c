"""``workbench canvas``: export, import and show the design canvases."""

from __future__ import annotations

from pathlib import Path

import click

from workbench.commands.common import actor, emit, json_option

KIND_CHOICES = ("ml_canvas", "mlops_stack", "crisp_dm")


def register(main: click.Group) -> None:
    """Add the ``canvas`` command group to the ``workbench`` group."""
    main.add_command(canvas)


@click.group()
def canvas() -> None:
    """The design canvases: export to Markdown, import from Markdown, show."""


@canvas.command("export")
@click.argument("project_slug", metavar="PROJECT")
@click.option(
    "--kind",
    type=click.Choice([*KIND_CHOICES, "all"]),
    default="all",
    show_default=True,
    help="One canvas, or 'all' for the project bundle (every canvas and the CRISP-DM tracker).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (default: stdout)."
)
def canvas_export(project_slug: str, kind: str, output: Path | None) -> None:
    """Export the newest revision of the canvases of PROJECT as Markdown."""
    from workbench.db import session_scope
    from workbench.design.canvases.markdown import bundle_markdown, canvas_markdown
    from workbench.projects import get_project

    with session_scope() as session:
        project = get_project(session, slug=project_slug)
        if kind == "all":
            text = bundle_markdown(session, project=project)
        else:
            text = canvas_markdown(session, project=project, kind=kind)
    if output is None:
        click.echo(text, nl=False)
        return
    # newline="" keeps the text byte-exact (no newline translation), so the file imports back identically.
    with output.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    click.echo(f"Wrote {output} ({len(text.splitlines())} lines).", err=True)


@canvas.command("import")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Import even when FILE was exported from an older revision than the canvas's newest one "
    "(overwrites the newer revisions; they stay in the history).",
)
@json_option
def canvas_import(project_slug: str, file: Path, force: bool, as_json: bool) -> None:
    """Import a Markdown canvas or bundle FILE into PROJECT as new revisions.

    A file exported from an older revision than the canvas's newest one is refused, like a
    stale save, unless --force.
    """
    from workbench.db import session_scope
    from workbench.design.canvases.markdown import check_markdown_size, import_markdown
    from workbench.errors import InvalidInput
    from workbench.projects import get_project

    check_markdown_size(file.stat().st_size)  # before reading: a huge file is refused unread
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{file} is not UTF-8 text (byte {exc.start}); save it as UTF-8 and retry.") from None
    text = text.removeprefix("\ufeff")  # a BOM added by some editors is not part of the document
    with session_scope() as session:
        project = get_project(session, slug=project_slug)
        results = import_markdown(session, project=project, text=text, author=actor(), source=file.name, force=force)
        rows = [r.as_dict() for r in results]
    lines = [
        f"{r['kind']:<12} revision {r['revision']} (was {r['previous_revision']})"
        if r["changed"]
        else f"{r['kind']:<12} unchanged at revision {r['revision']}"
        for r in rows
    ]
    emit(rows, as_json=as_json, text="\n".join(lines))


@canvas.command("show")
@click.argument("project_slug", metavar="PROJECT")
@click.option("--kind", type=click.Choice(KIND_CHOICES), required=True, help="Which canvas.")
@click.option("--revision", type=int, default=None, help="An older revision (default: the newest).")
@json_option
def canvas_show(project_slug: str, kind: str, revision: int | None, as_json: bool) -> None:
    """Show one canvas: revision, author, completeness and content."""
    from workbench.db import session_scope
    from workbench.design.canvases.content import completeness, normalize_content
    from workbench.design.canvases.markdown import canvas_markdown, revision_markdown
    from workbench.design.canvases.store import get_revision, load_canvas, revision_dict
    from workbench.projects import get_project

    with session_scope() as session:
        project = get_project(session, slug=project_slug)
        number = revision if revision is not None else load_canvas(session, project=project, kind=kind)[0]
        if number:
            row = get_revision(session, project=project, kind=kind, revision=number)
            data = {"project": project.slug, **revision_dict(row), "content": normalize_content(kind, row.content)}
            markdown = revision_markdown(project=project, row=row)
        else:
            _, content = load_canvas(session, project=project, kind=kind)
            filled, total = completeness(content, kind)
            data = {
                "project": project.slug,
                "kind": kind,
                "revision": 0,
                "author": "",
                "note": "",
                "created_at": None,
                "filled": filled,
                "total": total,
                "content": content,
            }
            markdown = canvas_markdown(session, project=project, kind=kind)
    unit = "tasks done" if kind == "crisp_dm" else "boxes filled"
    header = f"<!-- revision {data['revision']}: {data['filled']} of {data['total']} {unit} -->\n"
    emit(data, as_json=as_json, text=header + markdown.rstrip("\n"))
