"""Monitoring page helpers: window choice, run a check, the report as native charts and tables,
history with thresholds, alerts with Acknowledge/Retrain, thresholds saved to the ML Canvas,
champion vs challenger with Promote, and the monitoring schedule."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from functools import partial
from typing import Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui import context
from workbench.ui._monitoring_report import PAGE as PAGE
from workbench.ui._monitoring_report import STATUS_ICONS as STATUS_ICONS
from workbench.ui._monitoring_report import checks_section as checks_section
from workbench.ui._monitoring_report import report_section as report_section
from workbench.ui.context import display_name, key, principal
from workbench.ui.lazy import lazy_expander
from workbench.ui.pages import page_link

WINDOW_KINDS = ("Last N records", "Last N hours", "Date range")


def _project(session: Any, project: Project) -> Project:
    from workbench.projects import get_project

    return get_project(session, slug=project.slug)


# The message an action leaves for the next run of this page.
flash = partial(context.flash, PAGE)
show_flash = partial(context.show_flash, PAGE)


# --------------------------------------------------------------------------- deployment and window


def deployment_picker(project: Project) -> dict[str, Any] | None:
    """Pick one of the project's deployments; None (and a hint) when there is none."""
    from workbench.serving.deployments import deployment_dict, list_deployments

    with session_scope() as session:
        rows = [deployment_dict(d) for d in list_deployments(session, project=_project(session, project))]
    if not rows:
        st.info(
            "No deployment yet. Deploy the champion on the Deployments page; its predictions are what is monitored.",
            icon=":material/info:",
        )
        page_link("deployments", label="Go to Deployments")
        return None
    rows.sort(key=lambda r: r["id"])
    by_id = {r["id"]: r for r in rows}
    chosen = st.selectbox(
        "Deployment",
        list(by_id),
        format_func=lambda i: f"#{i} · {by_id[i]['mode']} · {by_id[i]['alias']} · {by_id[i]['status']}",
        key=key(PAGE, "deployment"),
    )
    return by_id[chosen]


VARIANT_LABELS = {None: "Served (every prediction)", "champion": "Champion's answers",
                  "challenger": "Challenger's predictions (answers and shadow copies)"}


def variant_picker(project: Project, deployment: dict[str, Any]) -> str | None:
    """Which predictions to check when the deployment has or had a rollout: what was served (None), or one variant's.

    No choice is shown (None) for a deployment that never had a rollout: it has only served rows.
    """
    from workbench.rollouts import list_rollouts

    with session_scope() as session:
        rollouts = list_rollouts(session, project=_project(session, project), deployment_id=deployment["id"])
    if not rollouts:
        return None
    return st.radio("Predictions", list(VARIANT_LABELS), format_func=VARIANT_LABELS.__getitem__, horizontal=True,
                    key=key(PAGE, "variant"),
                    help="During a rollout the log holds both variants: check drift and quality per variant. A "
                         "variant's check raises no alert and starts no retrain (the rollout's guardrails watch the "
                         "challenger).")


def window_picker() -> str:
    """The window as ``workbench monitor --window`` takes it: ``300``, ``24h`` or ``A..B``."""
    kind = st.radio("Window", WINDOW_KINDS, horizontal=True, key=key(PAGE, "window_kind"))
    if kind == WINDOW_KINDS[0]:
        records = st.number_input("Records", min_value=1, max_value=100_000, value=500, step=100,
                                  key=key(PAGE, "window_records"))
        return str(int(records))
    if kind == WINDOW_KINDS[1]:
        hours = st.number_input("Hours", min_value=1, max_value=24 * 365, value=24, step=1,
                                key=key(PAGE, "window_hours"))
        return f"{int(hours)}h"
    today = date.today()
    picked = st.date_input("Dates", value=(today - timedelta(days=7), today), key=key(PAGE, "window_dates"))
    days = [d for d in (picked if isinstance(picked, tuple | list) else [picked]) if d is not None]
    if not days:  # the range is being picked (one click so far): today only until it is complete
        days = [today]
    return f"{days[0].isoformat()}..{days[-1].isoformat()}"


