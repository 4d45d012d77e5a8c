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
