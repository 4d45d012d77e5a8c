"""The reference's drift-ready form: sorted numeric values and category counts, built once per model version.

Every drift check compares a window with the same reference, so sorting the reference's numeric
columns and counting its categories on every check repeats work whose result never changes. A
:class:`ReferenceProfile` holds that work: per column, the reference's finite values sorted (numeric
columns), its distinct values and their counts in order of first appearance (other columns, and
numeric ones with few values), its population std and what Evidently's type inference needs. The
drift functions (:mod:`workbench.monitoring.drift`) take a :class:`ColumnProfile` in place of the
reference column and then only sort or count the current window.

Where it is kept: a cached file under the workbench home,
``<home>/reference_profiles/<project>/v<version>-<sha256 of the reference file>/``, built by the
first check that needs it (:func:`cached_profile`). Not an MLflow artifact logged by training,
because then the model versions trained before this existed would never get one, training would
pay for it even when nothing is monitored, and the artifact store would hold a second, larger copy
of the reference (sorted float64 columns) per version; a cache file is rebuilt from the reference
whenever it is missing, and the key's content hash means a reference that changed is never
compared through a stale profile. The folder holds ``meta.json`` and one ``.npy`` file per array,
memory-mapped when a column is asked for: a check reads only the columns it is working on, with
no copy and no checksum pass (an ``.npz`` archive costs both).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.monitoring._columns import _dtype_family, _sorted_finite, infer_column_kind, value_counts

# Distinct values above which a float column's counts are not stored (its categorical form, needed
# only when a caller forces the kind, is then derived from the sorted values).
MAX_STORED_FLOAT_VALUES = 10_000
PROFILE_FORMAT = 1


@dataclass(frozen=True)
class ColumnProfile:
    """One reference column in drift-ready form (see the module docstring)."""

    name: str
    dtype: str
    family: str
    kind: str
    numeric: bool
    sorted_values: np.ndarray | None
    std: float | None
    keys: list[Any] | None
    counts: np.ndarray | None

    def value_counts(self) -> tuple[list[Any], np.ndarray]:
        """Distinct non-missing, finite values and their counts (first-appearance order when stored)."""
        if self.keys is not None and self.counts is not None:
            return self.keys, self.counts
        if self.sorted_values is None:
            raise ValueError(f"the reference profile of column {self.name!r} holds neither counts nor values")
        values = self.sorted_values
        starts = np.concatenate(([0], np.flatnonzero(values[1:] != values[:-1]) + 1)) if values.size else np.array(
            [], dtype=np.int64)
        counts = np.diff(np.concatenate((starts, [values.size]))).astype(np.int64)
        return values[starts].tolist(), counts


class ReferenceProfile(Mapping[str, ColumnProfile]):
    """Column name -> :class:`ColumnProfile`; columns loaded from a cached file are read on first access."""

    def __init__(self, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._meta = meta
        self._arrays = arrays
        self._names = [c["name"] for c in meta["columns"]]
        self._index = {name: i for i, name in enumerate(self._names)}

    def __getitem__(self, name: str) -> ColumnProfile:
        i = self._index[name]
        column = self._meta["columns"][i]
        sorted_values = self._arrays[f"s{i}"] if column["has_sorted"] else None
        counts = self._arrays[f"c{i}"] if column["keys"] is not None else None
        return ColumnProfile(
            name=name, dtype=column["dtype"], family=column["family"], kind=column["kind"],
            numeric=column["numeric"], sorted_values=sorted_values, std=column["std"],
            keys=column["keys"], counts=counts,
        )

    def __iter__(self) -> Any:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    @property
    def n_rows(self) -> int:
        return int(self._meta["n_rows"])

    def save(self, path: Path) -> None:
        """Write the profile to the folder ``path``, atomically: a reader never sees half a profile.

        A profile already at ``path`` is kept: paths are keyed by the reference's content hash, so
        it is the same profile, written by a concurrent check.
        """
        import shutil
        import tempfile

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            for i, column in enumerate(self._meta["columns"]):
                if column["has_sorted"]:
                    np.save(tmp / f"s{i}.npy", self._arrays[f"s{i}"])
                if column["keys"] is not None:
                    np.save(tmp / f"c{i}.npy", self._arrays[f"c{i}"])
            (tmp / "meta.json").write_text(json.dumps(self._meta))
            os.replace(tmp, path)  # a folder renamed into place: all of it or nothing
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (path / "meta.json").is_file():  # not another process's profile that won the race
                raise


def _json_keys(uniques: Any) -> list[Any] | None:
    """Distinct values as JSON-safe Python scalars, or None when one of them does not survive JSON."""
    keys = [u.item() if isinstance(u, np.generic) else u for u in list(uniques)]
    if not all(isinstance(k, str | bool | int | float) for k in keys):
        return None
    return keys


def _column_profile(name: str, series: pd.Series) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    numeric = bool(pd.api.types.is_numeric_dtype(series))
    sorted_values = None
    std = None
    if numeric:
        try:
            sorted_values = _sorted_finite(series)
            std = float(np.std(sorted_values)) if sorted_values.size else None
        except (TypeError, ValueError):  # nullable integers with pd.NA and the like: not sortable as floats
            sorted_values = None
    keys = counts = None
    float_family = series.dtype.kind == "f"
    if not float_family or (sorted_values is not None and series.nunique() <= MAX_STORED_FLOAT_VALUES):
        values, value_n, _ = value_counts(series)
        keys = _json_keys(values)
        if keys is not None:
            counts = value_n
    meta = {"name": name, "dtype": series.dtype.name, "family": _dtype_family(series),
            "kind": infer_column_kind(series), "numeric": numeric, "has_sorted": sorted_values is not None,
            "std": std, "keys": keys}
    return meta, sorted_values, counts


def build_profile(reference: pd.DataFrame, *, columns: list[str] | None = None) -> ReferenceProfile:
    """Sort and count every column of ``reference`` (or ``columns``) once."""
    names = list(reference.columns) if columns is None else columns
    metas: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        meta, sorted_values, counts = _column_profile(str(name), reference[name])
        metas.append(meta)
        if sorted_values is not None:
            arrays[f"s{i}"] = sorted_values
        if counts is not None:
            arrays[f"c{i}"] = counts
    return ReferenceProfile({"format": PROFILE_FORMAT, "n_rows": len(reference), "columns": metas}, arrays)


class _MappedArrays(Mapping[str, np.ndarray]):
    """The ``.npy`` files of a saved profile, each memory-mapped (read-only) when asked for."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return np.load(self._folder / f"{key}.npy", mmap_mode="r", allow_pickle=False)
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    def __iter__(self) -> Any:
        return (p.stem for p in self._folder.glob("*.npy"))

    def __len__(self) -> int:
        return sum(1 for _ in self._folder.glob("*.npy"))


