"""``POST /predict`` of the web service as a bare ASGI app, answered before FastAPI's routing.

A one-record request is a few hundred microseconds of work; FastAPI's middleware stack,
dependency solving and response-model handling cost as much again. :class:`PredictEndpoint`
does what they did for this one route, in the same order and with the same answers:

1. a body over the size limit is refused with 413 (:func:`workbench.serving.web_input.read_body`);
2. a missing or wrong bearer token gets FastAPI's 401 (``{"detail": ...}``, ``WWW-Authenticate``);
3. the body is parsed and shape-checked, then scored by the same contract as batch and stream
   (a refusal is the small 422 body of :func:`workbench.serving.web_input.problem`);
4. the answer is encoded once with ``json.dumps``; a value that is not plain JSON (a NaN
   probability) is encoded by the documented response model, as FastAPI did;
5. any other error is FastAPI's: a :class:`WorkbenchError` its status and detail, anything else
   a plain-text 500 (and the traceback in the server log).

The app (:func:`workbench.serving.web.create_app`) sends ``POST /predict`` here before routing,
and its documented FastAPI route delegates here too, so there is one implementation.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from workbench.errors import InvalidInput, WorkbenchError
from workbench.serving.fast_path import FAST_PATH_MAX_ROWS
from workbench.serving.rollout import VariantCounters, answer
from workbench.serving.web_input import check_records, logged_features, parse_body, problem, read_body
from workbench.serving.web_metrics import ServiceStats

logger = logging.getLogger("workbench.serving.web")

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
UNAUTHORIZED = json.dumps({"detail": "Missing or wrong bearer token."}, separators=(",", ":")).encode()


def _json(content: Any) -> bytes:
    """Starlette's JSONResponse encoding (compact, UTF-8, no NaN)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


async def respond(send: Send, status: int, body: bytes, media_type: bytes = b"application/json",
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """One response, its headers in Starlette's order (given ones, then length and type)."""
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode()), (b"content-type", media_type)]})
    await send({"type": "http.response.body", "body": body})


