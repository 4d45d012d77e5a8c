"""Load ``models:/<project>@<alias>`` once, predict on the raw sklearn Pipeline, hot-swap on alias moves.

Every serving mode (batch, web, stream) goes through :class:`ServedModel`:

- it resolves the alias to a version through an ``MlflowClient`` with explicit URIs and
  remembers the version it serves;
- it predicts on the sklearn Pipeline itself, not through the pyfunc wrapper, whose
  per-call schema enforcement costs more than the model on small inputs;
- it checks input against the signature once per batch, with vectorised dtype checks;
- :class:`ModelHolder` polls the alias and swaps the model by replacing one reference, so
  a request in flight finishes on the model it started with and no request fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInput, NotFound
from workbench.settings import Settings, get_settings

logger = logging.getLogger("workbench.serving")

# MLflow signature type -> the workbench's kind of column. Declared as data so the web
# request model, the batch check and the stream check agree.
SIGNATURE_KINDS: dict[str, str] = {
    "long": "integer",
    "integer": "integer",
    "double": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "datetime": "datetime",
    "binary": "string",
}
KIND_LABELS = {
    "integer": "an integer",
    "number": "a number",
    "string": "text",
    "boolean": "a boolean",
    "datetime": "a date-time",
}


@dataclass(frozen=True)
class InputColumn:
    """One input column of the model signature."""

    name: str
    kind: str  # integer | number | string | boolean | datetime
    required: bool = True


def signature_columns(signature: Any) -> list[InputColumn]:
    """The input columns of an MLflow ``ModelSignature`` (column-based schemas only)."""
    if signature is None or signature.inputs is None:
        raise InvalidInput(
            "The registered model has no signature, so its input cannot be checked. "
            "Log the model with signature=infer_signature(X, y_pred) and register it again.",
            field="signature",
        )
    columns: list[InputColumn] = []
    for spec in signature.inputs.inputs:
        type_name = getattr(getattr(spec, "type", None), "name", str(getattr(spec, "type", "")))
        if not spec.name:
            raise InvalidInput(
                "The model signature has unnamed (tensor) inputs; the workbench serves models on named columns.",
                field="signature",
            )
        columns.append(
            InputColumn(
                name=str(spec.name),
                kind=SIGNATURE_KINDS.get(str(type_name), "string"),
                required=bool(getattr(spec, "required", True)),
            )
        )
    return columns


def _sample(series: pd.Series, mask: Any) -> Any:
    bad = series[mask]
    return bad.iloc[0] if len(bad) else None


def conform_frame(frame: pd.DataFrame, columns: list[InputColumn]) -> pd.DataFrame:
    """The model's input columns of ``frame``, checked and cast to the signature's types.

    Raises :class:`InvalidInput` naming the first column that is missing or has the wrong
    type. Extra columns are ignored here (callers pass them through). The checks are
    vectorised dtype checks, so they cost little next to the prediction itself.
    """
    missing = [c.name for c in columns if c.required and c.name not in frame.columns]
    if missing:
        raise InvalidInput(
            f"Input is missing column {missing[0]!r} required by the model signature "
            f"(expected columns: {', '.join(c.name for c in columns)}). Add the column and try again.",
            field=missing[0],
        )
    out: dict[str, Any] = {}
    for column in columns:
        if column.name not in frame.columns:
            out[column.name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
            continue
        series = frame[column.name]
        out[column.name] = _cast_column(series, column)
    return pd.DataFrame(out, index=frame.index)


def frame_from_validated(records: list[dict[str, Any]], columns: list[InputColumn]) -> pd.DataFrame:
    """A model-input frame built straight from records whose types were already validated (web requests).

    Skips :func:`conform_frame`'s checks: the request model checked every field, so the
    columns can be typed directly, which costs a fraction of inferring and re-casting them.
    """
    data: dict[str, Any] = {}
    for column in columns:
        values = [record.get(column.name) for record in records]
        has_none = any(v is None for v in values)
        if column.kind == "integer" and not has_none:
            data[column.name] = np.array(values, dtype="int64")
        elif column.kind in ("integer", "number"):
            data[column.name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        elif column.kind == "boolean" and not has_none:
            data[column.name] = np.array(values, dtype=bool)
        elif column.kind == "datetime":
            data[column.name] = pd.to_datetime(pd.Series(values))
        else:
            data[column.name] = np.array(values, dtype=object)
    return pd.DataFrame(data)


def _type_error(column: InputColumn, series: pd.Series, example: Any) -> InvalidInput:
    return InvalidInput(
        f"Column {column.name!r} must be {KIND_LABELS[column.kind]} (model signature); "
        f"got {series.dtype} values such as {example!r}. Fix the input file or request.",
        field=column.name,
    )


def _cast_column(series: pd.Series, column: InputColumn) -> pd.Series:
    kind = series.dtype.kind
    if column.kind in ("integer", "number"):
        if kind in "iuf":
            if column.kind == "integer" and kind == "f":
                values = series.to_numpy()
                finite = np.isfinite(values)
                fractional = finite & (values != np.floor(np.where(finite, values, 0)))
                if fractional.any():
                    raise _type_error(column, series, _sample(series, fractional))
            return series.astype("float64") if column.kind == "number" else series
        if kind == "b":
            return series.astype("int64" if column.kind == "integer" else "float64")
        if kind == "O" or str(series.dtype) in ("string", "str"):
            converted = pd.to_numeric(series, errors="coerce")
            bad = converted.isna() & series.notna()
            if bad.any():
                raise _type_error(column, series, _sample(series, bad))
            return converted
        raise _type_error(column, series, series.iloc[0] if len(series) else None)
    if column.kind == "string":
        if kind == "O":
            # Numbers inside a text column (e.g. a plan code) are cast, not rejected.
            return series
        if isinstance(series.dtype, pd.CategoricalDtype) or str(series.dtype) in ("string", "str"):
            return series.astype(object)
        return series.astype(str).astype(object)
    if column.kind == "boolean":
        if kind == "b":
            return series
        if kind in "iu" and series.isin([0, 1]).all():
            return series.astype(bool)
        raise _type_error(column, series, series.iloc[0] if len(series) else None)
    if column.kind == "datetime":
        if kind == "M":
            return series
        try:
            return pd.to_datetime(series)
        except (ValueError, TypeError) as exc:
            raise _type_error(column, series, series.iloc[0] if len(series) else None) from exc
    return series


def _json_value(value: Any) -> Any:
    """A JSON-safe python value (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@dataclass
class ServedModel:
    """A loaded model version: the sklearn Pipeline, its input columns and its classes."""

    name: str
    alias: str
    version: str
    run_id: str | None
    pipeline: Any
    columns: list[InputColumn]
    classes: list[Any] | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def class_labels(self) -> list[str]:
        """Class names as strings (column suffixes and JSON keys)."""
        return [str(c) for c in self.classes or []]

    def predict_frame(self, frame: pd.DataFrame, *, checked: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Check ``frame`` against the signature and predict; returns (predictions, probabilities or None).

        ``checked=True`` means the frame is already typed per the signature (skip the check).
        """
        import sklearn

        x = frame if checked else conform_frame(frame, self.columns)
        # The parameters were validated when the model was fitted; re-validating them on every
        # call costs more than the prediction of a single record.
        with sklearn.config_context(skip_parameter_validation=True):
            if self.classes is not None:
                proba = np.asarray(self.pipeline.predict_proba(x))
                # The arg-max of the probabilities is the prediction of every sklearn classifier
                # with an arg-max decision, and it saves a second pass through the pipeline.
                predictions = np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]
                return predictions, proba
            return np.asarray(self.pipeline.predict(x)), None

    def predict_records(self, records: list[dict[str, Any]], *, validated: bool = False) -> list[dict[str, Any]]:
        """Predict a list of records; each result is ``{"prediction": ..., "proba": {class: p} | None}``.

        ``validated=True``: the records' types were checked already (the web request model).
        """
        if validated:
            predictions, proba = self.predict_frame(frame_from_validated(records, self.columns), checked=True)
        else:
            predictions, proba = self.predict_frame(pd.DataFrame.from_records(records))
        labels = self.class_labels
        results: list[dict[str, Any]] = []
        for i, prediction in enumerate(predictions.tolist()):
            row_proba = None
            if proba is not None:
                row_proba = {label: float(p) for label, p in zip(labels, proba[i].tolist(), strict=True)}
            results.append({"prediction": _json_value(prediction), "proba": row_proba})
        return results

    def describe(self) -> dict[str, Any]:
        """What is being served, for /health and the deployment record."""
        return {
            "model": self.name,
            "alias": self.alias,
            "version": self.version,
            "run_id": self.run_id,
            "task": "classification" if self.is_classifier else "regression",
            "classes": self.class_labels if self.is_classifier else None,
            "inputs": [{"name": c.name, "kind": c.kind, "required": c.required} for c in self.columns],
        }


def _client(settings: Settings) -> Any:
    try:
        from workbench.tracking import get_client

        return get_client(settings)
    except ImportError:  # the shared tracking module is optional for this module
        from mlflow import MlflowClient

        uri = settings.mlflow_tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def resolve_alias(name: str, alias: str, *, settings: Settings | None = None) -> str:
    """The version ``alias`` of registered model ``name`` points at; NotFound with the fix when absent."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    try:
        return str(_client(settings).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        raise NotFound(
            f"No registered model version {name}@{alias}. Register a model for project {name!r} "
            f"and set the alias {alias!r} (Experiments page, or the train pipeline) first."
        ) from exc


def load_model(name: str, *, alias: str = "champion", version: str | None = None,
               settings: Settings | None = None) -> ServedModel:
    """Load ``models:/<name>@<alias>`` (or an explicit version) as a :class:`ServedModel`."""
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.models import Model

    settings = settings or get_settings()
    client = _client(settings)
    version = version or resolve_alias(name, alias, settings=settings)
    model_version = client.get_model_version(name, version)
    uri = client.get_model_version_download_uri(name, version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=settings.mlflow_tracking_uri)
    meta = Model.load(local)
    pipeline = mlflow.sklearn.load_model(local)
    classes = getattr(pipeline, "classes_", None) if hasattr(pipeline, "predict_proba") else None
    return ServedModel(
        name=name,
        alias=alias,
        version=str(version),
        run_id=model_version.run_id,
        pipeline=pipeline,
        columns=signature_columns(meta.signature),
        classes=[_json_value(c) for c in classes] if classes is not None else None,
    )


class ModelHolder:
    """The model a deployment serves, swapped atomically when its alias moves.

    Readers take ``holder.model`` once per request or batch; the poller builds the new
    model completely before replacing the reference, so nothing ever sees a half-loaded one.
    """

    def __init__(
        self,
        name: str,
        *,
        alias: str = "champion",
        settings: Settings | None = None,
        poll_seconds: float = 5.0,
        on_swap: Callable[[ServedModel], None] | None = None,
    ) -> None:
        self.name = name
        self.alias = alias
        self.settings = settings or get_settings()
        self.poll_seconds = poll_seconds
        self.on_swap = on_swap
        self.model: ServedModel = load_model(name, alias=alias, settings=self.settings)
        self.swaps = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_now(self) -> bool:
        """Re-resolve the alias; load and swap in the new version if it moved. True when swapped."""
        version = resolve_alias(self.name, self.alias, settings=self.settings)
        if version == self.model.version:
            return False
        new_model = load_model(self.name, alias=self.alias, version=version, settings=self.settings)
        self.model = new_model  # one reference assignment: atomic for readers
        self.swaps += 1
        logger.info("alias %s@%s moved: now serving version %s", self.name, self.alias, version)
        if self.on_swap is not None:
            self.on_swap(new_model)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check_now()
            except Exception as exc:  # the registry being briefly unreachable must not stop serving
                logger.warning("alias poll failed, still serving version %s: %s", self.model.version, exc)

    def start_polling(self) -> None:
        """Start the background poller (idempotent)."""
        if self._thread is None and self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._run, name=f"alias-poll-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the poller."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
