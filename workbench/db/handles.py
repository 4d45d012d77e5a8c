"""The one process-wide cache of store handles: engines, sessionmakers, MLflow clients, Optuna storages.

Every store the workbench opens keeps its handle here, under a *kind* (``"db.engine"``,
``"tracking.client"``, ...) and a key (usually the store's URL). One lock guards the whole
cache and :func:`reset_handles` empties it in one call, closing what needs closing (engines
are disposed, connections closed): tests that switch homes call it, instead of one reset per store.

A kind is declared once, at import, by the module that owns the store::

    _engines: Handles[Engine] = Handles("db.engine", close=lambda engine: engine.dispose())

Declaring a kind creates nothing; handles are made on first use by :meth:`Handles.get`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Re-entrant: creating one handle may ask for another (a sessionmaker needs its engine).
_lock = threading.RLock()
_handles: dict[tuple[str, Hashable], Any] = {}
_closers: dict[str, Callable[[Any], None]] = {}


class Handles(Generic[T]):
    """The handles of one kind in the shared cache."""

    def __init__(self, kind: str, *, close: Callable[[T], None] | None = None) -> None:
        self.kind = kind
        with _lock:
            if close is not None:
                _closers[kind] = close

    def get(self, key: Hashable, create: Callable[[], T]) -> T:
        """The handle under ``key``, made by ``create()`` the first time (once, under the lock)."""
        full_key = (self.kind, key)
        handle = _handles.get(full_key)  # a dict read is atomic: the common case takes no lock
        if handle is not None:
            return handle  # type: ignore[no-any-return]
        with _lock:
            handle = _handles.get(full_key)
            if handle is None:
                handle = _handles[full_key] = create()
        return handle  # type: ignore[no-any-return]

    def __len__(self) -> int:
        """How many handles of this kind are open (the layer test checks that importing opens none)."""
        with _lock:
            return sum(1 for kind, _ in _handles if kind == self.kind)

    def forget(self, key: Hashable) -> None:
        """Forget (and close) the handle under ``key``, if there is one."""
        with _lock:
            taken = [((self.kind, key), _handles.pop((self.kind, key)))] if (self.kind, key) in _handles else []
        _close(taken)

    def reset(self) -> None:
        """Forget (and close) this kind's handles only."""
        with _lock:
            taken = [(key, _handles.pop(key)) for key in [key for key in _handles if key[0] == self.kind]]
        _close(taken)


def _close(taken: list[tuple[tuple[str, Hashable], Any]]) -> None:
    # Outside the lock: disposing an engine waits for its checked-out connections to come back.
    for (kind, _), handle in taken:
        close = _closers.get(kind)
        if close is not None:
            close(handle)


def reset_handles() -> None:
    """Forget every cached store handle, disposing engines and closing connections (one call for all stores)."""
    with _lock:
        taken = list(_handles.items())
        _handles.clear()
    _close(taken)