class PredictEndpoint:
    """``POST /predict``: one record (an object) or several (a list of objects), as an ASGI app.

    ``state`` holds the deployment id, ``rollout`` the router and shadow scorer, and ``writer``
    the prediction-log writer once the app's lifespan has started; ``authorized(header)`` checks
    the ``Authorization`` header; ``encode_other`` encodes an answer ``json.dumps`` refuses.
    """

    def __init__(self, *, holder: Any, stats: ServiceStats, counters: VariantCounters, state: dict[str, Any],
                 rollout: dict[str, Any], authorized: Callable[[str | None], bool], max_body_bytes: int,
                 max_records: int, encode_other: Callable[[dict[str, Any]], bytes]) -> None:
        self.holder = holder
        self.stats = stats
        self.counters = counters
        self.state = state
        self.rollout = rollout
        self.authorized = authorized
        self.max_body_bytes = max_body_bytes
        self.max_records = max_records
        self.encode_other = encode_other
        self.writer: Any = None
        from workbench.prediction_log import make_row  # imported with the app, not with this module

        self.make_row = make_row

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._handle(scope, receive, tracked)
        except Exception:
            # Starlette's ServerErrorMiddleware: a plain 500 if nothing was sent, and the traceback logged.
            if not started:
                await respond(send, 500, b"Internal Server Error", b"text/plain; charset=utf-8")
            raise

    async def _handle(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        begun = time.perf_counter()
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        raw = await read_body(scope, receive, self.max_body_bytes, self.stats, send)
        if raw is None:
            return  # refused (413, sent) or the client went away
        if not self.authorized(authorization):
            self.stats.observe("/predict", 401)
            await respond(send, 401, UNAUTHORIZED, headers=((b"www-authenticate", b"Bearer"),))
            return
        shadow_copy: list[Callable[[], Any]] = []
        try:
            body = parse_body(raw)
            single = not isinstance(body, list)
            items = [body] if single else list(body)
            check_records(items, self.max_records)
            # A big list is conformed, predicted, logged and encoded off the event loop, so
            # /health and small requests keep answering meanwhile.
            if len(items) > FAST_PATH_MAX_ROWS:
                from starlette.concurrency import run_in_threadpool

                content = await run_in_threadpool(self.score, items, single, begun, shadow_copy)
            else:
                content = self.score(items, single, begun, shadow_copy)
        except InvalidInput as exc:
            self.stats.observe("/predict", 422)
            await respond(send, 422, _json(problem(exc)))
            return
        except WorkbenchError as exc:
            status = exc.http_status if 400 <= exc.http_status < 600 else 400
            self.stats.observe("/predict", status)
            await respond(send, status, _json({"detail": str(exc)}))
            return
        if not isinstance(content, bytes):
            for copy in shadow_copy:
                copy()
            content = self.encode_other(content)
            shadow_copy = []
        await respond(send, 200, content)
        # After the last byte, on the event loop: the challenger's worker wakes only once this answer has left.
        for job in shadow_copy:
            job()

    def score(self, items: list[dict[str, Any]], single: bool, started: float,
              shadow_copy: list[Callable[[], Any]]) -> bytes | dict[str, Any]:
        """Predict and log validated-shape records; the JSON answer (bytes), or a dict when not plain JSON.

        During a canary or ab rollout each record is answered by its variant (input order kept;
        the top-level ``model_version`` is the champion's); in shadow mode the champion answers
        and ``shadow_copy`` receives the job that queues the copy for the challenger, which the
        caller runs once the response is sent.
        """
        model = self.holder.model  # one read: a swap in between does not mix versions
        router = self.rollout["router"]
        active = router.active if router is not None else None  # one read, like the model
        base = uuid.uuid4().hex
        request_ids = [base] if single else [f"{base}-{i}" for i in range(len(items))]
        if active is None:
            results = model.predict_records(items)
            variants: list[str | None] = [None] * len(items)
            versions = [model.version] * len(items)
        else:
            answered = answer(model, active, items, request_ids, counters=self.counters)
            results, variants, versions = answered.results, answered.variants, answered.versions
        features = [logged_features(item, model.columns) for item in items]
        latency = time.perf_counter() - started
        per_row_ms = latency * 1000 / len(items)
        dep_id = self.state["deployment_id"]
        rollout_id = active.plan.rollout_id if active is not None else None
        make_row = self.make_row
        self.writer.extend([
            make_row(deployment_id=dep_id, request_id=rid, features=feat, prediction=res["prediction"],
                     proba=res["proba"], latency_ms=per_row_ms, variant=variant, rollout_id=rollout_id)
            for rid, feat, res, variant in zip(request_ids, features, results, variants, strict=True)
        ])
        if active is not None and active.plan.shadow:
            shadow = self.rollout["shadow"]
            shadow_copy.append(lambda: shadow.submit(active, items, request_ids))
        self.stats.observe("/predict", 200, latency, predictions=len(items))
        if active is None:
            out = [{"request_id": rid, **res, "model_version": model.version}
                   for rid, res in zip(request_ids, results, strict=True)]
        else:
            out = [{"request_id": rid, **res, "model_version": version, "variant": variant}
                   for rid, res, version, variant in zip(request_ids, results, versions, variants, strict=True)]
        content = out[0] if single else {"predictions": out, "model_version": model.version}
        try:
            # Encoded here rather than re-validated against the response model (which documents
            # it): the values come from the model and are plain JSON types already.
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            return content


def service_app(**kwargs: Any) -> Any:
    """A FastAPI app (``FastAPI(**kwargs)``) that sends ``POST /predict`` to its ``predict_endpoint`` first.

    Everything else (and ``/predict`` under a ``root_path``, through the documented route) takes
    FastAPI's middleware and routing as usual.
    """
    from fastapi import FastAPI

    class ServiceApp(FastAPI):
        predict_endpoint: PredictEndpoint | None = None

        async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:  # type: ignore[override]
            endpoint = self.predict_endpoint
            if (endpoint is not None and scope["type"] == "http" and scope["path"] == "/predict"
                    and scope["method"] == "POST" and not scope.get("root_path")):
                await endpoint(scope, receive, send)
                return
            await super().__call__(scope, receive, send)  # type: ignore[arg-type]

    return ServiceApp(**kwargs)


def delegated(endpoint: PredictEndpoint) -> Any:
    """A response that hands the request to ``endpoint`` (the documented route's answer, when routed)."""
    from starlette.responses import Response

    class Delegated(Response):
        def __init__(self) -> None:
            self.background = None

        async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:  # type: ignore[override]
            await endpoint(scope, receive, send)

    return Delegated()
