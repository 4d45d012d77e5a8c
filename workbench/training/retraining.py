"""Retraining: fresh data, warm-started tuning, and the champion/challenger gate.

One retrain (``pipelines/retrain.py`` runs it as job kind ``retrain``):

1. **Data.** The project's training rows plus the labelled rows of the prediction log in a
   window (:func:`recent_labelled`, every deployment of the project). The newest
   ``holdout_fraction`` of those labelled rows (by time) is the **fresh holdout**: the
   challenger never trains on it (:func:`retrain_frames`).
2. **Tuning** through the same code path as every train job (``pipelines.train.run`` with
   ``kind="retrain"``), warm-started from the champion's parameters (enqueued as the first
   trial) on a smaller budget (``Settings.retrain_trials``).
3. **Gate.** The new version gets the alias ``challenger`` (through
   :func:`workbench.registry.promote`, so it is in the promotion history). Champion and
   challenger are scored on the same fresh holdout; :func:`decide` applies the canvas's
   retrain policy: ``manual`` and ``on_alert`` wait for a person to click Promote,
   ``automatic`` promotes when the challenger beats the champion by ``min_uplift``.

A cooldown (:func:`check_cooldown`) refuses a retrain while another one runs or when one
finished less than ``Settings.retrain_cooldown_minutes`` ago, so a long drift that keeps
failing checks does not start a retrain storm.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import Job, Project, utcnow
from workbench.errors import Conflict, InvalidInput
from workbench.training._constraints import WholeNumber
from workbench.validation import Param, Real, Text
from workbench.validation import validate_params as validate_params_against

if TYPE_CHECKING:
    import pandas as pd

    from workbench.data.splits import SplitFrames
    from workbench.settings import Settings

DEFAULT_WINDOW = "30d"
DEFAULT_HOLDOUT_FRACTION = 0.3
MAX_RETRAIN_TRIALS = 200
# Fewer labelled rows than this cannot give both extra training data and a fresh holdout.
MIN_LABELLED = 20
MIN_HOLDOUT = 10
# Policies that start a retrain by themselves when a check fails.
SELF_STARTING_POLICIES = ("on_alert", "automatic")
# Retrain jobs in these states hold the cooldown (a failed or cancelled one does not).
COOLDOWN_STATUSES = ("queued", "running", "succeeded")


# --------------------------------------------------------------------------- cooldown and start


def latest_retrain_job(session: Session, *, project: Project, statuses: tuple[str, ...] | None = None) -> Job | None:
    """The newest retrain job of ``project`` (optionally only in ``statuses``)."""
    from workbench.jobs import mark_lost_jobs

    mark_lost_jobs(session)
    query = select(Job).where(Job.project_id == project.id, Job.kind == "retrain")
    if statuses:
        query = query.where(Job.status.in_(statuses))
    return session.scalar(query.order_by(Job.created_at.desc()).limit(1))


def check_cooldown(
    session: Session,
    *,
    project: Project,
    cooldown_minutes: float,
    now: datetime | None = None,
    ignore_job: str | None = None,
) -> None:
    """Raise :class:`Conflict` when a retrain of ``project`` runs or ended within the cooldown."""
    from workbench.jobs import mark_lost_jobs

    mark_lost_jobs(session)
    now = now or utcnow()
    query = (
        select(Job)
        .where(Job.project_id == project.id, Job.kind == "retrain", Job.status.in_(COOLDOWN_STATUSES))
        .order_by(Job.created_at.desc())
    )
    for job in session.scalars(query.limit(5)):
        if job.id == ignore_job:
            continue
        if job.status in ("queued", "running"):
            raise Conflict(
                f"Retrain job {job.id} of {project.slug!r} is still {job.status}; wait for it to finish "
                f"or cancel it (`workbench jobs cancel {job.id}`)."
            )
        ended = job.finished_at or job.created_at
        ready_at = ended + timedelta(minutes=cooldown_minutes)
        if now < ready_at:
            left = (ready_at - now).total_seconds() / 60
            raise Conflict(
                f"{project.slug!r} was retrained by job {job.id} at {ended:%Y-%m-%d %H:%M} UTC; the cooldown of "
                f"{cooldown_minutes:g} minutes ends in {left:.0f} minute(s). Wait, or lower "
                "WORKBENCH_RETRAIN_COOLDOWN_MINUTES."
            )
        return


def retrain_params(settings: Settings) -> dict[str, Param]:
    """The declared retrain job params; the budget's and the cooldown's defaults are the settings'."""
    from workbench.training.config import TUNING_PARAMS

    return {
        "window": Param(Text(max_length=40, min_length=1), default=DEFAULT_WINDOW),
        "n_trials": Param(WholeNumber(1, MAX_RETRAIN_TRIALS), default=settings.retrain_trials),
        "holdout_fraction": Param(Real(0.05, 0.9), default=DEFAULT_HOLDOUT_FRACTION),
        # None: the champion's family (or the tuning defaults when there is no champion).
        "models": replace(TUNING_PARAMS["models"], default=None),
        "seed": TUNING_PARAMS["seed"],
        "cooldown_minutes": Param(Real(0), default=settings.retrain_cooldown_minutes),
    }


