"""Benchmark: the workbench's drift check against Evidently and against the sort floor (issue 16 item 4).

On N rows x 20 columns (15 float, 5 string categorical; reference and current both N rows, a
few columns drifted) it measures, in one run, each sample in a fresh subprocess, the sides
alternating their order from round to round (``--samples`` rounds, median and min-max; Evidently
in the first ``--evidently-samples`` rounds only, when given):

- ``workbench``: what a monitoring check runs: read the reference's profile (its float columns
  sorted and its categories counted once per model version; built beforehand, see
  ``workbench.monitoring._profile``) from its cache file, then
  :func:`workbench.monitoring.drift.compute_drift` of the current window against it;
- ``evidently``: a bare ``Report([DataDriftPreset()]).run(current, reference)``;
- ``floor``: what any drift check against a stored reference has to do at least: numpy sorts of
  the current window's float columns plus its category counts (``value_counts``), one thread;
- ``floor_both``: the same for the reference and the current window (the floor when the
  reference is sorted on every check, as it was before the profile);
- ``direct`` (only with ``--methods``): plain scipy per column.

Time is wall-clock time of the computation only (imports and data loading are done before the
clock starts; reading the profile file is inside it). Peak extra memory is the process's peak
resident set size during the computation minus its resident size just before it: the kernel's
high-water mark is reset through ``/proc/self/clear_refs`` first (or, where that is not allowed,
a thread samples the RSS every 2 ms). The statistics of workbench and Evidently are compared.
The profile's one-off build time (once per model version) is reported separately.

    .venv/bin/python benchmarks/monitoring.py --rows 1000000 --evidently-samples 1   # the issue's size: Evidently once
    .venv/bin/python benchmarks/monitoring.py --rows 1000000            # Evidently in every round (minutes each)
    .venv/bin/python benchmarks/monitoring.py --rows 100000 --samples 3 --json out.json
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
METHODS = ("workbench", "evidently", "floor", "floor_both")
GOAL_FLOOR_RATIO = 1.5
GOAL_TIME_RATIO = 0.01
GOAL_MEMORY_RATIO = 0.05
PROFILE_FILE = "reference-profile"


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


def run_workbench(reference: pd.DataFrame, current: pd.DataFrame, data_dir: Path) -> dict[str, float]:
    from workbench.monitoring._profile import load_profile
    from workbench.monitoring.drift import compute_drift

    result = compute_drift(load_profile(data_dir / PROFILE_FILE), current)
    return {c.column: c.statistic for c in result.columns}


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame, data_dir: Path) -> dict[str, float]:
    from workbench.monitoring.reports import bare_drift_report

    snapshot = bare_drift_report(reference, current)
    return {
        m["config"]["column"]: float(m["value"])
        for m in snapshot.dict()["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }


def _sort_and_count(frame: pd.DataFrame) -> None:
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            np.sort(frame[column].to_numpy())
        else:
            frame[column].value_counts()


def run_floor(reference: pd.DataFrame, current: pd.DataFrame, data_dir: Path) -> dict[str, float]:
    """The least a check against a stored reference does: sort the current floats, count its categories."""
    _sort_and_count(current)
    return {}


def run_floor_both(reference: pd.DataFrame, current: pd.DataFrame, data_dir: Path) -> dict[str, float]:
    """The same for both sides: the floor of a check that sorts the reference every time."""
    _sort_and_count(reference)
    _sort_and_count(current)
    return {}


def run_direct(reference: pd.DataFrame, current: pd.DataFrame, data_dir: Path) -> dict[str, float]:
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


RUNNERS = {"workbench": run_workbench, "evidently": run_evidently, "floor": run_floor,
           "floor_both": run_floor_both, "direct": run_direct}


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
    import workbench.monitoring._profile
    import workbench.monitoring.drift
    import workbench.monitoring.reports  # noqa: F401

    gc.collect()
    baseline = _status_kib("VmRSS")
    sampler = None
    if not _reset_peak():
        sampler = _Sampler()
        sampler.start()
    start = time.perf_counter()
    stats = RUNNERS[method](reference, current, data_dir)
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


def bench(n_rows: int, work_dir: Path, *, methods: list[str], samples: int,
          evidently_samples: int | None = None) -> dict[str, Any]:
    """Every method on one size; Evidently takes part in the first ``evidently_samples`` rounds only
    (None: all), so the others keep ``samples`` each while Evidently's minutes are paid once."""
    from _fair import ratio, rounds, summary

    from workbench.monitoring._profile import build_profile

    data_dir = work_dir / f"rows_{n_rows}"
    data_dir.mkdir(parents=True, exist_ok=True)
    reference, current = make_frames(n_rows)
    reference.to_parquet(data_dir / "reference.parquet")
    current.to_parquet(data_dir / "current.parquet")
    del current
    started = time.perf_counter()
    build_profile(reference).save(data_dir / PROFILE_FILE)  # once per model version, not per check
    build_seconds = time.perf_counter() - started
    del reference
    order = rounds(methods, samples)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    limit = {m: samples for m in methods}
    if "evidently" in methods and evidently_samples is not None:
        limit["evidently"] = max(1, min(samples, evidently_samples))
    for round_order in order:
        for method in round_order:
            if len(runs[method]) < limit[method]:
                runs[method].append(measure(method, data_dir))
    seconds = {m: summary([r["seconds"] for r in runs[m]], 3) for m in methods}
    memory = {m: summary([r["peak_extra_mib"] for r in runs[m]], 1) for m in methods}
    result: dict[str, Any] = {
        "rows": n_rows, "columns": N_NUMERIC + N_CATEGORICAL, "samples": samples, "order": order,
        "samples_per_method": {m: len(runs[m]) for m in methods},
        "profile_build_seconds": round(build_seconds, 3), "seconds": seconds, "peak_extra_mib": memory,
        "peak_method": runs[methods[0]][0]["peak_method"],
    }
    med = {m: seconds[m]["median"] for m in methods}
    mem = {m: memory[m]["median"] for m in methods}
    if "workbench" in methods:
        for other in methods:
            if other != "workbench":
                result[f"time_ratio_workbench_vs_{other}"] = ratio(med["workbench"], med[other], 4)
                result[f"memory_ratio_workbench_vs_{other}"] = ratio(mem["workbench"], mem[other], 4)
    if "workbench" in methods and "evidently" in methods:
        wb, ev = runs["workbench"][0]["statistics"], runs["evidently"][0]["statistics"]
        result["max_abs_diff_workbench_vs_evidently"] = compare(wb, ev)
        result["drifted_columns"] = sorted(c for c, v in ev.items() if v >= 0.1)
    return result


