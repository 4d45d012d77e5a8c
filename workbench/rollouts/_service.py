"""Starting, changing, stopping and promoting a rollout; every step a row of the registry history.

Each step writes one ``promotions`` row with the rollout's id (``action`` ``shadow``, ``canary``
or ``ab`` for a start, ``share``, ``stop``, ``breach``, and ``promote`` through the registry's
own :func:`workbench.registry.promote`), so the Registry page's history shows a rollout next to
the alias moves it led to, and posts ``rollout.step`` to the webhooks once committed.

What the verdict and the guardrails will use is frozen into ``Rollout.settings`` at start
(:func:`frozen_settings`), from the ML Canvas (primary metric, direction, minimum uplift, latency
budget, retrain policy and its online step) and the champion's registered holdout metric (the
baseline of the mixture's scale): editing the canvas later does not change a running test.

Steps that change a running rollout are conditional UPDATEs on its status (and, for a share, on
its current share), so two people or two serving processes acting at once cannot both succeed:
the loser gets a :class:`~workbench.errors.Conflict` (or, from :func:`check_rollout`, nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import Deployment, Project, Promotion, Rollout, utcnow
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.events import emit_on_commit
from workbench.rollouts._assignment import traffic_share
from workbench.rollouts._plan import BREACHED, PROMOTED, RUNNING, STOPPED, active_rollout, served_share
from workbench.rollouts._settings import validate_rollout

if TYPE_CHECKING:
    from workbench.settings import Settings

# The history's actions for rollout steps (``promote`` is the registry's own).
START_ACTIONS = ("shadow", "canary", "ab")
STEP_ACTIONS = (*START_ACTIONS, "share", "stop", "breach", "promote")
# Deployments a rollout can run on: the ones answering requests one by one.
ROLLOUT_DEPLOYMENT_MODES = ("web", "stream")
# The canary share the online step starts at when the canvas declares none.
DEFAULT_ONLINE_SHARE = 0.1
# The history's "alias" of a rollout step: its own lane on the Registry timeline, and never
# mistaken for a move of @champion or @challenger by a rollback (which walks those aliases' rows).
# The step's from/to versions are the rollout's champion and challenger.
HISTORY_ALIAS = "rollout"


def _project(session: Session, project: Project | str) -> Project:
    if isinstance(project, Project):
        return project
    from workbench.projects import get_project

    return get_project(session, slug=project)


def _deployment(session: Session, project: Project, deployment_id: int) -> Deployment:
    deployment = session.get(Deployment, int(deployment_id))
    if deployment is None or deployment.project_id != project.id:
        known = session.scalars(
            select(Deployment.id).where(Deployment.project_id == project.id).order_by(Deployment.id)
        ).all()
        have = ", ".join(str(i) for i in known) or "none (start a web service or a stream consumer first)"
        raise NotFound(f"Project {project.slug!r} has no deployment {deployment_id!r}; its deployments: {have}.")
    return deployment


def _running(session: Session, project: Project, deployment_id: int) -> Rollout:
    deployment = _deployment(session, project, deployment_id)
    row = active_rollout(session, deployment_id=deployment.id)
    if row is None:
        raise Conflict(f"Deployment {deployment.id} of {project.slug!r} has no running rollout; start one with "
                       f"`workbench rollout start {project.slug} --deployment {deployment.id} --mode shadow`.")
    return row


def percent(share: float) -> str:
    """A share as the history writes it: ``10%``, ``2.5%``."""
    return f"{share * 100:.4g}%"


def share_text(mode: str, share: float) -> str:
    """How a rollout's share reads after its mode: `` at 10%`` (canary, A/B), `` copying 20% of the requests``
    (a shadow rollout copying a share), nothing for a shadow rollout copying every request."""
    if mode != "shadow":
        return f" at {percent(share)}"
    copied = served_share(mode, share)
    return "" if copied >= 1.0 else f" copying {percent(copied)} of the requests"


def rollout_dict(row: Rollout) -> dict[str, Any]:
    """The row's fields, JSON-ready (the CLI's ``--json``, the webhook, the page)."""
    return {
        "id": row.id,
        "project_id": row.project_id,
        "deployment_id": row.deployment_id,
        "mode": row.mode,
        "share": float(row.share),
        "champion_version": row.champion_version,
        "challenger_version": row.challenger_version,
        "key_column": row.key_column,
        "status": row.status,
        "settings": dict(row.settings or {}),
        "verdict": row.verdict,
        "end_reason": row.end_reason,
        "started_by": row.started_by,
        "started_at": row.started_at.isoformat(timespec="seconds") if row.started_at else None,
        "updated_at": row.updated_at.isoformat(timespec="seconds") if row.updated_at else None,
        "ended_at": row.ended_at.isoformat(timespec="seconds") if row.ended_at else None,
    }


def record_step(
    session: Session,
    *,
    project: Project,
    rollout: Rollout,
    action: str,
    actor: str,
    reason: str,
    settings: Settings | None = None,
) -> Promotion:
    """One history row for a rollout step, and ``rollout.step`` to the webhooks once committed."""
    if action not in STEP_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(STEP_ACTIONS)}; got {action!r}.", field="action")
    row = Promotion(project_id=project.id, alias=HISTORY_ALIAS, from_version=rollout.champion_version,
                    to_version=rollout.challenger_version, action=action, actor=actor or "", reason=reason,
                    rollout_id=rollout.id)
    session.add(row)
    session.flush()
    announce_step(session, project=project, rollout=rollout, action=action, actor=actor, reason=reason,
                  settings=settings)
    return row


def announce_step(session: Session, *, project: Project, rollout: Rollout, action: str, actor: str, reason: str,
                  settings: Settings | None = None) -> None:
    """``rollout.step`` to the webhooks once ``session`` commits (never fails the step)."""
    emit_on_commit(session, "rollout.step", project=project, settings=settings, payload={
        "rollout_id": rollout.id, "deployment_id": rollout.deployment_id, "step": action, "mode": rollout.mode,
        "share": float(rollout.share), "status": rollout.status, "champion_version": rollout.champion_version,
        "challenger_version": rollout.challenger_version, "verdict": rollout.verdict, "actor": actor or "",
        "reason": reason,
    })


# --------------------------------------------------------------------------- settings frozen at start


def tested_quantity(task_type: str, primary_metric: str) -> dict[str, Any]:
    """The per-request quantity the verdict tests, for the canvas's primary metric.

    ``{"name", "kind", "direction", "proxy"}``: accuracy (per-request correctness, a
    proportion) for every classification metric, exact for ``accuracy`` and a proxy for the
    others; for regression the absolute error (``mae``), the squared error (``rmse``: the
    verdict on the mean squared error is the verdict on its root; ``r2``: a proxy, exact in
    direction when both variants see the same label distribution) and the absolute percentage
    error (``mape``).
    """
    if task_type == "classification":
        return {"name": "accuracy", "kind": "proportion", "direction": "maximize",
                "proxy": primary_metric != "accuracy"}
    name = {"mae": "absolute_error", "mape": "absolute_percentage_error"}.get(primary_metric, "squared_error")
    return {"name": name, "kind": "mean", "direction": "minimize", "proxy": primary_metric == "r2"}


def _baseline(test: Mapping[str, Any], holdout: Mapping[str, float]) -> float:
    """The champion's registered holdout value of the tested quantity (0 when unknown: an absolute uplift)."""
    source = {"accuracy": "accuracy", "absolute_error": "mae", "absolute_percentage_error": "mape",
              "squared_error": "rmse"}[test["name"]]
    value = holdout.get(source)
    if value is None:
        return 0.0
    return float(value) ** 2 if test["name"] == "squared_error" else float(value)


