"""Registry page helpers: versions and aliases, promote / rollback behind a confirmation with a reason,
the promotion history, compare with the champion, and the model card."""

from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui import context
from workbench.ui.context import display_name, key, principal
from workbench.ui.lazy import lazy_expander

PAGE = "registry"


def _project(session: Any, project: Project) -> Project:
    from workbench.projects import get_project

    return get_project(session, slug=project.slug)


# The message an action leaves for the next run of this page.
flash = partial(context.flash, PAGE)
show_flash = partial(context.show_flash, PAGE)


def load_versions(project: Project) -> list[Any]:
    """The project's model versions, newest first."""
    from workbench.registry import list_versions

    with session_scope() as session:
        return list_versions(session, project=_project(session, project))


def versions_table(project: Project, versions: list[Any]) -> None:
    """Versions with aliases, the holdout score on the project's primary metric first, the other holdout
    metrics, source run and job, dataset hash, creation time, beat-baseline."""
    from workbench.design.project_config import project_config
    from workbench.registry import versions_rows

    with session_scope() as session:
        primary = project_config(session, project=_project(session, project)).primary_metric
    rows = versions_rows(versions, primary_metric=primary)
    config: dict[str, Any] = {"mlflow": st.column_config.LinkColumn("MLflow", display_text="open")}
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config=config, key=key(PAGE, "versions"))


def alias_summary(versions: list[Any]) -> dict[str, str]:
    """Metrics showing which version each alias points at."""
    current = {alias: v.version for v in versions for alias in v.aliases}
    left, right = st.columns(2)
    left.metric("champion", f"v{current['champion']}" if "champion" in current else "none")
    right.metric("challenger", f"v{current['challenger']}" if "challenger" in current else "none")
    return current


def promote_section(project: Project, versions: list[Any], current: dict[str, str]) -> None:
    """Promote a version to champion or challenger; a confirmation asks for the reason."""
    from workbench.registry import ALIASES, promote

    st.subheader("Promote")
    version_col, alias_col = st.columns(2)
    version = version_col.selectbox("Version to promote", [v.version for v in versions],
                                    key=key(PAGE, "promote_version"), format_func=lambda v: f"v{v}")
    alias = alias_col.radio("Alias", ALIASES, horizontal=True, key=key(PAGE, "promote_alias"))
    if st.button("Promote…", key=key(PAGE, "promote_open")):
        st.session_state[key(PAGE, "confirm")] = ("promote", version, alias)
    pending = st.session_state.get(key(PAGE, "confirm"))
    if pending and pending[0] == "promote":
        _, version, alias = pending
        reason = _confirmed_reason("promote", "Confirm promotion", f"Make **v{version}** the **{alias}** (now: "
                                   f"{'v' + current[alias] if alias in current else 'none'})?")
        if reason is not None:
            with session_scope() as session:
                promote(session, project=_project(session, project), version=version, alias=alias,
                        reason=reason, actor=display_name(), principal=principal())
            _close_confirmation(f"v{version} is now the {alias}.")


def rollback_section(project: Project, current: dict[str, str]) -> None:
    """Roll the champion back to the previous one, behind a confirmation with a reason."""
    from workbench.registry import rollback, rollback_target

    st.subheader("Roll back")
    with session_scope() as session:
        target = rollback_target(session, project=_project(session, project))
    previous = target.from_version if target is not None else None
    if previous is None:
        st.caption("No earlier champion in the promotion history to roll back to.")
        return
    st.caption(f"Rolling back makes v{previous} the champion again (now: v{current.get('champion', '—')}).")
    if st.button("Roll back…", key=key(PAGE, "rollback_open")):
        st.session_state[key(PAGE, "confirm")] = ("rollback", previous, "champion")
    pending = st.session_state.get(key(PAGE, "confirm"))
    if pending and pending[0] == "rollback":
        reason = _confirmed_reason("rollback", "Confirm rollback", f"Make **v{previous}** the **champion** again?")
        if reason is not None:
            with session_scope() as session:
                row = rollback(session, project=_project(session, project), reason=reason, actor=display_name(),
                               principal=principal())
                to_version = row.to_version
            _close_confirmation(f"Rolled back: v{to_version} is the champion again.")


def _confirmed_reason(action: str, confirm_label: str, question: str) -> str | None:
    """The open confirmation box of ``action``: the reason typed once confirmed, else None (Cancel closes it)."""
    with st.container(border=True):
        st.markdown(question)
        reason = st.text_area("Reason (kept in the promotion history)", key=key(PAGE, f"{action}_reason"))
        ok, cancel = st.columns(2)
        confirmed = ok.button(confirm_label, type="primary", key=key(PAGE, f"{action}_confirm"))
        if cancel.button("Cancel", key=key(PAGE, f"{action}_cancel")):
            _close_confirmation(None)
    return reason if confirmed else None


