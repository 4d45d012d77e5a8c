"""A reusable job-progress view that polls only while the job is active."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import streamlit as st

from workbench.db import session_scope
from workbench.jobs import ACTIVE_STATUSES, get_job, job_dict, log_tail
from workbench.ui.context import principal

POLL_SECONDS = 1.0
STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/autorenew:",
    "succeeded": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
    "lost": ":material/help:",
}


def _render(job_id: str, extra: Callable[[dict], None] | None) -> dict:
    with session_scope() as session:
        job = get_job(session, job_id=job_id)
        data = job_dict(job)
        tail = log_tail(job, lines=15)
    icon = STATUS_ICONS.get(data["status"], "")
    st.markdown(f"{icon} Job `{job_id}` ({data['kind']}): **{data['status']}**")
    st.progress(min(1.0, max(0.0, data["progress"])), text=data["message"] or data["status"])
    if data["status"] in ("failed", "lost") and (data["error"] or data["message"]):
        st.error(data["error"] or data["message"])
    if extra is not None:
        extra(data)
    if tail:
        with st.expander("Log tail", expanded=False):
            st.code(tail, language="text")
    return data


def job_progress(job_id: str, *, key: str, extra: Callable[[dict], None] | None = None) -> dict:
    """Show ``job_id``'s status, progress bar, message and log tail.

    While the job is queued or running, the view lives in a fragment that re-runs every
    second; once the job ends, the whole page re-runs once so it can show the result.
    """
    with session_scope() as session:
        status = get_job(session, job_id=job_id).status
    if status not in ACTIVE_STATUSES:
        return _render(job_id, extra)

    @st.fragment(run_every=timedelta(seconds=POLL_SECONDS))
    def _poll() -> None:
        data = _render(job_id, extra)
        if data["status"] not in ACTIVE_STATUSES:
            st.session_state[key] = data["status"]
            st.rerun()

    _poll()
    return {"status": status}


def cancel_button(job_id: str, *, key: str) -> None:
    """A Cancel button for an active job."""
    from workbench.jobs import cancel

    if st.button("Cancel job", key=key, icon=":material/stop:"):
        with session_scope() as session:
            cancel(session, job_id=job_id, principal=principal())
        st.toast(f"Cancel sent to job {job_id}.")
