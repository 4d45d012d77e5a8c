"""Train jobs as the page, the CLI and the pipeline see them (a service module: no streamlit).

- :func:`load_inputs`: the project's train/holdout split, primary metric and bar to beat.
- :func:`check_params`: validate a train job's params against the project before launching
  (the settings are declared in :data:`workbench.training.config.TUNING_PARAMS`).
- :func:`warm_start` and :func:`progress_message`: a warm-start trial and the job's progress line.
- :func:`resumed_settings`: a resume runs with the resumed job's own settings.
- :func:`root_job_id` / :func:`job_study_name`: the study a job (or a chain of resumes) uses.
- :func:`reconcile_lost_job`: mark a lost job's MLflow parent run FAILED.
- :func:`live_status`: trials done, best so far, time left and the history of every worker's
  trials, read from the Optuna storage, for the Tuning page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbench.db import session_scope
from workbench.db.models import Job
from workbench.errors import InvalidInput, NotFound
from workbench.projects import get_project

if TYPE_CHECKING:

    from workbench.data.splits import SplitFrames
    from workbench.settings import Settings
    from workbench.training.config import TuningConfig

# Share of the progress bar for loading/splitting and for the refit, around the trials.
LOAD_SHARE = 0.05
REFIT_SHARE = 0.1
TARGET_ATTR = "workbench.target_trials"
PARENT_ATTR = "workbench.parent_run_id"
JOB_ATTR = "workbench.job_id"
# The settings a resume may change; the others define the study and stay the resumed job's.
BUDGET_SETTINGS = ("n_trials", "timeout_seconds", "workers")


@dataclass
class Inputs:
    """What the load and split steps give the tuning step."""

    frames: SplitFrames
    metric: str
    min_uplift: float
    bar: Any
    task_type: str
    # The ML Canvas's decision threshold: the CV folds' labels follow it, as the holdout's do.
    decision_threshold: float | None = None


def load_inputs(settings: Settings, project_slug: str) -> Inputs:
    """Load the project's train/holdout split, its primary metric and its bar to beat."""
    from workbench.data.splits import load_split_frames
    from workbench.design.baselines import bar_to_beat
    from workbench.design.project_config import project_config

    with session_scope(settings.db_url) as session:
        project = get_project(session, slug=project_slug)
        config = project_config(session, project=project)
        frames = load_split_frames(session, project=project)
        bar = bar_to_beat(session, project=project)
        session.expunge(frames.split)
        session.expunge(frames.dataset)
        return Inputs(
            frames=frames,
            metric=config.primary_metric,
            min_uplift=config.min_uplift,
            bar=bar,
            task_type=project.task_type,
            decision_threshold=float(config.decision_threshold),
        )


def check_params(settings: Settings, project_slug: str, params: dict[str, Any]) -> TuningConfig:
    """Validate a train job's params against the project before launching it (page and CLI).

    Returns the validated settings; raises :class:`InvalidInput` naming the field at fault.
    Nothing is started. ``resume_of`` must name an earlier train job, whose own settings fill
    the ones not given (see :func:`resumed_settings`).
    """
    from workbench.training.config import TUNING_PARAMS, validate_tuning

    inputs = load_inputs(settings, project_slug)
    tuning = {k: v for k, v in params.items() if k in TUNING_PARAMS}
    if params.get("resume_of"):
        tuning = resumed_settings(settings, str(params["resume_of"]), tuning)
    return validate_tuning(
        tuning,
        metric=inputs.metric,
        task_type=inputs.task_type,
        y_train=inputs.frames.y_train,
    )


def resumed_settings(settings: Settings, resume_of: str, given: dict[str, Any]) -> dict[str, Any]:
    """The tuning settings of a resume of train job ``resume_of``: the job's own, budget as given.

    ``given`` holds only the settings the user chose (the CLI options typed, the page's "More
    trials"). The budget (:data:`BUDGET_SETTINGS`) takes the given value, else the job's. The
    settings that define the study (search space, folds, seed) are the job's: Optuna refuses a
    different search space on the same study, and other folds would score the new trials on
    other rows, so a given value that differs raises :class:`InvalidInput` naming the setting.
    """
    from workbench.training.config import TUNING_PARAMS, tuning_values

    root_job_id(settings, resume_of)  # a train job (or a chain of resumes of one)
    with session_scope(settings.db_url) as session:
        job = session.get(Job, resume_of)
        stored = {k: v for k, v in ((job.params or {}) if job is not None else {}).items() if k in TUNING_PARAMS}
    own = tuning_values(stored)
    for name in TUNING_PARAMS:
        if name in BUDGET_SETTINGS or name not in given:
            continue
        value = tuning_values({name: given[name]})[name]
        if value != own[name]:
            shown = list(own[name]) if isinstance(own[name], tuple) else own[name]
            raise InvalidInput(
                f"{name} is {shown!r} in the study of job {resume_of}, which a resume continues; got "
                f"{given[name]!r}. Leave {name} out to keep the job's, or launch a new job to change it.",
                field=name,
            )
    budget = {name: given[name] for name in BUDGET_SETTINGS if name in given}
    return {**stored, **budget}


