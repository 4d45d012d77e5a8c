"""What the web service's /predict does with a body before the scoring contract sees it.

The request model is generated from the signature (:func:`request_model`, for the documented
schema) and a body over the size limit is refused before it is read (:class:`BodyLimit`).

The body is parsed here (bounded nesting, JSON only), its shape checked (a record or a list of
at most ``max_records`` objects), and a refusal turned into a small 422 body: one error and a
count, never one error per field per record. The records then go to the same
:func:`workbench.serving.signature.conform` as batch chunks and stream events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput
from workbench.serving.signature import InputColumn

if TYPE_CHECKING:
    from workbench.serving.web_metrics import ServiceStats

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
PYTHON_TYPES: dict[str, Any] = {"integer": int, "number": float, "string": str, "boolean": bool, "datetime": datetime}


def _identifier(name: str, index: int, taken: set[str]) -> str:
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit() or ident.startswith("_") or ident in taken:
        ident = f"f{index}_{ident}".rstrip("_")
    taken.add(ident)
    return ident


def request_model(name: str, columns: list[InputColumn]) -> Any:
    """A pydantic model of one record, generated from the signature's columns.

    Field names keep the column names (as aliases, so any column name works); unknown keys
    are ignored; a missing or mistyped field gives a 422 whose ``loc`` names it.
    """
    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    taken: set[str] = set()
    for i, column in enumerate(columns):
        python_type = PYTHON_TYPES.get(column.kind, str)
        ident = _identifier(column.name, i, taken)
        # Integers must fit the model's int64 column: a bigger one is a 422, not an overflow later.
        low, high = (INT64_MIN, INT64_MAX) if column.kind == "integer" else (None, None)
        if column.required:
            fields[ident] = (python_type, Field(..., alias=column.name, ge=low, le=high))
        else:
            fields[ident] = (python_type | None, Field(None, alias=column.name, ge=low, le=high))
    model_name = re.sub(r"\W", "", name.title()) or "Model"
    return create_model(
        f"{model_name}Record",
        __config__=ConfigDict(extra="ignore", populate_by_name=True, allow_inf_nan=False),
        **fields,
    )


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413 before the app parses them."""

    def __init__(self, app: Any, max_bytes: int, stats: ServiceStats) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.stats = stats

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive, self.max_bytes, self.stats, send)
        if body is None:
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def read_body(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], max_bytes: int,
                    stats: ServiceStats, send: Callable[[dict[str, Any]], Awaitable[None]]) -> bytes | None:
    """The whole request body, or None once a 413 is sent (over ``max_bytes``) or the client left.

    A Content-Length over the limit is refused before anything is read; without one (or with a
    small one) the arriving chunks are counted and the request refused as soon as they exceed it.
    """
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                too_big = int(value) > max_bytes
            except ValueError:
                too_big = False
            if too_big:
                await refuse_too_big(scope, send, max_bytes, stats)
                return None
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body = message.get("body", b"")
    if len(body) > max_bytes:
        await refuse_too_big(scope, send, max_bytes, stats)
        return None
    if not message.get("more_body", False):
        return body  # the usual case: one message
    chunks = [body]
    size = len(body)
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body = message.get("body", b"")
        size += len(body)
        if size > max_bytes:
            await refuse_too_big(scope, send, max_bytes, stats)
            return None
        chunks.append(body)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def refuse_too_big(scope: dict[str, Any], send: Callable[[dict[str, Any]], Awaitable[None]], max_bytes: int,
                         stats: ServiceStats) -> None:
    """The 413 answer to a body over ``max_bytes`` (counted under the request's path)."""
    stats.observe(scope.get("path", ""), 413)
    body = json.dumps(
        {"detail": f"Request body is larger than {max_bytes} bytes; send fewer records per call."}
    ).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


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
    return logged_features_many([item], columns)[0]


def logged_features_many(items: list[dict[str, Any]], columns: list[InputColumn]) -> list[dict[str, Any]]:
    """The declared features of each record as logged (signature names; a key is matched through
    :func:`~workbench.data.normalize_column_name`, the last of equal normalised keys wins).

    Names are matched once per distinct set of keys: a stream micro-batch's events almost always
    share theirs, so normalising every key of every event again would be wasted work.
    """
    from workbench.data import normalize_column_name

    plans: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    out: list[dict[str, Any]] = []
    for item in items:
        keys = tuple(item)
        plan = plans.get(keys)
        if plan is None:
            if all(type(k) is str and k == k.strip() for k in keys) and all(c.name == c.name.strip() for c in columns):
                plan = [(c.name, c.name) for c in columns if c.name in item]  # names as ingest stores them already
            else:
                source = {normalize_column_name(k): k for k in keys}
                plan = [(c.name, source[normalize_column_name(c.name)]) for c in columns
                        if normalize_column_name(c.name) in source]
            plans[keys] = plan
        out.append({name: item[key] for name, key in plan})
    return out


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
