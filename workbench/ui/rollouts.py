"""The Deployments page's Rollout panel: start a shadow, canary or A/B rollout of a registered version on a
running web service or stream consumer, change its share, watch the online comparison live, and stop,
promote or roll back, each step kept in the registry history.

The statistics are :func:`workbench.rollouts.rollout_status`'s and the figures
:mod:`workbench.rollouts.views`'; this module only lays them out and calls the services with
the signed-in principal (viewers see the panel, editors act: the services check the roles).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui.context import display_name, key, principal
from workbench.ui.errors import shown_errors
from workbench.ui.lazy import lazy_expander

PAGE = "deployments"
MODE_LABELS = {"shadow": "Shadow (challenger scores a copy, champion answers)",
               "canary": "Canary (challenger answers a share, 1–50 %)",
               "ab": "A/B (challenger answers a share, 1–99 %)"}
MAX_SHARE = {"shadow": 100, "canary": 50, "ab": 99}
SHARE_LABELS = {"shadow": "Share of requests copied to the challenger (%)", "canary": "Challenger's share (%)",
                "ab": "Challenger's share (%)"}
# How often the live comparison refreshes while a rollout runs.
REFRESH_SECONDS = 5


def _key(deployment_id: int, name: str) -> str:
    """A state key of this panel for one deployment (namespaced by page, then by deployment)."""
    return key(PAGE, f"rollout.{deployment_id}.{name}")


@dataclass(frozen=True)
class PanelState:
    """What the panel needs of one deployment: its newest rollout (None: never had one), the history
    steps, the registry's versions and aliases, and what this user may do."""

    latest: dict[str, Any] | None
    steps: list[dict[str, Any]]
    versions: list[str]
    aliases: dict[str, str]
    may_deploy: bool
    may_promote: bool

    @property
    def running(self) -> bool:
        return self.latest is not None and self.latest["status"] == "running"


def panel_state(project: Project, deployment_id: int) -> PanelState:
    """Read the deployment's rollouts, their history rows, the registered versions and this user's rights."""
    from workbench.access.roles import can
    from workbench.projects import get_project
    from workbench.registry import list_versions, promotion_dict
    from workbench.rollouts import list_rollouts, rollout_dict, rollout_history

    with session_scope() as session:
        attached = get_project(session, slug=project.slug)
        rollouts = list_rollouts(session, project=attached, deployment_id=deployment_id)
        steps = [promotion_dict(r) for r in rollout_history(session, project=attached, deployment_id=deployment_id)]
        versions = list_versions(session, project=attached)
        me = principal()
        may_deploy = can(session, project=attached, principal=me, action="deploy")
        may_promote = can(session, project=attached, principal=me, action="promote")
        return PanelState(
            latest=rollout_dict(rollouts[0]) if rollouts else None,
            steps=steps,
            versions=[v.version for v in versions],
            aliases={alias: v.version for v in versions for alias in v.aliases},
            may_deploy=may_deploy,
            may_promote=may_promote,
        )


def rollout_panel(project: Project, rows: list[dict[str, Any]], *, latency_budget_ms: float | None) -> None:
    """The Rollout panel of one web or stream deployment (picked when there are several)."""
    from workbench.rollouts import ROLLOUT_DEPLOYMENT_MODES

    targets = [r for r in rows if r["mode"] in ROLLOUT_DEPLOYMENT_MODES]
    if not targets:
        st.caption("A rollout runs on a web service or a stream consumer: start one above, then roll a challenger "
                   "out on it in shadow or as a canary.")
        return
    labels = {f"#{r['id']} {r['mode']} ({r['status']})": r for r in sorted(targets, key=lambda r: -r["id"])}
    row = labels[st.selectbox("Rollout on deployment", list(labels), key=key(PAGE, "rollout.target"))]
    state = panel_state(project, row["id"])
    if state.running:
        running_controls(project, row, state)
    else:
        start_form(project, row, state)
    if state.latest is not None:
        comparison(project, row["id"], running=state.running, latency_budget_ms=latency_budget_ms)
    steps_section(state)


