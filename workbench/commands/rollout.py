"""``workbench rollout``: start, watch, resize, stop and promote a challenger's rollout on a deployment."""

from __future__ import annotations

from typing import Any

import click

from workbench.commands.common import actor, emit, json_option


def register(main: click.Group) -> None:
    """Add the ``rollout`` command group to the ``workbench`` group."""
    main.add_command(rollout)


@click.group()
def rollout() -> None:
    """Shadow, canary and A/B rollouts of a challenger against the champion on a web or stream deployment."""


deployment_option = click.option("--deployment", "deployment_id", required=True, type=int,
                                 help="The deployment's id (the Deployments page shows it).")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _row_line(data: dict[str, Any]) -> str:
    from workbench.rollouts import share_text

    share = share_text(data["mode"], data["share"]) if data["mode"] == "shadow" else f" {data['share']:.0%}"
    return (f"rollout {data['id']} on deployment {data['deployment_id']}: {data['mode']}{share} of "
            f"v{data['challenger_version']} against champion v{data['champion_version']}, {data['status']}"
            + (f" ({data['end_reason']})" if data["end_reason"] else ""))


def _step(service: str, *, project: str, deployment_id: int, as_json: bool, **values: Any) -> None:
    """Run one step of ``workbench.rollouts`` (``set_share``, ``stop_rollout``, ...) and print the rollout."""
    import workbench.rollouts as rollouts
    from workbench.db import session_scope

    with session_scope() as session:
        row = getattr(rollouts, service)(session, project=project, deployment_id=deployment_id, actor=actor(),
                                         **values)
        data = rollouts.rollout_dict(row)
    emit(data, as_json=as_json, text=_row_line(data))


def status_text(status: Any) -> str:
    """The status of one rollout as a few readable lines."""
    data = status.to_dict()
    lines = [_row_line(data["rollout"])]
    metric = status.test_metric
    head = ["variant", "requests", "errors", "error rate", "dropped", "timeouts", "p50 ms", "p99 ms", "latencies",
            "labelled", metric, "95% interval"]
    rows = [head]
    for name, v in status.variants.items():
        interval = "-" if v.ci_low is None else f"[{v.ci_low:.4g}, {v.ci_high:.4g}]"
        rows.append([name, str(v.requests), str(v.errors), _pct(v.error_rate), str(v.dropped), str(v.timeouts),
                     _num(v.latency_p50_ms), _num(v.latency_p99_ms), str(v.latency_samples), str(v.labelled),
                     _num(v.metric), interval])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if status.paired:
        classes = data["rollout"]["settings"].get("task_type") == "classification"
        what = "share of the same class" if classes else "mean absolute difference"
        lines.append(f"agreement with the champion ({what}): {_num(status.agreement)} over {status.paired} requests")
    proxy = (f" (a per-request proxy for {status.primary_metric}, which is not a mean over requests)"
             if status.proxy else "")
    lines.append(f"verdict on {metric}{proxy}: {status.verdict.summary()}")
    lines.append(f"guardrails: {status.guardrails.reason}")
    return "\n".join(lines)


@rollout.command("start")
@click.argument("project")
@deployment_option
@click.option("--mode", required=True, type=click.Choice(["shadow", "canary", "ab"]),
              help="shadow: the challenger scores a copy of the requests; canary/ab: it answers a share.")
@click.option("--share", type=float, default=None,
              help="The challenger's share of answers: 0.01-0.5 for a canary, 0.01-0.99 for ab (default 0.1 / 0.5); "
                   "in shadow, the share of requests copied to it: 0.01-1 (default 1, every request).")
@click.option("--version", default=None, help="The version to roll out (default: the @challenger alias).")
@click.option("--key-column", default=None,
              help="The input column a canary sticks by (one entity, one variant), one of the champion's input "
                   "columns; default: the request id.")
@json_option
def rollout_start(project: str, deployment_id: int, mode: str, share: float | None, version: str | None,
                  key_column: str | None, as_json: bool) -> None:
    """Start a rollout of a version against the champion on a running deployment of PROJECT."""
    from workbench.db import session_scope
    from workbench.rollouts import rollout_dict, start_rollout

    with session_scope() as session:
        data = rollout_dict(start_rollout(session, project=project, deployment_id=deployment_id, mode=mode,
                                          share=share, version=version, key_column=key_column, actor=actor()))
    emit(data, as_json=as_json, text=_row_line(data))


@rollout.command("status")
@click.argument("project")
@click.option("--deployment", "deployment_id", type=int, default=None,
              help="Only this deployment (default: the latest rollout of every deployment that had one).")
@json_option
def rollout_status_command(project: str, deployment_id: int | None, as_json: bool) -> None:
    """The online comparison of PROJECT's rollouts: per variant, the verdict, the guardrails (changes nothing)."""
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.rollouts import list_rollouts, rollout_status

    with session_scope() as session:
        row = get_project(session, slug=project)
        if deployment_id is None:
            ids = list(dict.fromkeys(r.deployment_id for r in list_rollouts(session, project=row)))
        else:
            ids = [deployment_id]
        statuses = [rollout_status(session, project=row, deployment_id=i) for i in ids]
    if as_json:
        emit([s.to_dict() for s in statuses], as_json=True)
        return
    text = "\n\n".join(status_text(s) for s in statuses)
    emit(None, as_json=False, text=text or f"{project} has had no rollout; start one with `workbench rollout start`.")


@rollout.command("set-share")
@click.argument("project")
@deployment_option
@click.option("--share", required=True, type=float,
              help="The challenger's new share of answers (e.g. 0.2); in shadow, of requests copied to it.")
@json_option
def rollout_set_share(project: str, deployment_id: int, share: float, as_json: bool) -> None:
    """Change the share of a running rollout (no restart: serving reads it at its next poll)."""
    _step("set_share", project=project, deployment_id=deployment_id, as_json=as_json, share=share)


@rollout.command("stop")
@click.argument("project")
@deployment_option
@click.option("--reason", required=True, help="Why (kept in the registry history).")
@json_option
def rollout_stop(project: str, deployment_id: int, reason: str, as_json: bool) -> None:
    """Stop the running rollout: the champion answers alone again."""
    _step("stop_rollout", project=project, deployment_id=deployment_id, as_json=as_json, reason=reason)


@rollout.command("promote")
@click.argument("project")
@deployment_option
@click.option("--reason", required=True, help="Why the challenger becomes champion (kept in the registry history).")
@json_option
def rollout_promote(project: str, deployment_id: int, reason: str, as_json: bool) -> None:
    """Make the running rollout's challenger the champion (the online verdict is recorded with the reason)."""
    _step("promote_rollout", project=project, deployment_id=deployment_id, as_json=as_json, reason=reason)


@rollout.command("history")
@click.argument("project")
@click.option("--deployment", "deployment_id", type=int, default=None, help="Only this deployment's rollouts.")
@json_option
def rollout_history_command(project: str, deployment_id: int | None, as_json: bool) -> None:
    """Every step of PROJECT's rollouts (start, share, stop, breach, promote), oldest first."""
    from workbench.db import session_scope
    from workbench.registry import promotion_dict
    from workbench.rollouts import rollout_history

    with session_scope() as session:
        rows = [{**promotion_dict(p), "rollout_id": p.rollout_id}
                for p in rollout_history(session, project=project, deployment_id=deployment_id)]
    lines = [f"{r['created_at']}  rollout {r['rollout_id']:<4} {r['action']:<8} by {r['actor'] or '?'}: {r['reason']}"
             for r in rows]
    emit(rows, as_json=as_json, text="\n".join(lines) or f"{project} has had no rollout.")
