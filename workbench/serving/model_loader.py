"""Load ``models:/<project>@<alias>`` once, predict on the raw sklearn Pipeline, hot-swap on alias moves.

Every serving mode (batch, web, stream) goes through :class:`ServedModel`:

- it resolves the alias to a version (through MLflow's registry tables and the local files when
  they allow it, :mod:`workbench.serving._local_model`, else an ``MlflowClient`` with explicit
  URIs) and remembers the version it serves;
- it predicts on the sklearn Pipeline itself, not through the pyfunc wrapper, whose
  per-call schema enforcement costs more than the model on small inputs;
- it checks input against the signature once per batch, with vectorised dtype checks;
- for the web service and the stream consumer, inputs of a few records skip the Pipeline's
  pandas-heavy preprocessing through a compiled equivalent (:mod:`workbench.serving.fast_path`),
  used only when it reproduced the Pipeline's outputs on probe records at load time;
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
from workbench.serving._skops_import import import_skops_quickly
from workbench.serving.fast_path import (
    FAST_PATH_MAX_ROWS,
    CompiledPipeline,
    NotCompilable,
    compile_pipeline,
    outputs_agree,
    outputs_identical,
    probe_records,
)
from workbench.serving.signature import (
    THRESHOLD_TAG,
    CleanRecords,
    InputColumn,
    apply_threshold,
    conform,
    optional_columns,
    signature_columns,
    with_optional,
)
from workbench.settings import Settings, get_settings

logger = logging.getLogger("workbench.serving")

def column_arrays(records: list[dict[str, Any]], columns: list[InputColumn]) -> dict[str, Any]:
    """One typed array per column, built straight from records whose types were already validated.

    Integers without a missing value are int64, numbers (or integers with one) float64 with
    NaN for missing, booleans without a missing value bool, date-times a pandas Series,
    anything else an object array.
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
    return data


def frame_from_validated(records: list[dict[str, Any]], columns: list[InputColumn]) -> pd.DataFrame:
    """A model-input frame built straight from records whose types were already validated (web requests).

    Skips :func:`conform`'s checks: the request model checked every field, so the
    columns can be typed directly, which costs a fraction of inferring and re-casting them.
    """
    return pd.DataFrame(column_arrays(records, columns))


