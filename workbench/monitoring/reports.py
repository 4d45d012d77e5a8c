"""Every Evidently call of the workbench lives here (evidently==0.7.23, imported lazily).

A monitoring report has up to two Evidently snapshots ("sections"):

- ``data``: data drift per feature (``DataDriftPreset``), prediction drift (``ValueDrift`` on
  the prediction column) and a data-quality summary (``DataSummaryPreset``), on every row
  of the window;
- ``quality``: ``ClassificationPreset`` or ``RegressionPreset`` on the rows of the window
  that have a label, present only once labels have arrived.

Quality needs its own run because the unlabelled rows of the window have no target, and
Evidently's quality metrics cannot skip them. The column types are passed to Evidently
explicitly (from :func:`workbench.monitoring.drift.infer_column_kind`), so the Evidently
report and the fast drift path of :mod:`workbench.monitoring.drift` test the same columns
the same way. Importing evidently costs seconds, which is why nothing here imports it at
module level.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInput, check_choice

SECTIONS = ("data", "quality")
TASK_TYPES = ("classification", "regression")
# Metric names longer than this are cut, so they fit the history table's column.
MAX_METRIC_NAME = 250


@dataclass
class MonitoringReport:
    """The Evidently snapshots of one monitoring run, by section (see the module docstring)."""

    snapshots: dict[str, Any]

    def snapshot_json(self) -> dict[str, Any]:
        """The metrics and test results of each section (``Snapshot.dict()``), JSON-ready."""
        return {name: json.loads(snap.json()) for name, snap in self.snapshots.items()}

    def metric_rows(self) -> list[tuple[str, float]]:
        """Every numeric value of every section, flattened into ``(metric, value)`` rows."""
        rows: list[tuple[str, float]] = []
        for name, data in self.snapshot_json().items():
            rows.extend(flatten_snapshot(data, prefix=name))
        return rows

    def dumps(self) -> bytes:
        """The full snapshots (widgets included, so the HTML can be drawn later), gzipped JSON."""
        payload = {name: snap.dumps() for name, snap in self.snapshots.items()}
        return gzip.compress(json.dumps(payload).encode("utf-8"), compresslevel=6)


def loads_report(data: bytes) -> MonitoringReport:
    """The inverse of :meth:`MonitoringReport.dumps`."""
    from evidently.core.report import Snapshot

    try:
        payload = json.loads(gzip.decompress(data).decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            "the stored report is not a gzipped workbench snapshot; re-run the monitoring check to rebuild it.",
            field="snapshot",
        ) from exc
    return MonitoringReport(snapshots={name: Snapshot.loads(text) for name, text in payload.items()})


def evidently_html(report: MonitoringReport, *, section: str = "data") -> str:
    """Evidently's own standalone HTML of one section, for the download button."""
    check_choice("section", section, tuple(report.snapshots) or SECTIONS)
    return str(report.snapshots[section].get_html_str(as_iframe=False))


def _metric_value_rows(name: str, value: Any) -> list[tuple[str, float]]:
    if isinstance(value, bool):
        return [(name, 1.0 if value else 0.0)]
    if isinstance(value, int | float):
        number = float(value)
        return [(name, number)] if math.isfinite(number) else []
    if isinstance(value, Mapping):
        rows: list[tuple[str, float]] = []
        for key, sub in value.items():
            rows.extend(_metric_value_rows(f"{name}.{key}", sub))
        return rows
    return []


def flatten_snapshot(snapshot: Mapping[str, Any], *, prefix: str = "") -> list[tuple[str, float]]:
    """Flatten ``Snapshot.dict()`` into ``(metric, value)`` rows.

    A metric is named by Evidently's ``metric_name`` (for example
    ``ValueDrift(column=age,method=Wasserstein distance (normed),threshold=0.1)``); values that
    are dicts (``{"count": .., "share": ..}``, per-label scores) add ``.key`` per level. Values
    that are not finite numbers are left out so that every row is JSON- and SQL-safe.
    """
    rows: list[tuple[str, float]] = []
    for metric in snapshot.get("metrics", []):
        name = str(metric.get("metric_name", metric.get("id", "metric")))
        if prefix:
            name = f"{prefix}.{name}"
        rows.extend((key[:MAX_METRIC_NAME], val) for key, val in _metric_value_rows(name, metric.get("value")))
    return rows


def _data_definition(
    kinds: Mapping[str, str], *, extra_numerical: Sequence[str] = (), extra_categorical: Sequence[str] = ()
) -> Any:
    from evidently import DataDefinition

    return DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "numerical"] + list(extra_numerical),
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"] + list(extra_categorical),
        text_columns=[],
        datetime_columns=[],
    )


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], *, which: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"the {which} data has no column(s) {missing}; it has {list(frame.columns)}. "
            "Pass the feature and prediction column names the deployment logs.",
            field=which,
        )


