"""Probe: how a busy low-priority child of a server delays the server's client, by how it is grouped.

The web service's shadow child (``workbench.serving.shadow_process``) is busy in bursts (its
batches and writes, ~7 ms every 100 ms and ~10 ms every 200 ms at one connection). This probe
replays that without the service: a ping-pong over loopback TCP between a client (this process)
and a server in its own session (as ``benchmarks/rollout.py`` starts ``workbench serve``), each
spending 0.3 ms of CPU per round trip, while the server's child burns CPU in those bursts:

- ``none``: no child (the floor);
- ``same-idle``: the child in the server's session, SCHED_IDLE (the shadow child before the fix);
- ``own-nice19``: the child in a session of its own, its autogroup at nice 19 (the fix);
- ``own-idle``: its own session at nice 19 and SCHED_IDLE as well;
- ``own-niceN`` (e.g. ``own-nice10``): its own session, its autogroup at nice N.

It prints, per mode, p50 / p99 / p99.9 of the round trips for each alternated round. Linux only;
what it shows depends on the kernel's autogrouping (``/proc/sys/kernel/sched_autogroup_enabled``).

    python3 benchmarks/shadow_wakeup.py --requests 4000 --rounds 4
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("none", "same-idle", "own-nice19", "own-idle")
WORK_SECONDS = 0.0003  # CPU per round trip on each side


def burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def child(mode: str) -> None:
    if mode.startswith("own-"):
        Path("/proc/self/autogroup").write_text(mode.split("-")[1].removeprefix("nice") if "nice" in mode else "19")
    if mode.endswith("-idle"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    while True:  # the shadow child's bursts at one connection: a batch, then a write
        burn(0.007)
        time.sleep(0.045)
        burn(0.010)
        time.sleep(0.040)


def server(port_file: str, mode: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    if mode != "none":
        busy = subprocess.Popen([sys.executable, __file__, "--child", mode], start_new_session=mode.startswith("own-"))
        Path(port_file + ".child").write_text(str(busy.pid))
    Path(port_file).write_text(str(listener.getsockname()[1]))
    connection, _ = listener.accept()
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while connection.recv(64):
        burn(WORK_SECONDS)
        connection.sendall(b"x")


def one_round(mode: str, requests: int, folder: str) -> tuple[float, float, float]:
    port_file = os.path.join(folder, f"port-{mode}")
    process = subprocess.Popen([sys.executable, __file__, "--server", port_file, mode], start_new_session=True)
    try:
        while not (os.path.exists(port_file) and Path(port_file).read_text()):
            time.sleep(0.05)
        time.sleep(0.5)  # the child started
        latencies = []
        with socket.create_connection(("127.0.0.1", int(Path(port_file).read_text()))) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(requests):
                burn(WORK_SECONDS)
                began = time.perf_counter()
                sock.sendall(b"y")
                sock.recv(1)
                latencies.append(time.perf_counter() - began)
    finally:
        if os.path.exists(port_file + ".child"):
            os.kill(int(Path(port_file + ".child").read_text()), signal.SIGKILL)
            os.remove(port_file + ".child")
        process.wait(timeout=10)
        os.remove(port_file)
    latencies.sort()
    return tuple(latencies[int(len(latencies) * q)] * 1000 for q in (0.5, 0.99, 0.999))  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--server", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    if args.server:
        server(*args.server)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    print(f"load average {os.getloadavg()}; autogroup "
          f"{Path('/proc/sys/kernel/sched_autogroup_enabled').read_text().strip()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.rounds):
            for mode in modes[r % len(modes):] + modes[:r % len(modes)]:  # rotated, like _fair.alternated
                results[mode].append(one_round(mode, args.requests, folder))
    for mode, rows in results.items():
        p99 = sorted(row[1] for row in rows)[len(rows) // 2]
        print(f"{mode:>11}: p50/p99/p99.9 ms " + " ".join(f"{a:.2f}/{b:.2f}/{c:.2f}" for a, b, c in rows)
              + f" | median p99 {p99:.2f}", flush=True)
    print(f"load average {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
