"""One store-handle cache for the four stores (workbench DB, MLflow client, MLflow read engine, Optuna)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.conftest import reset_workbench_caches
from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.db.handles import Handles, reset_handles


def _open_all(home: Path) -> dict[str, object]:
    from workbench.db.engine import get_engine
    from workbench.settings import get_settings
    from workbench.tracking import get_client
    from workbench.tracking._sql_store import mlflow_engine
    from workbench.training.optuna_storage import open_storage

    settings = get_settings()
    return {
        "workbench engine": get_engine(),
        "mlflow client": get_client(settings),
        "mlflow read engine": mlflow_engine(settings.mlflow_tracking_uri),
        "optuna storage": open_storage(f"sqlite:///{home / 'optuna.db'}", heartbeat_seconds=1.0),
    }


def test_one_reset_forgets_every_store_handle(workbench_home: Path) -> None:
    # Before the shared cache, the tests' reset left the MLflow client and read engine cached.
    seed_mlflow_store(workbench_home)
    first = _open_all(workbench_home)
    again = _open_all(workbench_home)
    assert all(again[name] is handle for name, handle in first.items()), "each store caches its handle"
    reset_workbench_caches()
    fresh = _open_all(workbench_home)
    kept = [name for name, handle in first.items() if fresh[name] is handle]
    assert kept == [], f"handles that survived the reset: {kept}"
    reset_handles()
    # Engines were disposed: their pools hold no connection after the reset.
    for name in ("workbench engine", "mlflow read engine"):
        assert fresh[name].pool.checkedin() == 0, name  # type: ignore[attr-defined]


def test_a_handle_is_created_once_under_concurrent_first_use() -> None:
    created: list[int] = []
    closed: list[int] = []

    def create() -> int:
        time.sleep(0.05)  # wide enough for every thread to miss the first read
        created.append(len(created))
        return len(created)

    handles: Handles[int] = Handles("test.concurrent", close=closed.append)
    seen: list[int] = []
    threads = [threading.Thread(target=lambda: seen.append(handles.get("k", create))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created == [0] and seen == [1] * 8
    other: Handles[int] = Handles("test.other")
    other.get("k", lambda: 7)
    handles.reset()  # one kind only: the other kind's handle stays
    assert closed == [1] and other.get("k", lambda: 8) == 7
    reset_handles()
    assert other.get("k", lambda: 9) == 9
    reset_handles()
