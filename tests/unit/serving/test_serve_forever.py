"""A serving process shortens the GIL switch interval while it serves, and gives the old one back when it stops.

Requests are answered on the event-loop thread while other threads of the process (the shadow
scorer's challenger batch, the log writer's flush) hold the GIL for a millisecond or more; with
CPython's default 5 ms interval a request arriving then could wait that long (the shadow
rollout's extra p99 at one connection, benchmarks/rollout.py). A real uvicorn server on a free
port of 127.0.0.1 answers with the interval its process has while serving.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from workbench.serving import web
from workbench.serving.web import build_server, free_port, serve_forever


async def interval(_request: Request) -> JSONResponse:
    return JSONResponse({"switch_interval": sys.getswitchinterval()})


def test_serve_forever_serves_with_a_short_switch_interval_and_restores_the_previous_one() -> None:
    before = sys.getswitchinterval()
    port = free_port()
    server = build_server(Starlette(routes=[Route("/interval", interval)]), host="127.0.0.1", port=port)
    thread = threading.Thread(target=serve_forever, args=(server,), name="serve-forever", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        during = httpx.get(f"http://127.0.0.1:{port}/interval", timeout=10).json()["switch_interval"]
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        gc.unfreeze()  # serve_forever froze this (test) process's objects
    assert not thread.is_alive()
    # A waiting request gets the GIL within half a millisecond, not CPython's default 5 ms.
    assert during <= 0.001 < before
    assert during == web.SERVE_SWITCH_INTERVAL_SECONDS
    assert sys.getswitchinterval() == before
