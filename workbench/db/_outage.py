"""Store outages as one :class:`~workbench.errors.StoreUnavailable` (issue 12 item 9).

Every store connection waits at most ``settings.store_timeout_seconds``; a store that refuses or
does not answer in time becomes one StoreUnavailable naming the store, its URL without the
password and the setting to check, instead of a driver's traceback (the CLI prints it as one
``Error:`` line and exits 2; pages show it with ``st.error``).

- SQLAlchemy engines (the workbench DB, Optuna's RDB storage): :func:`connect_args` gives the
  driver's connect timeout and :func:`guard_engine` turns a failed connect into StoreUnavailable.
- MLflow over HTTP: :func:`mlflow_http_environment` bounds MLflow's request timeout and retries;
  :func:`as_store_outage` recognises its "API request ... failed" errors after the fact.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from workbench.errors import StoreUnavailable

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from workbench.settings import Settings

WORKBENCH_DB = ("workbench DB", "WORKBENCH_DB_URL")
MLFLOW_STORE = ("MLflow store", "MLFLOW_TRACKING_URI")
OPTUNA_STORAGE = ("Optuna storage", "WORKBENCH_OPTUNA_STORAGE")
NATS_SERVER = ("NATS server", "WORKBENCH_NATS_URL or --nats")


def timeout_seconds(settings: Settings | None = None) -> float:
    """The configured store timeout (``WORKBENCH_STORE_TIMEOUT``)."""
    from workbench.settings import get_settings

    return float((settings or get_settings()).store_timeout_seconds)


def connect_args(url: str, timeout: float) -> dict[str, Any]:
    """The DBAPI ``connect_args`` that bound a connect to ``timeout`` seconds (none for SQLite files)."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        # libpq and MySQL take whole seconds; libpq treats values under 2 as 2.
        return {"connect_timeout": max(1, math.ceil(timeout))}
    return {}


def reason(exc: BaseException) -> str:
    """Why a connect failed, in a few words (never the driver's text, which may quote the URL)."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if "timeout" in text or "timed out" in text:
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "resolve" in text:
        return "host name not found"
    if "authentication" in text or "password" in text:
        return "authentication failed"
    return "could not connect"


def guard_engine(engine: Engine, *, store: tuple[str, str], url: str, timeout: float) -> Engine:
    """Make a failed connect of ``engine`` raise StoreUnavailable for ``store`` (name, setting)."""
    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc

    def on_error(context: Any) -> None:
        connecting = context.connection is None or context.is_disconnect
        original = context.original_exception
        dbapi_error = isinstance(context.sqlalchemy_exception, sa_exc.OperationalError | sa_exc.InterfaceError)
        if connecting and (dbapi_error or isinstance(original, OSError)):
            raise StoreUnavailable(store[0], url, env=store[1], reason=reason(original),
                                   timeout_seconds=timeout) from None

    event.listen(engine, "handle_error", on_error)
    return engine


def mlflow_http_environment(tracking_uri: str, timeout: float) -> None:
    """Bound MLflow's HTTP requests for an ``http(s)://`` tracking URI (a variable already set wins).

    MLflow's defaults (120 s per request, 7 retries with backoff) make an unreachable server
    look like a hang of several minutes; one retry after a second keeps a short blip harmless.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def as_store_outage(exc: BaseException, settings: Settings | None = None) -> StoreUnavailable | None:
    """The StoreUnavailable behind ``exc`` (raised or recognised), or None when ``exc`` is no outage."""
    from workbench.settings import get_settings

    chain = _chain(exc)
    for error in chain:
        if isinstance(error, StoreUnavailable):
            return error
    settings = settings or get_settings()
    tracking_uri = settings.mlflow_tracking_uri
    for error in chain:
        kind = type(error)
        text = str(error)
        from_mlflow = kind.__module__.startswith("mlflow")
        from_requests = kind.__module__.startswith(("requests", "urllib3"))
        # MLflow wraps every failed HTTP call as "API request to <url> failed with (timeout) exception ...".
        unreachable = ("API request to" in text and "failed with" in text and "Max retries" in text) or (
            "API request to" in text and "timeout exception" in text)
        if tracking_uri.startswith(("http://", "https://")) and (
            (from_mlflow and unreachable) or (from_requests and "Connection" in kind.__name__ + text)
        ):
            return StoreUnavailable(MLFLOW_STORE[0], tracking_uri, env=MLFLOW_STORE[1], reason=reason(error),
                                    timeout_seconds=timeout_seconds(settings))
    return None
