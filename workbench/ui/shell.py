"""The app shell: the sign-in gate, the sidebar's project picker and identity block, and the background schedule."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import streamlit as st

from workbench.access.sign_in import Access, AccessKind
from workbench.db import session_scope
from workbench.ui.context import NAME_STATE, access, current_role, current_slug, principal, set_current, sync_url
from workbench.ui.pages import PAGES

PICKER_STATE = "shell.picker"

# The configure-sign-in page's example (README "Security" has the same one, worked through).
AUTH_EXAMPLE = """[auth]
redirect_uri = "https://workbench.example.com/oauth2callback"
cookie_secret = "a long random string"   # python -c "import secrets; print(secrets.token_urlsafe(32))"
client_id = "workbench"
client_secret = "from your provider"
server_metadata_url = "https://idp.example.com/.well-known/openid-configuration"
"""


def project_picker() -> None:
    """Sidebar select box of the active projects this user may view; the choice goes into the URL.

    A signed-in user's link to a project they may not view keeps its slug (the page then says
    "No access"), with nothing picked here; anyone else falls back to the first project.
    """
    from workbench.access.roles import subject_to_roles, visible_projects

    me = principal()
    with session_scope() as session:
        projects = [(p.slug, p.name) for p in visible_projects(session, principal=me)]
    slugs = [slug for slug, _ in projects]
    names = dict(projects)
    current = current_slug()
    if current not in slugs and not (current and subject_to_roles(me)):
        current = slugs[0] if slugs else None
        set_current(current)
    if not slugs:
        hint = "create one on Home, or ask an owner to add you" if subject_to_roles(me) else "create one on Home"
        st.sidebar.caption(f"No projects yet: {hint}.")
        return
    # The picker shows the current project, however it became current (picked here, created on Home,
    # opened from a link): its value is set before it is drawn, and only a user's pick changes the
    # current project, in the callback. Comparing its value with the current project after drawing
    # instead turned a project made current elsewhere back into the one the picker still held.
    if current not in slugs:
        current = None  # a link to a project this user may not view: nothing picked
    if st.session_state.get(PICKER_STATE) != current:
        st.session_state[PICKER_STATE] = current
    st.sidebar.selectbox(
        "Project",
        slugs,
        # None: nothing picked while a link names a project this user may not view (0 lets the state decide).
        index=0 if current in slugs else None,
        placeholder="Choose one of your projects",
        format_func=lambda slug: f"{names[slug]} ({slug})",
        key=PICKER_STATE,
        on_change=_on_pick,
    )


def _on_pick() -> None:
    """The user picked a project in the sidebar: it becomes current, in the session and the URL."""
    set_current(st.session_state[PICKER_STATE])


def sidebar() -> None:
    """Everything the sidebar shows on every page: the project picker and who is acting."""
    sync_url()
    decision = access()  # before the picker: the identity block's inputs are read before anything draws
    project_picker()
    who_is_acting(decision)


def who_is_acting(decision: Access) -> None:
    """The sidebar's identity block: the signed-in user and Sign out, or local mode and the name box."""
    if decision.kind is AccessKind.SIGNED_IN:
        st.sidebar.caption(f"Signed in as **{decision.user}**")
        role = current_role()
        if role:
            st.sidebar.caption(f"Your role in this project: **{role}**")
        st.sidebar.button("Sign out", key="shell.sign_out", icon=":material/logout:", on_click=_sign_out)
        return
    if decision.kind is AccessKind.LOCAL:
        st.sidebar.caption(
            f"Local mode: you are **{decision.user}** (the OS login); only this machine can reach the app."
        )
    else:
        st.sidebar.caption("No sign-in (WORKBENCH_ALLOW_ANONYMOUS): anyone who reaches this server can edit.")
    if NAME_STATE not in st.session_state:
        st.session_state[NAME_STATE] = ""
    st.sidebar.text_input(
        "Your name",
        key=NAME_STATE,
        placeholder="shown on your changes",
        help="Recorded on every change you make (or your login, when sign-in is configured).",
    )


def _sign_out() -> None:
    """Sign out, as the Sign out button's callback.

    ``st.logout()`` empties ``st.user`` and queues the browser's redirect to Streamlit's logout endpoint.
    In a callback (which runs before the script) the run that follows draws the sign-in page, and the
    redirect is sent with it. Called in the script and followed by ``st.rerun()`` instead, the rerun
    emptied the message queue first whenever the server was slow to flush it, so the browser was never
    redirected and stayed on the workbench.
    """
    st.logout()


def gate() -> bool:
    """Render the sign-in page or the configure-sign-in page instead of the workbench; True when it may show.

    The entry point calls it before ``st.navigation``, so no page of the workbench runs, whatever the URL.
    """
    decision = access()
    if decision.shows_workbench:
        return True
    render = _sign_in_page if decision.kind is AccessKind.SIGN_IN else _configure_page
    # Hidden navigation whose every page draws the same sign-in page: a deep link (/ml_canvas?project=...)
    # lands on it too, instead of Streamlit's "Page not found" dialog, and the sidebar stays empty.
    gates = [st.Page(render, title="Sign in", icon=":material/login:", default=True)]
    for page in PAGES:
        if not page.default:
            url_path = st.Page(page.file).url_path  # the path Streamlit gives the real page
            gates.append(st.Page(render, title="Sign in", icon=":material/login:", url_path=url_path))
    st.navigation(gates, position="hidden").run()
    return False


