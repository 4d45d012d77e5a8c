"""Deployments page helpers: list, start/stop web and stream, batch runs, traffic replay and DevOps charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui.context import display_name, key, principal
from workbench.ui.errors import shown_errors
from workbench.ui.lazy import lazy_expander

PAGE = "deployments"
MODE_LABELS = {"web": "Web service", "stream": "Stream consumer", "batch": "Batch scoring"}
STATUS_ICONS = {
    "created": ":material/radio_button_unchecked:",
    "starting": ":material/hourglass_top:",
    "running": ":material/play_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
}


def canvas_config(project: Project) -> Any:
    """The project's canvas decisions (deployment mode, latency budget), or None when unreadable."""
    from workbench.design.project_config import project_config
    from workbench.errors import WorkbenchError

    try:
        with session_scope() as session:
            return project_config(session, project=project)
    except WorkbenchError:
        return None


def served_version(project: Project, alias: str = "champion") -> str | None:
    """The version ``alias`` points at, or None (with an explanation shown) when nothing is registered."""
    from workbench.errors import NotFound
    from workbench.serving.model_loader import resolve_alias

    try:
        return resolve_alias(project.slug, alias)
    except NotFound:
        return None
    except Exception as exc:  # the registry store may be unreachable; the page must still render
        st.warning(f"Could not read the model registry: {exc}")
        return None


def ordered_modes(config: Any) -> list[str]:
    """The modes with the canvas's deployment mode first."""
    modes = ["web", "stream", "batch"]
    preferred = getattr(config, "deployment_mode", None)
    if preferred in modes:
        modes.remove(preferred)
        modes.insert(0, preferred)
    return modes


def deployments(project: Project) -> list[dict[str, Any]]:
    """The project's deployments as dicts (statuses refreshed from their jobs)."""
    from workbench.serving.deployments import deployment_dict, list_deployments

    with session_scope() as session:
        return [deployment_dict(d) for d in list_deployments(session, project=project)]


def predict_path_label(row: dict[str, Any]) -> str:
    """How a web or stream deployment scores a few records: ``compiled``, or ``pipeline (why)``."""
    path = (row.get("config") or {}).get("predict_path")
    if not path:
        return ""
    if path.get("small_inputs") == "compiled":
        return "compiled"
    return f"pipeline ({path['reason']})" if path.get("reason") else "pipeline"


def deployments_table(rows: list[dict[str, Any]]) -> None:
    """One line per deployment with its live status."""
    if not rows:
        st.info("No deployment yet. Start one below.", icon=":material/info:")
        return
    table = [
        {
            "id": r["id"],
            "mode": MODE_LABELS[r["mode"]],
            "status": r["status"],
            "alias": r["alias"],
            "version": r["model_version"],
            "small inputs": predict_path_label(r),
            "where": r["url"] or (r["host"] if r["mode"] == "stream" else ""),
            "pid": r["pid"],
            # `serve --workers N`: the pid is the parent's; the metrics below show each worker.
            "workers": (r["config"] or {}).get("workers", 1) if r["mode"] == "web" else None,
            "job": r["job_id"],
            "started": r["started_at"],
            "stopped": r["stopped_at"],
        }
        for r in rows
    ]
    st.dataframe(table, hide_index=True, width="stretch")


