"""The real NATS server the stream tests use (127.0.0.1:4222 unless WORKBENCH_TEST_NATS says otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Any

NATS_URL = os.environ.get("WORKBENCH_TEST_NATS", "nats://127.0.0.1:4222")


def nats_reason() -> str | None:
    """Why the stream tests cannot run here (None when a NATS server answers at NATS_URL)."""
    host, port = NATS_URL.removeprefix("nats://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            if sock.recv(4).startswith(b"INFO"):
                return None
            return f"the server at {NATS_URL} does not speak NATS"
    except OSError as exc:
        return f"no NATS server answers at {NATS_URL}: {exc}"


def with_transport(slug: str, action: Any, *, consumer: bool = False, **options: Any) -> Any:
    """Run ``await action(transport)`` on a connected NatsTransport of ``slug``, then close it."""
    from workbench.serving.nats_transport import NatsTransport

    async def main() -> Any:
        transport = NatsTransport(NATS_URL, slug, **options)
        await transport.connect(consumer=consumer)
        try:
            return await action(transport)
        finally:
            await transport.close()

    return asyncio.run(main())


def delete_stream(slug: str) -> None:
    """Delete the project's stream (and its durable consumer); nothing when there is none."""
    from nats.js.errors import NotFoundError

    async def drop(transport: Any) -> None:
        with contextlib.suppress(NotFoundError):
            await transport.delete_stream()

    with_transport(slug, drop)