def run_check(project: Project, deployment_id: int, window: str, *, with_evidently: bool,
              variant: str | None = None) -> str:
    """The Run check button: a ``monitor`` job (``pipelines.monitor``), whatever the window's size.

    The check took seconds to minutes even on small windows (the Evidently report alone takes
    several), and a check in the page froze it under a spinner; as a job it shows progress, can
    be cancelled and survives the tab. ``workbench monitor`` runs the same pipeline. ``variant``
    checks one variant's predictions of a rollout (:func:`variant_picker`). Returns the job id.
    """
    from workbench.jobs import launch
    from workbench.monitoring.service import parse_window

    parse_window(window)  # a bad window is shown before anything starts
    job_id = launch(
        kind="monitor",
        project_slug=project.slug,
        params={"deployment_id": deployment_id, "window": window, "with_evidently": with_evidently,
                **({"variant": variant} if variant else {})},
        actor=display_name(),
        principal=principal(),
    )
    st.session_state[key(PAGE, "job")] = job_id
    return job_id


def check_job(project: Project) -> None:
    """Progress of the last monitor job launched from this page; once it succeeds, its report is shown."""
    from workbench.ui.jobs import job_progress

    job_id = st.session_state.get(key(PAGE, "job"))
    if not job_id:
        return

    def extra(job: dict[str, Any]) -> None:
        result = job.get("result") or {}
        shown = key(PAGE, "job_report_shown")
        if job["status"] == "succeeded" and result.get("report_ids") and st.session_state.get(shown) != job["id"]:
            st.session_state[shown] = job["id"]  # once: later the picker is the user's again
            st.session_state[key(PAGE, "report")] = result["report_ids"][0]
            statuses = ", ".join(f"**{s}**" for s in (result.get("statuses") or {}).values())
            flash(f"Check done: report #{result['report_ids'][0]} is {statuses}.")
            if result.get("retrain_job"):  # the on_alert / automatic policies start a retrain when a check failed
                st.session_state[key(PAGE, "retrain_job")] = result["retrain_job"]
                st.toast(f"Retrain job {result['retrain_job']} started by the retrain policy.")

    job_progress(job_id, key=key(PAGE, "job_status"), extra=extra)


# --------------------------------------------------------------------------- the report


def latest_report(project: Project, deployment_id: int, variant: str | None = None) -> dict[str, Any] | None:
    """The report picked on the page (the newest of the deployment, of ``variant``'s reports, by default)."""
    from workbench.monitoring.service import list_reports, report_dict

    with session_scope() as session:
        rows = [report_dict(r) for r in list_reports(session, project=_project(session, project),
                                                     deployment_id=deployment_id, limit=30)]
    rows = [r for r in rows if (r["window"] or {}).get("variant") == variant]
    if not rows:
        st.caption("No report for this deployment yet: pick a window and run a check.")
        return None
    ids = [r["id"] for r in rows]
    wanted = st.session_state.pop(key(PAGE, "report"), None)
    pick = key(PAGE, "report_pick")
    if wanted in ids:  # a check just ran: show its report
        st.session_state[pick] = wanted
    elif st.session_state.get(pick) not in ids:
        st.session_state.pop(pick, None)
    by_id = {r["id"]: r for r in rows}
    chosen = st.selectbox(
        "Report",
        ids,
        format_func=lambda i: f"#{i} · {by_id[i]['created_at'][:19]} · {by_id[i]['window']['spec']} · "
        f"{by_id[i]['status']}",
        key=pick,
    )
    return by_id[chosen]


def history_section(project: Project, deployment_id: int, thresholds: dict[str, Any],
                    variant: str | None = None) -> None:
    """Drift share, primary metric, volume and latency over time (of ``variant``'s checks), with the threshold lines."""
    from workbench.monitoring import views
    from workbench.monitoring.service import metric_history, variant_metric

    charts = views.history_metrics(thresholds["primary_metric"])
    with session_scope() as session:
        history = metric_history(session, deployment_id=deployment_id,
                                 metrics=[variant_metric(m, variant) for _, m, _ in charts])
    if variant is not None:  # the charts look metrics up by their served names
        history["metric"] = history["metric"].str.removeprefix(f"{variant}/")
    if history.empty:
        st.caption("No history yet: each check adds one point.")
        return
    st.caption(f"{history['report_id'].nunique()} check(s) so far.")
    with lazy_expander("Charts: each metric over the checks, against its threshold",
                       key=key(PAGE, "history_charts")) as opened:
        if not opened:
            return
        columns = st.columns(2)
        for index, (title, metric, field) in enumerate(charts):
            with columns[index % 2]:
                threshold = thresholds.get(field) if field else None
                label = "floor" if field == "quality_floor" else ("budget" if field == "latency_budget_ms" else
                                                                  "threshold")
                st.plotly_chart(
                    views.history_figure(history, metric=metric, title=title, threshold=threshold,
                                         threshold_label=label),
                    key=key(PAGE, f"history_{metric}"),
                )