def frozen_settings(
    session: Session, *, project: Project, champion_version: str, params: Mapping[str, Any],
    settings: Settings | None = None,
) -> dict[str, Any]:
    """What the verdict and the guardrails of a rollout starting now will use, read once from the canvas."""
    from workbench.design.project_config import project_config
    from workbench.registry import get_version
    from workbench.rollouts._sequential import mixing_scale

    config = project_config(session, project=project)
    test = tested_quantity(project.task_type, config.primary_metric)
    holdout = get_version(session, project=project, version=champion_version, settings=settings).holdout_metrics
    baseline = _baseline(test, holdout)
    return {
        "alpha": params["alpha"],
        "min_volume": params["min_volume"],
        "min_requests": params["min_requests"],
        "latency_factor": params["latency_factor"],
        "error_scale": params["error_scale"],
        "task_type": project.task_type,
        "primary_metric": config.primary_metric,
        "metric_direction": config.metric_direction,
        "test_metric": test["name"],
        "test_kind": test["kind"],
        "test_direction": test["direction"],
        "proxy": test["proxy"],
        "min_uplift": config.min_uplift,
        "baseline": baseline,
        "tau": mixing_scale(min_uplift=config.min_uplift, baseline=baseline),
        "latency_budget_ms": config.latency_budget_ms,
        "policy": config.retrain_policy,
        "online": config.online_step,
        "online_share": config.online_share,
        # Automatic steps (shadow → canary → promote, stop on "worse") only under the automatic policy.
        "automatic": bool(params.get("automatic", config.retrain_policy == "automatic")),
    }


