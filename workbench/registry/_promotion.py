"""Moving the ``champion`` / ``challenger`` aliases, and the promotion history that records every move.

MLflow keeps aliases but no history of them; every move made here is also written to the
``promotions`` table (who, when, from which version to which, and why) and, once committed,
posted to the webhooks as ``model.alias_moved`` (:mod:`workbench.events`). Rollback undoes the
latest champion promotion that has not been undone yet, so repeated rollbacks walk back through
the history like an undo stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import Project, Promotion
from workbench.errors import Conflict, InvalidInput, check_choice
from workbench.events import emit_on_commit
from workbench.registry._versions import _client, aliases, get_version, model_name

if TYPE_CHECKING:
    from workbench.settings import Settings

ALIASES = ("champion", "challenger")
ACTIONS = ("promote", "rollback")
MAX_REASON = 2000


def check_reason(reason: str | None, *, what: str = "the alias moves") -> str:
    """The stripped reason of a registry step (a promotion, a rollback, a rollout step), or InvalidInput saying
    it is required or too long; ``what`` names the step in the message."""
    text = (reason or "").strip()
    if not text:
        raise InvalidInput(f"reason is required: say why {what} (it is kept in the registry history).",
                           field="reason")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"reason is {len(text)} characters; at most {MAX_REASON} are allowed.", field="reason")
    return text


def _announce(session: Session, project: Project, row: Promotion, settings: Settings | None) -> None:
    """``model.alias_moved`` to the webhooks once the move is committed (never fails the move)."""
    emit_on_commit(session, "model.alias_moved", project=project, settings=settings, payload={
        "model": model_name(project), "alias": row.alias, "action": row.action,
        "from_version": row.from_version, "to_version": row.to_version, "actor": row.actor, "reason": row.reason,
    })


def promote(
    session: Session,
    *,
    project: Project,
    version: str | int,
    alias: str = "champion",
    reason: str,
    actor: str,
    settings: Settings | None = None,
    principal: Principal | None = None,
) -> Promotion:
    """Point ``alias`` (champion or challenger) at ``version`` and record it in the promotion history.

    ``principal`` (None: the operator) must be an editor of the project.
    """
    require(session, project=project, principal=principal, action="promote")
    check_choice("alias", alias, ALIASES)
    text = check_reason(reason)
    info = get_version(session, project=project, version=version, settings=settings)
    held = aliases(project=project, settings=settings)
    current = held.get(alias)
    if current == info.version:
        raise Conflict(f"Version {info.version} is already the {alias} of {model_name(project)!r}; pick another "
                       "version.")
    client = _client(settings)
    client.set_registered_model_alias(model_name(project), alias, info.version)
    if alias == "champion" and held.get("challenger") == info.version:
        # The challenger won: it is the champion now, so nothing is left challenging it.
        client.delete_registered_model_alias(model_name(project), "challenger")
    row = Promotion(project_id=project.id, alias=alias, from_version=current, to_version=info.version,
                    action="promote", actor=actor or "", reason=text)
    session.add(row)
    session.flush()
    _announce(session, project, row, settings)
    return row


def record_move(
    session: Session,
    *,
    project: Project,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    actor: str,
    reason: str,
    action: str = "promote",
    settings: Settings | None = None,
) -> Promotion:
    """Write one alias move made elsewhere (a tuning job's automatic first champion) to the history.

    The alias has already moved in MLflow; this only keeps the record, so every move is in
    :func:`history` whoever made it (and announces it to the webhooks, as :func:`promote` does).
    """
    check_choice("alias", alias, ALIASES)
    check_choice("action", action, ACTIONS)
    row = Promotion(project_id=project.id, alias=alias, from_version=from_version, to_version=to_version,
                    action=action, actor=actor or "", reason=check_reason(reason))
    session.add(row)
    session.flush()
    _announce(session, project, row, settings)
    return row


def rollback_target(session: Session, *, project: Project, alias: str = "champion") -> Promotion | None:
    """The promotion a rollback would undo: the newest one not already undone by a later rollback."""
    undone = 0
    for row in history(session, project=project, alias=alias, limit=None):
        if row.action == "rollback":
            undone += 1
        elif undone:
            undone -= 1
        else:
            return row
    return None


def rollback(
    session: Session,
    *,
    project: Project,
    reason: str,
    actor: str,
    alias: str = "champion",
    settings: Settings | None = None,
    principal: Principal | None = None,
) -> Promotion:
    """Make the previous champion champion again (undo the latest promotion), recorded in the history.

    ``principal`` (None: the operator) must be an editor of the project.
    """
    require(session, project=project, principal=principal, action="promote")
    check_choice("alias", alias, ALIASES)
    text = check_reason(reason)
    target = rollback_target(session, project=project, alias=alias)
    if target is None or target.from_version is None:
        raise Conflict(f"{model_name(project)!r} has no previous {alias} to roll back to: the promotion history "
                       f"has no earlier {alias}. Promote a version instead.")
    previous = target.from_version
    get_version(session, project=project, version=previous, settings=settings)  # it must still exist
    current = aliases(project=project, settings=settings).get(alias)
    _client(settings).set_registered_model_alias(model_name(project), alias, previous)
    row = Promotion(project_id=project.id, alias=alias, from_version=current, to_version=previous,
                    action="rollback", actor=actor or "", reason=text)
    session.add(row)
    session.flush()
    _announce(session, project, row, settings)
    return row


def history(session: Session, *, project: Project, alias: str | None = None,
            limit: int | None = 200) -> list[Promotion]:
    """Alias changes of the project, newest first."""
    query = select(Promotion).where(Promotion.project_id == project.id)
    if alias:
        query = query.where(Promotion.alias == alias)
    query = query.order_by(Promotion.created_at.desc(), Promotion.id.desc())
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def promotion_dict(row: Promotion) -> dict[str, Any]:
    """JSON-ready form of a history row."""
    return {"alias": row.alias, "action": row.action, "from_version": row.from_version,
            "to_version": row.to_version, "actor": row.actor, "reason": row.reason, "rollout_id": row.rollout_id,
            "created_at": row.created_at.isoformat(timespec="seconds") if row.created_at else None}
