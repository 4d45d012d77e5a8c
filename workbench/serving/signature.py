"""The model signature's input columns: what a served model reads, in the workbench's own kinds.

Its own module so that both :mod:`workbench.serving.model_loader` (which checks input
against the columns) and :mod:`workbench.serving.fast_path` (which compiles a Pipeline for
them) depend on it, instead of on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.errors import InvalidInput

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
