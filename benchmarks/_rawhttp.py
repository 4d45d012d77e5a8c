"""A cheap load generator: N keep-alive HTTP/1.1 connections driven by one thread with ``selectors``.

The httpx client of ``serving.py`` spends about as much CPU per request as the server it measures
(8 threads of one Python process, contending on the GIL), so on a 2-core machine it takes the core
a second server worker would use. This client sends one pre-encoded request per connection, reads
the response (status line, ``Content-Length`` body), and sends the next: a few tens of microseconds
of CPU per request. It reports the CPU seconds it used, so a run can show the client is not the
limit. Both sides of a comparison are measured with it.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from typing import Any

import numpy as np


def encode_request(host: str, port: int, path: str, payload: Any, headers: dict[str, str] | None) -> bytes:
    """One POST with a JSON body, as bytes (sent as is for every request)."""
    body = json.dumps(payload).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Connection:
    def __init__(self, host: str, port: int, request: bytes, todo: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.request, self.todo = request, todo
        self.buffer = b""
        self.sent_at = 0.0
        self.latencies: list[float] = []
        self.failures = 0

    def send(self) -> None:
        self.sent_at = time.perf_counter()
        self.sock.sendall(self.request)  # a few hundred bytes: fits the empty socket buffer

    def feed(self, data: bytes) -> bool:
        """Add received bytes; True when a whole response has arrived (and was counted)."""
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        head = self.buffer[:head_end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        end = head_end + 4 + length
        if len(self.buffer) < end:
            return False
        if not head.startswith("HTTP/1.1 200"):
            self.failures += 1
        self.buffer = self.buffer[end:]
        self.latencies.append(time.perf_counter() - self.sent_at)
        self.todo -= 1
        return True


def measure_raw(url: str, payload: Any, *, requests: int, connections: int, headers: dict[str, str] | None = None,
                warmup: int = 10) -> dict[str, float]:
    """``requests`` POSTs over ``connections`` keep-alive connections (after ``warmup`` each, untimed)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = encode_request(host, port, parts.path, payload, headers)
    per_connection = requests // connections
    conns = [_Connection(host, port, request, warmup) for _ in range(connections)]
    _drive(conns)  # warm-up: not timed, not counted
    for conn in conns:
        conn.todo, conn.latencies, conn.failures = per_connection, [], 0
    cpu0, started = time.process_time(), time.perf_counter()
    _drive(conns)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    for conn in conns:
        conn.sock.close()
    values = np.array([x for conn in conns for x in conn.latencies]) * 1000
    return {"requests": len(values), "failures": sum(c.failures for c in conns), "rps": round(len(values) / wall, 1),
            "p50_ms": round(float(np.percentile(values, 50)), 2), "p99_ms": round(float(np.percentile(values, 99)), 2),
            "client_cpu_fraction": round(cpu / wall, 3)}


def _drive(conns: list[_Connection]) -> None:
    """Keep one request in flight per connection until each has received its ``todo`` responses."""
    selector = selectors.DefaultSelector()
    for conn in conns:
        if conn.todo > 0:
            selector.register(conn.sock, selectors.EVENT_READ, conn)
            conn.send()
    active = sum(1 for c in conns if c.todo > 0)
    while active:
        events = selector.select(timeout=30)
        if not events:
            raise TimeoutError("no response in 30 s")
        for key, _ in events:
            conn = key.data
            data = conn.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed a keep-alive connection")
            while conn.feed(data):
                data = b""
                if conn.todo > 0:
                    conn.send()
                else:
                    selector.unregister(conn.sock)
                    active -= 1
                    break
    selector.close()
