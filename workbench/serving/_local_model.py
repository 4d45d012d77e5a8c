"""A registered model version read from MLflow's registry tables and its local files, without importing MLflow.

Why (issue 16 item 3): importing MLflow was the largest piece of ``workbench score``'s start-up
(its tracking store, entities and optional integrations), paid by every batch job only to turn
``models:/<name>@<alias>`` into a folder and unpack one skops file. For the usual home (a SQL
tracking store and ``file://`` artifacts) the same answers come from three small queries and a
YAML file:

- the alias's version, the version's run id, tags and download location, from the
  ``registered_model_aliases``, ``model_versions`` and ``model_version_tags`` tables, read as
  MLflow 3.17's SQL registry store reads them (a version whose stage is ``Deleted_Internal`` does
  not exist; without ``MLFLOW_ENABLE_WORKSPACES`` every model is in the ``default`` workspace);
- the signature and flavor from the ``MLmodel`` file, parsed with ``yaml.safe_load`` as
  ``mlflow.models.Model.load`` does;
- the Pipeline from ``skops.io.load(path, trusted=<the flavor's trusted types>)``, the call
  ``mlflow.sklearn.load_model`` makes for the skops format.

It is a contract on MLflow's internals, so it is checked and narrow: :data:`REGISTRY_COLUMNS` are
compared with the live tables once per store, and anything else (a tracking server, another
artifact scheme, workspaces on, the ``latest`` alias, a signature or flavor beyond plain named
columns and skops, ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` set, an alias or version not found)
makes :func:`read_local_model` return None, and the caller asks MLflow, with MLflow's answers and
errors.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.db.handles import Handles
from workbench.serving.signature import SIGNATURE_KINDS, InputColumn
from workbench.settings import Settings

logger = logging.getLogger("workbench.serving")

# What the reader relies on in MLflow's registry tables (``workspace`` is used when present).
REGISTRY_COLUMNS: dict[str, tuple[str, ...]] = {
    "registered_model_aliases": ("name", "alias", "version"),
    "model_versions": ("name", "version", "run_id", "source", "storage_location", "current_stage"),
    "model_version_tags": ("name", "version", "key", "value"),
}
DELETED_STAGE = "Deleted_Internal"  # mlflow.entities.model_registry.model_version_stages.STAGE_DELETED_INTERNAL
# The column types of an MLflow ``ColSpec`` (mlflow.types.DataType's names) that map to one input column.
_SIMPLE_TYPES = frozenset(SIGNATURE_KINDS)
_SPEC_KEYS = frozenset({"type", "name", "required"})

# Per tracking URI: (the store has the workspace column, the differences found; empty: usable).
_checks: Handles[tuple[bool, list[str]]] = Handles("serving.registry_check")


@dataclass(frozen=True)
class LocalModel:
    """What :func:`workbench.serving.model_loader.load_model` needs of a version, read without MLflow."""

    version: str
    run_id: str | None
    tags: dict[str, str]
    flavors: dict[str, Any]
    columns: list[InputColumn]
    model_file: Path
    trusted_types: list[str] | None


def _check_store(uri: str) -> tuple[bool, list[str]]:
    from sqlalchemy import inspect

    from workbench.tracking import schema_problems
    from workbench.tracking._sql_store import mlflow_engine

    engine = mlflow_engine(uri)
    problems = schema_problems(engine, REGISTRY_COLUMNS)
    if problems:
        logger.info("MLflow registry tables differ from what the workbench reads (%s); models load through MLflow",
                    "; ".join(problems))
        return False, problems
    names = {column["name"] for column in inspect(engine).get_columns("model_versions")}
    return "workspace" in names, []


def _registry_row(settings: Settings, name: str, alias: str, version: str | None) -> tuple[Any, dict[str, str]] | None:
    """(the model_versions row, its tags) of ``name`` at ``alias`` or ``version``; None when not answerable here."""
    from sqlalchemy import text

    from workbench.tracking import is_sql_uri, tracking_store_missing, workspaces_enabled
    from workbench.tracking._sql_store import mlflow_engine

    uri = settings.mlflow_tracking_uri
    if not is_sql_uri(uri) or tracking_store_missing(settings) or workspaces_enabled():
        return None
    has_workspace, problems = _checks.get(uri, lambda: _check_store(uri))
    if problems:
        _checks.forget(uri)  # checked again next time: MLflow may not have made its tables yet
        return None
    where = " AND workspace = 'default'" if has_workspace else ""
    with mlflow_engine(uri).connect() as connection:
        if version is None:
            found = connection.execute(text(f"SELECT version FROM registered_model_aliases WHERE name = :name "
                                            f"AND alias = :alias{where}"), {"name": name, "alias": alias}).first()
            if found is None:
                return None
            version = str(found[0])
        if not version.isdigit():
            return None
        params = {"name": name, "version": int(version)}
        row = connection.execute(text(
            "SELECT version, run_id, storage_location, source FROM model_versions WHERE name = :name AND "
            f"version = :version AND current_stage != '{DELETED_STAGE}'{where}"), params).first()
        if row is None:
            return None
        tags = {str(key): value for key, value in connection.execute(text(
            "SELECT t.key, t.value FROM model_version_tags t WHERE t.name = :name AND t.version = :version"
            + where.replace("workspace", "t.workspace")), params)}
    return row, tags


def _local_dir(uri: str | None) -> Path | None:
    """The folder of a ``file://`` URI or absolute path; None for any other scheme (MLflow downloads those)."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        path = Path(url2pathname(parsed.path))
    elif parsed.scheme == "" and os.path.isabs(uri):
        path = Path(uri)
    else:
        return None
    return path if path.is_dir() else None


