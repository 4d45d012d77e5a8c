"""The web service: a FastAPI app serving ``models:/<project>@<alias>``.

Endpoints: ``POST /predict`` (one record or a list), ``POST /feedback`` (the true label of a
logged prediction), ``GET /health`` and ``GET /metrics`` (Prometheus text). The request
model is generated from the model signature, so bad input gets a 422 naming the field.

With a bearer token (given as its hash, :mod:`workbench.serving.tokens`), every endpoint but
``/health`` needs it, ``/docs``, ``/redoc`` and ``/openapi.json`` included (the schema names
every input column); ``/health`` without it says only that the service is up.

The prediction log is written off the request path by a :class:`PredictionLogWriter`
(in batches every few hundred rows or 200 ms): a crash loses at most the rows not yet
flushed. The alias is polled and the model swapped atomically when it moves.

``workbench serve --workers N`` runs this app in N processes on one port
(:mod:`workbench.serving.web_workers`); ``create_app(worker_dir=...)`` builds one of them.

During a rollout (:mod:`workbench.serving.rollout`) the challenger version is loaded beside the
champion: in shadow mode the champion answers and a copy of each request is scored by the
challenger off the response path, in a child process (:mod:`workbench.serving.shadow_process`);
in canary/ab mode each record is answered by its sticky variant. Every worker polls the plan,
counts per variant and checks the guardrails.
"""

# No ``from __future__ import annotations``: FastAPI must resolve the endpoint annotations,
# which name classes built inside create_app.
import gc
import logging
import os
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput, NotFound, WorkbenchError
from workbench.serving.model_loader import ModelHolder, ServedModel
from workbench.serving.rollout import (
    DEFAULT_SHADOW_QUEUE,
    DEFAULT_SHADOW_TIMEOUT_SECONDS,
    RolloutRouter,
    VariantCounters,
    check_shadow_options,
)
from workbench.serving.sampler import MetricsSampler
from workbench.serving.shadow_process import ShadowProcess
from workbench.serving.tokens import bearer_token, check_token_hash, verify_token
from workbench.serving.web_input import BodyLimit, request_model
from workbench.serving.web_input import body_schema as _body_schema
from workbench.serving.web_metrics import (
    ServiceStats,
    SnapshotWriter,
    prometheus_text,
    read_snapshots,
    render,
    snapshot,
)
from workbench.serving.web_predict import PredictEndpoint, delegated, service_app
from workbench.settings import Settings, get_settings

logger = logging.getLogger("workbench.serving.web")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_RECORDS = 10_000
METRICS_SAMPLE_SECONDS = 5.0

def _check_token(token_hash: str | None, header: str | None) -> bool:
    """True when no token is required, or ``header`` carries the token ``token_hash`` was made from."""
    if not token_hash:
        return True
    return verify_token(token_hash, bearer_token(header))