# --------------------------------------------------------------------------- alerts


def open_alerts(project: Project) -> list[dict[str, Any]]:
    """The project's unacknowledged alerts, newest first."""
    from workbench.monitoring.service import alert_dict, list_alerts

    with session_scope() as session:
        return [alert_dict(a) for a in list_alerts(session, project=_project(session, project))]


def alerts_section(project: Project) -> None:
    """Open alerts, each with Acknowledge and Retrain."""
    from workbench.ui.errors import shown_errors

    alerts = open_alerts(project)
    if not alerts:
        st.caption("No open alert.")
        return
    for alert in alerts:
        with st.container(border=True):
            st.markdown(
                f":material/notifications: **#{alert['id']} · {alert['check']}** on deployment "
                f"#{alert['deployment_id']} · {alert['created_at'][:19]}  \n{alert['message']}"
            )
            left, right = st.columns(2)
            if left.button("Acknowledge", key=key(PAGE, f"ack_{alert['id']}"), icon=":material/done:"):
                from workbench.monitoring.service import acknowledge_alert

                with shown_errors():
                    with session_scope() as session:
                        acknowledge_alert(session, alert_id=alert["id"], actor=display_name(), principal=principal())
                    flash(f"Alert #{alert['id']} acknowledged.")
                    st.rerun()
            if right.button("Retrain", key=key(PAGE, f"retrain_alert_{alert['id']}"), icon=":material/model_training:"):
                with shown_errors():
                    start_retrain_from_page(project)


# --------------------------------------------------------------------------- webhook deliveries

DELIVERY_COLUMNS = ("Event", "Time", "Status", "Attempts", "Last answer", "URL")


def delivery_rows(project: Project, limit: int = 50) -> list[dict[str, Any]]:
    """The project's latest webhook deliveries (one per event and URL, newest first) as table rows."""
    from workbench.events import delivery_summaries

    with session_scope() as session:
        summaries = delivery_summaries(session, project=_project(session, project), limit=limit)
    return [
        {"Event": item["event"], "Time": (item["time"] or "").replace("T", " "), "Status": item["status"],
         "Attempts": item["attempts"],
         "Last answer": str(item["status_code"]) if item["status_code"] is not None else (item["last_error"] or ""),
         "URL": item["url"]}
        for item in summaries
    ]


def deliveries_section(project: Project) -> None:
    """Every registry, deployment and alert event of the project posted to the webhooks, with its attempts."""
    from workbench.settings import get_settings

    if not get_settings().webhook_urls:
        st.caption("No webhook is configured: set `WORKBENCH_WEBHOOK_URL` (or `webhook_url` in workbench.toml) "
                   "to have registry, deployment and alert events posted.")
    rows = delivery_rows(project)
    if not rows:
        st.caption("No webhook delivery yet.")
        return
    st.dataframe(rows, hide_index=True, width="stretch", column_order=DELIVERY_COLUMNS)


# --------------------------------------------------------------------------- thresholds (ML Canvas)


def thresholds_form(project: Project) -> dict[str, Any]:
    """The canvas thresholds and retrain policy; saving writes a new ML Canvas revision."""
    from workbench.design.project_config import RETRAIN_POLICIES, project_config
    from workbench.ui.errors import shown_errors

    with session_scope() as session:
        config = project_config(session, project=_project(session, project))
    with st.form(key(PAGE, "thresholds_form")):
        st.caption(
            "These live in the ML Canvas (Monitoring, Making Predictions, Building Models and Impact Simulation "
            "boxes); saving here adds a canvas revision."
        )
        a, b, c = st.columns(3)
        drift = a.number_input("Drift threshold (share of drifted columns)", min_value=0.0, max_value=1.0,
                               value=float(config.drift_threshold), step=0.05, key=key(PAGE, "t_drift"))
        floor_text = b.text_input(f"Quality floor ({config.primary_metric})",
                                  value="" if config.quality_floor is None else f"{config.quality_floor:g}",
                                  key=key(PAGE, "t_floor"), help="Empty: no quality check.")
        latency = c.number_input("Latency budget (ms)", min_value=0.1, value=float(config.latency_budget_ms),
                                 key=key(PAGE, "t_latency"))
        d, e = st.columns(2)
        policy = d.selectbox("Retrain policy", RETRAIN_POLICIES, index=RETRAIN_POLICIES.index(config.retrain_policy),
                             key=key(PAGE, "t_policy"),
                             help="manual: a person retrains and promotes; on_alert: a failing check starts a "
                             "retrain, promotion stays manual; automatic: promote when the challenger wins.")
        uplift = e.number_input("Minimum uplift to promote", min_value=0.0, value=float(config.min_uplift),
                                step=0.005, format="%.3f", key=key(PAGE, "t_uplift"))
        saved = st.form_submit_button("Save thresholds", icon=":material/save:")
    if saved:
        with shown_errors():
            save_thresholds(project, drift_threshold=drift, quality_floor=floor_text, latency_budget_ms=latency,
                            retrain_policy=policy, min_uplift=uplift)
            flash("Thresholds saved as a new ML Canvas revision.")
            st.rerun()
    return {
        "drift_threshold": config.drift_threshold,
        "quality_floor": config.quality_floor,
        "latency_budget_ms": config.latency_budget_ms,
        "primary_metric": config.primary_metric,
        "retrain_policy": config.retrain_policy,
        "min_uplift": config.min_uplift,
    }


