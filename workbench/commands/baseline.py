"""``workbench baseline``: compute a project's baselines, set its rule, show the bar to beat.

``workbench baseline PROJECT`` is short for ``workbench baseline run PROJECT``.
"""

from __future__ import annotations

from typing import Any

import click

from workbench.commands.common import actor, emit, json_option, wait_for_job


class DefaultRunGroup(click.Group):
    """A group whose first argument, when it is not a sub-command, is the PROJECT of ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _table(result: dict[str, Any]) -> str:
    metric = result["primary_metric"]
    names = [m for m in _metric_order(result) if any(m in b["metrics"] for b in result["baselines"])]
    header = f"{'baseline':<22}" + "".join(f"{m:>18}" for m in names)
    lines = [
        f"Baselines of {result['project']} on the holdout ({result['split']['strategy']} split, "
        f"{result['split']['n_train']} train / {result['split']['n_holdout']} holdout rows)",
        header,
    ]
    for entry in result["baselines"]:
        marker = "*" if entry["name"] == result["best"]["name"] else " "
        if entry["status"] != "succeeded":
            lines.append(f"{marker}{entry['name']:<21} failed: {entry.get('error', '')}")
            continue
        cells = "".join(
            f"{entry['metrics'][m]:>18.4f}" if m in entry["metrics"] else f"{'-':>18}" for m in names
        )
        lines.append(f"{marker}{entry['name']:<21}{cells}")
    best = result["best"]
    lines.append(
        f"Bar to beat: {best['label']} with {metric} = {best['value']:.4f} ({best['direction']}, "
        f"MLflow run {best['run_id']})."
    )
    return "\n".join(lines)


def _metric_order(result: dict[str, Any]) -> list[str]:
    from workbench.evaluation.metrics import metrics_for

    return [m.name for m in metrics_for(result["task_type"])]


def register(main: click.Group) -> None:
    """Add ``workbench baseline`` to the ``workbench`` group."""

    @main.group(cls=DefaultRunGroup)
    def baseline() -> None:
        """Baselines: `workbench baseline PROJECT` runs them; `baseline rule` sets the canvas rule."""

    @baseline.command("run")
    @click.argument("project_slug", metavar="PROJECT")
    @click.option("--detach", is_flag=True, help="Start the job and print its id without waiting.")
    @json_option
    def baseline_run(project_slug: str, detach: bool, as_json: bool) -> None:
        """Fit every baseline on the project's split, log them to MLflow and print the best."""
        from workbench.db import session_scope
        from workbench.errors import JobFailed
        from workbench.jobs import launch
        from workbench.projects import get_project
        from workbench.settings import get_settings

        settings = get_settings()
        settings.ensure_home()
        with session_scope() as session:
            get_project(session, slug=project_slug)  # a clear NotFound before a job is created
        job_id = launch(kind="baseline", project_slug=project_slug, params={}, actor=actor(), settings=settings)
        if detach:
            emit({"job_id": job_id, "status": "queued"}, as_json=as_json,
                 text=f"Baseline job {job_id} started; follow it with `workbench jobs show {job_id} --wait`.")
            return
        data = wait_for_job(job_id, show_progress=not as_json)
        if data["status"] != "succeeded":
            raise JobFailed(
                f"Baseline job {job_id} ended {data['status']}: {data.get('error') or data.get('message')}. "
                f"See `workbench jobs show {job_id}` for its log."
            )
        result = dict(data["result"] or {})
        result["job_id"] = job_id
        emit(result, as_json=as_json, text=_table(result))

    @baseline.command("rule")
    @click.argument("project_slug", metavar="PROJECT")
    @click.option("--when", "conditions", multiple=True, metavar="'COLUMN OP VALUE'",
                  help="A condition such as 'tenure < 12' or 'region in north,south' (repeatable).")
    @click.option("--any", "any_", is_flag=True, help="The rule holds when any condition holds (default: all).")
    @click.option("--then", "then_value", default=None, help="Prediction when the rule holds.")
    @click.option("--else", "else_value", default=None, help="Prediction otherwise.")
    @click.option("--clear", is_flag=True, help="Remove the project's rule.")
    @json_option
    def baseline_rule(
        project_slug: str,
        conditions: tuple[str, ...],
        any_: bool,
        then_value: str | None,
        else_value: str | None,
        clear: bool,
        as_json: bool,
    ) -> None:
        """Set the canvas heuristic: a rule on one or two columns that predicts without ML."""
        from workbench.db import session_scope
        from workbench.design.heuristics import Rule, parse_condition, set_heuristic
        from workbench.errors import InvalidInput
        from workbench.projects import get_project

        if not clear:
            if not conditions:
                raise InvalidInput("Give at least one --when 'COLUMN OP VALUE' (or --clear).", field="when")
            if then_value is None or else_value is None:
                raise InvalidInput("Give both --then VALUE and --else VALUE (the two predictions).", field="then")
        with session_scope() as session:
            project = get_project(session, slug=project_slug)
            rule = None
            if not clear:
                rule = Rule(
                    conditions=[parse_condition(c) for c in conditions],
                    combine="any" if any_ else "all",
                    then_value=then_value,
                    else_value=else_value,
                )
            project = set_heuristic(session, project=project, rule=rule, actor=actor())
            stored = project.heuristic
        if stored is None:
            emit({"project": project_slug, "rule": None}, as_json=as_json, text=f"Removed the rule of {project_slug}.")
        else:
            emit({"project": project_slug, "rule": stored}, as_json=as_json,
                 text=f"Rule of {project_slug}: {Rule.from_dict(stored).describe()}")

    @baseline.command("show")
    @click.argument("project_slug", metavar="PROJECT")
    @json_option
    def baseline_show(project_slug: str, as_json: bool) -> None:
        """Show the bar to beat (the best baseline of the newest baseline job)."""
        from workbench.db import session_scope
        from workbench.design.baselines import bar_to_beat
        from workbench.projects import get_project

        with session_scope() as session:
            bar = bar_to_beat(session, project=get_project(session, slug=project_slug))
        if bar is None:
            emit(None, as_json=as_json, text=f"No baselines yet; run `workbench baseline {project_slug}`.")
            return
        emit(bar.as_dict(), as_json=as_json,
             text=f"Bar to beat: {bar.label} with {bar.metric} = {bar.value:.4f} ({bar.direction}).")