def create_app(
    project_slug: str,
    *,
    alias: str = "champion",
    token_hash: str | None = None,
    settings: Settings | None = None,
    deployment_id: int | None = None,
    poll_seconds: float = 5.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
    log_flush_rows: int = 500,
    log_flush_ms: float = 200.0,
    metrics_seconds: float = METRICS_SAMPLE_SECONDS,
    host: str | None = None,
    port: int | None = None,
    actor: str = "",
    worker_dir: Path | None = None,
    shadow_queue: int = DEFAULT_SHADOW_QUEUE,
    shadow_timeout_seconds: float = DEFAULT_SHADOW_TIMEOUT_SECONDS,
    rollout_check_seconds: float | None = None,
) -> Any:
    """Build the FastAPI app serving ``models:/<project_slug>@<alias>``.

    The model is loaded here (so a missing model fails at start-up, not on the first
    request). On start-up the app records the deployment as running (creating the row when
    ``deployment_id`` is None) and starts the log writer, the alias poller and the metrics
    sampler; on shut-down it flushes the log and marks the deployment stopped.

    ``token_hash`` (:func:`workbench.serving.tokens.hash_token`) makes every endpoint but
    ``/health`` require ``Authorization: Bearer <token>``; the plaintext token is never needed here.

    ``worker_dir`` makes this app one worker of several (:mod:`workbench.serving.web_workers`):
    the parent process owns the deployment row (``deployment_id`` is required), this worker leaves
    its counters in that folder, and ``/metrics`` shows every live worker's, labelled by pid.

    Rollouts: the deployment's plan is polled every ``poll_seconds`` with the alias; in shadow
    mode at most ``shadow_queue`` requests wait for the challenger (more are dropped, counted)
    and each challenger call gets ``shadow_timeout_seconds``; the guardrails are checked every
    ``rollout_check_seconds`` (default: ``Settings.rollout_check_seconds``; 0 checks never, for tests).
    """
    from fastapi import Depends, FastAPI, Header, HTTPException, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from workbench.db import session_scope
    from workbench.prediction_log import PredictionLogWriter, record_feedback
    from workbench.projects import get_project
    from workbench.serving.deployments import (
        create_deployment,
        get_deployment,
        mark_running,
        mark_stopped,
        set_model_version,
    )

    settings = settings or get_settings()
    check_shadow_options(shadow_queue, shadow_timeout_seconds)  # before the model loads, not at the first rollout
    if token_hash is not None:
        token_hash = check_token_hash(token_hash)
    if worker_dir is not None and deployment_id is None:
        raise InvalidInput("a web worker needs the deployment_id its parent process created.", field="deployment_id")
    with session_scope(settings.db_url) as session:
        project_id = get_project(session, slug=project_slug).id
    state: dict[str, Any] = {"deployment_id": deployment_id}

    def on_swap(model: ServedModel) -> None:
        if state["deployment_id"] is not None:
            with session_scope(settings.db_url) as session:
                set_model_version(session, deployment_id=state["deployment_id"], model_version=model.version)

    holder = ModelHolder(project_slug, alias=alias, settings=settings, poll_seconds=poll_seconds, on_swap=on_swap)
    record = request_model(project_slug, holder.model.columns)
    stats = ServiceStats()
    counters = VariantCounters()
    # Set in the lifespan, once the deployment id is known (a rollout belongs to a deployment).
    rollout: dict[str, Any] = {"router": None, "shadow": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        from workbench.db.models import Project

        if worker_dir is None:
            # (A worker leaves the deployment row to its parent: several workers would each mark it
            # running with their own pid, and the first to stop would mark it stopped.)
            with session_scope(settings.db_url) as session:
                if state["deployment_id"] is None:
                    project = session.get(Project, project_id)
                    assert project is not None
                    state["deployment_id"] = create_deployment(
                        session, project=project, mode="web", alias=alias, status="starting", actor=actor,
                        config={"poll_seconds": poll_seconds, "auth": bool(token_hash),
                                **({"token_hash": token_hash} if token_hash else {})},
                    ).id
                mark_running(session, deployment_id=state["deployment_id"], model_version=holder.model.version,
                             pid=os.getpid(), host=host, port=port,
                             predict_path=holder.model.describe()["predict_path"])
        else:
            # Only the path small inputs take, for the page's table; every worker writes the same value
            # (and before its first snapshot, so before the parent updates the row).
            with session_scope(settings.db_url) as session:
                deployment = get_deployment(session, deployment_id=state["deployment_id"])
                predict_path = holder.model.describe()["predict_path"]
                deployment.config = {**(deployment.config or {}), "predict_path": predict_path}
        writer = PredictionLogWriter(settings.db_url, flush_rows=log_flush_rows, flush_ms=log_flush_ms)
        sampler = MetricsSampler(deployment_id=state["deployment_id"], take_counts=stats.take_sample,
                                 settings=settings, seconds=metrics_seconds)
        app.state.writer = endpoint.writer = writer
        # Shadow copies are scored in a child process: their work stays out of this one's GIL.
        shadow = ShadowProcess(project_slug, settings=settings, counters=counters, queue_size=shadow_queue,
                               timeout_seconds=shadow_timeout_seconds)
        router = RolloutRouter(project_slug, settings=settings, deployment_id=state["deployment_id"],
                               counters=counters, poll_seconds=poll_seconds, sample_seconds=metrics_seconds,
                               check_seconds=rollout_check_seconds, prepare_shadow=shadow.prepare,
                               release_shadow=shadow.release)
        router.start()
        rollout.update(router=router, shadow=shadow)
        app.state.router, app.state.shadow = router, shadow
        holder.start_polling()
        sampler.start()
        snapshots = None
        if worker_dir is not None:
            snapshots = SnapshotWriter(worker_dir, lambda: snapshot(stats, holder.model, writer, rollout_state()))
            app.state.snapshots = snapshots
            snapshots.write()  # the parent waits for this file: the worker is up
            snapshots.start()
        try:
            yield
        finally:
            holder.stop()
            shadow.stop()  # scores what was sent; its last counts reach the router's last sample
            router.stop()
            writer.close()
            sampler.stop()
            if snapshots is not None:
                snapshots.stop()
            else:
                try:
                    with session_scope(settings.db_url) as session:
                        mark_stopped(session, deployment_id=state["deployment_id"])
                except Exception as exc:  # shutting down anyway; say why the record may be stale
                    logger.warning("could not record the deployment as stopped: %s", exc)

    app = service_app(
        title=f"Workbench model service: {project_slug}@{alias}",
        description=(
            f"Serves the registered model `{project_slug}` at alias `{alias}`. The request schema comes "
            "from the model signature. Predictions are logged for monitoring."
        ),
        version="1",
        lifespan=lifespan,
        # Served below behind the token: the schema names every input column and the classes.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.holder = holder
    app.state.stats = stats
    app.state.counters = counters

    def rollout_state() -> dict[str, Any] | None:
        """The running rollout and the per-variant counts, for /metrics (None when there never was one)."""
        router, shadow = rollout["router"], rollout["shadow"]
        totals = counters.totals()
        described = router.describe() if router is not None else None
        if described is None and not totals:
            return None
        return {"active": described, "counts": totals, "shadow_waiting": shadow.waiting if shadow else 0,
                # Whether the shadow process runs in an idle CPU cgroup (None: no shadow process now).
                "shadow_idle_cpu_group": (shadow.cpu_group is not None
                                          if shadow is not None and shadow.pid is not None else None)}
    app.state.deployment = state
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, stats=stats)

    # async: a plain def dependency would hop to the thread pool on every request.
    async def authorized(authorization: str | None = Header(default=None)) -> None:
        if not _check_token(token_hash, authorization):
            raise HTTPException(status_code=401, detail="Missing or wrong bearer token.",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = []
        for error in exc.errors():
            kind = str(error.get("type", ""))
            if kind == "json_invalid":
                errors.append({"field": None, "loc": ["body"], "msg": "Request body is not valid JSON.", "type": kind})
                continue
            loc = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
            # Drop pydantic's union-branch names so "loc" ends with the field itself.
            loc = [part for part in loc if not part.endswith("Record") and not part.startswith("list[")]
            errors.append({"field": loc[-1] if loc else None, "loc": loc, "msg": error.get("msg", ""), "type": kind})
        named = [e for e in errors if e["field"]]
        # A record sent as an object also fails the "list of records" branch; that error is noise.
        errors = named or errors
        stats.observe(request.url.path, 422)
        fields_named = ", ".join(sorted({e["field"] for e in named})) or "body"
        return JSONResponse(status_code=422, content={"detail": f"Invalid input in: {fields_named}", "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        stats.observe(request.url.path, exc.status_code)  # 401, 404, 405…: counted as errors too
        return await http_exception_handler(request, exc)

    @app.exception_handler(WorkbenchError)
    async def _workbench_error(request: Request, exc: WorkbenchError) -> JSONResponse:
        status = exc.http_status if 400 <= exc.http_status < 600 else 400
        stats.observe(request.url.path, status)
        content: dict[str, Any] = {"detail": str(exc)}
        if isinstance(exc, InvalidInput) and exc.field:
            content["field"] = exc.field
        return JSONResponse(status_code=status, content=content)

    class Prediction(BaseModel):
        request_id: str
        prediction: Any
        proba: dict[str, float] | None = None
        model_version: str
        # Only during a rollout: "champion" or "challenger", whichever answered this record.
        variant: str | None = None

    class Predictions(BaseModel):
        predictions: list[Prediction]
        model_version: str

    class Feedback(BaseModel):
        request_id: str = Field(..., min_length=1, max_length=80)
        # Any JSON value here, checked by conform_label against the model being served (a union
        # type would coerce first and name its branches, not "label", when it fails).
        label: Any = Field(..., description="The true outcome: one of the model's classes (classification) "
                           "or a finite number (regression).",
                           json_schema_extra={"anyOf": [{"type": "string"}, {"type": "number"},
                                                        {"type": "boolean"}]})

    records_type: Any = record | list[record]  # type: ignore[valid-type]
    body_schema, body_defs = _body_schema(records_type)

    class InputError(BaseModel):
        field: str | None = None
        loc: list[str | int] = []
        msg: str
        type: str

    class InputProblem(BaseModel):
        detail: str
        field: str | None = None
        errors: list[InputError] = []
        error_count: int | None = None

    # POST /predict is answered by PredictEndpoint before FastAPI's routing (ServiceApp.__call__);
    # this route documents it, answers other methods with 405 and, reached at all, delegates.
    @app.post(
        "/predict", dependencies=[Depends(authorized)], response_model=Prediction | Predictions,
        responses={422: {"model": InputProblem, "description": "Input that breaks the model's scoring contract"}},
        # The body is documented from the signature (optional columns nullable and not required)
        # but checked by the scoring contract, the same function as batch and stream.
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}},
    )
    async def predict(request: Request) -> Any:
        """Predict one record (an object) or several (a list of objects)."""
        return delegated(endpoint)

    predict_route = next(route for route in app.routes if getattr(route, "endpoint", None) is predict)

    def encode_other(content: dict[str, Any]) -> bytes:
        """An answer json.dumps refuses (a NaN probability), encoded by the response model as FastAPI does."""
        from fastapi.exceptions import ResponseValidationError

        field = predict_route.response_field
        value, errors = field.validate(content, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors=errors, body=content)
        return bytes(field.serialize_json(value, by_alias=True))

    endpoint = PredictEndpoint(holder=holder, stats=stats, counters=counters, state=state, rollout=rollout,
                               authorized=lambda header: _check_token(token_hash, header),
                               max_body_bytes=max_body_bytes, max_records=max_records, encode_other=encode_other)
    app.state.predict = app.predict_endpoint = endpoint

    @app.post(
        "/feedback", dependencies=[Depends(authorized)],
        # The 422 is the same small problem body as /predict's (the validation handler above), not
        # FastAPI's default HTTPValidationError shape, which the schema would otherwise promise.
        responses={404: {"model": InputProblem, "description": "No prediction of this deployment has this request id"},
                   422: {"model": InputProblem, "description": "A label or request id the served model refuses"}},
    )
    def feedback(request: Request, body: Feedback) -> dict[str, Any]:
        """Record the true label of a logged prediction (by its request id)."""
        writer: PredictionLogWriter = request.app.state.writer
        model = holder.model
        # Checked against the served model before any read or write (a 422 naming the field).
        check = {"classes": model.classes} if model.is_classifier else {"numeric": True}
        # A sibling worker's prediction may sit in *its* buffer: one more try once it has flushed.
        attempts = 2 if worker_dir is None else 3
        for attempt in range(attempts):
            try:
                with session_scope(settings.db_url) as session:
                    # Only this deployment's own predictions: a token cannot label (or probe) another's.
                    row = record_feedback(session, request_id=body.request_id, label=body.label,
                                          deployment_id=state["deployment_id"], **check)
                    result = {"request_id": row.request_id, "label": row.label, "recorded": True}
                stats.observe("/feedback", 200)
                return result
            except NotFound:
                if attempt == 0:
                    # The prediction may sit in the buffer or in a write the log thread has
                    # taken but not committed; flush() waits for that write (same lock).
                    writer.flush()
                    continue
                if attempt + 1 < attempts:
                    time.sleep(2 * log_flush_ms / 1000)
                    continue
                raise
        raise AssertionError("unreachable")

    @app.get("/health")
    def health(request: Request) -> dict[str, Any]:
        """Liveness (no token needed); with the token (or none set), also what is being served."""
        if not _check_token(token_hash, request.headers.get("authorization")):
            return {"status": "ok"}
        model = holder.model
        router = rollout["router"]
        return {
            "status": "ok",
            "project": project_slug,
            **model.describe(),
            "deployment_id": state["deployment_id"],
            "rollout": router.describe() if router is not None else None,
            "uptime_seconds": round(time.time() - stats.started, 1),
        }

    @app.get("/metrics", dependencies=[Depends(authorized)], response_class=PlainTextResponse)
    def metrics(request: Request) -> str:
        """Prometheus text format: requests, latency histogram, errors, model version, process."""
        writer = getattr(request.app.state, "writer", None)
        if worker_dir is None:
            return prometheus_text(stats, holder.model, writer, rollout_state())
        request.app.state.snapshots.write()  # this worker's counters as of now; its siblings' within 0.5 s
        return render(read_snapshots(worker_dir), per_worker=True)

    def openapi() -> dict[str, Any]:
        from fastapi.openapi.utils import get_openapi

        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(body_defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/openapi.json", dependencies=[Depends(authorized)], include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", dependencies=[Depends(authorized)], include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    @app.get("/redoc", dependencies=[Depends(authorized)], include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def build_server(app: Any, *, host: str, port: int) -> Any:
    """A uvicorn Server for ``app`` (access log off: the prediction log and /metrics cover it)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    return uvicorn.Server(config)


def serve_forever(server: Any, **run: Any) -> None:
    """Run a :func:`build_server` server in this (serving) process until it stops.

    The loaded model, sklearn, pandas and MLflow are ~400k long-lived objects, and a full garbage
    collection walks them all: 100+ ms, every few tens of seconds of traffic, on the request path.
    Frozen first (this process only serves from here on), a collection walks only what requests leave.
    """
    gc.freeze()
    server.run(**run)


def run_server(
    project_slug: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    alias: str = "champion",
    token_hash: str | None = None,
    poll_seconds: float = 5.0,
    deployment_id: int | None = None,
    actor: str = "",
    settings: Settings | None = None,
    on_loaded: Callable[[], None] | None = None,
    shadow_queue: int = DEFAULT_SHADOW_QUEUE,
    shadow_timeout_seconds: float = DEFAULT_SHADOW_TIMEOUT_SECONDS,
) -> None:
    """Serve in the foreground until interrupted (``workbench serve``); other arguments as in :func:`create_app`.

    ``on_loaded`` runs once the model is loaded, just before the server starts (the CLI shows a
    generated token then, so a start that fails shows none).
    """
    if not 0 < port < 65536:
        raise InvalidInput(f"port must be in 1-65535; got {port!r}.", field="port")
    app = create_app(project_slug, alias=alias, token_hash=token_hash, settings=settings, deployment_id=deployment_id,
                     poll_seconds=poll_seconds, host=host, port=port, actor=actor, shadow_queue=shadow_queue,
                     shadow_timeout_seconds=shadow_timeout_seconds)
    if on_loaded is not None:
        on_loaded()
    serve_forever(build_server(app, host=host, port=port))
