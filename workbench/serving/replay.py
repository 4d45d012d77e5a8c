"""Replay a project's holdout as traffic to a running web service (HTTP) or stream consumer (NATS).

The Deployments page's "Replay holdout" and ``workbench replay`` both run it as a ``replay`` job
(``pipelines.replay``): hundreds of HTTP requests take seconds, so the page shows progress
instead of freezing under a spinner. A web service's bearer token reaches the job process only
through its environment (:data:`REPLAY_TOKEN_ENV`), never the jobs table, its log or argv.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from workbench.access.roles import Principal
    from workbench.settings import Settings

# Where the replay job reads a web service's bearer token (the process's own environment).
REPLAY_TOKEN_ENV = "WORKBENCH_REPLAY_TOKEN"
MAX_ROWS = 5000
# Rows sent between two progress reports (and cancellation points).
PROGRESS_EVERY = 50

Progress = Callable[[int, int], None]


def holdout_records(
    session: Session, *, project_slug: str, limit: int, principal: Principal | None = None
) -> list[dict[str, Any]]:
    """Up to ``limit`` holdout rows of the project (features only), as JSON-safe records.

    Only for sending traffic to a deployment, so ``principal`` (None: the operator) needs the role that deploys.
    """
    from workbench.access.roles import require
    from workbench.data.splits import load_split_frames
    from workbench.prediction_log import json_safe
    from workbench.projects import get_project

    project = get_project(session, slug=project_slug)
    require(session, project=project, principal=principal, action="deploy")
    x = load_split_frames(session, project=project).X_holdout.head(limit)
    return [json_safe(r) for r in x.astype(object).where(x.notna(), None).to_dict("records")]


def replay_target(
    session: Session, *, project_slug: str, deployment_id: int, token: str | None = None,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """The running web or stream deployment ``deployment_id`` of the project, checked before anything is sent.

    A web service with a token needs ``token``, and the right one (checked against its stored hash, so
    a wrong paste is named at once rather than after a job starts). Returns the deployment as a dict.
    """
    from workbench.access.roles import require
    from workbench.projects import get_project
    from workbench.serving.deployments import deployment_dict, get_deployment
    from workbench.serving.tokens import verify_token

    project = get_project(session, slug=project_slug)
    require(session, project=project, principal=principal, action="deploy")
    deployment = get_deployment(session, deployment_id=deployment_id)
    if deployment.project_id != project.id:
        raise InvalidInput(f"deployment #{deployment_id} belongs to another project; pick one of "
                           f"{project_slug}'s deployments.", field="deployment")
    row = deployment_dict(deployment)
    if row["mode"] not in ("web", "stream") or row["status"] != "running":
        raise InvalidInput(f"replay needs a running web or stream deployment; #{deployment_id} is a "
                           f"{row['mode']} deployment that is {row['status']}. Start one on the Deployments page "
                           "(or `workbench serve` / `workbench stream run`).", field="deployment")
    token_hash = (deployment.config or {}).get("token_hash")
    if row["mode"] == "web" and row["config"].get("auth"):
        if not token:
            raise InvalidInput(f"web service #{deployment_id} requires its bearer token: paste the token shown when "
                               "it started, or start a new one and keep the token it shows.", field="token")
        if token_hash and not verify_token(token_hash, token):
            raise InvalidInput(f"web service #{deployment_id} does not accept this bearer token: paste the token "
                               "shown when it started.", field="token")
    return row


def send(
    row: dict[str, Any], records: list[dict[str, Any]], *, project_slug: str, token: str | None = None,
    settings: Settings | None = None, on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Send ``records`` to the deployment ``row`` (from :func:`replay_target`); ``{"sent", "ok", "failed"}``.

    ``on_progress(done, total)`` is called every :data:`PROGRESS_EVERY` rows; it may raise to stop.
    """
    total = len(records)
    if row["mode"] == "web":
        import httpx

        headers = {"Authorization": f"Bearer {token.strip()}"} if token else {}
        ok = failed = 0
        with httpx.Client(base_url=row["url"], timeout=10, headers=headers) as client:
            for done, record in enumerate(records, start=1):
                response = client.post("/predict", json=record)
                if response.status_code == 401:  # every other request would be refused the same way
                    raise InvalidInput(f"web service #{row['id']} refused the bearer token (401): paste the token "
                                       "shown when it started.", field="token")
                ok += response.status_code == 200
                failed += response.status_code != 200
                if on_progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
                    on_progress(done, total)
        return {"sent": total, "ok": ok, "failed": failed}
    from workbench.serving.stream import send_records

    sent = 0
    for start in range(0, total, PROGRESS_EVERY * 4):  # a stream publish is cheap: report in larger steps
        chunk = records[start:start + PROGRESS_EVERY * 4]
        sent += int(send_records(project_slug, chunk, nats_url=(row["config"] or {}).get("nats_url"),
                                 settings=settings)["sent"])
        if on_progress is not None:
            on_progress(sent, total)
    return {"sent": sent, "ok": sent, "failed": 0}


def replay(
    *, project_slug: str, deployment_id: int, limit: int, token: str | None = None,
    principal: Principal | None = None, settings: Settings | None = None, on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Send up to ``limit`` holdout rows to deployment ``deployment_id``; the counts and the deployment id."""
    from workbench.db import session_scope
    from workbench.settings import get_settings

    if not 1 <= int(limit) <= MAX_ROWS:
        raise InvalidInput(f"rows must be between 1 and {MAX_ROWS}; got {limit!r}.", field="rows")
    settings = settings or get_settings()
    with session_scope(settings.db_url) as session:
        row = replay_target(session, project_slug=project_slug, deployment_id=deployment_id, token=token,
                            principal=principal)
        records = holdout_records(session, project_slug=project_slug, limit=int(limit), principal=principal)
    result = send(row, records, project_slug=project_slug, token=token, settings=settings, on_progress=on_progress)
    return {**result, "deployment_id": deployment_id, "mode": row["mode"]}