def warm_start(value: dict[str, Any], models: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """``(family, params)`` of a warm-start trial: ``{"family": id, "params": {...}}`` or a study's flat params."""
    from workbench.training.model_families import get_family, split_params

    if isinstance(value.get("params"), dict) and "family" in value:
        family_id = str(value["family"])
        get_family(family_id)
        return family_id, dict(value["params"])
    return split_params(value, models if len(models) == 1 else None)


def progress_message(done: int, total: int | None, best: float | None, metric: str) -> str:
    """The job's progress line: ``trial 3/20, best balanced_accuracy=0.8123``."""
    best_text = f", best {metric}={best:.4f}" if best is not None else ""
    return f"trial {done}/{total if total is not None else '∞'}{best_text}"


def load_metric(project_slug: str, settings: Settings | None = None) -> str:
    """The project's primary metric (from its canvases, with the default when unset)."""
    from workbench.design.project_config import project_config
    from workbench.settings import get_settings

    settings = settings or get_settings()
    with session_scope(settings.db_url) as session:
        return project_config(session, project=get_project(session, slug=project_slug)).primary_metric


def root_job_id(settings: Settings, job_id: str) -> str:
    """The job whose study a chain of resumes continues (``resume_of`` followed to its start)."""
    seen: set[str] = set()
    current = job_id
    with session_scope(settings.db_url) as session:
        while current not in seen:
            seen.add(current)
            job = session.get(Job, current)
            if job is None:
                raise NotFound(f"No job with id {current!r}; resume_of must name an earlier train job.")
            if job.kind != "train":
                raise InvalidInput(f"resume_of must name a train job; job {current} is a {job.kind} job.",
                                   field="resume_of")
            parent = (job.params or {}).get("resume_of")
            if not parent:
                return current
            current = str(parent)
    return current


def mark_run_failed(client: Any, run_id: str | None, *, reason: str) -> bool:
    """Mark a parent run that is still RUNNING as FAILED (its process died); True when changed."""
    if not run_id:
        return False
    from workbench.tracking import log_run_batch

    try:
        run = client.get_run(run_id)
    except Exception:  # the run is gone: nothing to mark
        return False
    if run.info.status != "RUNNING":
        return False
    log_run_batch(client, run_id, tags={"workbench.failure": reason})
    client.set_terminated(run_id, status="FAILED")
    return True


def reconcile_lost_job(settings: Settings, job_id: str) -> bool:
    """If ``job_id`` is lost, mark its parent run FAILED. Pages and resume call this."""
    from workbench.jobs import get_job
    from workbench.tracking import get_client

    with session_scope(settings.db_url) as session:
        job = get_job(session, job_id=job_id)
        status, run_id = job.status, job.mlflow_run_id
    if status != "lost":
        return False
    return mark_run_failed(get_client(settings), run_id, reason=f"job {job_id} was lost (its process died)")


def job_study_name(settings: Settings, job_id: str, *, project_slug: str) -> str:
    """The Optuna study of train job ``job_id`` (a resumed job continues its root's study)."""
    from workbench.training.study import study_name

    return study_name(project_slug, root_job_id(settings, job_id))


def live_status(settings: Settings, job: dict[str, Any], *, project_slug: str) -> dict[str, Any]:
    """What the Tuning page shows while (and after) a train job runs, read from the Optuna storage.

    Returns ``{"study", "done", "target", "best", "history" (DataFrame), "seconds_left", "direction",
    "trials"}``; ``history`` holds every worker's finished trials, ``trials`` every trial (Optuna
    ``FrozenTrial``, any state). Missing study: ``done`` 0, empty history and no trials.
    """
    from workbench.training.optuna_storage import load_study
    from workbench.training.study import FINISHED_STATES, history_frame

    name = (job.get("result") or {}).get("study") or job_study_name(settings, job["id"], project_slug=project_slug)
    status: dict[str, Any] = {"study": name, "done": 0, "target": None, "best": None, "history": None,
                              "seconds_left": None, "direction": None, "trials": []}
    study = load_study(name, settings=settings)
    if study is None:
        return status
    trials = study.get_trials(deepcopy=False)
    done = sum(1 for t in trials if t.state.name in FINISHED_STATES)
    target = study.user_attrs.get(TARGET_ATTR)
    history = history_frame(study)
    status.update(done=done, target=target, history=history, direction=study.direction.name.lower(), trials=trials)
    if not history.empty:
        status["best"] = float(history["best"].iloc[-1])
    status["seconds_left"] = _seconds_left(job, done=done, target=target, trials=trials)
    return status


def _seconds_left(job: dict[str, Any], *, done: int, target: int | None, trials: list[Any]) -> float | None:
    if job.get("status") not in ("queued", "running") or not job.get("started_at"):
        return None
    from workbench.db.models import utcnow

    started = datetime.fromisoformat(job["started_at"])
    elapsed = max(0.0, (utcnow() - started).total_seconds())
    timeout = (job.get("params") or {}).get("timeout_seconds")
    estimates: list[float] = []
    if timeout:
        estimates.append(max(0.0, float(timeout) - elapsed))
    # Trials this job's run finished so far (a resumed study already held some).
    recent = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED") and t.datetime_complete is not None
              and t.datetime_complete.replace(tzinfo=None) >= started]
    if target is not None and recent:
        per_trial = elapsed / len(recent)
        estimates.append(max(0.0, per_trial * (target - done)))
    return min(estimates) if estimates else None