def save_thresholds(
    project: Project,
    *,
    drift_threshold: float,
    quality_floor: str | float | None,
    latency_budget_ms: float,
    retrain_policy: str,
    min_uplift: float,
) -> int:
    """Write the thresholds into the ML Canvas's structured fields as a new revision; returns it."""
    from workbench.design.canvases.store import load_canvas, save_canvas
    from workbench.design.project_config import CANVAS_FIELDS
    from workbench.errors import InvalidInput

    floor: float | None
    if quality_floor in (None, ""):
        floor = None
    else:
        try:
            floor = float(str(quality_floor).strip())
        except ValueError as exc:
            raise InvalidInput(f"quality_floor must be a number or empty; got {quality_floor!r}.",
                               field="quality_floor") from exc
    values = {"drift_threshold": float(drift_threshold), "quality_floor": floor,
              "latency_budget_ms": float(latency_budget_ms), "retrain_policy": retrain_policy,
              "min_uplift": float(min_uplift)}
    with session_scope() as session:
        row = _project(session, project)
        revision, content = load_canvas(session, project=row, kind="ml_canvas")
        for name, value in values.items():
            box, field = CANVAS_FIELDS[name]
            content.setdefault("boxes", {}).setdefault(box, {"text": "", "fields": {}}).setdefault("fields", {})
            content["boxes"][box]["fields"][field] = value
        saved = save_canvas(session, project=row, kind="ml_canvas", content=content, base_revision=revision,
                            author=display_name(), principal=principal(),
                            note="Monitoring thresholds edited on the Monitoring page")
        return int(saved.revision)


# --------------------------------------------------------------------------- retraining


def start_retrain_from_page(project: Project) -> str:
    """Launch a retrain job (refused within the cooldown) and remember it for the page."""
    from workbench.training.retraining import start_retrain

    job_id = start_retrain(project_slug=project.slug, actor=display_name(), principal=principal())
    st.session_state[key(PAGE, "retrain_job")] = job_id
    flash(f"Retrain job {job_id} started.")
    st.rerun()
    return job_id