def start_section(project: Project, mode: str, rows: list[dict[str, Any]]) -> None:
    """Start or stop the project's web service or stream consumer (a managed background job)."""
    from workbench.serving.deployments import ACTIVE_STATUSES

    if mode == "web":
        new_token_notice()
    active = [r for r in rows if r["mode"] == mode and r["status"] in ACTIVE_STATUSES]
    if active:
        row = active[0]
        icon = STATUS_ICONS.get(row["status"], "")
        where = f" at {row['url']}" if row["url"] else ""
        st.markdown(f"{icon} {MODE_LABELS[mode]} #{row['id']} is **{row['status']}**{where}, "
                    f"serving version **{row['model_version'] or '…'}** of `{project.slug}@{row['alias']}`.")
        if st.button(f"Stop {MODE_LABELS[mode].lower()}", key=key(PAGE, f"stop_{mode}"), icon=":material/stop:"):
            stop_deployment(row)
        return
    with st.form(key(PAGE, f"start_{mode}_form")):
        alias = st.text_input("Alias", value="champion", key=key(PAGE, f"{mode}_alias"))
        config: dict[str, Any] = {}
        require_token = False
        if mode == "web":
            port = st.number_input("Port (0 picks a free one)", min_value=0, max_value=65535, value=0,
                                   key=key(PAGE, "web_port"))
            from workbench.serving.deployments import MAX_WORKERS

            workers = st.number_input("Worker processes (each loads the model; about one per core)", min_value=1,
                                      max_value=MAX_WORKERS, value=1, key=key(PAGE, "web_workers"))
            require_token = st.checkbox("Require a bearer token (generated and shown once)", value=True,
                                        key=key(PAGE, "web_require_token"))
            config = {"port": int(port) or None, "workers": int(workers) if int(workers) > 1 else None}
        else:
            from workbench.settings import get_settings

            url = st.text_input("NATS URL (empty: the workbench's own nats-server)",
                                value=get_settings().nats_url, key=key(PAGE, "stream_nats"))
            batch = st.number_input("Micro-batch size", min_value=1, max_value=10_000, value=100,
                                    key=key(PAGE, "stream_batch"))
            config = {"nats_url": url or None, "batch_size": int(batch)}
        submitted = st.form_submit_button(f"Start {MODE_LABELS[mode].lower()}", icon=":material/play_arrow:")
    if submitted:
        with shown_errors():
            launched = start(project, mode=mode, alias=alias, config=config, require_token=require_token)
            if launched.token:
                st.session_state[key(PAGE, "new_token")] = {"deployment_id": launched.deployment_id,
                                                            "token": launched.token}
            st.toast(f"{MODE_LABELS[mode]} #{launched.deployment_id} is starting.")
            st.rerun()


def new_token_notice() -> None:
    """The bearer token of the web service just started, shown until the user says it is saved, then never again.

    Only this browser session holds it (the workbench keeps its hash): not shown for one run only,
    because the table's refresh re-runs the page within seconds of the start.
    """
    pending = st.session_state.get(key(PAGE, "new_token"))
    if not pending:
        return
    st.success(f"Web service #{pending['deployment_id']} requires `Authorization: Bearer <token>` with this token. "
               "Copy it now: it is shown only this once, and the workbench keeps only its hash.",
               icon=":material/key:")
    st.code(pending["token"], language=None)
    if st.button("I have saved the token", key=key(PAGE, "token_saved"), icon=":material/check:"):
        del st.session_state[key(PAGE, "new_token")]
        st.rerun()


def start(project: Project, *, mode: str, alias: str, config: dict[str, Any], require_token: bool = False) -> Any:
    """Start a web service or stream consumer (:func:`workbench.serving.deployments.launch_deployment`).

    Returns its :class:`~workbench.serving.deployments.Launched`: the id and, with ``require_token``, the token.
    """
    from workbench.serving.deployments import launch_deployment

    return launch_deployment(project_slug=project.slug, mode=mode, alias=alias, config=config,
                             require_token=require_token, actor=display_name(), principal=principal())


def stop_deployment(row: dict[str, Any]) -> None:
    """Stop the deployment's job (:func:`workbench.serving.deployments.stop_deployment`)."""
    from workbench.serving.deployments import stop_deployment as stop

    with shown_errors(), session_scope() as session:
        stop(session, deployment_id=row["id"], principal=principal())
    st.toast(f"Stop sent to deployment #{row['id']}.")
    st.rerun()


