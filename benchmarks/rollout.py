"""Benchmark: what a rollout costs the web service: champion only against shadow and canary, in one run.

Two versions of the same Pipeline (benchmarks/batch.py's 8 numeric + 2 categorical features,
HistGradientBoosting; the challenger trained on another sample) are registered in a throw-away
workbench home, and three ``workbench serve`` processes (one process each, as it ships, with
``OMP_NUM_THREADS=1`` and a bearer token) serve the champion on free ports of 127.0.0.1:

- ``champion``: no rollout (the baseline);
- ``shadow``: a shadow rollout of the challenger (it scores a copy of every request off the
  response path, its rows written to ``shadow_predictions``);
- ``canary``: a canary at ``--share`` (20 % by default) routed by the request id;
- with ``--without-cpu-group``, also ``shadow_nice``: the same shadow rollout, its shadow process
  kept out of an idle CPU cgroup (``WORKBENCH_SHADOW_CPU_GROUP=false``: its session's autogroup at
  nice 19 here), so the idle group's effect is measured in the same run.

Both rollouts are started through the service API (``workbench.rollouts.start_rollout``) with the
automatic policy off, so neither changes mode during the run, and a loose latency guardrail
(``latency_factor`` 100: on a busy machine the p99 of a few hundred requests is noisy, and a
breach would end the rollout mid-run; what is measured here is the serving cost, not the
guardrail). Each is checked again at the end: a rollout no longer running makes its figures
invalid, and the report says so.

For each connection count of ``--connections``, ``--samples`` alternated rounds (the first server
rotating: C S K, S K C, K C S) send ``--requests`` one-record requests to each server. It prints
the median req/s (min-max), p50 and p99, the p99 pooled over every request of the rounds, and the
ratios (of the per-round medians) against the goals of issue 13: shadow adds
at most 10 % to the champion-only p99 and costs at most 15 % of its requests per second; the
canary answers at the champion-only rate within 10 %. The canary's p99 ratio is printed beside the
shadow's as a control: the canary adds no background work, so its ratio reads the run's noise.
It also prints each server's CPU time per
request (user + system of the server and its child processes, the shadow process included, from
/proc, median of the rounds): on a loaded machine req/s and p99 mostly measure the other
processes, while the CPU a server spends per request is its own cost.

    .venv/bin/python benchmarks/rollout.py --requests 300
    .venv/bin/python benchmarks/rollout.py --requests 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ["OMP_NUM_THREADS"] = "1"

GOAL_SHADOW_P99 = 1.10  # shadow p99 / champion-only p99 at most
GOAL_SHADOW_RPS = 0.85  # shadow req/s / champion-only req/s at least
GOAL_CANARY_RPS = 0.90  # canary req/s / champion-only req/s at least
SERVERS = ("champion", "shadow", "canary")


def register_versions() -> tuple[str, str]:
    """A project with a champion and a challenger (same features, another training sample); slug and challenger."""
    from batch import FEATURES, make_frame, make_pipeline, register

    from tests.helpers.registered_model import register_model
    from workbench.settings import get_settings

    slug = register("hgb", make_frame(20_000, seed=1))
    settings = get_settings()
    challenger = register_model(slug, tracking_uri=settings.mlflow_tracking_uri,
                                artifacts_dir=settings.artifacts_dir, frame=make_frame(20_000, seed=2),
                                pipeline=make_pipeline("hgb"), features=FEATURES, alias="challenger")
    return slug, challenger.version


def bench_setup(prefix: str, **server_env: str) -> tuple[Path, str, str, dict[str, Any], dict[str, str],
                                                           dict[str, str]]:
    """A throw-away home with the champion and the challenger registered, for ``workbench serve`` processes.

    Returns its folder, the project's slug, the challenger's version, one request record, the
    bearer-token headers and the servers' environment (with ``server_env`` added).
    """
    from batch import FEATURES, make_frame, setup_home

    base = Path(tempfile.mkdtemp(prefix=prefix))
    setup_home(base)
    slug, challenger = register_versions()
    from workbench.settings import get_settings

    settings = get_settings()
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in make_frame(1, seed=9)[FEATURES].iloc[0].items()}
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri, "OMP_NUM_THREADS": "1",
           "WORKBENCH_HOME": str(settings.home), "WORKBENCH_SERVE_TOKEN": token, **server_env}
    return base, slug, challenger, record, {"Authorization": f"Bearer {token}"}, env


def start_rollouts(slug: str, deployments: dict[str, int], *, share: float,
                   shadow_share: float | None = None) -> dict[str, int]:
    """Start the shadow rollouts (copying ``shadow_share`` of the requests, all when None) and the canary on
    their deployments (automatic steps off); their ids."""
    from workbench.db import session_scope
    from workbench.rollouts import start_rollout

    ids: dict[str, int] = {}
    with session_scope() as session:
        for name in deployments:
            if name == "champion":
                continue
            mode, mode_share = ("canary", share) if name == "canary" else ("shadow", shadow_share)
            ids[name] = start_rollout(session, project=slug, deployment_id=deployments[name], mode=mode,
                                      share=mode_share, actor="benchmark",
                                      params={"automatic": False, "latency_factor": 100.0}).id
    return ids


def rollout_states(ids: dict[str, int]) -> dict[str, str]:
    from workbench.db import session_scope
    from workbench.db.models import Rollout

    with session_scope() as session:
        return {name: str(session.get(Rollout, rid).status) for name, rid in ids.items()}  # type: ignore[union-attr]


def wait_for_rollout(url: str, auth: dict[str, str], mode: str | None, timeout: float = 60) -> None:
    """Wait until the server's /health shows the rollout mode (its plan poll has loaded the challenger)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rollout = httpx.get(f"{url}/health", headers=auth, timeout=10).json().get("rollout")
        if (rollout or {}).get("mode") == mode:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not pick up its {mode} rollout in {timeout} s")


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU seconds a process and (``children``) its live children have used (Linux ``/proc``).

    What it cost, whatever the machine's load. The children count too: a web service scores its
    shadow copies in a child process (``workbench.serving.shadow_process``), and that is its cost.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if not children:
        return own
    kids = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    for child in kids:
        try:
            own += cpu_seconds(child)
        except OSError:
            continue  # it ended meanwhile
    return own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per sample, per server")
    parser.add_argument("--samples", type=int, default=3, help="alternated rounds per connection count (>= 3)")
    parser.add_argument("--connections", default="1,8", help="comma-separated connection counts")
    parser.add_argument("--share", type=float, default=0.2, help="the canary's share")
    parser.add_argument("--shadow-share", type=float, default=None,
                        help="the share of requests the shadow rollout copies (default: every request)")
    parser.add_argument("--without-cpu-group", action="store_true",
                        help="also a shadow server whose shadow process makes no idle CPU cgroup")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    servers = (*SERVERS, "shadow_nice") if args.without_cpu_group else SERVERS
    from _fair import alternated, load_average, print_sides, ratio
    from serving import free_port, measure, stop, wait_ready

    base, slug, challenger, record, auth, env = bench_setup("wb-bench-rollout-")
    log = (base / "servers.log").open("ab")
    ports = {name: free_port() for name in servers}
    processes = {
        name: subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", slug, "--port", str(port),
                                "--poll-seconds", "1"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               env={**env, "WORKBENCH_SHADOW_CPU_GROUP": str(name != "shadow_nice").lower()},
                               start_new_session=True)
        for name, port in ports.items()
    }
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    samples = max(1, args.samples)
    report: dict[str, Any] = {"requests": args.requests, "samples": samples, "share": args.share,
                              "shadow_share": args.shadow_share,
                              "challenger_version": challenger, "command": " ".join(sys.argv),
                              "load_before": load_average()}
    print(f"{report['load_before']}; {samples} alternated samples of {args.requests} requests per server", flush=True)
    try:
        for name in servers:
            wait_ready(f"{urls[name]}/health", processes[name])
        deployments = {name: int(httpx.get(f"{urls[name]}/health", headers=auth).json()["deployment_id"])
                       for name in servers}
        ids = start_rollouts(slug, deployments, share=args.share, shadow_share=args.shadow_share)
        for name in ids:
            wait_for_rollout(urls[name], auth, "canary" if name == "canary" else "shadow")
        for connections in (int(c) for c in args.connections.split(",") if c.strip()):
            cpu_ms: dict[str, list[float]] = {name: [] for name in servers}
            child_ms: list[float] = []  # the shadow server's child (the shadow process) alone
            pooled: dict[str, list[float]] = {name: [] for name in servers}

            def one(name: str, n: int = connections, cpu_ms: dict[str, list[float]] = cpu_ms,
                    pooled: dict[str, list[float]] = pooled, child_ms: list[float] = child_ms) -> dict[str, float]:
                # The server's CPU per request: unlike req/s and p99, hardly moved by other processes' load.
                pid = processes[name].pid
                began, began_own = cpu_seconds(pid), cpu_seconds(pid, children=False)
                result = measure(f"{urls[name]}/predict", record, requests=args.requests, connections=n,
                                 headers=auth, latencies_into=pooled[name])
                per_request = 1000 / max(1, result["requests"])
                cpu_ms[name].append((cpu_seconds(pid) - began) * per_request)
                if name == "shadow":
                    child_ms.append(cpu_ms[name][-1] - (cpu_seconds(pid, children=False) - began_own) * per_request)
                return result

            row = alternated(servers, samples, one)
            row["cpu_ms_per_request"] = {name: round(sorted(v)[len(v) // 2], 3) for name, v in cpu_ms.items()}
            row["shadow_process_cpu_ms_per_request"] = round(sorted(child_ms)[len(child_ms) // 2], 3)
            med = {name: {key: row[name][key]["median"] for key in ("rps", "p99_ms")} for name in servers}
            row["shadow_p99_ratio"] = ratio(med["shadow"]["p99_ms"], med["champion"]["p99_ms"])
            # A control: the canary adds no background work, so its p99 ratio is about the run's noise.
            row["canary_p99_ratio"] = ratio(med["canary"]["p99_ms"], med["champion"]["p99_ms"])
            # The p99 of every request of every round: 1 % of samples x requests is a steadier tail
            # than each round's 1 % (the median of per-round p99s moves with a few slow moments).
            row["pooled_p99_ms"] = {name: round(float(np.percentile(pooled[name], 99)), 2) for name in servers}
            row["shadow_rps_ratio"] = ratio(med["shadow"]["rps"], med["champion"]["rps"])
            row["canary_rps_ratio"] = ratio(med["canary"]["rps"], med["champion"]["rps"])
            report[f"{connections}_connection"] = row
            print_sides(row, servers, connections=connections, samples=samples)
            print(f"  shadow p99 {row['shadow_p99_ratio']}x champion-only (goal <= {GOAL_SHADOW_P99}; the canary's, "
                  f"a control for the run's noise: {row['canary_p99_ratio']}x), req/s {row['shadow_rps_ratio']}x "
                  f"(goal >= {GOAL_SHADOW_RPS}); canary req/s {row['canary_rps_ratio']}x (goal >= {GOAL_CANARY_RPS})",
                  flush=True)
            p99 = row["pooled_p99_ms"]
            print(f"  p99 pooled over the rounds (ms): champion {p99['champion']}, shadow {p99['shadow']} "
                  f"({ratio(p99['shadow'], p99['champion'])}x), canary {p99['canary']} "
                  f"({ratio(p99['canary'], p99['champion'])}x)", flush=True)
            if "shadow_nice" in servers:
                row["shadow_nice_p99_ratio"] = ratio(med["shadow_nice"]["p99_ms"], med["champion"]["p99_ms"])
                print(f"  without the idle CPU group: shadow p99 {row['shadow_nice_p99_ratio']}x champion-only, "
                      f"pooled {ratio(p99['shadow_nice'], p99['champion'])}x", flush=True)
            cpu = row["cpu_ms_per_request"]
            print(f"  server CPU per request (median ms): champion {cpu['champion']}, shadow {cpu['shadow']} "
                  f"({ratio(cpu['shadow'], cpu['champion'])}x), canary {cpu['canary']} "
                  f"({ratio(cpu['canary'], cpu['champion'])}x); of the shadow's, its shadow process "
                  f"{row['shadow_process_cpu_ms_per_request']}", flush=True)
        time.sleep(1.5)  # the shadow writer flushes every 200 ms; /metrics snapshots are live
        shadow_metrics = httpx.get(f"{urls['shadow']}/metrics", headers=auth, timeout=10).text
        report["shadow_counters"] = [line for line in shadow_metrics.splitlines()
                                     if line.startswith(("workbench_rollout_requests_total",
                                                         "workbench_rollout_shadow_dropped_total",
                                                         "workbench_rollout_shadow_timeouts_total"))]
        print("shadow counters:", "; ".join(report["shadow_counters"]), flush=True)
        report["rollouts_at_end"] = states = rollout_states(ids)
        valid = all(state == "running" for state in states.values())
        print(f"rollouts at the end: {states}" + ("" if valid else " - NOT RUNNING: these figures are invalid"),
              flush=True)
    finally:
        for process in processes.values():
            stop(process)
        log.close()
    report["load_after"] = load_average()
    print(report["load_after"], flush=True)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
