"""Benchmark: the pandas batch engine against the Spark engine in ``local[1]`` and ``local[2]``.

One HistGradientBoosting Pipeline (8 numeric + 2 categorical features, as ``benchmarks/batch.py``)
is registered in a throw-away workbench home. The same rows are written once as a multi-file
Parquet dataset (for Spark) and once as a single Parquet file (the pandas engine reads one file).
Each engine then runs a real ``score`` job (read, check, predict, write, log every row as segments
to SQLite) in a fresh subprocess, which reports:

- ``seconds`` and ``rows_per_second``: the job's own scoring time (``result["seconds"]``; for
  Spark it includes starting the JVM, the Python workers and their model loads: a fixed cost of a
  few seconds that larger inputs amortise); ``job_seconds`` adds the model load on the driver;
- ``speed_up``: pandas seconds / this engine's seconds;
- ``driver_peak_rss_mb``: the Python driver's peak RSS (``ru_maxrss``);
- ``tree_peak_rss_mb``: the peak RSS of the driver and all its child processes (the JVM and the
  Python workers for Spark), sampled every 0.2 s with psutil.

Needs the ``[spark]`` extra and Java 17+. On a shared 2-core machine, numbers swing; local[2]
can only beat local[1] when two cores are free.

    .venv/bin/python benchmarks/batch_spark.py                      # 400k rows in 8 files
    .venv/bin/python benchmarks/batch_spark.py --rows 100000 --files 4 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

from benchmarks.batch import FEATURES, make_frame, register, setup_home  # noqa: E402

CONFIGS = [("pandas", None), ("spark", "local[1]"), ("spark", "local[2]")]


class TreeRss(threading.Thread):
    """Samples the RSS of this process and all its descendants; keeps the peak (MiB)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stopped.wait(0.2):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
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
    started = time.perf_counter()
    status = run_job(job_id)
    job_seconds = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        if status != "succeeded":
            raise SystemExit(f"score job {status}: {job.error}")
        result = dict(job.result or {})
    print(json.dumps({"rows": result["rows"], "seconds": result["seconds"], "job_seconds": round(job_seconds, 2),
                      "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "tree_peak_rss_mb": round(sampler.peak, 1)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--files", type=int, default=8, help="Parquet files of the Spark input")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "MASTER", "SLUG", "BASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], Path(args.child[3]))
        return 0
    import importlib.util
    import shutil

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
                                                                   index=False)
        results = []
        for engine, master in CONFIGS:
            out = subprocess.run([sys.executable, __file__, "--child", engine, master or "-", slug, str(base)],
                                 capture_output=True, text=True, check=False, cwd=REPO)
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            data = json.loads(out.stdout.strip().splitlines()[-1])
            results.append({"engine": engine if master is None else f"spark {master}", **data,
                             "rows_per_second": round(data["rows"] / data["seconds"])})
        pandas_seconds = results[0]["seconds"]
        for result in results:
            result["speed_up"] = round(pandas_seconds / result["seconds"], 2)
        print(f"{'engine':<16}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'speed-up':>10}{'driver MB':>11}{'tree MB':>9}")
        for r in results:
            print(f"{r['engine']:<16}{r['rows']:>9,}{r['seconds']:>9.2f}{r['rows_per_second']:>10,}"
                  f"{r['speed_up']:>10.2f}{r['driver_peak_rss_mb']:>11.0f}{r['tree_peak_rss_mb']:>9.0f}")
        if args.json_path:
            Path(args.json_path).write_text(json.dumps({"rows": args.rows, "files": args.files, "results": results},
                                                       indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
