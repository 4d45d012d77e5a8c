"""The Monitoring page's report: check statuses, the test suite, drift with a per-column detail,
prediction drift, data and model quality, and Evidently's HTML as a one-click download."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui.context import key
from workbench.ui.lazy import lazy_expander

if TYPE_CHECKING:  # the entry point imports this module (the monitor schedule) on every page: no pandas then
    import pandas as pd

PAGE = "monitoring"
STATUS_ICONS = {
    "pass": ":material/check_circle:",
    "warn": ":material/warning:",
    "fail": ":material/error:",
    "skipped": ":material/remove_circle_outline:",
}


def checks_section(report: dict[str, Any]) -> None:
    """The check statuses as metric tiles plus the messages."""
    summary = report["summary"]
    checks = summary.get("checks") or []
    st.markdown(
        f"{STATUS_ICONS.get(report['status'], '')} Overall: **{report['status']}** · "
        f"{summary['n_rows']} predictions, {summary['n_labelled']} labelled · window `{report['window']['spec']}`"
    )
    for column, check in zip(st.columns(max(1, len(checks))), checks, strict=False):
        with column:
            value = check.get("value")
            st.metric(
                f"{check['check']} · {check['status']}",
                "—" if value is None else f"{value:.4g}",
                help=check["message"],
            )
            st.caption(f"{STATUS_ICONS.get(check['status'], '')} {check['message']}")
    for alert in summary.get("alerts") or []:
        if alert.get("new"):
            st.error(f"Alert #{alert['id']} ({alert['check']}): {alert['message']}", icon=":material/notifications:")


def _report_log(report: dict[str, Any]) -> pd.DataFrame:
    """The rows of the prediction log the report read (its stored first and last time)."""
    from datetime import datetime

    from workbench.prediction_log import log_frame

    window = report["window"]
    since = datetime.fromisoformat(window["from"]) if window.get("from") else None
    until = datetime.fromisoformat(window["to"]) + timedelta(microseconds=1) if window.get("to") else None
    with session_scope() as session:
        return log_frame(session, deployment_id=report["deployment_id"], since=since, until=until,
                         limit=max(1, int(window.get("n_rows") or 1)), variant=window.get("variant"))


@st.cache_data(show_spinner=False, max_entries=16)
def _data_quality(report: dict[str, Any]) -> pd.DataFrame:
    """The data-quality table of a report's window, cached per report (the whole stored report is the key):
    reading and decoding the window's log takes most of a second. A report's window is fixed (its first and
    last time and row count are stored), its rows' features never change (feedback only adds labels), and a
    new check is a new report."""
    from workbench.monitoring import views

    return views.data_quality(_report_log(report), report["summary"].get("features") or [])


@st.cache_data(show_spinner=False, max_entries=8)
def _reference(project_slug: str, alias: str, version: str) -> pd.DataFrame | None:
    """The reference sample (cached per model version)."""
    from workbench.errors import WorkbenchError
    from workbench.monitoring.service import load_reference

    try:
        return load_reference(project_slug, alias=alias)[0]
    except WorkbenchError:
        return None


def suite_section(report: dict[str, Any]) -> None:
    """The report as a test suite: each check and each column's drift test, its condition, value and verdict."""
    from workbench.monitoring import views

    st.dataframe(views.suite_table(report["summary"]), hide_index=True, key=key(PAGE, f"suite_{report['id']}"),
                 column_config={"value": st.column_config.NumberColumn(format="%.4g"),
                                "threshold": st.column_config.NumberColumn(format="%g")})


