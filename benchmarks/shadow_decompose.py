"""Benchmark: where a shadow rollout's added p99 at one connection comes from, in one run.

``benchmarks/rollout.py`` gives the shadow rollout's cost; this script splits it. Two ``workbench
serve`` processes (as in rollout.py: one process each, ``OMP_NUM_THREADS=1``, a bearer token) serve
the same champion; one has a shadow rollout of the challenger. Alternated rounds (the first side
rotating) of ``--requests`` one-record requests at one connection measure four sides:

- ``champion``: no rollout (the baseline);
- ``shadow``: the shadow rollout as it runs;
- ``shadow-child-stopped``: the same server while its shadow process is stopped (SIGSTOP; its
  copies wait in the pipe, then are dropped, counted): what the shadow costs the serving
  process itself (the copy's encoding, the rollout's timers and checks), without the child's work;
- ``champion+burner`` (with ``--burner BUSY_MS,SLEEP_MS``): the champion-only server while a
  process that does nothing but spin BUSY_MS then sleep SLEEP_MS runs in a session of its own at
  the shadow process's priority (autogroup nice 19): what any background CPU of that shape costs
  the server and its client on this machine;
- ``champion-pinned`` and ``shadow-pinned`` (with ``--pinned LAYOUT``, two CPUs or more): the same two
  servers pinned to CPUs, the shadow compared with the champion pinned alike. ``child-apart``: the
  load generator (this process) and both servers on the first CPU, the shadow process alone on the
  second (a machine where the shadow process has a core to itself). ``client-apart``: the load
  generator alone on the second CPU, the servers and the shadow process on the first (the load
  generator kept off the cores of what it measures, as it would be on another machine).

It prints, per side, the p50 and p99 medians of the rounds, the p99 pooled over every request of
the rounds and its ratio to ``champion``, and the server's time waiting for a CPU per request
(``/proc/<pid>/task/*/schedstat``). The rollout's guardrail checks run every
``--check-seconds`` (the serving default is 10 s; a large value leaves them out).

    .venv/bin/python benchmarks/shadow_decompose.py --requests 3000 --samples 6
    .venv/bin/python benchmarks/shadow_decompose.py --burner 5,45
    .venv/bin/python benchmarks/shadow_decompose.py --pinned child-apart
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
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

BURNER = """
import os, sys, time
try:
    with open("/proc/self/autogroup", "w") as fh:
        fh.write("19")
except OSError:
    os.nice(19)
busy, pause = float(sys.argv[1]) / 1000, float(sys.argv[2]) / 1000
while True:
    began = time.perf_counter()
    while time.perf_counter() - began < busy:
        pass
    time.sleep(pause)
"""


def cpu_wait_ns(pid: int) -> int:
    """Nanoseconds the process's threads have waited for a CPU (schedstat's second field)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total