def batch_section(project: Project) -> None:
    """Run a batch scoring job on an uploaded file or a server file, inside the browser's file sandbox.

    A server path is offered only when data roots are configured, and read only under them; the
    output goes to the project's own ``scores`` folder (never onto an existing file) and is offered
    as a download (:mod:`workbench.access.files`).
    """
    from workbench.access.files import data_roots
    from workbench.serving.batch import cron_line
    from workbench.settings import get_settings

    settings = get_settings()
    roots = data_roots(settings)
    sources = ["Upload a file", "Server path"] if roots else ["Upload a file"]
    source = st.radio("Input", sources, horizontal=True, key=key(PAGE, "batch_source"))
    input_path: str | None = None
    if source == "Upload a file":
        upload = st.file_uploader("CSV or Parquet to score", type=["csv", "parquet"], key=key(PAGE, "batch_upload"))
        if upload is not None:
            saved = st.session_state.setdefault(key(PAGE, "batch_saved"), {})
            if upload.file_id not in saved:  # once per upload: the page re-runs on every click
                from workbench.serving.deployments import store_browser_upload

                with shown_errors():  # the service checks the role before it writes anything
                    saved[upload.file_id] = store_browser_upload(
                        project_slug=project.slug, name=upload.name, data=upload.getvalue(), settings=settings,
                        principal=principal())
            input_path = saved.get(upload.file_id)
    else:
        st.caption("Readable folders (WORKBENCH_DATA_ROOTS): " + ", ".join(f"`{r}`" for r in roots))
        input_path = st.text_input("Input path on the server", key=key(PAGE, "batch_path")) or None
    output_name = st.text_input("Output file name (.parquet or .csv)", value="predictions.parquet",
                                key=key(PAGE, "batch_out"),
                                help=f"Written to {settings.home / 'scores' / project.slug}; a taken name gets a "
                                "-2, -3... suffix, so no file is replaced.")
    alias = st.text_input("Alias", value="champion", key=key(PAGE, "batch_alias"))
    engine = "pandas"
    if spark_installed():
        engine = st.radio("Engine", ["pandas", "spark"], horizontal=True, key=key(PAGE, "batch_engine"),
                          help="pandas: the file in one process. spark: the same file on Spark in local mode on "
                          "the server, into a Parquet folder (for a cluster, use `workbench score --engine spark "
                          "--master URL`).") or "pandas"
    if input_path:
        st.caption("To run it every night, add this line to the crontab (`crontab -e`):")
        out_hint = str(settings.home / "scores" / project.slug / (output_name or "predictions.parquet"))
        st.code(cron_line(project.slug, input_path, out_hint, alias=alias, engine=engine), language="bash")
    if st.button("Score", key=key(PAGE, "batch_run"), icon=":material/play_arrow:", disabled=not input_path):
        from workbench.serving.deployments import launch_browser_batch

        with shown_errors():
            launched, output = launch_browser_batch(
                project_slug=project.slug, input_path=str(input_path), output_name=output_name, alias=alias,
                uploaded=source == "Upload a file", actor=display_name(), principal=principal(), settings=settings,
                engine=engine,
            )
            st.session_state[key(PAGE, "batch_job")] = launched
            st.session_state[key(PAGE, "batch_output")] = output
    job_id = st.session_state.get(key(PAGE, "batch_job"))
    if job_id:
        batch_job(str(job_id), st.session_state.get(key(PAGE, "batch_output")))


def spark_installed() -> bool:
    """Whether the Spark engine's extra is installed (the page offers the engine only then)."""
    import importlib.util

    return importlib.util.find_spec("pyspark") is not None


