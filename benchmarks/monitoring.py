"""Benchmark: the workbench's drift computation against Evidently and against plain scipy.

On N rows x 20 columns (15 numeric, 5 categorical; reference and current both N rows, a
few columns drifted) it measures, in one run and each in a fresh subprocess:

- ``workbench``: :func:`workbench.monitoring.drift.compute_drift`;
- ``evidently``: a bare ``Report([DataDriftPreset()]).run(current, reference)``;
- ``direct``: a direct numpy/scipy computation of the same statistics (scipy's
  ``wasserstein_distance`` and ``jensenshannon`` on pandas value counts, column by column).

Time is wall-clock time of the computation only (imports and data loading are done
before the clock starts). Peak extra memory is the process's peak resident set size
during the computation minus its resident size just before it: the kernel's high-water
mark is reset through ``/proc/self/clear_refs`` first (or, where that is not allowed, a
thread samples the RSS every 2 ms). The three methods' statistics are compared, too.

    .venv/bin/python benchmarks/monitoring.py                   # 100k and 1M rows
    .venv/bin/python benchmarks/monitoring.py --rows 100000 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_NUMERIC = 15
N_CATEGORICAL = 5
METHODS = ("workbench", "evidently", "direct")
GOAL_TIME_RATIO = 1 / 3
GOAL_MEMORY_RATIO = 1 / 2


# ----------------------------------------------------------------------------- data


def make_frames(n_rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames: 15 float columns and 5 string columns, 5 of them drifted."""
    rng = np.random.default_rng(seed)
    categories = np.array([f"cat_{i}" for i in range(12)], dtype=object)

    def frame(drifted: bool) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for i in range(N_NUMERIC):
            shift = 0.5 if drifted and i % 5 == 0 else 0.0
            data[f"num_{i:02d}"] = rng.normal(shift, 1.0 + 0.1 * i, n_rows)
        for i in range(N_CATEGORICAL):
            weights = np.linspace(1.0, 2.0 if drifted and i % 2 == 0 else 1.0, categories.size)
            data[f"cat_{i}"] = rng.choice(categories, n_rows, p=weights / weights.sum())
        return pd.DataFrame(data)

    return frame(False), frame(True)


# ----------------------------------------------------------------------------- methods