def _json_value(value: Any) -> Any:
    """A JSON-safe python value (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


Prediction = tuple[np.ndarray, np.ndarray | None]


@dataclass
class ServedModel:
    """A loaded model version: the sklearn Pipeline, its input columns and its classes.

    ``fast`` is the Pipeline compiled for a few records at a time (see
    :mod:`workbench.serving.fast_path`), set by :meth:`prepare_fast_path` only when it
    reproduced the Pipeline's outputs on probe records; ``fast_reason`` says why it is or
    is not used.
    """

    name: str
    alias: str
    version: str
    run_id: str | None
    pipeline: Any
    columns: list[InputColumn]
    classes: list[Any] | None = None
    loaded_at: float = field(default_factory=time.time)
    fast: CompiledPipeline | None = None
    fast_reason: str = "not prepared"
    # The compiled path's column arrays for clean records, without conform's DataFrame.
    clean: CleanRecords | None = None
    # The ML Canvas's decision threshold, applied to binary classifiers (None: arg-max).
    threshold: float | None = None
    threshold_source: str = "default"

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def class_labels(self) -> list[str]:
        """Class names as strings (column suffixes and JSON keys)."""
        return [str(c) for c in self.classes or []]

    @property
    def applied_threshold(self) -> float | None:
        """The threshold labels are decided with: binary classifiers only (multiclass: arg-max)."""
        return self.threshold if self.classes is not None and len(self.classes) == 2 else None

    def _from_proba(self, proba: np.ndarray) -> Prediction:
        # Labels from the probabilities (the canvas's threshold for a binary classifier, the
        # arg-max otherwise): every path decides alike, without a second pass through the pipeline.
        assert self.classes is not None
        return apply_threshold(proba, self.classes, self.applied_threshold), proba

    def _predict_pipeline(self, x: pd.DataFrame) -> Prediction:
        import sklearn

        # The parameters were validated when the model was fitted; re-validating them on every
        # call costs more than the prediction of a single record.
        with sklearn.config_context(skip_parameter_validation=True):
            if self.classes is not None:
                return self._from_proba(np.asarray(self.pipeline.predict_proba(x)))
            return np.asarray(self.pipeline.predict(x)), None

    def _predict_compiled(self, arrays: dict[str, Any], n_rows: int) -> Prediction:
        import sklearn

        fast = self.fast
        if fast is None:
            raise RuntimeError("no compiled path for this model")
        if not fast.calls_sklearn:  # entering sklearn's config context costs more than a one-row walk's level
            return self._fast_outputs(fast, arrays, n_rows)
        with sklearn.config_context(skip_parameter_validation=True):
            return self._fast_outputs(fast, arrays, n_rows)

    def _fast_outputs(self, fast: CompiledPipeline, arrays: dict[str, Any], n_rows: int) -> Prediction:
        if self.classes is not None:
            return self._from_proba(fast.predict_proba(arrays, n_rows))
        return fast.predict(arrays, n_rows), None

    def _try_compiled(self, arrays: dict[str, Any], n_rows: int) -> Prediction | None:
        try:
            return self._predict_compiled(arrays, n_rows)
        except Exception as exc:  # the Pipeline decides what is an error, with its own message
            logger.debug("compiled path failed (%s); predicting on the Pipeline", exc)
            return None

    def predict_frame(self, frame: pd.DataFrame, *, checked: bool = False) -> Prediction:
        """Check ``frame`` against the signature and predict; returns (predictions, probabilities or None).

        ``checked=True`` means the frame is already typed per the signature (skip the check).
        Frames of at most ``FAST_PATH_MAX_ROWS`` rows take the compiled path when there is one.
        """
        x = frame if checked else conform(frame, self.columns)
        if self.fast is not None and 0 < len(x) <= FAST_PATH_MAX_ROWS:
            result = self._try_compiled(self._column_arrays(x), len(x))
            if result is not None:
                return result
        return self._predict_pipeline(x)

    def predict_records(self, records: list[dict[str, Any]], *, validated: bool = False) -> list[dict[str, Any]]:
        """Predict a list of records; each result is ``{"prediction": ..., "proba": {class: p} | None}``.

        ``validated=True``: the records' types were checked already (the web request model).
        """
        result: Prediction | None = None
        small = self.fast is not None and 0 < len(records) <= FAST_PATH_MAX_ROWS
        if validated and small:
            result = self._try_compiled(column_arrays(records, self.fast_columns), len(records))
        elif small and self.clean is not None:
            # Clean records (the usual request) skip conform's DataFrame; anything else goes through it.
            arrays = self.clean.arrays(records)
            if arrays is not None:
                result = self._try_compiled(arrays, len(records))
        if result is None and validated:
            result = self._predict_pipeline(frame_from_validated(records, self.columns))
        if result is None:
            result = self.predict_frame(conform(records, self.columns), checked=True)
        predictions, proba = result
        labels = self.class_labels
        results: list[dict[str, Any]] = []
        for i, prediction in enumerate(predictions.tolist()):
            row_proba = None
            if proba is not None:
                row_proba = {label: float(p) for label, p in zip(labels, proba[i].tolist(), strict=True)}
            results.append({"prediction": _json_value(prediction), "proba": row_proba})
        return results

    def _column_arrays(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The columns of a conformed frame that the compiled path reads, as arrays."""
        assert self.fast is not None
        return {name: frame[name].to_numpy() for name in self.fast.used_columns}

    @property
    def fast_columns(self) -> list[InputColumn]:
        """The signature columns the compiled path reads (the others are dropped by the model)."""
        used = set(self.fast.used_columns) if self.fast is not None else set()
        return [c for c in self.columns if c.name in used]

    def prepare_fast_path(self) -> None:
        """Compile the Pipeline for small inputs and keep the result only if it agrees with the Pipeline.

        The check runs both paths on probe records (every known category, unseen categories,
        missing values, a spread of numbers), one at a time and together, through both the
        web route (validated records) and the batch/stream route (a conformed frame).
        """
        self.fast = self.clean = None
        try:
            compiled = compile_pipeline(self.pipeline, self.columns)
        except NotCompilable as exc:
            self.fast_reason = f"pipeline: {exc}"
            return
        except Exception as exc:  # an unexpected fitted state: serve on the Pipeline
            self.fast_reason = f"pipeline: could not compile ({type(exc).__name__}: {exc})"
            return
        records = probe_records(self.columns, self.pipeline)
        self.fast = compiled
        clean = CleanRecords(self.columns, compiled.used_columns)
        try:
            # Flat forests promise sklearn's numbers exactly: anything less and the Pipeline serves.
            exact = bool(getattr(compiled.estimator, "exact", False))
            mismatch = self._first_mismatch(records, outputs_identical if exact else outputs_agree, clean)
        except Exception as exc:  # the check itself failed: do not trust the compiled path
            mismatch = f"the probe records ({type(exc).__name__}: {exc})"
        finally:
            self.fast = None
        if mismatch is not None:
            self.fast_reason = f"pipeline: the compiled path disagreed with the Pipeline on {mismatch}"
            logger.warning("%s@%s v%s: %s", self.name, self.alias, self.version, self.fast_reason)
            return
        self.fast, self.clean = compiled, clean
        self.fast_reason = (f"compiled: preprocessing as numpy, then {compiled.estimator_note}; "
                            f"{len(records)} probe records agree with the Pipeline")

    def _first_mismatch(self, records: list[dict[str, Any]], agree: Callable[[Prediction, Prediction], bool],
                        clean: CleanRecords) -> str | None:
        """The first probe input on which the compiled path and the Pipeline differ, or None."""
        batches = [[record] for record in records]
        batches += [records[i : i + FAST_PATH_MAX_ROWS] for i in range(0, len(records), FAST_PATH_MAX_ROWS)]
        for batch in batches:
            routes: list[tuple[pd.DataFrame, dict[str, Any]]] = []
            validated = frame_from_validated(batch, self.columns)
            routes.append((validated, column_arrays(batch, self.fast_columns)))
            try:
                conformed = conform(batch, self.columns)
            except InvalidInput:
                conformed = None
            if conformed is not None:
                routes.append((conformed, self._column_arrays(conformed)))
                arrays = clean.arrays(batch)
                if arrays is not None:  # the route of clean web and stream records
                    routes.append((conformed, arrays))
            for frame, arrays in routes:
                expected = _outcome(self._predict_pipeline, frame)
                got = _outcome(self._predict_compiled, arrays, len(batch))
                if isinstance(expected, Exception) or isinstance(got, Exception):
                    same = isinstance(expected, Exception) and isinstance(got, Exception)
                else:
                    same = agree(expected, got)
                if not same:
                    return f"{batch[0]!r}" + (f" and {len(batch) - 1} more records" if len(batch) > 1 else "")
        return None

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
            "decision_threshold": {
                "value": self.applied_threshold,
                "source": self.threshold_source if self.applied_threshold is not None else
                "not applied: " + ("multiclass labels are the most probable class" if self.is_classifier
                                   else "regression"),
            },
            "predict_path": {
                "small_inputs": "compiled" if self.fast is not None else "pipeline",
                "max_rows": FAST_PATH_MAX_ROWS,
                "reason": self.fast_reason,
            },
        }


