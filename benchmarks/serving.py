"""Benchmark: ``workbench serve`` (prediction log on) against ``mlflow models serve`` and a bare floor server.

The same Pipeline (8 numeric + 2 categorical features, then the model of each of ``--models``:
``hgb`` HistGradientBoosting, ``rf`` a 50-tree random forest of depth 10, ``et`` extra trees alike)
is registered in a throw-away workbench home and served, each in its own process on a free port of
127.0.0.1 with ``OMP_NUM_THREADS=1``, by:

- ``workbench``: ``workbench serve`` (one process, its default; access log off, as it ships);
- ``mlflow``: ``mlflow models serve --env-manager local -w <cores>`` (as many uvicorn workers as
  cores, as its docs advise; ``--mlflow-workers`` changes it), its access log turned off too
  (``UVICORN_ACCESS_LOG=false`` and ``UVICORN_LOG_LEVEL=warning``: mlflow runs the ``uvicorn`` CLI,
  which reads its options from ``UVICORN_*``), so that neither writes a line per request;
- ``floor``: a bare Starlette endpoint that reads the request body and returns a constant JSON,
  served by uvicorn exactly as ``workbench serve`` serves its app (one process, same
  ``uvicorn.Config``: loop and http ``auto``, i.e. uvloop and httptools, access log off).

The same httpx client sends one-record requests over each connection count of ``--connections``
(threads of one client process). For each count, ``--samples`` rounds (3 by default) measure the
three servers, the first one rotating each round (W M F, M F W, F W M, ...); it reports for each the
median requests per second with min-max, median p50/p99, the ratio workbench/mlflow of the medians
and the workbench's rate as a fraction of the floor's.

    .venv/bin/python benchmarks/serving.py --requests 400
    .venv/bin/python benchmarks/serving.py --requests 500 --json out.json
    .venv/bin/python benchmarks/serving.py --models hgb,rf --requests 500 --connections 1
    .venv/bin/python benchmarks/serving.py --requests 1000 --workers 2

With ``--workers N`` it then serves the same model with ``workbench serve --workers N`` and with
``workbench serve`` (one process) side by side, measures both at 8 connections in ``--samples``
alternated rounds, and reports the ratio of their median requests per second (goal: at least 1.6x
for 2 workers) and whether the N-worker prediction log holds every prediction once after a SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
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

GOAL_RATIO = 2.5
GOAL_P99_MS = 2.5  # at 1 connection
GOAL_FLOOR_FRACTION = 0.75  # at 1 connection
# --models: the model kinds benchmarks/batch.py registers.
FAMILIES = {"hgb": "hist_gradient_boosting", "rf": "random_forest", "et": "extra_trees"}
GOAL_WORKERS_SPEEDUP = 1.6  # for 2 workers over one process, at 8 connections
WARMUP = 10  # requests per connection before the clock starts (logged too)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the process group: mlflow starts uvicorn workers
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def measure(url: str, payload: Any, *, requests: int, connections: int,
            headers: dict[str, str] | None = None, latencies_into: list[float] | None = None) -> dict[str, float]:
    """One sample: ``requests`` POSTs over ``connections`` threads; req/s, p50, p99 (ms) and failures.

    ``latencies_into``, when given, receives every request's latency (ms), for a p99 pooled over samples.
    """
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    per_thread = requests // connections

    def worker() -> None:
        local: list[float] = []
        with httpx.Client(timeout=10, headers=headers) as client:
            for _ in range(WARMUP):
                client.post(url, json=payload)
            for _ in range(per_thread):
                started = time.perf_counter()
                response = client.post(url, json=payload)
                local.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures[0] += 1
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    cpu0, started = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    values = np.array(latencies) * 1000
    if latencies_into is not None:
        latencies_into.extend(values.tolist())
    return {
        "requests": len(latencies),
        "failures": failures[0],
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "client_cpu_fraction": round(cpu / wall, 3),  # the client's cores: near 1 means it is the limit
    }


def floor_server(port: int) -> None:
    """The floor: a bare Starlette endpoint (body read, constant JSON) served like ``workbench serve``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from workbench.serving.web import build_server  # the workbench's own uvicorn.Config

    body = json.dumps({"prediction": "no", "probabilities": {"no": 0.5, "yes": 0.5}}).encode()

    async def predict(request: Request) -> Response:
        await request.body()
        return Response(body, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
    build_server(app, host="127.0.0.1", port=port).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per sample, per server")
    parser.add_argument("--samples", type=int, default=3, help="alternated rounds per connection count (>= 3)")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--models", default="hgb", help="comma-separated: hgb, rf, et (one run each)")
    parser.add_argument("--connections", default="1,8", help="comma-separated connection counts")
    parser.add_argument("--mlflow-workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn workers of `mlflow models serve` (default: the number of cores)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Also measure `workbench serve --workers N` at 8 connections (N > 1).")
    parser.add_argument("--workers-client", choices=("raw", "httpx"), default="raw",
                        help="The --workers comparison's load generator (both sides): one-thread raw HTTP/1.1 "
                             "keep-alive (cheap) or the httpx threads of the other rows.")
    parser.add_argument("--floor-server", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        floor_server(args.floor_server)
        return 0
    kinds = [kind.strip() for kind in args.models.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in FAMILIES]
    if unknown or not kinds:
        parser.error(f"--models takes a comma-separated list of {', '.join(FAMILIES)}; got {args.models!r}")
    from batch import setup_home

    base = Path(tempfile.mkdtemp(prefix="wb-bench-serving-"))
    setup_home(base)
    reports = {FAMILIES[kind]: run_model(kind, args, base) for kind in kinds}
    if len(kinds) > 1:
        print("summary:", flush=True)
        for family, report in reports.items():
            for key in (k for k in report if k.endswith("_connection")):
                row = report[key]
                print(f"  {family}, {key.replace('_', ' ')}: {row['fraction_of_floor']} of the floor, workbench p99 "
                      f"{row['workbench']['p99_ms']['median']} ms, {row['ratio_workbench_mlflow']}x mlflow", flush=True)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(reports if len(kinds) > 1 else reports[FAMILIES[kinds[0]]],
                                                   indent=2))
    return 0


def run_model(kind: str, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """One model kind: register it, serve it three ways, measure each connection count (and --workers)."""
    from _fair import alternated, load_average, print_sides, ratio
    from batch import FEATURES, make_frame, register

    family = FAMILIES[kind]
    slug = register(kind, make_frame(20_000, seed=1))
    from workbench.settings import get_settings

    settings = get_settings()
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in make_frame(1, seed=9)[FEATURES].iloc[0].items()}
    # The workbench serves with a bearer token, as it does by default; given by the environment, never argv.
    import secrets

    token = secrets.token_urlsafe(32)
    auth = {"Authorization": f"Bearer {token}"}
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri, "OMP_NUM_THREADS": "1",
           "WORKBENCH_HOME": str(settings.home), "WORKBENCH_SERVE_TOKEN": token,
           # mlflow models serve runs the `uvicorn` CLI from PATH, which reads UVICORN_* options:
           # access log off and log level warning, as `workbench serve` configures its uvicorn.
           "UVICORN_ACCESS_LOG": "false", "UVICORN_LOG_LEVEL": "warning",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    wb_port, ml_port, fl_port = free_port(), free_port(), free_port()
    log = (base / f"servers-{kind}.log").open("ab")
    popen = {"cwd": REPO, "env": env, "stdout": log, "stderr": subprocess.STDOUT, "start_new_session": True}
    workbench = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", slug, "--port", str(wb_port)],
                                 **popen)
    mlflow_server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{slug}@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ml_port), "-w", str(args.mlflow_workers)],
        **{**popen, "cwd": base},
    )
    floor = subprocess.Popen([sys.executable, __file__, "--floor-server", str(fl_port)], **popen)
    targets = {
        "workbench": (f"http://127.0.0.1:{wb_port}/predict", record, auth),
        "mlflow": (f"http://127.0.0.1:{ml_port}/invocations", {"dataframe_records": [record]}, None),
        "floor": (f"http://127.0.0.1:{fl_port}/predict", record, None),
    }
    samples = max(1, args.samples)
    report: dict[str, Any] = {"requests": args.requests, "samples": samples, "family": family,
                              "mlflow_workers": args.mlflow_workers, "command": " ".join(sys.argv),
                              "load_before": load_average()}
    print(f"{report['load_before']}; mlflow -w {args.mlflow_workers}, {samples} alternated samples of "
          f"{args.requests} requests per server", flush=True)
    try:
        wait_ready(f"http://127.0.0.1:{wb_port}/health", workbench)
        wait_ready(f"http://127.0.0.1:{ml_port}/ping", mlflow_server)
        wait_ready(f"http://127.0.0.1:{fl_port}/health", floor)
        path = httpx.get(f"http://127.0.0.1:{wb_port}/health", headers=auth).json().get("predict_path", {})
        report["predict_path"] = path
        print(f"{family}: small inputs take the {path.get('small_inputs')} path ({path.get('reason')})",
              flush=True)
        for connections in (int(c) for c in args.connections.split(",") if c.strip()):
            row = alternated(list(targets), samples, lambda name, n=connections: measure(
                targets[name][0], targets[name][1], requests=args.requests, connections=n, headers=targets[name][2]))
            wb, ml, fl = (row[n]["rps"]["median"] for n in ("workbench", "mlflow", "floor"))
            row["ratio_workbench_mlflow"] = ratio(wb, ml)
            row["fraction_of_floor"] = ratio(wb, fl)
            row["mlflow_fraction_of_floor"] = ratio(ml, fl)
            report[f"{connections}_connection"] = row
            print_sides(row, list(targets), connections=connections, samples=samples)
            goals = (f" (goals at 1 connection: >= {GOAL_FLOOR_FRACTION} of the floor, p99 <= {GOAL_P99_MS} ms)"
                     if connections == 1 else f" (goal >= {GOAL_RATIO})")
            print(f"  ratio workbench/mlflow {row['ratio_workbench_mlflow']}; workbench {row['fraction_of_floor']} "
                  f"of the floor (mlflow {row['mlflow_fraction_of_floor']}){goals}", flush=True)
        with httpx.Client() as client:
            metrics = client.get(f"http://127.0.0.1:{wb_port}/metrics", headers=auth).text
        logged = [line for line in metrics.splitlines() if line.startswith("workbench_prediction_log_rows")]
        report["prediction_log"] = logged
        print("prediction log:", "; ".join(logged))
    finally:
        stop(workbench)
        stop(mlflow_server)
        stop(floor)
    report["load_after"] = load_average()
    print(report["load_after"], flush=True)
    try:
        if args.workers > 1:  # with --connections '' only this comparison runs
            mlflow_rps = report["8_connection"]["mlflow"]["rps"]["median"] if "8_connection" in report else None
            report["workers"] = measure_workers(
                slug, record, env, auth, workers=args.workers, requests=args.requests, samples=samples,
                mlflow_rps=mlflow_rps, log=log, client=args.workers_client)
    finally:
        log.close()
    return report


