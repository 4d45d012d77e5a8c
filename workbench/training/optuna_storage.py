"""The Optuna storage behind every study, chosen from a URL (``settings.optuna_storage``).

- ``journal:///path/optuna.journal`` (the embedded default): Optuna's append-only journal
  file. Several processes on one machine share it through a file lock; a trial costs a few
  appended lines, so trials run several times faster than on SQLite. It has no heartbeats: a
  dead worker's running trial is failed (and re-queued) when its job is resumed
  (:func:`workbench.training.study.fail_orphaned_trials`).
- ``sqlite:///…``, ``postgresql://…``, ``mysql://…``: Optuna's RDB storage, with heartbeats
  so that a dead worker's trial is failed and retried by another worker (one that died before
  its trial's first heartbeat: when its job is resumed). PostgreSQL is the storage for workers
  on several machines.

Storages are cached per URL in the process: the Tuning page reads the same study on every
rerun, and a cached journal storage only reads the lines appended since its last read.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.db.handles import Handles

if TYPE_CHECKING:
    import optuna

    from workbench.settings import Settings

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")
JOURNAL_SCHEME = "journal"


def _close_storage(storage: Any) -> None:
    engine = getattr(storage, "engine", None)  # RDB storages hold an engine; journal storages a file
    if engine is not None:
        engine.dispose()


# In the shared store-handle cache (workbench.db.handles): one reset_handles() disposes them with the rest.
_storages: Handles[Any] = Handles("optuna.storage", close=_close_storage)


def is_rdb_url(url: str) -> bool:
    """Whether ``url`` names an SQLAlchemy database (Optuna's RDB storage)."""
    return url.split(":", 1)[0].split("+", 1)[0] in RDB_SCHEMES


def journal_path(url: str) -> Path | None:
    """The file of a ``journal://`` URL (``journal:///abs/path`` or ``journal://rel/path``), else None."""
    if not url.startswith(f"{JOURNAL_SCHEME}:"):
        return None
    return Path(url[len(JOURNAL_SCHEME) + 1 :].removeprefix("//"))


def storage_exists(url: str) -> bool:
    """False when ``url`` is a local file (SQLite or journal) that nothing has created yet."""
    from workbench.db.engine import sqlite_file

    path = journal_path(url) or sqlite_file(url)
    return path is None or path.exists()


def open_storage(url: str, *, heartbeat_seconds: float = 2.0) -> Any:
    """The Optuna storage at ``url`` (cached per URL in this process).

    A journal URL gives a :class:`optuna.storages.JournalStorage`; an RDB URL an RDB storage
    with heartbeats and retries (on SQLite the file is switched to WAL mode, so that local
    workers and the page can read while a trial is written); anything else is handed to Optuna.
    """
    return _storages.get((url, float(heartbeat_seconds)), lambda: _new_storage(url, heartbeat_seconds))


def check_reachable(url: str) -> None:
    """Connect to an RDB storage's server once (no tables created); StoreUnavailable when it cannot be reached.

    A probe rather than :func:`open_storage`: Optuna creates its tables when a storage opens, and
    processes starting together (a job and its tune-workers) would race to create them.
    """
    if not is_rdb_url(url):
        return
    from sqlalchemy import create_engine

    from workbench.db._outage import OPTUNA_STORAGE, connect_args, guard_engine, timeout_seconds
    from workbench.db.engine import sqlite_file

    if sqlite_file(url) is not None:
        return  # a local file: nothing to reach
    engine = create_engine(url, connect_args=connect_args(url, timeout_seconds()))
    guard_engine(engine, store=OPTUNA_STORAGE, url=url, timeout=timeout_seconds())
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def load_study(name: str, *, settings: Settings) -> optuna.Study | None:
    """Study ``name`` on the settings' storage for reading, or None when it does not exist."""
    import optuna

    url = settings.optuna_storage
    if not storage_exists(url):
        return None
    storage = open_storage(url, heartbeat_seconds=settings.heartbeat_seconds)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _new_storage(url: str, heartbeat_seconds: float) -> Any:
    import optuna

    path = journal_path(url)
    if path is not None:
        from optuna.storages.journal import JournalFileBackend

        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if not is_rdb_url(url):
        return url
    from sqlalchemy import exc as sa_exc

    from workbench.db._outage import OPTUNA_STORAGE, connect_args, guard_engine, reason, timeout_seconds
    from workbench.db.engine import sqlite_file
    from workbench.errors import StoreUnavailable

    engine_kwargs: dict[str, Any] = {}
    db_path = sqlite_file(url)
    if db_path is not None:
        import sqlite3

        db_path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(db_path, timeout=30) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        engine_kwargs = {"connect_args": {"timeout": 30}}
    else:
        # A server that refuses or never answers fails within the store timeout (WORKBENCH_STORE_TIMEOUT).
        engine_kwargs = {"pool_pre_ping": True, "connect_args": connect_args(url, timeout_seconds())}
    interval = max(1, round(heartbeat_seconds))
    with warnings.catch_warnings():
        # heartbeat_interval is flagged experimental by Optuna; it is what makes dead workers' trials retry.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        def rdb() -> optuna.storages.RDBStorage:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=interval,
                                              grace_period=interval * 2,
                                              heartbeat_stale_trial_callback=_retry_callback())

        try:
            try:
                storage = rdb()
            except sa_exc.IntegrityError:
                # Another process created Optuna's schema in the same moment (a job and the page, or a job's
                # workers, on a fresh store) and its version row won: the schema is there now, open it again.
                storage = rdb()
        except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError) as exc:
            # Optuna connects in its constructor (to create its tables): one line naming the store, not
            # the driver's traceback.
            raise StoreUnavailable(OPTUNA_STORAGE[0], url, env=OPTUNA_STORAGE[1], reason=reason(exc),
                                   timeout_seconds=timeout_seconds()) from None
    from workbench.db.engine import sqlite_fast_writes

    sqlite_fast_writes(storage.engine)
    guard_engine(storage.engine, store=OPTUNA_STORAGE, url=url, timeout=timeout_seconds())
    return storage


def _retry_callback() -> Any:
    """Optuna's callback that re-enqueues a trial whose worker stopped beating (renamed in 4.9)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        if retry is None:
            retry = optuna.storages.RetryFailedTrialCallback
        return retry(max_retry=2)