def _outcome(call: Callable[..., Prediction], *args: Any) -> Prediction | Exception:
    try:
        return call(*args)
    except Exception as exc:  # both paths failing alike is agreement
        return exc


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
    settings = settings or get_settings()
    missing = NotFound(
        f"No registered model version {name}@{alias}. Register a model for project {name!r} "
        f"and set the alias {alias!r} (Experiments page, or the train pipeline) first."
    )
    from workbench.tracking import tracking_store_missing

    if tracking_store_missing(settings):  # a new home has no model (and MLflow need not be imported to say so)
        raise missing
    from workbench.serving._local_model import alias_version

    local = alias_version(settings, name, alias)  # the usual SQL registry: no MLflow import, no client
    if local is not None:
        return local
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(settings).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        raise missing from exc


def load_model(name: str, *, alias: str = "champion", version: str | None = None,
               settings: Settings | None = None, fast_path: bool = False) -> ServedModel:
    """Load ``models:/<name>@<alias>`` (or an explicit version) as a :class:`ServedModel`.

    ``fast_path`` compiles and checks the small-input path (:meth:`ServedModel.prepare_fast_path`);
    the web service and the stream consumer ask for it, batch scoring (big chunks) does not.
    A version in a SQL registry with local skops files is read without importing MLflow
    (:mod:`workbench.serving._local_model`); anything else goes through MLflow.
    """
    from workbench.serving._local_model import read_local_model

    settings = settings or get_settings()
    local = read_local_model(settings, name, alias=alias, version=version)
    if local is not None:
        check_model_format(local.flavors, name=name, version=local.version)
        import skops.io

        import_skops_quickly(settings.home / "cache")
        pipeline = skops.io.load(local.model_file, trusted=local.trusted_types)
        version, run_id, tags, columns = local.version, local.run_id, local.tags, local.columns
    else:
        version, run_id, tags, columns, pipeline = _load_through_mlflow(name, alias, version, settings)
    classes = getattr(pipeline, "classes_", None) if hasattr(pipeline, "predict_proba") else None
    threshold, source = decision_threshold(name, tags, settings)
    served = ServedModel(
        name=name,
        alias=alias,
        version=str(version),
        run_id=run_id,
        pipeline=pipeline,
        # Optional where the Pipeline imputes or ignores a column, even if the logged signature
        # (inferred from a few rows) says required: what the model accepts is the contract.
        columns=with_optional(columns, optional_columns(pipeline, [c.name for c in columns])),
        classes=[_json_value(c) for c in classes] if classes is not None else None,
        threshold=threshold,
        threshold_source=source,
    )
    if fast_path:
        served.prepare_fast_path()
    else:
        served.fast_reason = "pipeline: fast path not requested"
    return served