def _serve(slug: str, env: dict[str, str], log: Any, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", slug, "--port", str(port), *extra],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return server, port


def measure_workers(slug: str, record: dict[str, Any], env: dict[str, str], auth: dict[str, str], *,
                    workers: int, requests: int, samples: int, mlflow_rps: float | None = None,
                    log: Any, client: str = "raw") -> dict[str, Any]:
    """`workbench serve --workers N` against `workbench serve` (one process) at 8 connections, alternated.

    Both servers run at once (an idle one costs nothing); each round measures both, the first one
    rotating, so a change of machine load hits both sides. Then the N-worker server gets SIGTERM and
    its prediction log must hold every request sent to it exactly once. ``client="raw"`` drives the 8
    connections from one thread (:mod:`_rawhttp`), so that the client does not take the core a worker needs.
    """
    from _fair import rounds, spread, summary
    from _rawhttp import measure_raw
    from sqlalchemy import func, select

    from workbench.db import session_scope
    from workbench.db.models import Deployment, PredictionLog

    single, single_port = _serve(slug, env, log)
    server, port = _serve(slug, env, log, "--workers", str(workers))
    urls = {"1 process": f"http://127.0.0.1:{single_port}", f"{workers} workers": f"http://127.0.0.1:{port}"}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    try:
        wait_ready(f"http://127.0.0.1:{single_port}/health", single)
        wait_ready(f"http://127.0.0.1:{port}/health", server)
        deadline = time.monotonic() + 120  # /health answers once one worker is up: wait for all of them
        while f"workbench_workers {workers}\n" not in httpx.get(f"http://127.0.0.1:{port}/metrics", headers=auth,
                                                                 timeout=10).text:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workers} workers not up in 120 s")
            time.sleep(0.5)
        order = rounds(list(urls), max(3, samples))
        load = measure_raw if client == "raw" else measure
        for names in order:
            for name in names:
                runs[name].append(load(f"{urls[name]}/predict", record, requests=requests, connections=8,
                                       headers=auth))
        time.sleep(1.0)  # a sibling worker's counters in /metrics are up to 0.5 s old
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=auth, timeout=10).text
        predicted = sum(int(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                        if line.startswith("workbench_predictions_total"))
    finally:
        for process in (server, single):
            process.send_signal(signal.SIGTERM)  # the parent stops its workers, each flushing its log
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stop(process)
    with session_scope() as session:
        deployment_id = session.scalars(select(Deployment.id).where(Deployment.port == port)
                                        .order_by(Deployment.id.desc())).first()
        logged = session.scalar(select(func.count()).select_from(PredictionLog)
                                .where(PredictionLog.deployment_id == deployment_id))
        distinct = session.scalar(select(func.count(func.distinct(PredictionLog.request_id)))
                                  .where(PredictionLog.deployment_id == deployment_id))
    stats = {name: {"rps": summary([r["rps"] for r in results]),
                    "p50_ms": summary([r["p50_ms"] for r in results], 2),
                    "p99_ms": summary([r["p99_ms"] for r in results], 2),
                    "client_cpu_fraction": summary([r["client_cpu_fraction"] for r in results], 2),
                    "failures": sum(r["failures"] for r in results)} for name, results in runs.items()}
    one, many = (stats[name]["rps"]["median"] for name in urls)
    speedup = round(many / one, 2) if one else None
    versus_mlflow = round(many / mlflow_rps, 2) if mlflow_rps else None
    sent = len(runs[f"{workers} workers"]) * (requests + WARMUP * 8)
    complete = logged == distinct == sent and stats[f"{workers} workers"]["failures"] == 0
    print(f"workbench serve, 8 connections ({client} client), req/s median (min-max) of {len(order)} alternated "
          "samples:", flush=True)
    for name in urls:
        print(f"  {name:>10}: {spread(stats[name]['rps'])} req/s, p50 {stats[name]['p50_ms']['median']} ms, "
              f"p99 {stats[name]['p99_ms']['median']} ms, client CPU {stats[name]['client_cpu_fraction']['median']} "
              "cores", flush=True)
    print(f"  {workers} workers / 1 process: {speedup}x (goal >= {GOAL_WORKERS_SPEEDUP}) | {versus_mlflow}x mlflow's"
          f" median (measured before, not alternated with it) | log {logged} rows, {distinct} distinct, {sent} sent,"
          f" {predicted} predicted (/metrics): {'complete' if complete else 'INCOMPLETE'}", flush=True)
    return {"workers": workers, "client": client, "order": order, **stats, "speedup": speedup,
            "ratio_mlflow": versus_mlflow, "logged": logged, "distinct": distinct, "sent": sent,
            "predicted": predicted, "log_complete": complete}


if __name__ == "__main__":
    sys.exit(main())