def run_workbench(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    from workbench.monitoring.drift import compute_drift

    result = compute_drift(reference, current)
    return {c.column: c.statistic for c in result.columns}


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    from workbench.monitoring.reports import bare_drift_report

    snapshot = bare_drift_report(reference, current)
    return {
        m["config"]["column"]: float(m["value"])
        for m in snapshot.dict()["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }


def run_direct(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    """Evidently's default tests for a large reference, written plainly with pandas and scipy."""
    from scipy import stats
    from scipy.spatial import distance

    out: dict[str, float] = {}
    for column in current.columns:
        ref = reference[column].replace([np.inf, -np.inf], np.nan).dropna()
        cur = current[column].replace([np.inf, -np.inf], np.nan).dropna()
        numeric = pd.api.types.is_float_dtype(cur)
        if numeric and pd.concat([ref, cur]).nunique() > 5:
            out[column] = float(stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))
        else:
            ref_counts = ref.value_counts()
            cur_counts = cur.value_counts()
            keys = ref_counts.index.union(cur_counts.index)
            p = ref_counts.reindex(keys, fill_value=0).to_numpy() / len(ref)
            q = cur_counts.reindex(keys, fill_value=0).to_numpy() / len(cur)
            out[column] = float(distance.jensenshannon(p, q))
    return out


RUNNERS = {"workbench": run_workbench, "evidently": run_evidently, "direct": run_direct}


# ----------------------------------------------------------------------------- measuring


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class _Sampler(threading.Thread):
    """Fallback peak-RSS sampler for kernels that do not allow resetting the high-water mark."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _status_kib("VmRSS")
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _status_kib("VmRSS"))
            time.sleep(0.002)


def measure_in_this_process(method: str, data_dir: Path) -> dict[str, Any]:
    """Load the data, warm the imports, then time one method and its peak extra memory."""
    reference = pd.read_parquet(data_dir / "reference.parquet")
    current = pd.read_parquet(data_dir / "current.parquet")
    # Imports are a fixed cost, not part of the computation being compared.
    import scipy.spatial
    import scipy.stats  # noqa: F401

    if method == "evidently":
        import evidently.presets  # noqa: F401
    import workbench.monitoring.drift
    import workbench.monitoring.reports  # noqa: F401

    gc.collect()
    baseline = _status_kib("VmRSS")
    sampler = None
    if not _reset_peak():
        sampler = _Sampler()
        sampler.start()
    start = time.perf_counter()
    stats = RUNNERS[method](reference, current)
    seconds = time.perf_counter() - start
    if sampler is not None:
        sampler.stop.set()
        sampler.join()
        peak = sampler.peak
    else:
        peak = _status_kib("VmHWM")
    return {
        "method": method,
        "seconds": seconds,
        "peak_extra_mib": max(peak - baseline, 0) / 1024,
        "peak_method": "sampled" if sampler else "VmHWM",
        "statistics": stats,
    }


def measure(method: str, data_dir: Path) -> dict[str, Any]:
    """Run :func:`measure_in_this_process` in a fresh interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", method, str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def compare(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) for k in a) if a.keys() == b.keys() else float("nan")


def bench(n_rows: int, work_dir: Path) -> dict[str, Any]:
    data_dir = work_dir / f"rows_{n_rows}"
    data_dir.mkdir(parents=True, exist_ok=True)
    reference, current = make_frames(n_rows)
    reference.to_parquet(data_dir / "reference.parquet")
    current.to_parquet(data_dir / "current.parquet")
    del reference, current
    results = {m: measure(m, data_dir) for m in METHODS}
    wb, ev, di = (results[m] for m in METHODS)
    return {
        "rows": n_rows,
        "columns": N_NUMERIC + N_CATEGORICAL,
        "seconds": {m: results[m]["seconds"] for m in METHODS},
        "peak_extra_mib": {m: results[m]["peak_extra_mib"] for m in METHODS},
        "peak_method": wb["peak_method"],
        "time_ratio_workbench_vs_evidently": wb["seconds"] / ev["seconds"],
        "time_ratio_direct_vs_evidently": di["seconds"] / ev["seconds"],
        "time_ratio_workbench_vs_direct": wb["seconds"] / di["seconds"],
        "memory_ratio_workbench_vs_evidently": wb["peak_extra_mib"] / max(ev["peak_extra_mib"], 1e-9),
        "memory_ratio_direct_vs_evidently": di["peak_extra_mib"] / max(ev["peak_extra_mib"], 1e-9),
        "max_abs_diff_workbench_vs_evidently": compare(wb["statistics"], ev["statistics"]),
        "max_abs_diff_direct_vs_evidently": compare(di["statistics"], ev["statistics"]),
        "drifted_columns": sorted(c for c, v in ev["statistics"].items() if v >= 0.1),
    }


def print_result(r: dict[str, Any]) -> None:
    s, m = r["seconds"], r["peak_extra_mib"]
    print(f"\n{r['rows']:,} rows x {r['columns']} columns (reference and current each)")
    print(f"  {'method':<10} {'time (s)':>10} {'peak extra (MiB)':>18}")
    for name in METHODS:
        print(f"  {name:<10} {s[name]:>10.3f} {m[name]:>18.1f}")
    print(
        f"  time   workbench/evidently {r['time_ratio_workbench_vs_evidently']:.3f}"
        f"  direct/evidently {r['time_ratio_direct_vs_evidently']:.3f}"
        f"  workbench/direct {r['time_ratio_workbench_vs_direct']:.3f}"
        f"  (goal <= {GOAL_TIME_RATIO:.3f})"
    )
    print(
        f"  memory workbench/evidently {r['memory_ratio_workbench_vs_evidently']:.3f}"
        f"  direct/evidently {r['memory_ratio_direct_vs_evidently']:.3f}  (goal <= {GOAL_MEMORY_RATIO:.3f};"
        f" peak by {r['peak_method']})"
    )
    print(
        f"  max |statistic - Evidently's|: workbench {r['max_abs_diff_workbench_vs_evidently']:.2e},"
        f" direct {r['max_abs_diff_direct_vs_evidently']:.2e}; drifted: {', '.join(r['drifted_columns'])}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        method, data_dir = args.child
        print(json.dumps(measure_in_this_process(method, Path(data_dir))))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        for n_rows in args.rows:
            result = bench(n_rows, Path(tmp))
            print_result(result)
            results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    last = results[-1]
    ok = (
        last["time_ratio_workbench_vs_evidently"] <= GOAL_TIME_RATIO
        and last["memory_ratio_workbench_vs_evidently"] <= GOAL_MEMORY_RATIO
    )
    print(f"\ngoals at {last['rows']:,} rows: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
