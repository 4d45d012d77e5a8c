"""How much the workbench's tuning costs on top of Optuna, against untracked Optuna on the same storage and a
fair tracking competitor (issue 16 items 1 and 6).

``python benchmarks/tuning_overhead.py [--trials 100] [--samples 3] [--storage journal]`` measures,
in one run, in a fresh temporary workbench home, for two objectives (one float param, x**2; the
"20 ms" one also sleeps 20 ms, a short real fit; the "trivial" one does not, to show throughput),
in rounds whose order rotates, ``--samples`` (>= 3) each:

- ``workbench``: the workbench's tuning path (its Optuna storage, an MLflow child run per trial
  written by the background writer, job progress in the workbench DB); the clock includes
  flushing every child run to MLflow;
- ``optuna``: untracked Optuna on the same storage (a new study per sample), same sampler;
- ``log_batch_callback``: the competitor as MLflow's docs advise for many runs: Optuna on the same
  storage plus a callback that logs each trial with three ``MlflowClient`` calls (``create_run``,
  ``log_batch``, ``set_terminated``) to the same MLflow store;
- ``floor``: the objective alone, called as many times (no Optuna, no tracking).

Printed per objective: the median (min-max) seconds of each side, the workbench's overhead per
trial over untracked Optuna in ms (goal <= 2 ms), the ratio workbench / optuna (goal <= 1.10 on
the 20 ms objective), the throughput of the workbench as a fraction of untracked Optuna (goal
>= 0.5) and as a multiple of the callback's (goal >= 4x), and the floor as a fraction of each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def _setup_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    os.environ["WORKBENCH_HOME"] = str(home / "home")
    os.environ["WORKBENCH_CONFIG"] = str(home / "absent.toml")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for name in ("WORKBENCH_DB_URL", "MLFLOW_TRACKING_URI", "WORKBENCH_OPTUNA_STORAGE"):
        os.environ.pop(name, None)
    return home


def _project() -> tuple[str, Any]:
    from workbench.data.datasets import create_project_with_dataset
    from workbench.db import session_scope
    from workbench.settings import get_settings
    from workbench.training.train_jobs import load_inputs

    settings = get_settings()
    settings.ensure_home()
    with session_scope() as session:
        slug = create_project_with_dataset(
            session, name="Bench cancer", dataset_spec_or_frame="builtin:breast_cancer", target="target",
            task_type="classification",
        ).slug
    return slug, load_inputs(settings, slug)


class _Tracked:
    """The workbench's tuning path around any objective: storage, MLflow child runs, job progress."""

    def __init__(self, slug: str, config: Any, *, label: str) -> None:
        from workbench.db import session_scope
        from workbench.jobs import create_job
        from workbench.jobs.runner import JobContext
        from workbench.projects import get_project
        from workbench.settings import get_settings
        from workbench.tracking import ensure_experiment, get_client
        from workbench.training.study import open_study, study_name
        from workbench.training.trial_runs import TrialRunWriter

        settings = get_settings()
        with session_scope() as session:
            job = create_job(session, kind="train", project=get_project(session, slug=slug), params={})
            self.job_id = job.id
            job.status = "running"
        self.ctx = JobContext(job_id=self.job_id, project_slug=slug, actor="bench", settings=settings)
        self.study = open_study(name=study_name(slug, f"{label}-{self.job_id}"), config=config, settings=settings)
        client = get_client(settings)
        experiment_id = ensure_experiment(project_slug=slug, settings=settings)
        parent = client.create_run(experiment_id, run_name=f"bench-{label}")
        self.client, self.parent_id = client, parent.info.run_id
        self.writer = TrialRunWriter(client, experiment_id=experiment_id, parent_run_id=self.parent_id,
                                     study=self.study.study_name, project_slug=slug, job_id=self.job_id,
                                     metric=config.metric)
        self.config = config

    def run(self, objective: Any, n_trials: int, *, flush: bool = True) -> float:
        """Seconds to bring the study to ``n_trials`` finished trials (and flush their tracking)."""
        from workbench.training.study import StudyProgress, finished_trials, run_study
        from workbench.training.train_jobs import LOAD_SHARE, REFIT_SHARE, progress_message

        metric = self.config.metric

        # As pipelines/train.py reports: the study's share of the job's progress (never 1.0: the refit
        # follows), with a forced write just before the trials, so the first trial writes nothing.
        def report(done: int, best: float | None) -> None:
            fraction = LOAD_SHARE + (1 - LOAD_SHARE - REFIT_SHARE) * min(1.0, done / n_trials)
            self.ctx.progress(fraction, progress_message(done, n_trials, best, metric))

        already = finished_trials(self.study)
        self.ctx.progress(LOAD_SHARE, progress_message(already, n_trials, None, metric), force=True)
        progress = StudyProgress(report, direction=self.config.direction, done=already)

        def on_trial(study: Any, trial: Any) -> None:
            self.writer.callback(study, trial)
            progress(study, trial)

        started = time.perf_counter()
        if not self.writer.is_alive() and not self.writer.logged:
            self.writer.start()
            self.first = finished_trials(self.study)
        run_study(self.study, objective, n_trials=n_trials, timeout_seconds=None, on_trial=on_trial)
        self.trials_seconds = time.perf_counter() - started
        if flush:
            self.writer.close()
            self.client.set_terminated(self.parent_id)
            if self.writer.errors:
                print(f"  MLflow write errors: {self.writer.errors[:3]}", file=sys.stderr)
            assert self.writer.logged == n_trials - self.first, (self.writer.logged, n_trials - self.first)
        return time.perf_counter() - started