def _close_confirmation(message: str | None) -> None:
    """Close the confirmation box, say what happened (when anything did) and redraw the page."""
    st.session_state.pop(key(PAGE, "confirm"), None)
    if message:
        flash(message)
    st.rerun()


def history_section(project: Project) -> None:
    """Every alias change as a timeline (one lane per alias), then the table: who, when, from which
    version to which, and why."""
    from workbench.registry import history, promotion_dict, timeline_figure

    st.subheader("Promotion history")
    with session_scope() as session:
        rows = [promotion_dict(r) for r in history(session, project=_project(session, project))]
    if not rows:
        st.caption("No promotion yet.")
        return
    # Rollout steps are rows too (alias "rollout", from the champion to the challenger version).
    st.dataframe(pd.DataFrame(rows)[["created_at", "action", "alias", "from_version", "to_version", "actor",
                                     "reason", "rollout_id"]], hide_index=True, key=key(PAGE, "history"))
    # The timeline loads Streamlit's plotly bundle (1.5 s in a fresh tab, issue 15): drawn once opened.
    with lazy_expander("Chart: the aliases' timeline", key=key(PAGE, "charts")) as opened:
        if opened:
            st.plotly_chart(timeline_figure(rows), key=key(PAGE, "timeline"), config={"displaylogo": False})


def compare_section(project: Project, versions: list[Any], current: dict[str, str]) -> None:
    """Score a version and the champion on the project holdout, side by side."""
    from workbench.registry import compare_with_champion

    st.subheader("Compare with the champion")
    if "champion" not in current:
        st.caption("There is no champion yet.")
        return
    options = [v.version for v in versions]
    version = st.selectbox("Version to compare with the champion", options, key=key(PAGE, "compare_version"),
                           format_func=lambda v: f"v{v}")
    if st.button("Compare on the holdout", key=key(PAGE, "compare_go")):
        with st.spinner("Scoring both models on the holdout…"), session_scope() as session:
            st.session_state[key(PAGE, "comparison")] = compare_with_champion(
                session, project=_project(session, project), version=version)
    result = st.session_state.get(key(PAGE, "comparison"))
    if result is None:
        return
    verdict = ("better than" if result.better else "not better than") if result.better is not None else "unlike"
    st.markdown(f"On {result.n_holdout} holdout rows, **v{result.version}** is **{verdict}** the champion "
                f"v{result.champion} on {result.metric}"
                + (f" (uplift {result.uplift:+.4g})." if result.uplift is not None else "."))
    st.dataframe(pd.DataFrame(result.metrics).rename(columns=lambda v: f"v{v}"), key=key(PAGE, "compare_metrics"))
    for name, by_version in result.figures.items():
        st.markdown(f"**{name}**")
        for column, (label, fig) in zip(st.columns(len(by_version)), by_version.items(), strict=True):
            with column:
                st.plotly_chart(fig, key=key(PAGE, f"compare_{name}_{label}"))


def _card(slug: str, version: str) -> str:
    """The model card of ``version`` (Markdown); built on demand, by the download or the opened preview."""
    from workbench.projects import get_project
    from workbench.registry import model_card

    with session_scope() as session:
        return model_card(session, project=get_project(session, slug=slug), version=version)


def model_card_section(project: Project, versions: list[Any]) -> None:
    """Generate the model card of a version, download it, and log it on the version's run.

    The card reads the version's MLflow run and the canvases (a few hundred ms): it is built when the
    download is clicked or the preview opened, not on every run of the page (issue 15).
    """
    from workbench.registry import log_model_card

    st.subheader("Model card")
    version = st.selectbox("Model card of version", [v.version for v in versions], key=key(PAGE, "card_version"),
                           format_func=lambda v: f"v{v}")
    st.download_button("Download model card (Markdown)", partial(_card, project.slug, version),
                       file_name=f"{project.slug}-v{version}-model-card.md", mime="text/markdown",
                       key=key(PAGE, "card_download"), on_click="ignore", icon=":material/download:")
    if st.button("Log it on the version's MLflow run", key=key(PAGE, "card_log")):
        with session_scope() as session:
            _, run_id = log_model_card(session, project=_project(session, project), version=version,
                                       principal=principal())
        st.success(f"Logged as model_card.md on run {run_id}.")
    with lazy_expander("Preview", key=key(PAGE, "card_preview"), icon=None) as opened:
        if opened:
            st.markdown(_card(project.slug, version))
