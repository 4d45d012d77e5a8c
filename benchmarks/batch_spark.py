"""Benchmark: the pandas batch engine against the Spark engine in ``local[1]`` and ``local[2]``.

One HistGradientBoosting Pipeline (8 numeric + 2 categorical features, as ``benchmarks/batch.py``)
is registered in a throw-away workbench home. The same rows are written once as a multi-file
Parquet dataset (for Spark) and once as a single Parquet file (the pandas engine reads one file).
Each engine then runs a real ``score`` job (read, check, predict, write, log every row as segments
to SQLite) in a fresh subprocess, ``--samples`` times (3 by default) in alternated rounds (the first
engine rotating: P 1 2, 1 2 P, 2 P 1, ...), which reports:

- ``seconds`` and ``rows_per_second``: the job's own scoring time (``result["seconds"]``; for
  Spark it includes the Python workers' start and their model loads, but not the JVM's start,
  which the child does first and reports as ``spark_start_seconds``: a fixed cost of a few seconds
  per process, whatever the input); ``job_seconds`` adds the model load on the driver;
- ``speed_up``: pandas seconds / this engine's seconds (medians);
- ``cores_speed_up``: Spark ``local[1]`` seconds / ``local[2]`` seconds (medians; goal >= 1.7);
- ``driver_peak_rss_mb``: the Python driver's peak RSS (``ru_maxrss``);
- ``tree_peak_rss_mb``: the peak RSS of the driver and all its child processes (the JVM and the
  Python workers for Spark), sampled every 0.2 s with psutil.

The Spark engine's input is split so that each core gets the same work: ``--files`` files (a multiple
of 2) whose row groups are small enough for Spark to balance its splits over the cores.

Needs the ``[spark]`` extra and Java 17+. On a shared 2-core machine, numbers swing; local[2]
can only beat local[1] when two cores are free.

    .venv/bin/python benchmarks/batch_spark.py --rows 5000000 --files 16     # the issue's measurement
    .venv/bin/python benchmarks/batch_spark.py --rows 100000 --files 4 --samples 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchmarks._fair import load_average, ratio, rounds, spread, summary  # noqa: E402
from benchmarks.batch import FEATURES, make_frame, register, setup_home  # noqa: E402

CONFIGS = {"pandas": ("pandas", None), "spark local[1]": ("spark", "local[1]"), "spark local[2]": ("spark", "local[2]")}
GOAL_CORES_SPEEDUP = 1.7
#: Rows per Parquet row group of the Spark input: Spark splits files at row groups, so several per file
#: let it cut the input into as many equal splits as it has cores.
ROW_GROUP_ROWS = 100_000


class TreeRss(threading.Thread):
    """Samples the RSS of this process and all its descendants; keeps the peak (MiB) and their CPU seconds.

    CPU seconds are each process's last sampled user + system time, summed (a process that lives
    less than 0.2 s is missed): over the job's wall time they say how many cores the run kept busy.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (driver, jvm or python workers; CPU seconds)
        self.stopped = threading.Event()

    def by_kind(self) -> dict[str, float]:
        """CPU seconds so far of the driver, the JVM and the Python workers (daemon included)."""
        totals: dict[str, float] = {}
        for kind, seconds in list(self.cpu.values()):
            totals[kind] = totals.get(kind, 0.0) + seconds
        return totals

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stopped.wait(0.2):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                    times = process.cpu_times()
                    kind = "driver" if process.pid == me.pid else "jvm" if "java" in process.name() else "python"
                    self.cpu[process.pid] = (kind, times.user + times.system)
                except psutil.Error:  # a worker that just exited
                    continue
            self.peak = max(self.peak, total / 2**20)


def child(engine: str, master: str, slug: str, base: Path) -> None:
    """In a fresh process: run one score job and print its timing and memory as JSON."""
    setup_home(base)
    from workbench.db import session_scope
    from workbench.db.models import Job
    from workbench.jobs import create_job
    from workbench.jobs.runner import run_job
    from workbench.projects import get_project

    if engine == "pandas":
        params: dict[str, Any] = {"input_path": str(base / "input.parquet"),
                                  "output_path": str(base / "out-pandas.parquet")}
    else:
        params = {"input_path": str(base / "input"), "output_path": str(base / f"out-{master}"),
                  "engine": "spark", "master": master}
    with session_scope() as session:
        job_id = create_job(session, kind="score", project=get_project(session, slug=slug), params=params).id
    sampler = TreeRss()
    sampler.start()
    cpu_before: dict[str, float] = {}
    spark_start = 0.0
    if engine == "spark":
        from workbench.serving.spark_batch import spark_session

        # The JVM starts first, timed apart: the job then uses this session (one context per JVM).
        t0 = time.perf_counter()
        spark_session(master)
        spark_start = time.perf_counter() - t0
        time.sleep(0.3)  # a sample of the JVM's start-up CPU, taken away below
        cpu_before = sampler.by_kind()
    started = time.perf_counter()
    status = run_job(job_id)
    job_seconds = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    cpu = {kind: round(seconds - cpu_before.get(kind, 0.0), 2) for kind, seconds in sampler.by_kind().items()}
    cores_busy = sum(cpu.values()) / job_seconds
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        if status != "succeeded":
            raise SystemExit(f"score job {status}: {job.error}")
        result = dict(job.result or {})
    print(json.dumps({"rows": result["rows"], "seconds": result["seconds"], "job_seconds": round(job_seconds, 2),
                      "spark_start_seconds": round(spark_start, 2), "partitions": result["chunks"],
                      "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "tree_peak_rss_mb": round(sampler.peak, 1), "cores_busy": round(cores_busy, 2),
                      "cpu_seconds": cpu}))