def _objective(sleep_seconds: float) -> Any:
    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -10, 10)
        if sleep_seconds:
            time.sleep(sleep_seconds)
        return x * x

    return objective


class _LogBatchCallback:
    """Three ``MlflowClient`` calls per finished trial: create_run, log_batch (params + value), set_terminated."""

    def __init__(self, experiment_id: str) -> None:
        from workbench.settings import get_settings
        from workbench.tracking import get_client

        self.client = get_client(get_settings())
        self.experiment_id = experiment_id

    def __call__(self, study: Any, trial: Any) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{trial.number}",
                                     tags={"optuna.study": study.study_name})
        metrics = [Metric("value", float(trial.value), now, 0)] if trial.value is not None else []
        self.client.log_batch(run.info.run_id, metrics=metrics,
                              params=[Param(k, str(v)) for k, v in trial.params.items()])
        self.client.set_terminated(run.info.run_id, status="FINISHED" if trial.state.name == "COMPLETE"
                                   else "FAILED")


def bench(slug: str, inputs: Any, *, sleep_seconds: float, n_trials: int, samples: int) -> dict[str, Any]:
    """Every side on one objective, in rotating rounds; seconds per side."""
    import optuna
    from _fair import rounds

    from workbench.settings import get_settings
    from workbench.tracking import get_client
    from workbench.training.config import validate_tuning
    from workbench.training.optuna_storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = get_settings()
    storage = open_storage(settings.optuna_storage)
    config = validate_tuning(models=["linear"], n_trials=n_trials, timeout_seconds=None, folds=3, sampler="random",
                             pruner="none", workers=1, seed=0, metric=inputs.metric, task_type=inputs.task_type)
    objective = _objective(sleep_seconds)
    client = get_client(settings)
    callback_experiment = client.create_experiment(f"callback-{sleep_seconds}-{time.time_ns()}")
    callback = _LogBatchCallback(callback_experiment)
    seconds: dict[str, list[float]] = {"workbench": [], "optuna": [], "log_batch_callback": [], "floor": []}
    for index, order in enumerate(rounds(list(seconds), samples)):
        for side in order:
            name = f"{side}-{sleep_seconds}-{index}-{time.time_ns()}"
            if side == "workbench":
                tracked = _Tracked(slug, config, label=name)
                seconds[side].append(tracked.run(objective, n_trials))
                continue
            started = time.perf_counter()
            if side == "floor":
                trial = optuna.trial.FixedTrial({"x": 1.0})
                for _ in range(n_trials):
                    objective(trial)
            else:
                study = optuna.create_study(storage=storage, study_name=name,
                                            sampler=optuna.samplers.RandomSampler(seed=0))
                study.optimize(objective, n_trials=n_trials,
                               callbacks=[callback] if side == "log_batch_callback" else None)
            seconds[side].append(time.perf_counter() - started)
    return seconds


