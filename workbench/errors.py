"""The one error hierarchy of the workbench.

Every message says what was wrong, what was expected and how to fix it. Pages show these
with ``st.error``, the web service maps them to HTTP status codes and the CLI prints them
on one line and exits with status 2.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""

    http_status = 400


class InvalidInput(WorkbenchError, ValueError):
    """A value given by a user or a caller is not acceptable.

    ``field`` names the parameter or column at fault, so that a form can point at it.
    """

    http_status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(WorkbenchError, LookupError):
    """A project, dataset, job or other record does not exist."""

    http_status = 404


class Conflict(WorkbenchError):
    """The change clashes with the current state (duplicate name, stale revision, ...)."""

    http_status = 409


class Forbidden(WorkbenchError):
    """The acting user's role in a project does not allow the change (or the view) asked for.

    The message names the user, the project, what was refused and who can grant the role.
    """

    http_status = 403


class StoreOutdated(WorkbenchError):
    """A store's schema is older than this version of the workbench."""

    http_status = 503


class JobFailed(WorkbenchError):
    """A background job ended in failure."""

    http_status = 500


class JobCancelled(WorkbenchError):
    """A background job was asked to stop; pipelines raise it between steps."""

    http_status = 409


def check_choice(field: str, value: object, allowed: tuple[object, ...] | list[object]) -> None:
    """Raise :class:`InvalidInput` naming ``field``, the allowed values and the value received."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise InvalidInput(f"{field} must be one of {choices}; got {value!r}.", field=field)


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (in the user part and in a ``password=`` query).

    Store URLs are printed in error messages and logs; a comma-separated list (NATS servers) is
    redacted server by server. Pure string work, so this module stays free of heavy imports.
    """
    import re

    # user:password@ in each server's authority part (user may be empty).
    redacted = re.sub(r"(?P<head>(?:^|,)\s*[A-Za-z][A-Za-z0-9+.-]*://[^:/@,\s]*):[^/,\s]*@", r"\g<head>:***@", url)
    return re.sub(r"(?i)(?P<key>[?&;](?:password|passwd|pwd|token)=)[^&;\s]*", r"\g<key>***", redacted)


class StoreUnavailable(WorkbenchError):
    """A store (workbench DB, MLflow store, Optuna storage, NATS) cannot be reached.

    The message names the store, its URL without the password, why (refused, timed out) and
    what to check; it is one line, so the CLI prints it as one ``Error:`` line.
    """

    http_status = 503

    def __init__(self, store: str, url: str, *, env: str, reason: str = "could not connect",
                 timeout_seconds: float | None = None) -> None:
        self.store = store
        self.url = redact_url(url)
        self.env = env
        self.reason = reason
        timeout = f" (timeout {timeout_seconds:g} s, WORKBENCH_STORE_TIMEOUT)" if timeout_seconds else ""
        super().__init__(
            f"The {store} at {self.url} cannot be reached: {reason}{timeout}. "
            f"Check that the server is running and reachable from here, and that {env} is right."
        )