def drift_detail(report: dict[str, Any], reference: pd.DataFrame | None, log: pd.DataFrame) -> None:
    """One column at a time: reference vs current, with its test, statistic and threshold."""
    from workbench.monitoring import views

    tested = (report["summary"].get("drift") or {}).get("columns", [])
    # The drifted columns first: they are the ones to look at.
    columns = {c["column"]: c for c in sorted(tested, key=lambda c: not c["drifted"])}
    if not columns:
        return
    chosen = st.selectbox("Column", list(columns), key=key(PAGE, f"drift_column_{report['id']}"),
                          format_func=lambda c: f"{c} · {'drifted' if columns[c]['drifted'] else 'no drift'}")
    column = columns[chosen]
    ref = reference[chosen] if reference is not None and chosen in reference.columns else None
    st.plotly_chart(views.column_drift_figure(ref, views.log_column(log, chosen), column),
                    key=key(PAGE, f"drift_detail_{report['id']}"))
    st.caption(f"Test: {column.get('stattest_label') or column['stattest']} on {column['n_reference']} reference "
               f"and {column['n_current']} current rows; passes when {views.drift_condition(column)}.")


def report_section(project: Project, report: dict[str, Any]) -> None:
    """Test suite, drift table, chart and per-column detail, prediction drift, data quality, quality metrics,
    Evidently download."""
    from workbench.monitoring import views

    summary = report["summary"]
    st.markdown("**Test suite**")
    suite_section(report)
    drift = summary.get("drift") or {}
    st.markdown(
        f"**Data drift**: {drift.get('n_drifted', 0)} of {drift.get('n_columns', 0)} columns drifted "
        f"(share {drift.get('share_drifted', 0):.2f}; canvas threshold "
        f"{summary['thresholds']['drift_threshold']:g})."
    )
    table = views.drift_table(summary)
    if len(table):
        st.dataframe(table, hide_index=True, key=key(PAGE, f"drift_table_{report['id']}"),
                     column_config={"statistic": st.column_config.NumberColumn(format="%.4f")})
    for skipped in drift.get("skipped") or []:
        st.caption(f"Not tested: {skipped['column']} ({skipped['reason']})")
    if summary.get("missing_features"):
        st.warning(f"Features missing from the log: {', '.join(summary['missing_features'])}")

    st.markdown("**Prediction drift**")
    st.caption(views.prediction_drift_text(summary))
    # The charts load Streamlit's plotly bundle (1.5 s in a fresh tab, issue 15): drawn once opened.
    with lazy_expander("Charts: drift per column, one column in detail, predictions",
                       key=key(PAGE, "report_charts")) as opened:
        if opened:  # the window's log and the reference sample are read only for the charts
            log = _report_log(report)
            reference_info = summary.get("reference") or {}
            reference = _reference(project.slug, reference_info.get("alias", "champion"),
                                   str(reference_info.get("model_version", "")))
            if len(table):
                st.plotly_chart(views.drift_figure(summary), key=key(PAGE, f"drift_fig_{report['id']}"))
                drift_detail(report, reference, log)
            st.plotly_chart(views.prediction_figure(reference, log, task_type=project.task_type),
                            key=key(PAGE, f"pred_fig_{report['id']}"))

    st.markdown("**Data quality**")
    st.dataframe(_data_quality(report), hide_index=True, key=key(PAGE, f"dq_{report['id']}"))

    st.markdown(f"**Model quality** ({summary['primary_metric']})")
    quality = views.quality_table(summary)
    if len(quality):
        st.dataframe(quality, hide_index=True, key=key(PAGE, f"quality_{report['id']}"))
    else:
        st.caption("No labels in this window yet; send them through /feedback to see quality.")
    if summary.get("evidently_error"):
        st.warning(f"The Evidently report failed: {summary['evidently_error']}")
    evidently_download(report)


def evidently_download(report: dict[str, Any]) -> None:
    """Evidently's own HTML of the report: one click downloads it (rendered when clicked)."""
    from functools import partial

    from workbench.monitoring.service import report_html

    if not report.get("snapshot_path"):
        st.caption("This check ran without the Evidently report; tick the box and run it again to get it.")
        return
    for section in report["summary"].get("evidently_sections") or ["data"]:
        # A callable: Streamlit renders the HTML when the button is clicked, on its own thread.
        st.download_button(
            f"Download Evidently {section} report (HTML)",
            data=partial(report_html, report["id"], section=section),
            file_name=f"monitoring-report-{report['id']}-{section}.html",
            mime="text/html",
            key=key(PAGE, f"dl_{report['id']}_{section}"),
            icon=":material/download:",
            on_click="ignore",
        )