def _sign_in_page() -> None:
    st.title("MLOps Workbench")
    st.write("Sign in to open the workbench.")
    if st.button("Sign in", key="shell.sign_in", type="primary", icon=":material/login:"):
        st.login()


def _configure_page() -> None:
    address = st.get_option("server.address") or "every interface"
    st.title("Sign-in is not configured")
    st.error(
        f"This server listens on {address}, so other machines can reach it, and no sign-in is configured. "
        "The workbench stays closed until you configure sign-in or bind the server to 127.0.0.1.",
        icon=":material/lock:",
    )
    st.markdown(
        "Add an `[auth]` section for your OpenID Connect provider to `.streamlit/secrets.toml` "
        "(next to `streamlit_app.py`) and restart the server:"
    )
    st.code(AUTH_EXAMPLE, language="toml")
    st.markdown(
        "Or run it for this machine only (local mode): `make run` or "
        "`streamlit run streamlit_app.py --server.address 127.0.0.1`. To serve it without sign-in anyway, "
        "set `WORKBENCH_ALLOW_ANONYMOUS=true` (anyone who reaches the port can then do anything)."
    )


def monitor_schedule() -> None:
    """Start the monitoring schedule of this server process (a no-op when it is off or already running).

    The entry point calls it on every run, whichever page opens first; ``st.cache_resource``
    behind it makes one scheduler per process.
    """
    from workbench.ui.monitoring import monitor_schedule as start

    start()


# Imported by the Train and Operate pages (Registry, Deployments, Experiments, Monitoring), which are
# slow to open the first time in a server process mostly because of these imports (MLflow alone takes
# seconds on a 2-core machine).
# The first group is what the Experiments page needs (its first view also needs the run projections synced
# and the MLflow client open, :func:`warm_projections`), so those are ready first; the rest come after them.
WARM_MODULES = (
    "mlflow",
    "mlflow.exceptions",
    "workbench.tracking",
)
WARM_MODULES_LATER = (
    "workbench.registry",
    "workbench.serving.model_loader",
    "workbench.monitoring.drift",
)
WARM_DELAY_SECONDS = 1.5
# MLflow's modules import one another in a cycle, and two threads importing them at once can get a half-built
# module: "Couldn't build proto file into descriptor pool: Depends on file 'databricks.proto'" on the Experiments
# page (seen in the browser tests under load). So until the warm-up thread has imported them (_WARM_DONE), it
# and the page runs take turns with this lock: a run holds it from its start to its end, the thread for its
# imports. Waiting only at a run's start was not enough: a first page still importing when the thread began
# raced it, and two sessions' first runs raced each other. Once the warm-up is done every module a page needs
# is in ``sys.modules`` and runs go side by side again, as Streamlit runs them.
_IMPORTING = threading.Lock()
_WARM_DONE = threading.Event()


@contextlib.contextmanager
def first_imports_guard() -> Iterator[None]:
    """Run the page alone while this server process's warm-up imports are not done (then at once, unguarded).

    The entry point wraps each run's sidebar and page in it. Under AppTest the warm-up never runs, so runs
    always take turns there (AppTest runs one at a time anyway).
    """
    if _WARM_DONE.is_set():
        yield
        return
    with _IMPORTING:
        yield


def warm_imports() -> None:
    """Once per server process, import what the heavier pages need, in a low-priority background thread.

    Called by the entry point on each run, before the page. The first page is drawn without them (Home and
    the Design pages never need them); the thread imports them a few seconds later, so a later click on
    Registry or Deployments does not pay seconds of imports. Not under AppTest: its runs share the
    test process, whose own checks of ``sys.modules`` and imports it would race.
    """
    import sys

    if "streamlit.testing.v1.app_test" in sys.modules:
        return
    _start_warm_thread()


@st.cache_resource(show_spinner=False)
def _start_warm_thread() -> bool:
    import importlib
    import logging
    import os
    import time

    def warm() -> None:
        with contextlib.suppress(AttributeError, OSError):  # below the request threads (Linux nice is per thread)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        time.sleep(WARM_DELAY_SECONDS)
        def load(names: tuple[str, ...]) -> None:
            for name in names:
                try:
                    importlib.import_module(name)
                except Exception:  # a missing optional library shows where it is used, not here
                    logging.getLogger(__name__).debug("warming %s failed", name, exc_info=True)

        try:
            with _IMPORTING:
                load(WARM_MODULES)
                warm_projections()
                load(WARM_MODULES_LATER)
        finally:  # whatever failed, a page imports it itself, and pages need not take turns any more
            _WARM_DONE.set()

    threading.Thread(target=warm, name="workbench-warm-imports", daemon=True).start()
    return True


def warm_projections() -> None:
    """Sync every active project's run projection and open the MLflow client (the warm-up thread calls it after
    the imports).

    Profiled on the seeded demo (cProfile of the first Experiments view through AppTest), the first view of a
    server process spent 0.93 of its 1.24 s creating the MLflow client (the run detail's ``get_run``: MLflow's
    SQL store module and its ORM mappers) and 0.06 s in the project's first sync; at 50,000 runs that full sync
    takes seconds. Done here, in the background, the first view finds both ready and only checks the store for
    changes. A store that does not exist yet is left alone (creating the client would create it).
    """
    import logging

    try:
        from workbench.experiments.runs import sync_all_projects
        from workbench.tracking import get_client, tracking_store_missing

        sync_all_projects()
        if not tracking_store_missing():
            get_client()
    except Exception:  # the pages open the client and sync again, and show what failed
        logging.getLogger(__name__).debug("warming the run projections failed", exc_info=True)