def batch_job(job_id: str, output: str | None) -> None:
    """The browser batch job: progress, then the output as a download, or a failure that never quotes the file.

    Not :func:`workbench.ui.jobs.job_progress`: that shows the job's raw error and log tail, in
    which parsers quote lines of the file.
    """
    from datetime import timedelta

    from workbench.access.files import browser_job_error
    from workbench.jobs import ACTIVE_STATUSES, get_job, job_dict

    def read() -> dict[str, Any]:
        with session_scope() as session:
            return job_dict(get_job(session, job_id=job_id))

    def show(data: dict[str, Any]) -> None:
        st.markdown(f"Job `{job_id}` (score): **{data['status']}**")
        if data["status"] in ACTIVE_STATUSES:
            st.progress(min(1.0, max(0.0, data["progress"])), text="scoring…")
        elif data["status"] == "succeeded":
            rows = (data.get("result") or {}).get("rows")
            st.success(f"Scored {rows:,} rows into `{output}`." if rows is not None else f"Scored into `{output}`.")
        elif data["status"] in ("failed", "lost"):
            st.error(browser_job_error(job_id, data.get("error") or data.get("message")))
        else:
            st.caption(f"The job was {data['status']}.")

    data = read()
    if data["status"] in ACTIVE_STATUSES:
        @st.fragment(run_every=timedelta(seconds=1))
        def _poll() -> None:
            fresh = read()
            show(fresh)
            if fresh["status"] not in ACTIVE_STATUSES:
                st.rerun()

        _poll()
        return
    show(data)
    path = Path(output) if output else None
    if data["status"] == "succeeded" and path is not None and path.is_file():
        from workbench.settings import get_settings

        if path.stat().st_size <= get_settings().max_upload_bytes:
            st.download_button(f"Download {path.name}", data=path.read_bytes(), file_name=path.name,
                               key=key(PAGE, f"batch_download_{job_id}"), icon=":material/download:")
        else:
            st.caption(f"{path.name} is too large to download here; it is at `{path}` on the server.")
    elif data["status"] == "succeeded" and path is not None and path.is_dir():
        st.caption(f"{path.name} is a Parquet folder (the Spark engine's output); it is at `{path}` on the server.")


def start_replay(project: Project, row: dict[str, Any], *, limit: int, token: str | None = None) -> str:
    """Start a ``replay`` job sending up to ``limit`` holdout rows to ``row``'s deployment; returns the job id.

    The deployment, the user's role and a web service's token are checked here first
    (:func:`workbench.serving.replay.replay_target`), so a wrong paste is named at once; the token
    reaches the job through its process environment only. ``workbench replay`` starts the same job.
    """
    from workbench.jobs import launch
    from workbench.serving.replay import REPLAY_TOKEN_ENV, replay_target

    with session_scope() as session:
        replay_target(session, project_slug=project.slug, deployment_id=int(row["id"]), token=token,
                      principal=principal())
    job_id = launch(kind="replay", project_slug=project.slug, params={"deployment_id": int(row["id"]),
                    "rows": int(limit)}, actor=display_name(), principal=principal(),
                    secret_env={REPLAY_TOKEN_ENV: token.strip()} if token else None)
    st.session_state[key(PAGE, "replay_job")] = job_id
    return job_id


def replay_job() -> None:
    """The last replay job of this session: progress while it runs, then how many rows were sent and answered."""
    from workbench.ui.jobs import job_progress

    job_id = st.session_state.get(key(PAGE, "replay_job"))
    if not job_id:
        return

    def extra(job: dict[str, Any]) -> None:
        result = job.get("result") or {}
        if job["status"] == "succeeded" and result:
            st.success(f"Sent {result['sent']} rows to deployment #{result['deployment_id']}: {result['ok']} "
                       f"answered, {result['failed']} refused.")

    job_progress(str(job_id), key=key(PAGE, "replay_status"), extra=extra)


def replay_section(project: Project, rows: list[dict[str, Any]]) -> None:
    """A button that replays the holdout to a running deployment as a background job, so the metrics move."""
    running = [r for r in rows if r["status"] == "running" and r["mode"] in ("web", "stream")]
    if not running:
        st.caption("Start a web service or a stream consumer to replay the holdout as traffic.")
        replay_job()
        return
    labels = {f"#{r['id']} {MODE_LABELS[r['mode']]}": r for r in running}
    choice = st.selectbox("Send traffic to", list(labels), key=key(PAGE, "replay_target"))
    limit = st.number_input("Rows", min_value=1, max_value=5000, value=200, key=key(PAGE, "replay_rows"))
    token = None
    if (labels[choice]["config"] or {}).get("auth"):
        token = st.text_input("Bearer token of this web service", type="password", key=key(PAGE, "replay_token"))
    if st.button("Replay holdout", key=key(PAGE, "replay"), icon=":material/replay:"):
        with shown_errors():
            start_replay(project, labels[choice], limit=int(limit), token=token or None)
    replay_job()