def retrain_section(project: Project) -> None:
    """Retrain button, the running retrain, and champion vs challenger side by side with Promote."""
    from workbench.jobs import job_dict
    from workbench.monitoring import views
    from workbench.training.retraining import latest_retrain_job
    from workbench.ui.errors import shown_errors
    from workbench.ui.jobs import job_progress

    if st.button("Retrain", type="primary", key=key(PAGE, "retrain"), icon=":material/model_training:",
                 help="Training data plus recent labelled predictions; warm-started from the champion."):
        with shown_errors():
            start_retrain_from_page(project)
    with session_scope() as session:
        job = latest_retrain_job(session, project=_project(session, project))
        data = job_dict(job) if job is not None else None
    if data is None:
        st.caption("No retrain yet.")
        return
    if data["status"] in ("queued", "running"):
        job_progress(data["id"], key=key(PAGE, "retrain_status"))
        return
    result = data.get("result") or {}
    if data["status"] != "succeeded" or not result:
        st.warning(f"Last retrain job {data['id']} {data['status']}: {data.get('error') or data.get('message')}")
        return
    decision = result.get("decision") or {}
    st.markdown(
        f"Last retrain (job `{data['id']}`): challenger **v{result['challenger_version']}** vs champion "
        f"**v{result.get('champion_version')}** on the same fresh holdout of {result['n_fresh_holdout']} rows "
        f"(trained on {result['n_training_rows']} + {result['n_recent_rows']} recent rows)."
    )
    left, right = st.columns(2)
    left.metric(f"Champion v{result.get('champion_version')} · {decision.get('metric')}",
                "—" if decision.get("champion_value") is None else f"{decision['champion_value']:.4f}")
    right.metric(f"Challenger v{result['challenger_version']} · {decision.get('metric')}",
                 "—" if decision.get("challenger_value") is None else f"{decision['challenger_value']:.4f}",
                 delta=None if decision.get("uplift") is None else f"{decision['uplift']:+.1%}")
    st.dataframe(views.comparison_table(result), hide_index=True, key=key(PAGE, "comparison"))
    st.caption(decision.get("reason", ""))
    from workbench.registry import aliases

    current = aliases(project=project)
    if result.get("promoted") or current.get("champion") == str(result["challenger_version"]):
        st.success(f"v{result['challenger_version']} is the champion.", icon=":material/emoji_events:")
        return
    challenger = str(result["challenger_version"])
    if current.get("challenger") != challenger:
        return
    if decision.get("wins"):
        if st.button(f"Promote v{challenger} to champion", key=key(PAGE, "promote"), icon=":material/upgrade:"):
            promote_from_page(project, challenger, reason=f"promoted on the Monitoring page after retrain job "
                              f"{data['id']}: {decision.get('reason', 'the challenger won the gate')}")
        return
    # A challenger that lost the gate is never one click away: the page says so and asks why.
    st.warning(f"v{challenger} lost the gate: {decision.get('reason', 'it did not beat the champion')}. "
               "Promoting it anyway needs a reason, kept in the promotion history.", icon=":material/warning:")
    pending = key(PAGE, "promote_pending")
    if st.button(f"Promote v{challenger} anyway…", key=key(PAGE, "promote_open"), icon=":material/upgrade:"):
        st.session_state[pending] = challenger
    if st.session_state.get(pending) != challenger:
        return
    with st.container(border=True):
        st.markdown(f"Make **v{challenger}**, which lost the gate, the **champion** (now: "
                    f"v{current.get('champion', '—')})?")
        reason = st.text_area("Reason (kept in the promotion history)", key=key(PAGE, "promote_reason"))
        ok, cancel = st.columns(2)
        confirmed = ok.button("Confirm promotion", type="primary", key=key(PAGE, "promote_confirm"))
        if cancel.button("Cancel", key=key(PAGE, "promote_cancel")):
            st.session_state.pop(pending, None)
            st.rerun()
    if confirmed:
        promote_from_page(project, challenger, reason=reason)


def promote_from_page(project: Project, version: str, *, reason: str) -> None:
    """Make ``version`` the champion; the alias move and its history row are one registry call.

    The session is committed before the page re-runs: ``st.rerun()`` raises, and raised inside
    ``session_scope()`` it rolled the history row back while the MLflow alias had already moved.
    """
    from workbench.registry import promote
    from workbench.ui.errors import shown_errors

    done = False
    with shown_errors():
        with session_scope() as session:
            promote(session, project=_project(session, project), version=version, alias="champion",
                    reason=reason, actor=display_name(), principal=principal())
        done = True
    if done:
        st.session_state.pop(key(PAGE, "promote_pending"), None)
        flash(f"v{version} promoted to champion.")
        st.rerun()


# --------------------------------------------------------------------------- schedule


@st.cache_resource
def monitor_schedule() -> Any:
    """The one monitoring scheduler of this server process (a daemon thread), or None when off."""
    from workbench.jobs.schedule import MonitorScheduler
    from workbench.settings import get_settings

    settings = get_settings()
    if settings.monitor_every_minutes <= 0:
        return None
    scheduler = MonitorScheduler(settings=settings, stop=threading.Event())
    scheduler.start()
    return scheduler


def schedule_caption() -> None:
    """Say whether scheduled checks run."""
    from workbench.settings import get_settings

    every = get_settings().monitor_every_minutes
    monitor_schedule()
    if every > 0:
        st.caption(f":material/schedule: A check of every deployment runs every {every:g} minutes while the app is up.")
    else:
        st.caption("Scheduled checks are off (set WORKBENCH_MONITOR_EVERY_MINUTES, or use `workbench monitor` "
                   "from cron).")
