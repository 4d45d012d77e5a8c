"""How much the workbench's tuning costs on top of bare Optuna, and its tracking throughput.

``python benchmarks/tuning_overhead.py [--trials-a 50] [--trials-b 200]`` measures, in one run,
in a fresh temporary workbench home:

(a) 50 random-forest trials on ``builtin:breast_cancer`` (3-fold CV, same seeded TPE sampler,
    the very same objective object) with the workbench's tuning (its default Optuna journal
    file, or ``--storage sqlite`` for the RDB storage with heartbeats; an MLflow child run per
    trial; job progress in the workbench DB) against bare
    Optuna with in-memory storage. Prints the wall-time ratio (goal <= 1.10).
(b) Trials per second for a trivial objective (one float param, x**2; seeded random sampler
    on both sides) with the workbench's full tracking against Optuna +
    ``optuna_integration.MLflowCallback`` with MLflow on SQLite, the way most teams wire it
    (Optuna in memory, and Optuna on SQLite). The workbench figure includes flushing every
    child run to MLflow. Goal: >= 4x the callback's rate.
"""

from __future__ import annotations

import argparse
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

        def report(done: int, best: float | None) -> None:
            self.ctx.progress(done / n_trials, f"trial {done}/{n_trials}, best {best}")

        progress = StudyProgress(report, direction=self.config.direction, done=finished_trials(self.study))

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


