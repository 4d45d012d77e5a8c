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
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInput, check_choice
from workbench.monitoring.drift import DEFAULT_DRIFT_SHARE

SECTIONS = ("data", "quality")
# Key of the dump that holds the notes (not a section; sections are plain names).
NOTES_KEY = "__notes__"
TASK_TYPES = ("classification", "regression")
# Metric names longer than this are cut, so they fit the history table's column.
MAX_METRIC_NAME = 250


@dataclass
class MonitoringReport:
    """The Evidently snapshots of one monitoring run, by section (see the module docstring)."""

    snapshots: dict[str, Any]
    # Why a section is missing (Evidently could not compute it on this window), by section.
    notes: dict[str, str] = field(default_factory=dict)

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
        payload: dict[str, Any] = {name: snap.dumps() for name, snap in self.snapshots.items()}
        if self.notes:
            payload[NOTES_KEY] = dict(self.notes)
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
    notes = payload.pop(NOTES_KEY, {})
    snapshots = {name: Snapshot.loads(text) for name, text in payload.items()}
    return MonitoringReport(snapshots=snapshots, notes=dict(notes))


def evidently_html(report: MonitoringReport, *, section: str = "data") -> str:
    """Evidently's own standalone HTML of one section, for the download button.

    When a section could not be computed (see :attr:`MonitoringReport.notes`), the HTML of the
    ``data`` section says so at the top, so the download never hides a missing part.
    """
    check_choice("section", section, tuple(report.snapshots) or SECTIONS)
    page = str(report.snapshots[section].get_html_str(as_iframe=False))
    if not report.notes:
        return page
    items = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>" for name, text in sorted(report.notes.items())
    )
    banner = f'<div class="workbench-notes" style="padding:8px;border:1px solid #c00"><ul>{items}</ul></div>'
    match = re.search(r"<body[^>]*>", page)
    return page[: match.end()] + banner + page[match.end() :] if match else banner + page


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
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> Any:
    """Data drift, prediction drift and data-quality summary in one Evidently snapshot.

    ``drift_share`` is the workbench's drift threshold (the canvas's share of drifted
    columns), passed to Evidently so its report draws the same line (not its default 0.5).

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
        metrics.append(DataDriftPreset(columns=tested, drift_share=float(drift_share)))
    if prediction:
        metrics.append(ValueDrift(column=prediction))
    metrics.append(DataSummaryPreset(columns=columns))
    cur, ref = current[columns], reference[columns]
    if prediction and prediction_kind == "categorical":
        # Labels logged through JSON may be floats (1.0); Evidently rejects float labels.
        cur, ref = _class_labels_together(cur, ref, [prediction])
    report = Report(metrics, include_tests=True)
    return report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
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


def _class_labels_together(
    current: pd.DataFrame, reference: pd.DataFrame | None, columns: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """:func:`_class_labels` decided once over both frames, so both hold labels of one type.

    Deciding per frame made a reference of "0"/"1" strings meet a window of ints 0/1, and
    Evidently then failed with ``KeyError: 1``.
    """
    if reference is None:
        return _class_labels(current, columns), None
    both = _class_labels(pd.concat([current[list(columns)], reference[list(columns)]], ignore_index=True), columns)
    cur, ref = current.copy(), reference.copy()
    for c in columns:
        cur[c] = both[c].iloc[: len(current)].to_numpy()
        ref[c] = both[c].iloc[len(current) :].to_numpy()
    return cur, ref


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
        labelled, ref = _class_labels_together(labelled, ref, [target, prediction])
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
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> MonitoringReport:
    """The whole Evidently report of one window: the ``data`` section, plus ``quality`` when labelled.

    When the reference has no prediction column, the reference's target stands in for it, so
    prediction drift compares the window's predictions with the training labels. ``drift_share``
    is the workbench's drift threshold (pass the canvas's). When Evidently cannot compute the
    quality section on this window (one class only: "Cannot compute TPR"; a class the reference
    lacks), it is first retried without the reference comparison, then left out with a note
    that the HTML shows, instead of failing the whole report.
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
            reference,
            current,
            features=features,
            kinds=kinds,
            prediction=prediction,
            prediction_kind=prediction_kind,
            drift_share=drift_share,
        )
    }
    notes: dict[str, str] = {}
    if target in current.columns and current[target].notna().any():
        attempts = [reference, None] if has_ref_quality else [None]
        errors: list[BaseException] = []
        for i, ref in enumerate(attempts):
            try:
                snapshots["quality"] = quality_report(
                    current, ref, task_type=task_type, target=target, prediction=prediction
                )
                if i:
                    notes["quality"] = f"not compared with the reference ({_evidently_failure(errors[-1])})."
                break
            except InvalidInput:
                raise
            except BaseException as exc:  # Evidently raises some as BaseException (see _reraise_fatal)
                errors.append(_reraise_fatal(exc))
        else:
            notes["quality"] = f"Evidently could not compute it on this window: {_evidently_failure(errors[-1])}"
    return MonitoringReport(snapshots=snapshots, notes=notes)


def _reraise_fatal(exc: BaseException) -> BaseException:
    """``exc`` unless it must stop the process (Ctrl-C, exit), which is raised again.

    Evidently raises some failures as bare ``BaseException`` subclasses
    (``ReferenceMetricNotFound``), which ``except Exception`` would let escape.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        raise exc
    return exc


def _evidently_failure(exc: BaseException) -> str:
    """A one-line reason for a failed Evidently run."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def bare_drift_report(reference: pd.DataFrame, current: pd.DataFrame) -> Any:
    """Evidently's bare ``Report([DataDriftPreset()]).run(current, reference)`` (benchmarks, tests)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    return Report([DataDriftPreset()]).run(current, reference)