def data_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: Sequence[str],
    kinds: Mapping[str, str],
    prediction: str | None = None,
    prediction_kind: str = "numerical",
) -> Any:
    """Data drift, prediction drift and data-quality summary in one Evidently snapshot.

    ``kinds`` maps each feature to "numerical" or "categorical"; features of other kinds are
    left out of the drift table (they are still summarised). ``prediction`` is the column
    holding the model output in both frames (None: no prediction drift).
    """
    from evidently import Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    check_choice("prediction_kind", prediction_kind, ("numerical", "categorical"))
    _check_columns(reference, list(features) + ([prediction] if prediction else []), which="reference")
    _check_columns(current, list(features) + ([prediction] if prediction else []), which="current")
    tested = [c for c in features if kinds.get(c) in ("numerical", "categorical")]
    feature_kinds = {c: kinds[c] for c in tested}
    extra_num = [prediction] if prediction and prediction_kind == "numerical" else []
    extra_cat = [prediction] if prediction and prediction_kind == "categorical" else []
    definition = _data_definition(feature_kinds, extra_numerical=extra_num, extra_categorical=extra_cat)
    columns = tested + ([prediction] if prediction else [])
    metrics: list[Any] = []
    if tested:
        metrics.append(DataDriftPreset(columns=tested))
    if prediction:
        metrics.append(ValueDrift(column=prediction))
    metrics.append(DataSummaryPreset(columns=columns))
    report = Report(metrics, include_tests=True)
    return report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _class_labels(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Class labels Evidently accepts (int or str, one type for target and prediction).

    Labels that went through JSON may be floats (1.0 for class 1), which Evidently rejects.
    """
    out = frame.copy()
    numeric = all(pd.api.types.is_numeric_dtype(out[c]) for c in columns)
    if numeric and all(np.all(np.mod(out[c].to_numpy(dtype=float), 1) == 0) for c in columns):
        for c in columns:
            out[c] = out[c].astype("int64")
    else:
        for c in columns:
            out[c] = out[c].map(_label_text)
    return out


def quality_report(
    current: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    *,
    task_type: str,
    target: str = "target",
    prediction: str = "prediction",
    pos_label: Any = None,
) -> Any:
    """Classification or regression quality of the labelled rows of ``current``.

    Rows without a label are dropped first. ``reference`` (optional) must hold the same
    target and prediction columns; quality is then compared with it. For a binary task the
    positive label defaults to the last of the sorted labels, the workbench's convention.
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, MulticlassClassification, Regression, Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    check_choice("task_type", task_type, TASK_TYPES)
    _check_columns(current, [target, prediction], which="current")
    labelled = current.loc[current[target].notna(), [target, prediction]]
    if labelled.empty:
        raise InvalidInput(
            f"no row of the window has a label in column {target!r}; send labels through /feedback or "
            "upload a labels file, then run the quality report again.",
            field="target",
        )
    ref = None
    if reference is not None:
        _check_columns(reference, [target, prediction], which="reference")
        ref = reference.loc[reference[target].notna(), [target, prediction]]
    definition: Any
    if task_type == "classification":
        labelled = _class_labels(labelled, [target, prediction])
        ref = _class_labels(ref, [target, prediction]) if ref is not None else None
    if task_type == "regression":
        definition = DataDefinition(
            numerical_columns=[target, prediction], regression=[Regression(target=target, prediction=prediction)]
        )
        preset: Any = RegressionPreset()
    else:
        frames = [labelled] + ([ref] if ref is not None else [])
        labels = pd.unique(pd.concat([f[c] for f in frames for c in (target, prediction)], ignore_index=True))
        try:
            ordered = sorted(labels)
        except TypeError:
            ordered = sorted(labels, key=str)
        if len(ordered) <= 2:
            positive = ordered[-1] if pos_label is None else pos_label
            task: Any = BinaryClassification(target=target, prediction_labels=prediction, pos_label=positive)
        else:
            task = MulticlassClassification(target=target, prediction_labels=prediction)
        definition = DataDefinition(categorical_columns=[target, prediction], classification=[task])
        preset = ClassificationPreset()
    report = Report([preset], include_tests=True)
    return report.run(
        Dataset.from_pandas(labelled, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition) if ref is not None and not ref.empty else None,
    )


def monitoring_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: Sequence[str],
    kinds: Mapping[str, str],
    task_type: str,
    target: str = "target",
    prediction: str = "prediction",
) -> MonitoringReport:
    """The whole Evidently report of one window: the ``data`` section, plus ``quality`` when labelled.

    When the reference has no prediction column, the reference's target stands in for it, so
    prediction drift compares the window's predictions with the training labels.
    """
    check_choice("task_type", task_type, TASK_TYPES)
    # Quality is compared with the reference only when it holds real predictions and labels.
    has_ref_quality = target in reference.columns and prediction in reference.columns
    if prediction not in reference.columns:
        if target not in reference.columns:
            raise InvalidInput(
                f"the reference data has neither a {prediction!r} nor a {target!r} column, so prediction "
                "drift has nothing to compare with; log the training reference with its target.",
                field="reference",
            )
        reference = reference.assign(**{prediction: reference[target]})
    prediction_kind = "numerical" if task_type == "regression" else "categorical"
    snapshots: dict[str, Any] = {
        "data": data_report(
            reference, current, features=features, kinds=kinds, prediction=prediction, prediction_kind=prediction_kind
        )
    }
    if target in current.columns and current[target].notna().any():
        snapshots["quality"] = quality_report(
            current,
            reference if has_ref_quality else None,
            task_type=task_type,
            target=target,
            prediction=prediction,
        )
    return MonitoringReport(snapshots=snapshots)


def bare_drift_report(reference: pd.DataFrame, current: pd.DataFrame) -> Any:
    """Evidently's bare ``Report([DataDriftPreset()]).run(current, reference)`` (benchmarks, tests)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    return Report([DataDriftPreset()]).run(current, reference)