def _load_through_mlflow(name: str, alias: str, version: str | None, settings: Settings
                         ) -> tuple[str, str | None, dict[str, str], list[InputColumn], Any]:
    """(version, run id, version tags, signature columns, Pipeline) through MlflowClient and mlflow.sklearn."""
    version = version or resolve_alias(name, alias, settings=settings)  # NotFound on a new home, before the imports
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.models import Model

    client = _client(settings)
    model_version = client.get_model_version(name, version)
    uri = client.get_model_version_download_uri(name, version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=settings.mlflow_tracking_uri)
    meta = Model.load(local)  # the MLmodel file: YAML, no code runs
    check_model_format(meta.flavors, name=name, version=str(version))
    if (meta.flavors.get("sklearn") or {}).get("serialization_format") == "skops":
        import_skops_quickly(settings.home / "cache")  # before MLflow imports it the slow way
    pipeline = mlflow.sklearn.load_model(local)
    tags = dict(model_version.tags or {})
    return str(version), model_version.run_id, tags, signature_columns(meta.signature), pipeline


TRUST_PICKLE_VARIABLE = "WORKBENCH_TRUST_PICKLE"


def trust_pickle() -> bool:
    """True when the operator accepts loading pickled models (``WORKBENCH_TRUST_PICKLE=true``)."""
    import os

    return os.environ.get(TRUST_PICKLE_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def check_model_format(flavors: dict[str, Any], *, name: str, version: str) -> None:
    """Refuse, before anything is unpickled, a model whose loading would run code it carries.

    The workbench logs sklearn Pipelines in skops format with their trusted types, which loads
    without running pickled code. A cloudpickle or pickle model (or one with no sklearn flavor,
    whose custom loader is code) is refused with the model, the format and the setting that
    allows it, unless ``WORKBENCH_TRUST_PICKLE=true``.
    """
    sklearn_flavor = flavors.get("sklearn")
    if sklearn_flavor is None:
        raise InvalidInput(
            f"Refusing to load model {name} version {version}: it has no sklearn flavor "
            f"(flavors: {', '.join(sorted(flavors)) or 'none'}), and the workbench serves sklearn Pipelines "
            "saved in skops format. Register the model with the train pipeline.", field="model")
    fmt = str(sklearn_flavor.get("serialization_format") or "cloudpickle")
    if fmt == "skops":
        return
    if trust_pickle():
        logger.warning("loading %s version %s saved as %s: %s=true allows pickled code to run",
                       name, version, fmt, TRUST_PICKLE_VARIABLE)
        return
    raise InvalidInput(
        f"Refusing to load model {name} version {version}: it is saved in the {fmt} format, and loading "
        f"a {fmt} model runs any code it contains. Register it again in skops format (the train pipeline "
        f"does), or set {TRUST_PICKLE_VARIABLE}=true if you trust whoever registered it.", field="model")


def decision_threshold(project_slug: str, tags: dict[str, str], settings: Settings) -> tuple[float, str]:
    """The decision threshold of a model version, and where it came from.

    The version's ``workbench.decision_threshold`` tag (set at registration) wins; a version
    registered before the tag existed takes the project's ML Canvas (Decisions box) as it is now;
    0.5 when neither is there.
    """
    recorded = tags.get(THRESHOLD_TAG)
    if recorded not in (None, ""):
        try:
            return float(recorded), "model version tag " + THRESHOLD_TAG
        except ValueError:
            logger.warning("ignoring the unreadable %s tag %r", THRESHOLD_TAG, recorded)
    canvas = canvas_threshold(project_slug, settings)
    if canvas is not None:
        return canvas, "ML Canvas (Decisions box; not recorded on the version)"
    return 0.5, "default 0.5 (no ML Canvas)"


def canvas_threshold(project_slug: str, settings: Settings) -> float | None:
    """The ML Canvas's decision threshold of a project now (None without a project or canvas store)."""
    try:
        from workbench.db import session_scope
        from workbench.design.project_config import project_config
        from workbench.projects import get_project

        with session_scope(settings.db_url) as session:
            return float(project_config(session, project=get_project(session, slug=project_slug)).decision_threshold)
    except Exception as exc:  # no project row or canvas store (a model served outside the workbench)
        logger.info("no ML Canvas decision threshold for %s (%s)", project_slug, exc)
        return None


def threshold_tags(project_slug: str, classes: list[Any] | None, settings: Settings | None = None
                   ) -> dict[str, str]:
    """The model-version tag recording the decision threshold at registration (binary classifiers only).

    Registration calls this, so a served version keeps the threshold it was validated with even
    when the canvas changes later; multiclass and regression models get no tag (none applies).
    """
    if classes is None or len(classes) != 2:
        return {}
    threshold = canvas_threshold(project_slug, settings or get_settings())
    return {} if threshold is None else {THRESHOLD_TAG: repr(threshold)}


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
        fast_path: bool = True,
    ) -> None:
        self.name = name
        self.alias = alias
        self.settings = settings or get_settings()
        self.poll_seconds = poll_seconds
        self.on_swap = on_swap
        self.fast_path = fast_path
        self.model: ServedModel = load_model(name, alias=alias, settings=self.settings, fast_path=fast_path)
        self.swaps = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_now(self) -> bool:
        """Re-resolve the alias; load and swap in the new version if it moved. True when swapped."""
        version = resolve_alias(self.name, self.alias, settings=self.settings)
        if version == self.model.version:
            return False
        new_model = load_model(self.name, alias=self.alias, version=version, settings=self.settings,
                               fast_path=self.fast_path)
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