def metrics_section(project: Project, rows: list[dict[str, Any]], *, latency_budget_ms: float | None) -> None:
    """Headline numbers and plotly charts over time for one deployment."""
    from workbench.serving import devops

    if not rows:
        return
    labels = {f"#{r['id']} {MODE_LABELS[r['mode']]} ({r['status']})": r for r in rows}
    choice = st.selectbox("Deployment", list(labels), key=key(PAGE, "metrics_target"))
    window = st.select_slider("Window (minutes)", options=[5, 15, 60, 240, 1440], value=60,
                              key=key(PAGE, "metrics_window"))
    row = labels[choice]
    with session_scope() as session:
        head = devops.summary(session, deployment_id=row["id"], window_minutes=5)
        latency = devops.latency_series(devops.latency_frame(session, deployment_id=row["id"], window_minutes=window))
        process = devops.process_frame(session, deployment_id=row["id"], window_minutes=window)

    def fmt(value: float | None, unit: str = "") -> str:
        return "–" if value is None else f"{value:,.1f}{unit}"

    cols = st.columns(6)
    cols[0].metric("Predictions/s (5 min)", fmt(head["per_second"]),
                   help="Rows over the real time span of the log. None when the rows were logged within a "
                        "second (one batch run): a rate over milliseconds would mean nothing.")
    cols[1].metric("p50 latency", fmt(head["p50_ms"], " ms"))
    cols[2].metric("p95 latency", fmt(head["p95_ms"], " ms"),
                   delta=None if head["p95_ms"] is None or latency_budget_ms is None
                   else f"{head['p95_ms'] - latency_budget_ms:+.1f} ms vs budget", delta_color="inverse")
    cols[3].metric("p99 latency", fmt(head["p99_ms"], " ms"))
    cols[4].metric("Error rate", f"{head['error_rate']:.1%}" if head["requests"] else "–")
    workers = f" ({head['processes']} workers)" if head.get("processes", 0) > 1 else ""
    cols[5].metric(f"CPU / RSS{workers}", f"{fmt(head['cpu_percent'], '%')} / {fmt(head['rss_mb'], ' MB')}",
                   help="The serving process's newest sample; with several worker processes, their sum.")
    # The charts load Streamlit's plotly bundle (1.5 s in a fresh tab, issue 15): drawn once opened.
    with lazy_expander("Charts: latency, throughput, CPU and memory, errors", key=key(PAGE, "charts")) as opened:
        if not opened:
            return
        figs = devops.figures(latency, process, latency_budget_ms=latency_budget_ms)
        left, right = st.columns(2)
        left.plotly_chart(figs["latency"], key=key(PAGE, "fig_latency"))
        right.plotly_chart(figs["throughput"], key=key(PAGE, "fig_throughput"))
        left.plotly_chart(figs["resources"], key=key(PAGE, "fig_resources"))
        right.plotly_chart(figs["errors"], key=key(PAGE, "fig_errors"))


def live_table(project: Project) -> list[dict[str, Any]]:
    """The deployments table; while one is starting it refreshes itself every two seconds."""
    from datetime import timedelta

    rows = deployments(project)
    if not any(r["status"] == "starting" for r in rows):
        deployments_table(rows)
        return rows

    @st.fragment(run_every=timedelta(seconds=2))
    def _poll() -> None:
        fresh = deployments(project)
        deployments_table(fresh)
        if not any(r["status"] == "starting" for r in fresh):
            st.rerun()

    _poll()
    return rows
