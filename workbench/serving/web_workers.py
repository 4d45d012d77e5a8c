"""Several web worker processes behind one port: ``workbench serve PROJECT --workers N``.

The parent process binds the socket once and starts N worker processes (``python -m
workbench.serving.web_workers``) that inherit it (``pass_fds``); the kernel hands each new
connection to one of them. Every worker builds its own app from the deployment row (so the
bearer token's *hash* is read from the database, never passed on a command line), loads the
model, polls the alias and hot-swaps on its own, and writes the one prediction log through its
own :class:`~workbench.prediction_log.PredictionLogWriter` (request ids are uuid4, so rows from
different workers never collide).

The parent owns the deployment row: it records it running (with its own pid) once every
worker answers, restarts a worker that dies (after a back-off that doubles while the same slot keeps
crashing soon after its start, each restart logged; after ``MAX_RESTARTS`` restarts within
``RESTART_WINDOW_SECONDS`` it gives up, stops the others and records the deployment failed, since a
crash loop needs a person), and on SIGINT/SIGTERM (or a cancelled job) sends
each worker one SIGTERM, so that uvicorn drains it and its lifespan flushes the log, waits for
them, and records the deployment stopped. Workers run in their own session (a Ctrl-C in the
terminal reaches only the parent, which stops them once: a second SIGINT would make uvicorn
skip the flush) and exit by themselves if the parent disappears.

``/metrics`` on any worker shows all of them, one series per worker (label ``worker="<pid>"``):
each worker writes its counters (:func:`workbench.serving.web_metrics.snapshot`) to a file in
:func:`worker_dir` every half second and whenever it answers ``/metrics``; the answering worker
renders every live worker's file. Each worker also writes its own ``deployment_metrics`` samples
(its pid on each), which the Deployments page adds up.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput, JobFailed
from workbench.serving.rollout import DEFAULT_SHADOW_QUEUE, DEFAULT_SHADOW_TIMEOUT_SECONDS, check_shadow_options
from workbench.serving.web_metrics import worker_dir
from workbench.settings import Settings, child_environment, get_settings

logger = logging.getLogger("workbench.serving.web_workers")

START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
#: The first restart of a slot waits this long; each further crash of the slot doubles it, up to the cap.
RESTART_DELAY_SECONDS = 0.5
RESTART_DELAY_CAP_SECONDS = 10.0
#: A worker that ran this long before it died is not part of a crash loop: its slot's back-off starts over.
STABLE_SECONDS = 60.0
#: More restarts than this (over all workers) within the window: the parent gives up.
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 300.0


def check_workers(workers: Any) -> int:
    """``workers`` checked against the deployment parameter (an Integer in 1..MAX_WORKERS)."""
    from workbench.serving.deployments import DEPLOYMENT_PARAMS
    from workbench.validation import validate_params

    return int(validate_params({"workers": workers}, {"workers": DEPLOYMENT_PARAMS["web"]["workers"]},
                               what="web deployment parameter")["workers"] or 1)


def _bind(host: str, port: int) -> socket.socket:
    if not 0 < port < 65536:
        raise InvalidInput(f"port must be in 1-65535; got {port!r}.", field="port")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port.",
                           field="port") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class WorkerPool:
    """N worker processes sharing the listening socket ``sock``; started, restarted and stopped by pid.

    A slot whose worker died is empty (None) until its back-off delay has passed.
    """

    def __init__(self, sock: socket.socket, args: list[str], workers: int, settings: Settings) -> None:
        self.sock = sock
        self.args = args
        self.workers = workers
        self.env = child_environment(settings)
        self.processes: list[subprocess.Popen[bytes] | None] = []
        self.started_at: list[float] = []
        self.crashes = [0] * workers  # consecutive early deaths of each slot: the back-off's exponent
        self.due: dict[int, float] = {}  # empty slot -> when (monotonic) its new worker starts
        self.restarts: collections.deque[float] = collections.deque()  # when each restart was decided

    def _start_one(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "workbench.serving.web_workers", "--fd", str(self.sock.fileno()),
                   "--parent", str(os.getpid()), *self.args]
        return subprocess.Popen(command, pass_fds=(self.sock.fileno(),), env=self.env, start_new_session=True)

    def start(self) -> None:
        self.processes = [self._start_one() for _ in range(self.workers)]
        self.started_at = [time.monotonic()] * self.workers

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process is not None]

    def restart_dead(self) -> list[int]:
        """Schedule a new worker for each one that exited, start those due; the exit codes seen.

        Raises JobFailed when more than ``MAX_RESTARTS`` restarts fall within ``RESTART_WINDOW_SECONDS``.
        """
        now = time.monotonic()
        codes: list[int] = []
        for i, process in enumerate(self.processes):
            code = process.poll() if process is not None else None
            if process is None or code is None:
                continue
            codes.append(code)
            self.processes[i] = None
            ran = now - self.started_at[i]
            self.crashes[i] = 1 if ran >= STABLE_SECONDS else self.crashes[i] + 1
            while self.restarts and now - self.restarts[0] > RESTART_WINDOW_SECONDS:
                self.restarts.popleft()
            if len(self.restarts) >= MAX_RESTARTS:
                logger.error("web worker %s exited with %s after %.1f s; %d restarts in the last %.0f s already: "
                             "giving up", process.pid, code, ran, len(self.restarts), RESTART_WINDOW_SECONDS)
                raise JobFailed(
                    f"web workers keep dying: worker {process.pid} exited with {code}, after {len(self.restarts)} "
                    f"restarts within {RESTART_WINDOW_SECONDS:.0f} s. The service is stopped; see the workers' "
                    "messages above (the model or the database may have become unreachable) and start it again.")
            self.restarts.append(now)
            delay = min(RESTART_DELAY_CAP_SECONDS, RESTART_DELAY_SECONDS * 2 ** (self.crashes[i] - 1))
            self.due[i] = now + delay
            logger.warning("web worker %s exited with %s after %.1f s; starting another in %.1f s (restart %d of at "
                           "most %d within %.0f s)", process.pid, code, ran, delay, len(self.restarts), MAX_RESTARTS,
                           RESTART_WINDOW_SECONDS)
        for i, when in list(self.due.items()):
            if when <= now:
                del self.due[i]
                self.processes[i] = self._start_one()
                self.started_at[i] = time.monotonic()
                logger.warning("web worker %s started in slot %d", self.processes[i].pid, i)  # type: ignore[union-attr]
        return codes

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """One SIGTERM each (uvicorn drains, the lifespan flushes the log), then SIGKILL after ``timeout``."""
        self.due.clear()
        running = [process for process in self.processes if process is not None]
        for process in running:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("web worker %s did not stop in %.0f s; killing it", process.pid, timeout)
                process.kill()
                process.wait()


def run_workers(
    project_slug: str,
    *,
    workers: int,
    host: str = "127.0.0.1",
    port: int = 8000,
    alias: str = "champion",
    token_hash: str | None = None,
    poll_seconds: float = 5.0,
    metrics_seconds: float = 5.0,
    deployment_id: int | None = None,
    actor: str = "",
    settings: Settings | None = None,
    on_loaded: Callable[[], None] | None = None,
    tick: Callable[[list[int]], None] | None = None,
    shadow_queue: int = DEFAULT_SHADOW_QUEUE,
    shadow_timeout_seconds: float = DEFAULT_SHADOW_TIMEOUT_SECONDS,
) -> None:
    """Serve with ``workers`` processes on ``host:port`` until interrupted (or ``tick`` raises).

    Creates the deployment row when ``deployment_id`` is None (``token_hash`` goes into its
    config, where the workers read it). ``on_loaded`` runs once every worker answers; ``tick``
    gets the worker pids about once a second (a job reports progress and learns of a cancel there).
    """
    from workbench.db import session_scope
    from workbench.serving.deployments import create_deployment, get_deployment, mark_running, mark_stopped
    from workbench.serving.model_loader import resolve_alias

    settings = settings or get_settings()
    workers = check_workers(workers)
    check_shadow_options(shadow_queue, shadow_timeout_seconds)  # here, not once per worker
    if token_hash is not None:
        from workbench.serving.tokens import check_token_hash

        token_hash = check_token_hash(token_hash)
    version = resolve_alias(project_slug, alias, settings=settings)  # a missing model fails here, not N times
    sock = _bind(host, port)
    if deployment_id is None:
        from workbench.projects import get_project

        with session_scope(settings.db_url) as session:
            project = get_project(session, slug=project_slug)
            deployment_id = create_deployment(
                session, project=project, mode="web", alias=alias, status="starting", actor=actor,
                config={"poll_seconds": poll_seconds, "workers": workers, "auth": bool(token_hash),
                        **({"token_hash": token_hash} if token_hash else {})},
            ).id
    folder = worker_dir(settings, deployment_id)
    args = ["--project", project_slug, "--alias", alias, "--deployment", str(deployment_id), "--host", host,
            "--port", str(port), "--poll-seconds", str(poll_seconds), "--metrics-seconds", str(metrics_seconds),
            "--shadow-queue", str(shadow_queue), "--shadow-timeout", repr(float(shadow_timeout_seconds))]
    pool = WorkerPool(sock, args, workers, settings)
    status = "failed"
    # SIGTERM stops the parent like Ctrl-C does (with the workers stopped and the log flushed), unless
    # someone (the job runner) already handles it.
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        pool.start()
        _wait_until_up(pool, folder)
        with session_scope(settings.db_url) as session:
            mark_running(session, deployment_id=deployment_id, model_version=version, pid=os.getpid(), host=host,
                         port=port)
            deployment = get_deployment(session, deployment_id=deployment_id)
            deployment.config = {**(deployment.config or {}), "workers": workers}
        if on_loaded is not None:
            on_loaded()
        status = "stopped"
        ticked = 0.0
        while True:
            try:
                pool.restart_dead()
            except JobFailed:  # a crash loop: the deployment is recorded failed, not stopped
                status = "failed"
                raise
            if tick is not None and time.monotonic() - ticked >= 1.0:
                ticked = time.monotonic()
                tick(pool.pids())
            time.sleep(0.25)  # a dead worker is noticed (and a due restart made) within a quarter second
    except KeyboardInterrupt:
        status = "stopped"
    finally:
        pool.stop()
        sock.close()
        with contextlib.suppress(Exception), session_scope(settings.db_url) as session:
            mark_stopped(session, deployment_id=deployment_id, status=status)
        for leftover in folder.glob("*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _wait_until_up(pool: WorkerPool, folder: Path) -> None:
    """Wait until every worker has written its first snapshot (its app is up); fail if one exits first."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        exited = [p for p in pool.processes if p is not None and p.poll() is not None]
        if exited:
            raise JobFailed(f"a web worker exited with {exited[0].returncode} while starting; see its messages "
                            "above (the model could not be loaded, or the database is unreachable).")
        if all((folder / f"{pid}.json").exists() for pid in pool.pids()):
            return
        if time.monotonic() > deadline:
            raise JobFailed(f"the web workers did not start within {START_TIMEOUT_SECONDS:.0f} s.")
        time.sleep(0.1)


