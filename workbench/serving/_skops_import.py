"""Import ``skops.io`` without its scan of every scikit-learn estimator (batch start-up, issue 16 item 3).

``skops.io`` builds its default trust list at import time by calling
``sklearn.utils.all_estimators()``, which imports every scikit-learn module that defines an
estimator, whether the model uses it or not: in ``python -X importtime`` of ``workbench score`` it
was the largest single item of the start-up (about a third of the import time). The list only
holds the estimators' type names (``"<module>.<class>"``), and those depend only on the installed
scikit-learn and skops, so the first load records the names in a small cache file under the
workbench home, keyed by both versions; later loads hand skops stand-in classes that carry the
same names, and the trust list comes out identical (checked after the import).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

_LOCK = threading.Lock()


def _cache_file(cache_dir: Path) -> Path:
    from importlib.metadata import version

    import sklearn

    return cache_dir / f"skops-trusted-sklearn-{sklearn.__version__}-skops-{version('skops')}.json"


def import_skops_quickly(cache_dir: Path) -> None:
    """Import ``skops.io`` (once per process), from the cached estimator names when there are some."""
    if "skops.io" in sys.modules:
        return
    with _LOCK:
        if "skops.io" in sys.modules:
            return
        path = _cache_file(cache_dir)
        try:
            names = json.loads(path.read_text())
        except (OSError, ValueError):
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) and "." in n for n in names):
            _import_and_record(path)
            return
        import sklearn.utils

        # Classes named like the real estimators, for skops' get_type_name (module + class name).
        stand_ins = [(n.rsplit(".", 1)[1], type(n.rsplit(".", 1)[1], (), {"__module__": n.rsplit(".", 1)[0]}))
                     for n in names]
        real = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda *args, **kwargs: list(stand_ins)  # type: ignore[assignment]
        try:
            import skops.io  # noqa: F401
            import skops.io._trusted_types as trusted
        finally:
            sklearn.utils.all_estimators = real  # type: ignore[assignment]
        if names != trusted.SKLEARN_ESTIMATOR_TYPE_NAMES:  # only if skops changed how it builds the list
            # In place: skops.io._general reads this very list object each time it loads an estimator.
            trusted.SKLEARN_ESTIMATOR_TYPE_NAMES[:] = _real_names()


def _real_names() -> list[str]:
    from sklearn.utils import all_estimators
    from skops.io._utils import get_type_name

    return [get_type_name(cls) for _, cls in all_estimators() if get_type_name(cls).startswith("sklearn.")]


def _import_and_record(path: Path) -> None:
    """The normal import (the full scan), then the names it found written for the next process."""
    import os

    import skops.io  # noqa: F401
    import skops.io._trusted_types as trusted

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(list(trusted.SKLEARN_ESTIMATOR_TYPE_NAMES)))
        os.replace(tmp, path)
    except OSError:  # a read-only home: every process scans, as without the cache
        pass