def start_form(project: Project, row: dict[str, Any], state: PanelState) -> None:
    """Start a rollout of a registered version (``@challenger`` by default) against the champion."""
    latest = state.latest
    if latest is not None:
        st.markdown(f"Last rollout #{latest['id']} ({latest['mode']} of v{latest['challenger_version']}) "
                    f"**{latest['status']}**: {latest['end_reason'] or '—'}")
        if latest["status"] == "promoted":
            rollback_control(project, row, state)
    if row["status"] != "running":
        st.caption(f"Deployment #{row['id']} is {row['status']}: a rollout needs it running.")
        return
    champion = state.aliases.get("champion")
    candidates = [v for v in state.versions if v != champion]
    if not candidates:
        st.caption("No version other than the champion is registered: register a challenger to roll it out.")
        return
    default = state.aliases.get("challenger")
    with st.form(_key(row["id"], "start_form")):
        st.markdown(f"**Start a rollout** against champion v{champion or '—'}")
        version = st.selectbox("Version to roll out", candidates,
                               index=candidates.index(default) if default in candidates else 0,
                               format_func=lambda v: f"v{v}" + (" (@challenger)" if v == default else ""),
                               key=_key(row["id"], "version"))
        mode = st.radio("Mode", list(MODE_LABELS), format_func=MODE_LABELS.__getitem__, horizontal=True,
                        key=_key(row["id"], "mode"))
        share = st.slider("Challenger's share of answers (%) · canary 1–50, A/B 1–99",
                          min_value=1, max_value=99, value=10, key=_key(row["id"], "start_share"))
        copied = st.slider("Shadow: share of requests copied to the challenger (%)", min_value=1, max_value=100,
                           value=100, key=_key(row["id"], "start_copied"),
                           help="Fewer copies cost the serving machine less CPU, for fewer pairs to compare.")
        key_column = st.selectbox("Key column (sticky assignment)", [None, *champion_columns(project, champion)],
                                  format_func=lambda c: "(the request id)" if c is None else c,
                                  key=_key(row["id"], "key_column"),
                                  help="A column requests carry, such as a customer id (the champion's inputs, then "
                                       "the data's other columns): one key always sees one variant. Without one, "
                                       "each request is assigned by its id.")
        submitted = st.form_submit_button("Start rollout", icon=":material/call_split:",
                                          disabled=not state.may_deploy)
    if not state.may_deploy:
        st.caption("Viewers see rollouts; an editor of the project starts and stops them.")
    if submitted:
        from workbench.rollouts import start_rollout

        with shown_errors():
            with session_scope() as session:
                started = start_rollout(session, project=project.slug, deployment_id=row["id"], mode=mode,
                                        share=(copied if mode == "shadow" else share) / 100, version=version,
                                        key_column=key_column or None, actor=display_name(), principal=principal())
                rollout_id = started.id
            _done(f"Rollout #{rollout_id} started: {mode} of v{version}.")


@st.cache_data(ttl=600, show_spinner=False)
def _columns(slug: str, version: str) -> list[str]:
    from workbench.projects import get_project
    from workbench.rollouts import key_columns

    with session_scope() as session:
        project = get_project(session, slug=slug)
        return key_columns(session, project=project, champion=version)


def champion_columns(project: Project, champion: str | None) -> list[str]:
    """The key columns a rollout may stick by: the champion's inputs, then the data's other columns (read
    once per version)."""
    if champion is None:
        return []
    try:
        return _columns(project.slug, champion)
    except Exception as exc:  # no readable signature: the request id is the only key offered, and why is said
        st.caption(f"Key columns unavailable (the champion's signature could not be read: {exc}).")
        return []


def running_controls(project: Project, row: dict[str, Any], state: PanelState) -> None:
    """The running rollout: what it is, its share slider, and stop / promote with a reason."""
    from workbench.rollouts import promote_rollout, served_share, set_share, share_text, stop_rollout

    latest = state.latest
    assert latest is not None
    share = share_text(latest["mode"], latest["share"])
    keyed = f", keyed by `{latest['key_column']}`" if latest["key_column"] else ""
    st.markdown(f":material/call_split: Rollout #{latest['id']} is **running**: {latest['mode']}{share} of "
                f"**v{latest['challenger_version']}** against champion v{latest['champion_version']}{keyed}, "
                f"started {latest['started_at']} by {latest['started_by'] or '—'}.")
    deployment_id = row["id"]
    if latest["mode"] in MAX_SHARE:
        left, right = st.columns([3, 1])
        new = left.slider(SHARE_LABELS[latest["mode"]], min_value=1, max_value=MAX_SHARE[latest["mode"]],
                          value=round(served_share(latest["mode"], latest["share"]) * 100),
                          key=_key(deployment_id, f"share_{latest['id']}"))
        if right.button("Apply share", key=_key(deployment_id, "apply_share"), disabled=not state.may_deploy):
            with shown_errors():
                with session_scope() as session:
                    set_share(session, project=project.slug, deployment_id=deployment_id, share=new / 100,
                              actor=display_name(), principal=principal())
                _done(f"The challenger now {'scores a copy of' if latest['mode'] == 'shadow' else 'answers'} "
                      f"{new}% of the keys.")
    reason = st.text_input("Reason (kept in the registry history; required to stop or promote)",
                           key=_key(deployment_id, "reason"))
    stop, promote = st.columns(2)
    if stop.button("Stop rollout (champion only)", key=_key(deployment_id, "stop"), icon=":material/stop:",
                   disabled=not state.may_deploy):
        with shown_errors():
            with session_scope() as session:
                stop_rollout(session, project=project.slug, deployment_id=deployment_id, reason=reason,
                             actor=display_name(), principal=principal())
            _done("Rollout stopped: the champion answers alone again.")
    if promote.button(f"Promote v{latest['challenger_version']} to champion", type="primary",
                      key=_key(deployment_id, "promote"), icon=":material/military_tech:",
                      disabled=not state.may_promote):
        with shown_errors():
            with session_scope() as session:
                promote_rollout(session, project=project.slug, deployment_id=deployment_id, reason=reason,
                                actor=display_name(), principal=principal())
            _done(f"v{latest['challenger_version']} is the champion now.")


