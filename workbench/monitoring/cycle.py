"""The monitoring use case: check a project's deployments, then apply the retrain policy.

:func:`check_and_apply_policy` is the one place where "run a check, then maybe retrain" is
put together. The monitor job (``pipelines/monitor.py``, the page's large windows and the
schedule), ``workbench monitor`` and the Monitoring page's inline check all call it, so a
failing check starts a retrain under the ``on_alert`` and ``automatic`` policies whichever
way the check was run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.access.roles import Principal
    from workbench.monitoring.service import Window
    from workbench.settings import Settings


@dataclass(frozen=True)
class CheckOutcome:
    """The stored reports of one check and what the retrain policy did about them."""

    reports: list[dict[str, Any]]
    retrain_job: str | None
    retrain_reason: str

    @property
    def failed_checks(self) -> list[str]:
        """The names of the checks that failed, over every report."""
        return [c["check"] for r in self.reports for c in r["summary"]["checks"] if c["status"] == "fail"]

    @property
    def new_alert_ids(self) -> list[int]:
        """The alerts this check raised (not the ones still open from before)."""
        return [a["id"] for r in self.reports for a in r["summary"].get("alerts", []) if a.get("new")]


def check_and_apply_policy(
    *,
    project_slug: str,
    deployment_id: int | None = None,
    window: Window | str | int | None = None,
    with_evidently: bool = True,
    actor: str = "",
    now: datetime | None = None,
    settings: Settings | None = None,
    principal: Principal | None = None,
    variant: str | None = None,
) -> CheckOutcome:
    """Monitor ``deployment_id`` (default: every deployment of the project) over ``window``, then
    start a retrain when a check failed and the project's retrain policy says so.

    The reports, metrics and alerts are committed before the policy is applied, so a retrain
    refused by its cooldown (or failing to launch) never loses the check. ``principal`` (None: the
    operator or the schedule) must be an editor of the project: a check may start a retrain.
    ``variant`` checks only the champion's or the challenger's predictions of a rollout; such a
    check raises no alert and starts no retrain (:func:`~workbench.monitoring.service.run_monitoring`).
    """
    from workbench.access.roles import require
    from workbench.db import session_scope
    from workbench.monitoring.service import monitor_project
    from workbench.projects import get_project
    from workbench.settings import get_settings
    from workbench.training.retraining import retrain_on_alert

    settings = settings or get_settings()
    with session_scope(settings.db_url) as session:
        project = get_project(session, slug=project_slug)
        require(session, project=project, principal=principal, action="launch_job")
        reports = monitor_project(
            session,
            project=project,
            deployment_id=deployment_id,
            window=window,
            with_evidently=with_evidently,
            actor=actor,
            now=now,
            settings=settings,
            variant=variant,
        )
    if variant is not None:
        return CheckOutcome(reports=reports, retrain_job=None, retrain_reason="a variant's check starts no retrain")
    retrain = retrain_on_alert(project_slug=project_slug, reports=reports, actor=actor or "monitor", settings=settings)
    return CheckOutcome(reports=reports, retrain_job=retrain["started"], retrain_reason=retrain["reason"])


__all__ = ["CheckOutcome", "check_and_apply_policy"]