# --------------------------------------------------------------------------- the steps


def start_rollout(
    session: Session,
    *,
    project: Project | str,
    deployment_id: int,
    mode: str,
    share: float | None = None,
    version: str | int | None = None,
    key_column: str | None = None,
    actor: str,
    principal: Principal | None = None,
    settings: Settings | None = None,
    params: Mapping[str, Any] | None = None,
) -> Rollout:
    """Start a shadow, canary or A/B rollout of ``version`` (default: ``@challenger``) on a running deployment.

    The champion is the ``@champion`` version now. ``params`` overrides the declared rollout
    settings (:data:`workbench.rollouts.ROLLOUT_PARAMS`: alpha, burn-in, guardrail limits) and
    ``automatic`` (default: the canvas's retrain policy is ``automatic``). Refuses with
    :class:`~workbench.errors.Conflict` when a rollout already runs on the deployment, when the
    deployment is not a running web service or stream consumer, or when the version is the
    champion; with :class:`~workbench.errors.InvalidInput` when ``key_column`` is not one of
    :func:`key_columns` (the champion's inputs, then the data's other columns; the message lists
    them). ``principal`` (None: the operator) must be an editor of the project.
    """
    from workbench.registry import aliases, get_version, model_name

    row_project = _project(session, project)
    require(session, project=row_project, principal=principal, action="deploy")
    declared = dict(params or {})
    automatic = declared.pop("automatic", None)
    clean = validate_rollout({**declared, "mode": mode, "share": share})
    if automatic is not None:
        clean["automatic"] = bool(automatic)
    deployment = _deployment(session, row_project, deployment_id)
    if deployment.mode not in ROLLOUT_DEPLOYMENT_MODES:
        raise Conflict(f"Deployment {deployment.id} is a {deployment.mode} deployment; a rollout needs a web service "
                       "or a stream consumer (requests answered one by one). Pick one of those.")
    if deployment.status != "running":
        raise Conflict(f"Deployment {deployment.id} is {deployment.status}, not running; start it before a rollout.")
    if key_column is not None:
        key_column = key_column.strip() or None
        if key_column is not None and len(key_column) > 200:
            raise InvalidInput(f"key_column is {len(key_column)} characters; at most 200 are allowed.",
                               field="key_column")
    existing = active_rollout(session, deployment_id=deployment.id)
    if existing is not None:
        raise Conflict(f"Deployment {deployment.id} already runs rollout {existing.id} ({existing.mode} of "
                       f"v{existing.challenger_version}); stop or promote it first.")
    held = aliases(project=row_project, settings=settings)
    champion = held.get("champion")
    if champion is None:
        raise Conflict(f"{model_name(row_project)!r} has no @champion: promote a version before a rollout.")
    if version is None:
        if held.get("challenger") is None:
            raise Conflict(f"{model_name(row_project)!r} has no @challenger: pass a version, or set the challenger "
                           "alias (a retrain sets it).")
        version = held["challenger"]
    challenger = get_version(session, project=row_project, version=version, settings=settings).version
    if challenger == champion:
        raise Conflict(f"Version {challenger} is the champion; a rollout compares another version with it.")
    if key_column is not None:
        check_key_column(key_column, key_columns(session, project=row_project, champion=champion, settings=settings),
                         champion=champion)
    now = utcnow()
    row = Rollout(
        project_id=row_project.id, deployment_id=deployment.id, mode=clean["mode"], share=clean["share"],
        champion_version=champion, challenger_version=challenger, key_column=key_column, status=RUNNING,
        settings=frozen_settings(session, project=row_project, champion_version=champion, params=clean,
                                 settings=settings),
        verdict=None, end_reason="", started_by=actor or "", started_at=now, updated_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # Another session started one between the check above and this insert: the unique
        # partial index on running rollouts refused this one. (The session must be rolled back
        # now, so the message uses no attribute of its rows.)
        raise Conflict(f"Deployment {deployment_id} already runs a rollout (started a moment ago by someone else); "
                       "stop or promote it first.") from None
    what = f"{clean['mode']} rollout of v{challenger} against champion v{champion} on deployment {deployment.id}"
    what += share_text(clean["mode"], clean["share"])
    if key_column and (clean["mode"] != "shadow" or clean["share"] < 1.0):
        what += f" keyed by {key_column}"
    record_step(session, project=row_project, rollout=row, action=clean["mode"], actor=actor, reason=what,
                settings=settings)
    return row


def key_columns(session: Session, *, project: Project, champion: str, settings: Settings | None = None) -> list[str]:
    """The columns a rollout may stick by: the champion's input columns, then the other columns of the
    project's data (an entity id such as ``customer_id`` is usually not a feature, but requests carry it:
    the scoring contract ignores extra columns). The target is left out: requests do not carry it."""
    from workbench.data.datasets import latest_dataset
    from workbench.registry import input_columns

    allowed = list(input_columns(project=project, version=champion, settings=settings))
    try:
        data_columns = [str(column["name"]) for column in latest_dataset(session, project=project).columns]
    except NotFound:
        data_columns = []
    allowed += [c for c in data_columns if c not in allowed and c != project.target]
    return allowed


def check_key_column(key_column: str, allowed: list[str], *, champion: str) -> None:
    """Refuse a key column that neither the champion reads nor the project's data holds: requests would not
    carry it (a misspelling, say), and every one would be routed by its request id instead, silently."""
    if key_column not in allowed:
        raise InvalidInput(f"key_column {key_column!r} is neither an input column of champion v{champion} nor a "
                           f"column of the project's data; pick one of {', '.join(repr(c) for c in allowed)}, or "
                           "leave it empty to route by request id.", field="key_column")


def _claim(session: Session, row: Rollout, values: dict[str, Any], **expected: Any) -> bool:
    """Apply ``values`` to the running ``row`` only if it is still running (and as ``expected``)."""
    query = update(Rollout).where(Rollout.id == row.id, Rollout.status == RUNNING)
    for name, value in expected.items():
        query = query.where(getattr(Rollout, name) == value)
    result = session.execute(query.values(**values, updated_at=utcnow()).execution_options(synchronize_session=False))
    won = bool(getattr(result, "rowcount", 0) == 1)
    session.refresh(row)
    return won


def set_share(
    session: Session,
    *,
    project: Project | str,
    deployment_id: int,
    share: float,
    actor: str,
    principal: Principal | None = None,
    settings: Settings | None = None,
) -> Rollout:
    """Change the share of a running rollout (serving picks it up at its next poll): the challenger's share of
    answers in a canary or A/B rollout, the share of requests copied to it in a shadow rollout.

    Raising a share only moves more keys to the challenger (assignment is monotone), so no key
    flips back.
    """
    row_project = _project(session, project)
    require(session, project=row_project, principal=principal, action="deploy")
    row = _running(session, row_project, deployment_id)
    new = traffic_share(row.mode, share)
    stored = float(row.share)
    old = served_share(row.mode, stored)
    if new == old:
        what = "copies" if row.mode == "shadow" else "answers"
        raise Conflict(f"Rollout {row.id} already {what} {percent(old)} with the challenger; pick another share.")
    if not _claim(session, row, {"share": new}, share=stored):
        raise Conflict(f"Rollout {row.id} changed while the share was being set (now {row.status}, "
                       f"{percent(row.share)}); look at it again.")
    record_step(session, project=row_project, rollout=row, action="share", actor=actor,
                reason=f"share {percent(old)} → {percent(new)}", settings=settings)
    return row


def end_rollout(
    session: Session, *, project: Project, row: Rollout, status: str, action: str, reason: str, actor: str,
    settings: Settings | None = None,
) -> bool:
    """End a running rollout with ``status`` and a history row ``action``; False when it had already ended."""
    if not _claim(session, row, {"status": status, "end_reason": reason, "ended_at": utcnow()}):
        return False
    record_step(session, project=project, rollout=row, action=action, actor=actor, reason=reason, settings=settings)
    return True


def stop_rollout(
    session: Session,
    *,
    project: Project | str,
    deployment_id: int,
    reason: str,
    actor: str,
    principal: Principal | None = None,
    settings: Settings | None = None,
) -> Rollout:
    """Stop the deployment's running rollout: the champion answers alone again (at serving's next poll)."""
    row_project = _project(session, project)
    require(session, project=row_project, principal=principal, action="deploy")
    from workbench.registry import check_reason

    text = check_reason(reason, what="the rollout stops")
    row = _running(session, row_project, deployment_id)
    if not end_rollout(session, project=row_project, row=row, status=STOPPED, action="stop", reason=text,
                       actor=actor, settings=settings):
        raise Conflict(f"Rollout {row.id} had already ended ({row.status}) when it was being stopped.")
    return row


def promote_rollout(
    session: Session,
    *,
    project: Project | str,
    deployment_id: int,
    reason: str,
    actor: str,
    principal: Principal | None = None,
    settings: Settings | None = None,
) -> Rollout:
    """Make the rollout's challenger the champion (the registry's promote, its history row linked to the rollout).

    The rollout ends as ``promoted`` and the deployment serves the new champion alone, as it
    follows its alias. The online verdict at that moment is added to the history's reason, so a
    person promoting before the verdict says "better" does so on the record. ``principal``
    must be allowed to promote in the project.
    """
    row_project = _project(session, project)
    require(session, project=row_project, principal=principal, action="promote")
    from workbench.registry import check_reason

    text = check_reason(reason, what="the challenger is promoted")
    row = _running(session, row_project, deployment_id)
    verdict = row.verdict or "no verdict computed yet"
    if not end_promoted(session, project=row_project, row=row, reason=text, actor=actor, settings=settings,
                        principal=principal, note=f"{row.mode}; online verdict: {verdict}"):
        raise Conflict(f"Rollout {row.id} had already ended ({row.status}) when it was being promoted.")
    return row


def end_promoted(
    session: Session, *, project: Project, row: Rollout, reason: str, actor: str, note: str,
    settings: Settings | None = None, principal: Principal | None = None,
) -> bool:
    """End a running rollout as promoted: ``@champion`` moves through the registry's promote (its history row
    linked to the rollout, ``note`` added to its reason). False when the rollout had already ended."""
    from workbench.registry import promote

    if not _claim(session, row, {"status": PROMOTED, "end_reason": reason, "ended_at": utcnow()}):
        return False
    history = promote(session, project=project, version=row.challenger_version, alias="champion",
                      reason=f"{reason} (rollout {row.id}, {note})", actor=actor, settings=settings,
                      principal=principal)
    history.rollout_id = row.id
    session.flush()
    announce_step(session, project=project, rollout=row, action="promote", actor=actor, reason=reason,
                  settings=settings)
    return True


def online_target(session: Session, *, project: Project) -> Deployment | None:
    """The deployment the retrain gate's online step rolls out on: the newest running web service, else stream."""
    for mode in ROLLOUT_DEPLOYMENT_MODES:
        found = session.scalars(
            select(Deployment).where(Deployment.project_id == project.id, Deployment.mode == mode,
                                     Deployment.status == "running").order_by(Deployment.id.desc()).limit(1)
        ).first()
        if found is not None:
            return found
    return None


def start_online_step(
    session: Session, *, project: Project, version: str, actor: str, reason: str, settings: Settings | None = None,
) -> dict[str, Any]:
    """The retrain gate's online step: roll ``version`` out (as the canvas says) instead of promoting it.

    Returns ``{"started": bool, "reason": str, "rollout": dict | None}``. Nothing starts when the
    canvas declares no online step, when no web or stream deployment is running, or when one is
    already running a rollout (the reason says which); the caller then keeps the offline gate's
    decision.
    """
    from workbench.design.project_config import project_config

    config = project_config(session, project=project)
    if config.online_step == "none":
        return {"started": False, "reason": "the ML Canvas declares no online step", "rollout": None}
    target = online_target(session, project=project)
    if target is None:
        return {"started": False, "rollout": None,
                "reason": f"online step {config.online_step!r}: no web service or stream consumer is running"}
    running = active_rollout(session, deployment_id=target.id)
    if running is not None:
        return {"started": False, "rollout": None,
                "reason": f"online step {config.online_step!r}: deployment {target.id} already runs rollout "
                          f"{running.id}"}
    share = config.online_share if config.online_step == "canary" else None
    row = start_rollout(session, project=project, deployment_id=target.id, mode=config.online_step, share=share,
                        version=version, actor=actor, settings=settings,
                        params={"automatic": config.retrain_policy == "automatic"})
    how = ("promoted by itself when the online verdict says better" if config.retrain_policy == "automatic"
           else "a person promotes it with a reason")
    return {"started": True, "rollout": rollout_dict(row),
            "reason": f"{reason}; online step: {config.online_step} on deployment {target.id}, {how}"}


# --------------------------------------------------------------------------- reading


def list_rollouts(session: Session, *, project: Project | str, deployment_id: int | None = None) -> list[Rollout]:
    """The project's rollouts (of one deployment, or all), newest first."""
    row_project = _project(session, project)
    query = select(Rollout).where(Rollout.project_id == row_project.id)
    if deployment_id is not None:
        query = query.where(Rollout.deployment_id == int(deployment_id))
    return list(session.scalars(query.order_by(Rollout.started_at.desc(), Rollout.id.desc())))


def latest_rollout(session: Session, *, project: Project, deployment_id: int) -> Rollout:
    """The running rollout of the deployment, else its newest; NotFound when it never had one."""
    deployment = _deployment(session, project, deployment_id)
    row = active_rollout(session, deployment_id=deployment.id)
    if row is None:
        row = session.scalars(
            select(Rollout).where(Rollout.deployment_id == deployment.id)
            .order_by(Rollout.started_at.desc(), Rollout.id.desc()).limit(1)
        ).first()
    if row is None:
        raise NotFound(f"Deployment {deployment.id} of {project.slug!r} has had no rollout; start one with "
                       f"`workbench rollout start {project.slug} --deployment {deployment.id} --mode shadow`.")
    return row


def rollout_history(session: Session, *, project: Project | str, deployment_id: int | None = None) -> list[Promotion]:
    """The registry history rows of the project's rollouts (of one deployment, or all), oldest first."""
    row_project = _project(session, project)
    query = select(Promotion).where(Promotion.project_id == row_project.id, Promotion.rollout_id.is_not(None))
    if deployment_id is not None:
        query = query.join(Rollout, Rollout.id == Promotion.rollout_id).where(
            Rollout.deployment_id == int(deployment_id))
    return list(session.scalars(query.order_by(Promotion.created_at, Promotion.id)))


ENDED = (STOPPED, BREACHED, PROMOTED)