def bench_a(slug: str, inputs: Any, n_trials: int, folds: int) -> dict[str, float]:
    import optuna

    from workbench.training.config import validate_tuning
    from workbench.training.objective import CVObjective
    from workbench.training.study import make_sampler

    config = validate_tuning(models=["random_forest"], n_trials=n_trials, timeout_seconds=None, folds=folds,
                             sampler="tpe", pruner="none", workers=1, seed=0, metric=inputs.metric,
                             task_type=inputs.task_type, y_train=inputs.frames.y_train)
    objective = CVObjective(X=inputs.frames.X_train, y=inputs.frames.y_train, config=config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    spent = {"bare": 0.0, "workbench": 0.0}

    def timed(side: str) -> Any:
        def run(trial: Any) -> float:
            started = time.perf_counter()
            try:
                return objective(trial)
            finally:
                spent[side] += time.perf_counter() - started

        return run

    bare = optuna.create_study(direction="maximize" if config.direction == "maximize" else "minimize",
                               sampler=make_sampler(config))
    tracked = _Tracked(slug, config, label="a")
    # Alternate the two sides in rounds, so a change in the machine's load hits both alike.
    rounds = 5
    bare_seconds = workbench_seconds = 0.0
    for index in range(1, rounds + 1):
        target = n_trials * index // rounds
        started = time.perf_counter()
        bare.optimize(timed("bare"), n_trials=target - len(bare.trials))
        bare_seconds += time.perf_counter() - started
        workbench_seconds += tracked.run(timed("workbench"), target, flush=index == rounds)
    same = [t.value for t in bare.trials] == [t.value for t in tracked.study.trials]
    # The machine is shared, so the same fits take a varying time; the cost the workbench adds
    # around the objective (storage, tracking, progress) is measured apart as well.
    bare_overhead = bare_seconds - spent["bare"]
    workbench_overhead = workbench_seconds - spent["workbench"]
    return {"bare_seconds": bare_seconds, "workbench_seconds": workbench_seconds,
            "ratio": workbench_seconds / bare_seconds, "same_trials": float(same),
            "bare_objective": spent["bare"], "workbench_objective": spent["workbench"],
            "overhead_per_trial_ms": 1000 * (workbench_overhead - bare_overhead) / n_trials,
            "ratio_same_fits": (spent["bare"] + workbench_overhead) / bare_seconds}


def _trivial(trial: Any) -> float:
    x = trial.suggest_float("x", -10, 10)
    return x * x


def bench_b(slug: str, inputs: Any, n_trials: int, home: Path) -> dict[str, float]:
    import optuna
    from optuna_integration import MLflowCallback

    from workbench.training.config import validate_tuning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = validate_tuning(models=["linear"], n_trials=n_trials, timeout_seconds=None, folds=3, sampler="random",
                             pruner="none", workers=1, seed=0, metric=inputs.metric, task_type=inputs.task_type)
    results: dict[str, float] = {}

    def callback_rate(storage: str | None, name: str) -> float:
        callback = MLflowCallback(tracking_uri=f"sqlite:///{home / f'callback-{name}.db'}", metric_name="value")
        study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(_trivial, n_trials=3, callbacks=[callback])  # warm-up: MLflow schema and experiment
        started = time.perf_counter()
        study.optimize(_trivial, n_trials=n_trials, callbacks=[callback])
        return n_trials / (time.perf_counter() - started)

    results["callback_inmemory_per_s"] = callback_rate(None, "mem")
    results["callback_sqlite_per_s"] = callback_rate(f"sqlite:///{home / 'callback-optuna.db'}", "sqlite")

    memory = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    memory.optimize(_trivial, n_trials=n_trials)
    results["optuna_inmemory_per_s"] = n_trials / (time.perf_counter() - started)

    tracked = _Tracked(slug, config, label="b")
    tracked.study.optimize(_trivial, n_trials=3)  # warm-up, like the callback side
    warm = 3
    seconds = tracked.run(_trivial, n_trials + warm)
    results["workbench_per_s"] = n_trials / seconds
    results["workbench_trial_path_per_s"] = n_trials / tracked.trials_seconds
    results["speedup_vs_callback_inmemory"] = results["workbench_per_s"] / results["callback_inmemory_per_s"]
    results["speedup_vs_callback_sqlite"] = results["workbench_per_s"] / results["callback_sqlite_per_s"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials-a", type=int, default=50)
    parser.add_argument("--trials-b", type=int, default=200)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only", choices=["a", "b"], default=None)
    parser.add_argument("--storage", default="journal",
                        help="The workbench's Optuna storage: 'journal' (the default file), 'sqlite' (an SQLite "
                             "file: Optuna's RDB storage, with heartbeats) or an RDB URL such as "
                             "postgresql://postgres@127.0.0.1:5432/optuna_bench (an empty database).")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    home = _setup_home()
    if args.storage == "sqlite":
        os.environ["WORKBENCH_OPTUNA_STORAGE"] = f"sqlite:///{home / 'home' / 'optuna.db'}"
    elif args.storage != "journal":
        os.environ["WORKBENCH_OPTUNA_STORAGE"] = args.storage
    slug, inputs = _project()
    print(f"workbench home: {home}; Optuna storage: {args.storage}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.only in (None, "a"):
        a = bench_a(slug, inputs, args.trials_a, args.folds)
        print(f"(a) {args.trials_a} random-forest trials, {args.folds}-fold CV on breast_cancer:")
        print(f"    bare Optuna in memory: {a['bare_seconds']:.1f}s; workbench tuning: {a['workbench_seconds']:.1f}s; "
              f"same trials on both sides: {bool(a['same_trials'])}")
        print(f"    time inside the objective: bare {a['bare_objective']:.1f}s, "
              f"workbench {a['workbench_objective']:.1f}s")
        print(f"    workbench cost around the objective: {a['overhead_per_trial_ms']:.0f} ms per trial")
        print(f"    ratio workbench / bare = {a['ratio']:.3f} wall clock; {a['ratio_same_fits']:.3f} with the fits "
              "taking the same time on both sides (goal <= 1.10)")
    if args.only in (None, "b"):
        b = bench_b(slug, inputs, args.trials_b, home)
        print(f"(b) trivial objective, {args.trials_b} trials, trials per second:")
        print(f"    Optuna in memory, no tracking:                {b['optuna_inmemory_per_s']:8.1f}")
        print(f"    Optuna in memory + MLflowCallback (SQLite):   {b['callback_inmemory_per_s']:8.1f}")
        print(f"    Optuna on SQLite + MLflowCallback (SQLite):   {b['callback_sqlite_per_s']:8.1f}")
        print(f"    workbench full tracking ({args.storage.split(':', 1)[0]:10} + MLflow):{b['workbench_per_s']:8.1f}"
              f"  (trial path alone, before the last MLflow writes: {b['workbench_trial_path_per_s']:.1f})")
        print(f"    speed-up vs callback: {b['speedup_vs_callback_inmemory']:.2f}x (Optuna in memory), "
              f"{b['speedup_vs_callback_sqlite']:.2f}x (Optuna on SQLite) (goal >= 4x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