def rollback_control(project: Project, row: dict[str, Any], state: PanelState) -> None:
    """After a promotion: make the previous champion the champion again (the registry's rollback), with a reason."""
    from workbench.projects import get_project
    from workbench.registry import rollback

    latest = state.latest
    assert latest is not None
    if state.aliases.get("champion") != latest["challenger_version"]:
        return  # the champion has moved on since: the registry page rolls back from there
    reason = st.text_input(f"Reason to roll back to v{latest['champion_version']}",
                           key=_key(row["id"], "rollback_reason"))
    if st.button(f"Roll back to v{latest['champion_version']}", key=_key(row["id"], "rollback"),
                 icon=":material/undo:", disabled=not state.may_promote):
        with shown_errors():
            with session_scope() as session:
                moved = rollback(session, project=get_project(session, slug=project.slug), reason=reason,
                                 actor=display_name(), principal=principal())
                to_version = moved.to_version
            _done(f"Rolled back: v{to_version} is the champion again.")


def comparison(project: Project, deployment_id: int, *, running: bool, latency_budget_ms: float | None) -> None:
    """The online comparison of the deployment's newest rollout; refreshed every few seconds while it runs."""
    if not running:
        show_comparison(project, deployment_id, latency_budget_ms=latency_budget_ms)
        return

    @st.fragment(run_every=timedelta(seconds=REFRESH_SECONDS))
    def _live() -> None:
        status = show_comparison(project, deployment_id, latency_budget_ms=latency_budget_ms)
        if status is not None and status.rollout["status"] != "running":
            # A guardrail breach or the automatic policy ended it meanwhile: redraw the controls too.
            st.rerun()

    _live()


def status_of(project: Project, deployment_id: int) -> Any:
    """:func:`workbench.rollouts.rollout_status` of the deployment's newest rollout."""
    from workbench.rollouts import rollout_status

    with session_scope() as session:
        return rollout_status(session, project=project.slug, deployment_id=deployment_id)


def show_comparison(project: Project, deployment_id: int, *, latency_budget_ms: float | None) -> Any:
    """The verdict in words, the per-variant table, the guardrails and the four charts; returns the status shown
    (None when it could not be computed: the error is shown instead)."""
    from workbench.rollouts import views

    status = None
    with shown_errors():
        status = status_of(project, deployment_id)
        st.markdown(f"Verdict: {views.verdict_sentence(status)}")
        if status.guardrails.breached:
            st.error(f"Guardrail breached: {status.guardrails.reason}", icon=":material/gpp_bad:")
        st.dataframe(pd.DataFrame(views.variant_rows(status)), hide_index=True,
                     key=_key(deployment_id, "variants"),
                     column_config={"error rate": st.column_config.NumberColumn(format="percent"),
                                    "agreement": st.column_config.NumberColumn(format="%.3f")})
        # On demand, like every page's charts (workbench.ui.lazy): the verdict and the table above answer first.
        with lazy_expander("Comparison charts: the difference with its interval, latency, predictions, agreement",
                           key=key(PAGE, "rollout_charts")) as opened:
            if opened:
                left, right = st.columns(2)
                left.plotly_chart(views.interval_figure(status), key=_key(deployment_id, "fig_interval"))
                right.plotly_chart(views.latency_figure(status, latency_budget_ms=latency_budget_ms),
                                   key=_key(deployment_id, "fig_latency"))
                left.plotly_chart(views.distribution_figure(status), key=_key(deployment_id, "fig_distribution"))
                right.plotly_chart(views.agreement_figure(status), key=_key(deployment_id, "fig_agreement"))
        with st.expander("Guardrails"):
            st.dataframe(pd.DataFrame(views.guardrail_rows(status)), hide_index=True,
                         key=_key(deployment_id, "guardrails"))
    return status


def steps_section(state: PanelState) -> None:
    """The deployment's rollout steps (rows of the registry history), oldest first."""
    from workbench.rollouts import views

    if not state.steps:
        return
    st.markdown("**Rollout history** (rows of the registry history)\n\n" + "\n".join(views.step_lines(state.steps)))


def _done(message: str) -> None:
    """Say what happened and redraw the page (the controls follow the new state); called after the
    step's transaction committed, since a rerun inside it would roll it back."""
    st.toast(message)
    st.rerun()
