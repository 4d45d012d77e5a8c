"""Benchmark: where a one-connection ``/predict`` round trip spends the server's CPU, workbench vs floor.

``serving.py`` times whole round trips and ``serving_cpu.py`` the app's code called in a hot loop.
This one serves both apps for real (uvicorn from :func:`workbench.serving.web.build_server`, the
process's objects frozen as :func:`workbench.serving.web.serve_forever` does), each app wrapped in a
thin ASGI timer, and drives them with one httpx connection, alternated rounds. Per request it prints:

- ``rps``: the round trips per second;
- ``main user/sys``: the serving (event loop) thread's CPU, from ``/proc/<pid>/task/<tid>/stat``;
- ``in-app cpu/wall``: the thread CPU and wall time inside the app call (the response writes included);
- ``outside app``: main thread CPU minus in-app CPU (uvicorn, httptools, uvloop, the socket reads);
- ``other threads``: every other thread's CPU (prediction-log writer, samplers, pollers).

    .venv/bin/python benchmarks/serving_threads.py --models hgb,rf,et --requests 3000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
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
TICK = os.sysconf("SC_CLK_TCK")


class Timed:
    """An ASGI wrapper adding up the thread CPU and wall time of each HTTP call; ``GET /__timed`` reads and resets."""

    def __init__(self, app: Any) -> None:
        self.app, self.cpu, self.wall, self.calls = app, 0.0, 0.0, 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/__timed":
            body = json.dumps({"cpu": self.cpu, "wall": self.wall, "calls": self.calls}).encode()
            self.cpu, self.wall, self.calls = 0.0, 0.0, 0
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        cpu, wall = time.thread_time(), time.perf_counter()
        await self.app(scope, receive, send)
        self.cpu += time.thread_time() - cpu
        self.wall += time.perf_counter() - wall
        self.calls += 1


def serve(which: str, port: int, slug: str) -> None:
    """One server process: the workbench app (token on) or the floor, behind :class:`Timed`."""
    from workbench.serving.web import build_server

    if which == "floor":
        from serving_cpu import floor_app

        app = floor_app()
    else:
        from workbench.serving.tokens import hash_token
        from workbench.serving.web import create_app

        app = create_app(slug, token_hash=hash_token(TOKEN))
    gc.freeze()
    build_server(Timed(app), host="127.0.0.1", port=port).run()


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """Each thread's (user, system) CPU seconds; the main thread's key is ``"main"``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        out["main" if tid == str(pid) else tid] = (int(fields[11]) / TICK, int(fields[12]) / TICK)
    return out


def measure(url: str, pid: int, record: dict[str, Any], requests: int) -> dict[str, float]:
    import httpx

    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for _ in range(50):
            client.post(f"{url}/predict", json=record)
        client.get(f"{url}/__timed")
        before, started = thread_cpu(pid), time.perf_counter()
        for _ in range(requests):
            client.post(f"{url}/predict", json=record)
        wall = time.perf_counter() - started
        after = thread_cpu(pid)
        timed = client.get(f"{url}/__timed").json()
    per = 1e6 / requests
    main_user = (after["main"][0] - before["main"][0]) * per
    main_sys = (after["main"][1] - before["main"][1]) * per
    others = sum(sum(after[t]) - sum(before.get(t, (0.0, 0.0))) for t in after if t != "main") * per
    in_app = timed["cpu"] / max(1, timed["calls"]) * 1e6
    return {"rps": requests / wall, "main_user_us": main_user, "main_sys_us": main_sys, "in_app_cpu_us": in_app,
            "in_app_wall_us": timed["wall"] / max(1, timed["calls"]) * 1e6,
            "outside_app_us": main_user + main_sys - in_app, "other_threads_us": others}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="hgb", help="comma-separated: hgb, rf, et")
    parser.add_argument("--requests", type=int, default=3000, help="round trips per sample, per server")
    parser.add_argument("--samples", type=int, default=3, help="alternated rounds")
    parser.add_argument("--serve", nargs=3, metavar=("WHICH", "PORT", "SLUG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return 0
    from _fair import load_average, rounds, summary
    from batch import FEATURES, make_frame, register, setup_home
    from serving import free_port, stop, wait_ready

    base = Path(tempfile.mkdtemp(prefix="wb-bench-serving-threads-"))
    setup_home(base)
    print(load_average(), flush=True)
    for kind in (k.strip() for k in args.models.split(",") if k.strip()):
        slug = register(kind, make_frame(20_000, seed=1))
        record = {k: (v.item() if hasattr(v, "item") else v)
                  for k, v in make_frame(1, seed=9)[FEATURES].iloc[0].items()}
        ports = {"workbench": free_port(), "floor": free_port()}
        with (base / f"servers-{kind}.log").open("ab") as log:
            servers = {name: subprocess.Popen([sys.executable, __file__, "--serve", name, str(port), slug], cwd=REPO,
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                       for name, port in ports.items()}
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
            try:
                for name, port in ports.items():
                    wait_ready(f"http://127.0.0.1:{port}/__timed", servers[name])
                for names in rounds(list(ports), max(1, args.samples)):
                    for name in names:
                        runs[name].append(measure(f"http://127.0.0.1:{ports[name]}", servers[name].pid, record,
                                                  args.requests))
            finally:
                for server in servers.values():
                    stop(server)
        print(f"{kind}: per request, medians of {len(runs['floor'])} alternated samples of {args.requests} "
              "(1 connection)", flush=True)
        keys = list(runs["floor"][0])
        print(f"  {'':>10} " + " ".join(f"{key:>17}" for key in keys), flush=True)
        for name, values in runs.items():
            print(f"  {name:>10} " + " ".join(f"{summary([v[key] for v in values], 1)['median']:>17}"
                                            for key in keys), flush=True)
    print(load_average(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