def validate_params(params: dict[str, Any], *, settings: Settings) -> dict[str, Any]:
    """The retrain job params with defaults filled in; InvalidInput naming the field otherwise.

    The same constraints as a train job's settings: an integer param takes 3, 3.0 and "3" and
    refuses 2.5 and True. ``models`` comes back as a list of family ids (or None).
    """
    from workbench.monitoring.service import parse_window

    clean = validate_params_against(params, retrain_params(settings), what="retrain parameter")
    parse_window(clean["window"])
    if clean["models"] is not None:
        clean["models"] = list(clean["models"])
    return clean


def start_retrain(
    *,
    project_slug: str,
    actor: str,
    params: dict[str, Any] | None = None,
    settings: Settings | None = None,
    principal: Principal | None = None,
) -> str:
    """Check the params and the cooldown, then launch a ``retrain`` job; returns its id.

    ``principal`` (None: the operator) must be an editor of the project.
    """
    from workbench.db import session_scope
    from workbench.jobs import launch
    from workbench.projects import get_project
    from workbench.settings import get_settings

    settings = settings or get_settings()
    clean = validate_params(dict(params or {}), settings=settings)
    with session_scope(settings.db_url) as session:
        project = get_project(session, slug=project_slug)
        require(session, project=project, principal=principal, action="launch_job")
        check_cooldown(session, project=project, cooldown_minutes=clean["cooldown_minutes"])
    return launch(kind="retrain", project_slug=project_slug, params=clean, actor=actor, settings=settings,
                  principal=principal)


def retrain_on_alert(
    *, project_slug: str, reports: list[dict[str, Any]], actor: str = "monitor", settings: Settings | None = None
) -> dict[str, Any]:
    """After a monitoring run: start a retrain when a check failed and the policy says so.

    Returns ``{"started": job_id | None, "reason": text}``; never raises for a cooldown (a
    long drift keeps failing checks, and the cooldown is what stops the storm).
    """
    from workbench.db import session_scope
    from workbench.design.project_config import project_config
    from workbench.projects import get_project

    failed = [c["check"] for r in reports for c in r["summary"]["checks"] if c["status"] == "fail"]
    if not failed:
        return {"started": None, "reason": "no check failed"}
    with session_scope(settings.db_url if settings else None) as session:
        policy = project_config(session, project=get_project(session, slug=project_slug)).retrain_policy
    if policy not in SELF_STARTING_POLICIES:
        return {"started": None, "reason": f"retrain policy is {policy!r}: a person starts retraining"}
    try:
        job_id = start_retrain(project_slug=project_slug, actor=actor, settings=settings)
    except Conflict as exc:
        return {"started": None, "reason": str(exc)}
    return {"started": job_id, "reason": f"check(s) {', '.join(failed)} failed and the policy is {policy!r}"}


# --------------------------------------------------------------------------- data


def recent_labelled(
    session: Session,
    *,
    project: Project,
    window: str,
    features: list[str],
    target: str,
    like: pd.DataFrame,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Labelled rows of the project's prediction log in ``window``, shaped like the training frame.

    Columns: ``features`` (cast to the dtypes of ``like``), ``target`` and ``ts``; in time order.
    """
    import pandas as pd

    from workbench.monitoring.service import parse_window
    from workbench.prediction_log import log_frame

    since, until, limit = parse_window(window).bounds(now)
    log = log_frame(session, project_id=project.id, since=since, until=until, limit=limit)
    if len(log) and "label" in log.columns:
        log = log[log["label"].notna()]
    columns = [*features, target, "ts"]
    if not len(log):
        return pd.DataFrame(columns=columns)
    missing = [c for c in features if c not in log.columns]
    if missing:
        raise InvalidInput(
            f"the prediction log has no feature(s) {missing}; the model was trained on {features}. "
            "Retraining needs the logged features of the current model.",
            field="features",
        )
    out = log[features].copy()
    for column in features:
        out[column] = _cast_like(out[column], like[column])
    out[target] = _cast_like(log["label"], like[target])
    out["ts"] = pd.to_datetime(log["ts"]).to_numpy()
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def _cast_like(values: pd.Series, like: pd.Series) -> pd.Series:
    """``values`` (as they came through JSON) in the dtype of the training column ``like``."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(like):
        return values.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else bool(v))
    if pd.api.types.is_numeric_dtype(like):
        return pd.to_numeric(values, errors="coerce").astype(like.dtype if like.dtype.kind == "f" else "float64")

    def text(value: Any) -> Any:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return values.map(text).astype(object)


