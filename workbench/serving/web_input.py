"""What the web service's /predict does with a body before the scoring contract sees it.

The body is parsed here (bounded nesting, JSON only), its shape checked (a record or a list of
at most ``max_records`` objects), and a refusal turned into a small 422 body: one error and a
count, never one error per field per record. The records then go to the same
:func:`workbench.serving.signature.conform` as batch chunks and stream events.
"""

from __future__ import annotations

import json
from typing import Any

from workbench.errors import InvalidInput
from workbench.serving.signature import InputColumn


def body_schema(records_type: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of a /predict body (one record or a list) and its component definitions."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(records_type).json_schema(ref_template="#/components/schemas/{model}")
    return schema, schema.pop("$defs", {})


# JSON nesting deeper than this is refused before any record is looked at (a record is flat).
MAX_BODY_DEPTH = 32


def depth_ok(raw: bytes, limit: int) -> bool:
    """True when the brackets of a JSON text never nest deeper than ``limit`` (strings skipped)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return True  # fewer brackets than the limit cannot nest deeper (C-speed counts: the common case)
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def parse_body(raw: bytes) -> Any:
    """The JSON body of /predict; InvalidInput when it is not JSON or nests too deep."""
    if len(raw) > 4096 and not depth_ok(raw, MAX_BODY_DEPTH):
        raise InvalidInput(f"Request body nests deeper than {MAX_BODY_DEPTH} levels; send flat records.",
                           field="body")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("Request body is not valid JSON.", field="body") from exc


def check_records(items: list[Any], max_records: int) -> None:
    """The shape checks of /predict that come before the scoring contract (count, objects)."""
    if not items:
        raise InvalidInput("Send at least one record.", field="body")
    if len(items) > max_records:
        raise InvalidInput(f"Send at most {max_records} records per call; got {len(items)}.", field="body")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput(
                f"Record {i} must be a JSON object of features; got {type(item).__name__}.", field="body")


def logged_features(item: dict[str, Any], columns: list[InputColumn]) -> dict[str, Any]:
    """The declared features of a record as logged: signature names, absent optional ones left out."""
    from workbench.data import normalize_column_name

    by_name = {normalize_column_name(k): v for k, v in item.items()}
    return {c.name: by_name[normalize_column_name(c.name)] for c in columns if normalize_column_name(c.name) in by_name}


def problem(exc: InvalidInput) -> dict[str, Any]:
    """The 422 body for a contract violation: the message, the field, one error (bounded size)."""
    field_name = exc.field if exc.field and exc.field != "body" else None
    return {
        "detail": str(exc),
        "field": field_name,
        "errors": [{"field": field_name, "loc": [field_name] if field_name else ["body"], "msg": str(exc),
                    "type": "invalid_input"}],
        "error_count": 1,
    }