def load_profile(path: Path) -> ReferenceProfile:
    """A profile saved by :meth:`ReferenceProfile.save`; its arrays are mapped from their files on access."""
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("format") != PROFILE_FORMAT:
        raise ValueError(f"{path} holds reference profile format {meta.get('format')!r}, not {PROFILE_FORMAT}")
    return ReferenceProfile(meta, _MappedArrays(path))


def profile_path(home: Path, *, project_slug: str, model_version: str, reference_sha256: str) -> Path:
    """Where the profile of one model version's reference is cached under the workbench home."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", project_slug)
    return Path(home) / "reference_profiles" / safe / f"v{model_version}-{reference_sha256[:32]}"


def cached_profile(
    reference: pd.DataFrame, *, home: Path, project_slug: str, model_version: str, reference_sha256: str
) -> ReferenceProfile:
    """The cached profile of this reference, built from ``reference`` and saved when missing or unreadable."""
    path = profile_path(home, project_slug=project_slug, model_version=model_version,
                        reference_sha256=reference_sha256)
    if (path / "meta.json").is_file():
        try:
            profile = load_profile(path)
            if list(profile) == [str(c) for c in reference.columns] and profile.n_rows == len(reference):
                return profile
        except (OSError, ValueError, KeyError):  # a damaged or older profile is rebuilt below, not trusted
            import shutil

            shutil.rmtree(path, ignore_errors=True)
    profile = build_profile(reference)
    profile.save(path)
    return profile