def _watch_parent(parent: int) -> None:
    """Stop this worker (gracefully, flushing its log) when the parent process is gone."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def worker_main(argv: list[str] | None = None) -> None:
    """One worker: build the app from the deployment row and serve on the inherited socket."""
    from workbench.db import session_scope
    from workbench.serving.deployments import get_deployment
    from workbench.serving.web import build_server, create_app, serve_forever

    parser = argparse.ArgumentParser(prog="workbench.serving.web_workers")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--deployment", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--poll-seconds", type=float, required=True)
    parser.add_argument("--metrics-seconds", type=float, required=True)
    parser.add_argument("--shadow-queue", type=int, default=DEFAULT_SHADOW_QUEUE)
    parser.add_argument("--shadow-timeout", type=float, default=DEFAULT_SHADOW_TIMEOUT_SECONDS)
    args = parser.parse_args(argv)
    # Watch from the start: a parent killed while this worker loads the model leaves no worker holding the port.
    threading.Thread(target=_watch_parent, args=(args.parent,), name="watch-parent", daemon=True).start()
    settings = get_settings()
    with session_scope(settings.db_url) as session:
        token_hash = (get_deployment(session, deployment_id=args.deployment).config or {}).get("token_hash")
    app = create_app(args.project, alias=args.alias, token_hash=token_hash, settings=settings,
                     deployment_id=args.deployment, poll_seconds=args.poll_seconds,
                     metrics_seconds=args.metrics_seconds, host=args.host, port=args.port,
                     worker_dir=worker_dir(settings, args.deployment), shadow_queue=args.shadow_queue,
                     shadow_timeout_seconds=args.shadow_timeout)
    sock = socket.socket(fileno=args.fd)
    serve_forever(build_server(app, host=args.host, port=args.port), sockets=[sock])


if __name__ == "__main__":
    worker_main()
