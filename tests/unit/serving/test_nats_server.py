"""The embedded nats-server: started on 127.0.0.1 with storage under the home, reused, stopped by its PID."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from workbench.serving.nats_server import ensure_server, running_server, stop_server
from workbench.settings import get_settings


def test_configured_url_is_used_as_is(workbench_home: Path) -> None:
    settings = replace(get_settings(), nats_url="nats://127.0.0.1:4999")
    assert ensure_server(settings) == "nats://127.0.0.1:4999"
    assert not (workbench_home / "nats").exists()


def test_embedded_server_starts_once_and_stops_by_pid(workbench_home: Path) -> None:
    import nats

    settings = get_settings()
    url = ensure_server(settings)
    try:
        assert url.startswith("nats://127.0.0.1:")
        state = running_server(settings)
        assert state is not None and url.endswith(f":{state['port']}")
        assert ensure_server(settings) == url  # reused, not a second server
        assert (workbench_home / "nats" / "jetstream").is_dir()

        async def jetstream_works() -> int:
            connection = await nats.connect(url)
            info = await connection.jetstream().account_info()
            await connection.close()
            return info.streams

        assert asyncio.run(jetstream_works()) == 0
    finally:
        pid = (running_server(settings) or {}).get("pid")
        assert stop_server(settings)
    assert running_server(settings) is None
    if pid:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