def pin(pids: list[int], cpus: set[int]) -> None:
    """Restrict every thread of each process in ``pids`` (0: this thread) to ``cpus``."""
    for pid in pids:
        tasks = [0] if pid == 0 else [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
        for task in tasks:
            with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                os.sched_setaffinity(task, cpus)


def child_of(pid: int) -> int:
    """The serving process's child (its shadow process)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        if kids:
            return int(kids[0])
    raise RuntimeError(f"process {pid} has no child: is its shadow rollout running?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per round, per side")
    parser.add_argument("--samples", type=int, default=6, help="alternated rounds")
    parser.add_argument("--burner", default=None, help="BUSY_MS,SLEEP_MS: add the champion+burner side")
    parser.add_argument("--pinned", choices=("child-apart", "client-apart"), default=None,
                        help="add the two pinned sides, laid out so (needs two CPUs)")
    parser.add_argument("--check-seconds", type=float, default=10.0, help="the servers' rollout check interval")
    args = parser.parse_args()
    from _fair import load_average, ratio, rounds
    from rollout import bench_setup, wait_for_rollout
    from serving import free_port, measure, stop, wait_ready

    base, slug, _, record, auth, env = bench_setup("wb-bench-decompose-",
                                                   WORKBENCH_ROLLOUT_CHECK_SECONDS=repr(args.check_seconds))
    from workbench.db import session_scope
    from workbench.rollouts import start_rollout

    log = (base / "servers.log").open("ab")
    ports = {name: free_port() for name in ("champion", "shadow")}
    processes = {name: subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", slug, "--port", str(port),
                                         "--poll-seconds", "1"], cwd=REPO, env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                 for name, port in ports.items()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    sides = ["champion", "shadow", "shadow-child-stopped"] + (["champion+burner"] if args.burner else []) + (
        ["champion-pinned", "shadow-pinned"] if args.pinned else [])
    print(f"{load_average()}; {args.samples} alternated rounds of {args.requests} requests per side, 1 connection, "
          f"rollout checks every {args.check_seconds:g} s", flush=True)
    try:
        for name in processes:
            wait_ready(f"{urls[name]}/health", processes[name])
        deployment = int(httpx.get(f"{urls['shadow']}/health", headers=auth).json()["deployment_id"])
        with session_scope() as session:
            start_rollout(session, project=slug, deployment_id=deployment, mode="shadow", share=None,
                          actor="benchmark", params={"automatic": False, "latency_factor": 100.0})
        wait_for_rollout(urls["shadow"], auth, "shadow")
        child = child_of(processes["shadow"].pid)
        every_cpu = os.sched_getaffinity(0)
        if args.pinned and len(every_cpu) < 2:
            raise SystemExit("--pinned needs two CPUs")
        first, second = sorted(every_cpu)[:2]
        pooled: dict[str, list[float]] = {side: [] for side in sides}
        p50: dict[str, list[float]] = {side: [] for side in sides}
        p99: dict[str, list[float]] = {side: [] for side in sides}
        waits: dict[str, list[float]] = {side: [] for side in sides}
        for order in rounds(sides, args.samples):
            for side in order:
                server = "champion" if side.startswith("champion") else "shadow"
                burner = None
                if side == "shadow-child-stopped":
                    os.kill(child, signal.SIGSTOP)
                elif side.endswith("-pinned"):
                    servers = [process.pid for process in processes.values()]
                    apart = [child] if args.pinned == "child-apart" else [0]
                    pin([pid for pid in [0, child, *servers] if pid not in apart], {first})
                    pin(apart, {second})
                elif side == "champion+burner":
                    burner = subprocess.Popen([sys.executable, "-c", BURNER, *args.burner.split(",")],
                                              start_new_session=True)
                    time.sleep(0.3)
                try:
                    began = cpu_wait_ns(processes[server].pid)
                    result = measure(f"{urls[server]}/predict", record, requests=args.requests, connections=1,
                                     headers=auth, latencies_into=pooled[side])
                    waits[side].append((cpu_wait_ns(processes[server].pid) - began) / 1000 / args.requests)
                finally:
                    if side == "shadow-child-stopped":
                        os.kill(child, signal.SIGCONT)
                        time.sleep(1.0)  # the child catches up before the next round
                    if side.endswith("-pinned"):
                        pin([0, child, *(process.pid for process in processes.values())], every_cpu)
                    if burner is not None:
                        burner.kill()
                        burner.wait()
                p50[side].append(result["p50_ms"])
                p99[side].append(result["p99_ms"])
        report: dict[str, Any] = {}
        for side in sides:
            pooled_p99 = float(np.percentile(pooled[side], 99))
            report[side] = pooled_p99
            against = "champion-pinned" if side == "shadow-pinned" else "champion"  # like with like
            baseline = report.get(against, pooled_p99)
            print(f"  {side:>21}: p50 {np.median(p50[side]):.2f} ms, p99 median {np.median(p99[side]):.2f} "
                  f"({min(p99[side]):.2f}-{max(p99[side]):.2f}) ms, pooled p99 {pooled_p99:.2f} ms "
                  f"({ratio(pooled_p99, baseline)}x {against}), server waited for a CPU "
                  f"{np.median(waits[side]):.0f} us per request", flush=True)
    finally:
        for process in processes.values():
            stop(process)
        log.close()
    print(load_average(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