def signature_inputs(mlmodel: dict[str, Any]) -> list[InputColumn] | None:
    """The input columns of an MLmodel's signature when every input is a plain named column; else None."""
    signature = mlmodel.get("signature")
    raw = signature.get("inputs") if isinstance(signature, dict) else None
    if not isinstance(raw, str):
        return None
    specs = json.loads(raw)
    if not isinstance(specs, list) or not specs:
        return None
    columns = []
    for spec in specs:
        if (not isinstance(spec, dict) or not set(spec) <= _SPEC_KEYS or not isinstance(spec.get("type"), str)
                or spec["type"] not in _SIMPLE_TYPES or not isinstance(spec.get("name"), str) or not spec["name"]
                or not isinstance(spec.get("required", True), bool)):
            return None
        columns.append(InputColumn(name=spec["name"], kind=SIGNATURE_KINDS[spec["type"]],
                                   required=spec.get("required", True)))
    return columns


def read_local_model(settings: Settings, name: str, *, alias: str, version: str | None) -> LocalModel | None:
    """``name`` at ``alias`` (or ``version``) from the registry tables and its local folder; None to ask MLflow."""
    import yaml

    if "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" in os.environ:  # MLflow's loader decides what the setting allows
        return None
    found = _lookup(settings, name, alias, version)
    if found is None:
        return None
    row, tags = found
    folder = _local_dir(row[2] or row[3])
    if folder is None or not (folder / "MLmodel").is_file():
        return None
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    if not isinstance(flavors, dict):
        return None
    columns = signature_inputs(mlmodel)
    sklearn_flavor = flavors.get("sklearn")
    if (columns is None or not isinstance(sklearn_flavor, dict) or sklearn_flavor.get("code") is not None
            or sklearn_flavor.get("serialization_format") != "skops"
            or not isinstance(sklearn_flavor.get("pickled_model"), str)):
        return None
    trusted = sklearn_flavor.get("skops_trusted_types")
    return LocalModel(version=str(row[0]), run_id=row[1], tags=tags, flavors=flavors, columns=columns,
                      model_file=folder / sklearn_flavor["pickled_model"], trusted_types=trusted)


def alias_version(settings: Settings, name: str, alias: str) -> str | None:
    """The version ``name@alias`` points at, from the registry tables; None to ask MLflow.

    The web service's alias poller asks this every few seconds: through MLflow its first answer
    imported MLflow in the poller thread (~0.9 s of CPU holding the GIL, while requests waited).
    """
    found = _lookup(settings, name, alias, None)
    return None if found is None else str(found[0][0])


def _lookup(settings: Settings, name: str, alias: str, version: str | None) -> tuple[Any, dict[str, str]] | None:
    """:func:`_registry_row`, or None where MLflow must answer (the ``latest`` alias, an unreadable store)."""
    if alias.lower() == "latest" and version is None:  # MLflow's own rule (the highest version), not an alias row
        return None
    try:
        return _registry_row(settings, name, alias, version)
    except Exception as exc:  # an unreadable store: MLflow reports it in its own words
        logger.info("reading the registry tables failed (%s); asking MLflow", exc)
        return None