def report(label: str, seconds: dict[str, list[float]], n_trials: int, *, goal_ratio: bool) -> dict[str, Any]:
    from _fair import ratio, spread, summary

    stats = {side: summary(values, 4) for side, values in seconds.items()}
    med = {side: stat["median"] for side, stat in stats.items()}
    out = {
        "seconds": stats,
        "overhead_ms_per_trial": round(1000 * (med["workbench"] - med["optuna"]) / n_trials, 2),
        "ratio_workbench_over_optuna": ratio(med["workbench"], med["optuna"], 3),
        "throughput_vs_optuna": ratio(med["optuna"], med["workbench"], 3),
        "throughput_vs_log_batch_callback": ratio(med["log_batch_callback"], med["workbench"], 2),
        "floor_fraction": {side: ratio(med["floor"], med[side], 3) for side in ("workbench", "optuna",
                                                                                 "log_batch_callback")},
    }
    print(f"\n{label}, {n_trials} trials per sample, {len(seconds['workbench'])} samples per side "
          "(seconds, median (min-max); trials/s):")
    labels = (("workbench", "workbench tuning (tracked, flushed)"), ("optuna", "untracked Optuna, same storage"),
              ("log_batch_callback", "Optuna + 3-call log_batch callback"), ("floor", "floor: the objective alone"))
    for side, text in labels:
        rate = f"{n_trials / med[side]:10,.1f}/s" if med[side] else "   (< 1 ms)"
        print(f"  {text:40s} {spread(stats[side], '{:.4f}')}   {rate}")
    print(f"  workbench overhead per trial over untracked Optuna: {out['overhead_ms_per_trial']} ms (goal <= 2)")
    ratio_text = f"ratio workbench / optuna = {out['ratio_workbench_over_optuna']}"
    print(f"  {ratio_text}{' (goal <= 1.10)' if goal_ratio else ''}; throughput = "
          f"{out['throughput_vs_optuna']} of untracked Optuna (goal >= 0.5), "
          f"{out['throughput_vs_log_batch_callback']}x the log_batch callback (goal >= 4)")
    print(f"  floor as a fraction of: workbench {out['floor_fraction']['workbench']}, optuna "
          f"{out['floor_fraction']['optuna']}, callback {out['floor_fraction']['log_batch_callback']}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--only", choices=["20ms", "trivial"], default=None)
    parser.add_argument("--storage", default="journal",
                        help="The Optuna storage of every side: 'journal' (the workbench's default file), 'sqlite' "
                             "(an SQLite file: Optuna's RDB storage, with heartbeats) or an RDB URL such as "
                             "postgresql://postgres@127.0.0.1:5432/optuna_bench (an empty database).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from _fair import load_average

    home = _setup_home()
    if args.storage == "sqlite":
        os.environ["WORKBENCH_OPTUNA_STORAGE"] = f"sqlite:///{home / 'home' / 'optuna.db'}"
    elif args.storage != "journal":
        os.environ["WORKBENCH_OPTUNA_STORAGE"] = args.storage
    slug, inputs = _project()
    samples = max(3, args.samples)
    print(f"Tuning overhead benchmark; home {home}; Optuna storage: {args.storage}; {load_average()}")
    # Warm-up (not timed): MLflow's store, the storage, imports; a few trials of each kind.
    bench(slug, inputs, sleep_seconds=0.0, n_trials=3, samples=1)
    results: dict[str, Any] = {"storage": args.storage, "trials": args.trials, "samples": samples}
    for label, sleep_seconds in (("20ms", 0.02), ("trivial", 0.0)):
        if args.only not in (None, label):
            continue
        seconds = bench(slug, inputs, sleep_seconds=sleep_seconds, n_trials=args.trials, samples=samples)
        results[label] = report(f"{label} objective", seconds, args.trials, goal_ratio=label == "20ms")
    results["load"] = load_average()
    print(f"\n{results['load']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
