"""What a serving process needs to know about its deployment's running rollout (the read contract).

The web service and the stream consumer poll :func:`serving_plan` (as they poll the champion
alias) and route by the plan: a share change or a stop takes effect at the next poll, without a
restart. The plan is a frozen value, so a request routed under one plan is never half-routed
under the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Rollout

RUNNING = "running"
STOPPED = "stopped"
BREACHED = "breached"
PROMOTED = "promoted"
STATUSES = (RUNNING, STOPPED, BREACHED, PROMOTED)


@dataclass(frozen=True)
class RolloutPlan:
    """A running rollout as the serving side routes by it.

    ``share`` is the challenger's share of answers in canary and A/B mode; in shadow mode, where
    the champion answers every request, the share of requests copied to the challenger (see
    :attr:`served_share`). ``salt`` makes the sticky assignment specific to this rollout
    (:func:`workbench.rollouts.assign_variant`), so a new rollout reshuffles keys.
    """

    rollout_id: int
    deployment_id: int
    mode: str
    share: float
    champion_version: str
    challenger_version: str
    key_column: str | None

    @property
    def salt(self) -> str:
        """The assignment salt: one per rollout."""
        return f"rollout-{self.rollout_id}"

    @property
    def shadow(self) -> bool:
        """True when the challenger scores copies off the response path and never answers."""
        return self.mode == "shadow"

    @property
    def served_share(self) -> float:
        """The share as serving applies it (:func:`served_share`)."""
        return served_share(self.mode, self.share)


def served_share(mode: str, stored: float) -> float:
    """A rollout's share as serving applies it, from its stored share: a canary's or A/B test's share of
    answers as stored; a shadow rollout's share of requests copied, 1.0 for a row written before shadow
    rollouts had a share (they stored 0.0, and copied every request)."""
    if mode != "shadow":
        return stored
    return stored if 0.0 < stored < 1.0 else 1.0


def active_rollout(session: Session, *, deployment_id: int) -> Rollout | None:
    """The deployment's running rollout, or None (at most one runs: a unique partial index)."""
    return session.scalars(
        select(Rollout).where(Rollout.deployment_id == deployment_id, Rollout.status == RUNNING)
    ).first()


def serving_plan(session: Session, *, deployment_id: int) -> RolloutPlan | None:
    """The routing plan of the deployment's running rollout, or None when the champion serves alone."""
    row = active_rollout(session, deployment_id=deployment_id)
    if row is None:
        return None
    return RolloutPlan(
        rollout_id=row.id,
        deployment_id=row.deployment_id,
        mode=row.mode,
        share=float(row.share),
        champion_version=row.champion_version,
        challenger_version=row.challenger_version,
        key_column=row.key_column,
    )