def print_result(r: dict[str, Any], methods: list[str]) -> None:
    from _fair import spread

    print(f"\n{r['rows']:,} rows x {r['columns']} columns (reference and current each), {r['samples']} alternated "
          f"samples, median (min-max); profile built once beforehand in {r['profile_build_seconds']:.2f} s")
    print(f"  {'method':<11} {'time (s)':>24} {'peak extra (MiB)':>26} {'samples':>8}")
    for name in methods:
        print(f"  {name:<11} {spread(r['seconds'][name], '{:.3f}'):>24} {spread(r['peak_extra_mib'][name]):>26} "
              f"{r['samples_per_method'][name]:>8}")
    for other, goal_time, goal_memory in (("floor", GOAL_FLOOR_RATIO, None), ("floor_both", None, None),
                                          ("evidently", GOAL_TIME_RATIO, GOAL_MEMORY_RATIO), ("direct", None, None)):
        if f"time_ratio_workbench_vs_{other}" not in r:
            continue
        goals = []
        if goal_time is not None:
            goals.append(f"time goal <= {goal_time}")
        if goal_memory is not None:
            goals.append(f"memory goal <= {goal_memory}")
        print(f"  workbench / {other:<10} time {r[f'time_ratio_workbench_vs_{other}']}  memory "
              f"{r[f'memory_ratio_workbench_vs_{other}']}" + (f"  ({'; '.join(goals)})" if goals else ""))
    if "max_abs_diff_workbench_vs_evidently" in r:
        print(f"  max |statistic - Evidently's|: workbench {r['max_abs_diff_workbench_vs_evidently']:.2e};"
              f" drifted: {', '.join(r['drifted_columns'])} (peak by {r['peak_method']})")


def goals_met(r: dict[str, Any]) -> bool | None:
    """The issue's three goals at this size, or None when a side they need was not run."""
    keys = ("time_ratio_workbench_vs_floor", "time_ratio_workbench_vs_evidently", "memory_ratio_workbench_vs_evidently")
    if not all(r.get(k) is not None for k in keys):
        return None
    return bool(r[keys[0]] <= GOAL_FLOOR_RATIO and r[keys[1]] <= GOAL_TIME_RATIO and r[keys[2]] <= GOAL_MEMORY_RATIO
                and r["max_abs_diff_workbench_vs_evidently"] <= 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--samples", type=int, default=3, help="alternated rounds (>= 3 for a median and a spread)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(RUNNERS)}")
    parser.add_argument("--evidently-samples", type=int, default=None,
                        help="rounds Evidently takes part in (default: all; 1 at 1M rows, where one takes minutes)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "DATA_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        method, data_dir = args.child
        print(json.dumps(measure_in_this_process(method, Path(data_dir))))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _fair import load_average

    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in RUNNERS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(RUNNERS)}")
    report: dict[str, Any] = {"command": " ".join(sys.argv), "load_before": load_average(), "results": []}
    print(report["load_before"], flush=True)
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        for n_rows in args.rows:
            result = bench(n_rows, Path(tmp), methods=methods, samples=max(1, args.samples),
                           evidently_samples=args.evidently_samples)
            print_result(result, methods)
            report["results"].append(result)
    report["load_after"] = load_average()
    print(f"\n{report['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    last = report["results"][-1]
    met = goals_met(last)
    if met is not None:
        print(f"goals at {last['rows']:,} rows (<= {GOAL_FLOOR_RATIO}x the floor, <= {GOAL_TIME_RATIO} of Evidently's "
              f"time, <= {GOAL_MEMORY_RATIO} of its memory, statistics within 1e-9): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
