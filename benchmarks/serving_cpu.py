"""Benchmark: CPU time per one-record ``POST /predict`` inside the web app, against a bare Starlette endpoint.

The network benchmark (``benchmarks/serving.py``) measures whole round trips, which a busy machine
blurs. This one calls the two ASGI apps directly in one process, with no socket, client or uvicorn,
and counts this thread's CPU time per request (``time.thread_time``), which other processes on the
machine barely move:

- ``workbench``: ``create_app`` serving the ``batch.py`` model of each of ``--models`` (its lifespan
  started: prediction log writer, pollers; bearer token on), the same record each time;
- ``floor``: the constant Starlette endpoint of ``serving.py`` (reads the body, returns a constant).

``--samples`` alternated rounds of ``--requests`` calls each; it prints the median microseconds of
CPU per request with min-max, and the workbench's extra CPU over the floor's.

Back to back, the calls find the caches and branch predictors warm ("hot"). A server at one
connection is idle between requests (the client's turn), and then the same code costs several
times more: with ``--idle-ms`` (1 by default; 0 skips it) a second set of rounds sleeps that long
before each call ("after idle"), which is what ``workbench serve`` pays per request at one
connection (its in-app CPU per request measured inside the real server agrees with this figure,
not with the hot one: benchmarks/README.md, "Serving at one connection: where the time goes").

    .venv/bin/python benchmarks/serving_cpu.py --models hgb,rf,et --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ["OMP_NUM_THREADS"] = "1"
TOKEN = "benchmark-token-" + "x" * 24


def floor_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = json.dumps({"prediction": "no", "probabilities": {"no": 0.5, "yes": 0.5}}).encode()

    async def predict(request: Request) -> Response:
        await request.body()
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


async def call(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """One POST /predict through ``app``; its status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
    status = [0]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    await app(scope, receive, send)
    return status[0]


async def measure_kind(kind: str, requests: int, samples: int, idle_ms: float = 0.0) -> dict[str, Any]:
    from _fair import rounds, spread, summary
    from batch import FEATURES, make_frame, register

    from workbench.serving.tokens import hash_token
    from workbench.serving.web import create_app

    slug = register(kind, make_frame(20_000, seed=1))
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in make_frame(1, seed=9)[FEATURES].iloc[0].items()}
    body = json.dumps(record).encode()
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"authorization", f"Bearer {TOKEN}".encode())]
    app = create_app(slug, token_hash=hash_token(TOKEN))
    apps = {"workbench": app, "floor": floor_app()}
    runs: dict[str, list[float]] = {name: [] for name in apps}
    idle_runs: dict[str, list[float]] = {name: [] for name in apps}
    async with app.router.lifespan_context(app):
        for name, target in apps.items():  # warm-up
            for _ in range(100):
                assert await call(target, body, headers) == 200, name
        for names in rounds(list(apps), samples):
            for name in names:
                started = time.thread_time()
                for _ in range(requests):
                    await call(apps[name], body, headers)
                runs[name].append((time.thread_time() - started) / requests * 1e6)
        if idle_ms > 0:
            for names in rounds(list(apps), samples):
                for name in names:  # fewer calls: each one waits idle_ms first
                    idle_runs[name].append(await _after_idle(apps[name], body, headers, max(200, requests // 4),
                                                             idle_ms))
    report: dict[str, Any] = {"model": kind}
    for label, values in (("hot", runs), (f"after {idle_ms:g} ms idle", idle_runs)):
        if not values["workbench"]:
            continue
        stats = {name: summary(v) for name, v in values.items()}
        extra = round(stats["workbench"]["median"] - stats["floor"]["median"], 1)
        print(f"{kind} ({label}): CPU per request, us, median (min-max) of {samples}: workbench "
              f"{spread(stats['workbench'])}, floor {spread(stats['floor'])}; the workbench's extra: {extra} us",
              flush=True)
        report[label] = {**stats, "extra_us": extra}
    return report


async def _after_idle(app: Any, body: bytes, headers: list[tuple[bytes, bytes]], requests: int,
                      idle_ms: float) -> float:
    """CPU microseconds per call when the thread sleeps ``idle_ms`` before each one (the sleep not counted)."""
    cpu = 0.0
    for _ in range(requests):
        time.sleep(idle_ms / 1000)
        started = time.thread_time()
        await call(app, body, headers)
        cpu += time.thread_time() - started
    return cpu / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="hgb,rf", help="comma-separated: hgb, rf, et")
    parser.add_argument("--requests", type=int, default=2000, help="calls per sample, per app")
    parser.add_argument("--samples", type=int, default=3, help="alternated rounds (the first app rotating)")
    parser.add_argument("--idle-ms", type=float, default=1.0,
                        help="also measure with the thread idle this long before each call (0: hot only)")
    args = parser.parse_args()
    from _fair import load_average
    from batch import setup_home

    setup_home(Path(tempfile.mkdtemp(prefix="wb-bench-serving-cpu-")))
    print(load_average(), flush=True)
    for kind in (k.strip() for k in args.models.split(",") if k.strip()):
        asyncio.run(measure_kind(kind, args.requests, max(1, args.samples), args.idle_ms))
    print(load_average(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