def print_profile(root: Path) -> None:
    """Per Spark run, the tasks' seconds per phase summed (``WORKBENCH_SPARK_PROFILE``), workers, model loads."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        tasks = [json.loads(f.read_text()) for f in folder.glob("task-*.json")]
        if not tasks:
            continue
        phases = [k for k in tasks[0] if k.endswith("_s") and k not in ("worker_age_s",)]
        sums = {k: round(sum(t[k] for t in tasks), 2) for k in phases}
        loads = sum(1 for t in tasks if t["model_load_s"] > 0.05)
        print(f"profile {folder.name}: {len(tasks)} tasks on {len({t['pid'] for t in tasks})} Python workers, "
              f"{loads} model loads; seconds summed over tasks: {sums}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--files", type=int, default=8, help="Parquet files of the Spark input")
    parser.add_argument("--samples", type=int, default=3, help="alternated rounds (>= 3 for a median)")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "MASTER", "SLUG", "BASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], Path(args.child[3]))
        return 0
    import importlib.util

    if importlib.util.find_spec("pyspark") is None or shutil.which("java") is None:
        print("skipped: the Spark engine needs the [spark] extra and Java 17+", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="wb-bench-spark-") as tmp:
        base = Path(tmp)
        setup_home(base)
        slug = register("hgb", make_frame(20_000, seed=1))
        frame = make_frame(args.rows, seed=2)[FEATURES]
        frame.to_parquet(base / "input.parquet", index=False)
        (base / "input").mkdir()
        per_file = -(-args.rows // args.files)
        for k in range(args.files):
            frame.iloc[k * per_file:(k + 1) * per_file].to_parquet(base / "input" / f"part-{k:03d}.parquet",
                                                                   index=False, row_group_size=ROW_GROUP_ROWS)
        # A child's ru_maxrss starts at this process's RSS when it is forked (Linux keeps it across exec):
        # the rows are dropped here, or every child's "driver peak" would be at least their size.
        del frame
        import gc

        gc.collect()
        report: dict[str, Any] = {"rows": args.rows, "files": args.files, "load_before": load_average(),
                                  "order": rounds(list(CONFIGS), max(1, args.samples))}
        print(f"{report['load_before']}; {args.rows:,} rows, {args.files} files, {len(report['order'])} alternated "
              "samples", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
        profile_root = os.environ.get("WORKBENCH_SPARK_PROFILE")
        for k, order in enumerate(report["order"]):
            for name in order:
                engine, master = CONFIGS[name]
                env = dict(os.environ)
                if profile_root and engine == "spark":
                    env["WORKBENCH_SPARK_PROFILE"] = str(Path(profile_root, f"{master}-{k}"))
                    Path(env["WORKBENCH_SPARK_PROFILE"]).mkdir(parents=True, exist_ok=True)
                out = subprocess.run([sys.executable, __file__, "--child", engine, master or "-", slug, str(base)],
                                     capture_output=True, text=True, check=False, cwd=REPO, env=env)
                if out.returncode != 0:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                data = json.loads(out.stdout.strip().splitlines()[-1])
                runs[name].append({**data, "rows_per_second": data["rows"] / data["seconds"]})
                for leftover in base.glob("out-*"):  # the next sample writes afresh
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        results = {}
        for name, samples in runs.items():
            results[name] = {key: summary([s[key] for s in samples], 2) for key in
                             ("seconds", "rows_per_second", "spark_start_seconds", "driver_peak_rss_mb",
                              "tree_peak_rss_mb", "cores_busy")}
            results[name]["partitions"] = samples[-1]["partitions"]
            kinds = sorted({k for s in samples for k in s["cpu_seconds"]})
            results[name]["cpu_seconds"] = {k: summary([s["cpu_seconds"].get(k, 0.0) for s in samples], 2)["median"]
                                            for k in kinds}
        pandas_seconds = results["pandas"]["seconds"]["median"]
        for result in results.values():
            result["speed_up"] = ratio(pandas_seconds, result["seconds"]["median"])
        report["results"] = results
        report["cores_speed_up"] = ratio(results["spark local[1]"]["seconds"]["median"],
                                         results["spark local[2]"]["seconds"]["median"])
        report["load_after"] = load_average()
        print(f"{'engine':<16}{'rows/s median (min-max)':>30}{'seconds':>9}{'vs pandas':>11}{'JVM start s':>13}"
              f"{'parts':>7}{'driver MB':>11}{'tree MB':>9}{'cores busy':>12}")
        for name, r in results.items():
            print(f"{name:<16}{spread(r['rows_per_second'], '{:,.0f}'):>30}{r['seconds']['median']:>9.2f}"
                  f"{r['speed_up']:>11.2f}{r['spark_start_seconds']['median']:>13.2f}{r['partitions']:>7}"
                  f"{r['driver_peak_rss_mb']['median']:>11.0f}{r['tree_peak_rss_mb']['median']:>9.0f}"
                  f"{r['cores_busy']['median']:>12.2f}")
        for name, r in results.items():
            print(f"CPU seconds during the job, {name}: {r['cpu_seconds']}")
        print(f"Spark local[2] / local[1]: {report['cores_speed_up']}x (goal >= {GOAL_CORES_SPEEDUP}); "
              f"{report['load_after']}", flush=True)
        if profile_root:
            print_profile(Path(profile_root))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
