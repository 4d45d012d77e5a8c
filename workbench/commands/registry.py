"""``workbench runs | models | promote | rollback | model card | model history``: the Experiments and Registry
pages on the CLI."""

from __future__ import annotations

from typing import Any

import click

from workbench.commands.common import actor, emit, json_option


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) if rows else len(c) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


@click.command("runs")
@click.argument("project")
@click.option("--filter", "filter_expr", default="", help="MLflow search syntax with AND, OR and parentheses, "
              "e.g. \"metrics.accuracy > 0.9 and (params.model = 'rf' or tags.workbench.kind = 'baseline')\".")
@click.option("--view", default=None, help="Use a view saved on the Experiments page (its filter and columns).")
@click.option("--order-by", "order_by", multiple=True, help="e.g. 'metrics.accuracy DESC' (repeatable).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["baseline", "trial", "best", "retrain"]),
              help="Only runs of this kind (repeatable).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000), help="Runs per page.")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1), help="Page number.")
@json_option
def runs_command(project: str, filter_expr: str, view: str | None, order_by: tuple[str, ...], kinds: tuple[str, ...],
                 limit: int, page: int, as_json: bool) -> None:
    """List the runs of PROJECT (synced from MLflow first), filtered and sorted."""
    from workbench.db import session_scope
    from workbench.experiments.runs import get_view, query_runs, sync_runs
    from workbench.projects import get_project

    columns: list[str] | None = None
    with session_scope() as session:
        row = get_project(session, slug=project)
        sync_runs(session, project=row)
        if view:
            saved = get_view(session, project=row, name=view)
            filter_expr = filter_expr or saved.filter_expr
            columns = [c for c in saved.columns if "." in c] or None
        rows, total = query_runs(session, project=row, filter_expr=filter_expr, order_by=list(order_by) or None,
                                 columns=columns, kinds=list(kinds) or None, page=page, page_size=limit)
    if as_json:
        emit({"total": total, "page": page, "runs": rows}, as_json=True)
        return
    value_columns = sorted({k for r in rows for k in r if k.startswith(("metrics.", "params.", "tags."))})[:8]
    table = _table(rows, ["run_id", "run_name", "kind", "job_id", "status", *value_columns])
    emit(None, as_json=False, text=f"{table}\n{len(rows)} shown of {total} matching runs (page {page}).")


@click.command("models")
@click.argument("project")
@json_option
def models_command(project: str, as_json: bool) -> None:
    """List the registered versions of PROJECT's model with aliases and holdout metrics."""
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.registry import list_versions

    with session_scope() as session:
        versions = list_versions(session, project=get_project(session, slug=project))
    data = [v.as_dict() for v in versions]
    if as_json:
        emit(data, as_json=True)
        return
    if not versions:
        emit(None, as_json=False, text=f"{project} has no registered model version yet.")
        return
    metrics = sorted({m for v in versions for m in v.holdout_metrics})[:5]
    rows = [{"version": v.version, "aliases": ",".join(v.aliases),
             "beat_baseline": {True: "yes", False: "no", None: "-"}[v.beat_baseline], "job": v.job_id,
             "run": v.run_id, "created": v.created_at, **{m: v.holdout_metrics.get(m) for m in metrics}}
            for v in versions]
    emit(None, as_json=False, text=_table(rows, ["version", "aliases", "beat_baseline", *metrics, "job", "run",
                                                  "created"]))


@click.command("promote")
@click.argument("project")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True, type=click.Choice(["champion", "challenger"]))
@click.option("--reason", required=True, help="Why the alias moves (kept in the promotion history).")
@json_option
def promote_command(project: str, version: str, alias: str, reason: str, as_json: bool) -> None:
    """Point ALIAS of PROJECT's model at VERSION."""
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.registry import promote, promotion_dict

    with session_scope() as session:
        row = promote(session, project=get_project(session, slug=project), version=version, alias=alias,
                      reason=reason, actor=actor())
        data = promotion_dict(row)
    emit(data, as_json=as_json, text=f"{project}: {alias} is now version {data['to_version']} "
                                     f"(was {data['from_version'] or 'none'}).")


@click.command("rollback")
@click.argument("project")
@click.option("--reason", required=True, help="Why (kept in the promotion history).")
@json_option
def rollback_command(project: str, reason: str, as_json: bool) -> None:
    """Make the previous champion of PROJECT champion again."""
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.registry import promotion_dict, rollback

    with session_scope() as session:
        row = rollback(session, project=get_project(session, slug=project), reason=reason, actor=actor())
        data = promotion_dict(row)
    emit(data, as_json=as_json, text=f"{project}: champion rolled back to version {data['to_version']} "
                                     f"(was {data['from_version']}).")


@click.group("model")
def model_group() -> None:
    """The registered model of a project."""


@model_group.command("card")
@click.argument("project")
@click.option("--version", default=None, help="Version (default: the champion, else the newest).")
@click.option("--log/--no-log", "log", default=False, help="Also log it as model_card.md on the version's run.")
def card_command(project: str, version: str | None, log: bool) -> None:
    """Print the model card of PROJECT's model as Markdown."""
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.registry import log_model_card, model_card

    with session_scope() as session:
        row = get_project(session, slug=project)
        card = log_model_card(session, project=row, version=version)[0] if log else model_card(
            session, project=row, version=version)
    click.echo(card)


@model_group.command("history")
@click.argument("project")
@click.option("--alias", default=None, type=click.Choice(["champion", "challenger"]), help="Only this alias.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100_000), help="Rows at most.")
@json_option
def history_command(project: str, alias: str | None, limit: int, as_json: bool) -> None:
    """Every alias move of PROJECT's model, newest first: automatic champion, promotions, rollbacks."""
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.registry import history, promotion_dict

    with session_scope() as session:
        rows = [promotion_dict(r) for r in history(session, project=get_project(session, slug=project),
                                                   alias=alias, limit=limit)]
    if as_json:
        emit(rows, as_json=True)
        return
    if not rows:
        emit(None, as_json=False, text=f"{project} has no promotion history yet.")
        return
    table = [{"when": r["created_at"], "alias": r["alias"], "action": r["action"], "from": r["from_version"] or "-",
              "to": r["to_version"], "actor": r["actor"], "reason": r["reason"]} for r in rows]
    emit(None, as_json=False, text=_table(table, ["when", "alias", "action", "from", "to", "actor", "reason"]))


def register(main: click.Group) -> None:
    """Add the commands to the ``workbench`` group."""
    for command in (runs_command, models_command, promote_command, rollback_command, model_group):
        main.add_command(command)