def retrain_frames(base: SplitFrames, recent: pd.DataFrame, *, holdout_fraction: float) -> SplitFrames:
    """Train on the base training rows plus the older recent rows; hold out the newest recent rows."""
    import pandas as pd

    from workbench.data.splits import SplitFrames

    n = len(recent)
    n_holdout = max(MIN_HOLDOUT, round(n * holdout_fraction))
    if n < MIN_LABELLED or n - n_holdout < 1:
        raise InvalidInput(
            f"retraining needs at least {MIN_LABELLED} labelled predictions in the window (some to learn from, "
            f"at least {MIN_HOLDOUT} for the fresh holdout); got {n}. Send labels through /feedback, or widen "
            "the window.",
            field="window",
        )
    recent = recent.copy()
    if base.time_column:
        recent[base.time_column] = recent["ts"]
    recent = recent.drop(columns=["ts"])
    fresh = recent.iloc[n - n_holdout :]
    extra = recent.iloc[: n - n_holdout]
    # New index values so train rows stay unique (the base frames keep dataset positions).
    offset = int(max(base.train.index.max(), base.holdout.index.max() if len(base.holdout) else 0)) + 1
    extra.index = range(offset, offset + len(extra))
    fresh.index = range(offset + len(extra), offset + n)
    train = pd.concat([base.train, extra[[c for c in base.train.columns if c in extra.columns]]])
    return SplitFrames(
        train=train,
        holdout=fresh[[c for c in base.holdout.columns if c in fresh.columns]],
        split=base.split,
        dataset=base.dataset,
        feature_columns=list(base.feature_columns),
        target=base.target,
        time_column=base.time_column,
    )


# --------------------------------------------------------------------------- champion and gate


def champion_warm_start(client: Any, *, model_name: str, version: str) -> dict[str, Any] | None:
    """``{"family", "params"}`` of a registered version, from its run's ``config.json`` (None if absent)."""
    from mlflow.exceptions import MlflowException

    try:
        run_id = client.get_model_version(model_name, version).run_id
        with tempfile.TemporaryDirectory(prefix="wb-warm-") as tmp:
            local = client.download_artifacts(str(run_id), "config.json", tmp)
            config = json.loads(Path(local).read_text())
    except (MlflowException, OSError, ValueError):
        return None
    if not config.get("family") or not isinstance(config.get("params"), dict):
        return None
    return {"family": str(config["family"]), "params": dict(config["params"])}


@dataclass(frozen=True)
class GateDecision:
    """The outcome of the champion/challenger gate."""

    metric: str
    direction: str
    champion_value: float | None
    challenger_value: float | None
    uplift: float | None
    min_uplift: float
    wins: bool
    policy: str
    promote: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def decide(
    *,
    policy: str,
    metric: str,
    direction: str,
    min_uplift: float,
    champion_value: float | None,
    challenger_value: float | None,
) -> GateDecision:
    """Does the challenger win on the fresh holdout, and does the policy promote it by itself?"""
    from workbench.design.project_config import RETRAIN_POLICIES
    from workbench.errors import check_choice
    from workbench.evaluation.metrics import beats, uplift

    check_choice("retrain_policy", policy, RETRAIN_POLICIES)
    if challenger_value is None:
        wins, gain = False, None
    elif champion_value is None:
        wins, gain = True, None
    else:
        wins = beats(challenger_value, champion_value, direction=direction, min_uplift=min_uplift)
        gain = uplift(challenger_value, champion_value, direction=direction)
    promote = wins and policy == "automatic"
    if not wins:
        reason = f"the challenger does not beat the champion on {metric} by the minimum uplift {min_uplift:g}"
    elif promote:
        reason = f"the challenger beats the champion on {metric} by at least {min_uplift:g}; policy is automatic"
    else:
        reason = f"the challenger wins on {metric}; policy {policy!r} waits for a person to click Promote"
    return GateDecision(
        metric=metric,
        direction=direction,
        champion_value=champion_value,
        challenger_value=challenger_value,
        uplift=gain,
        min_uplift=min_uplift,
        wins=wins,
        policy=policy,
        promote=promote,
        reason=reason,
    )


def evaluate_version(
    *, project: Project, version: str, frames: SplitFrames, settings: Settings | None = None
) -> dict[str, float]:
    """Score one registered version on ``frames``'s holdout (the fresh holdout for a retrain)."""
    from workbench.evaluation.probabilities import class_order
    from workbench.evaluation.scoring import score_pipeline
    from workbench.registry import load_version_model, version_threshold

    model = load_version_model(project=project, version=version, settings=settings)
    # The order a fitted model's classes_ has, and the version's decision threshold as serving
    # applies it: the gate compares what champion and challenger would each answer.
    classes = class_order(frames.y_train, frames.y_holdout) if project.task_type == "classification" else None
    return score_pipeline(model, frames.X_holdout, frames.y_holdout, task_type=project.task_type, classes=classes,
                          threshold=version_threshold(project=project, version=version, settings=settings))
