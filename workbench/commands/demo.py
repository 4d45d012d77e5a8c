"""``workbench demo seed``: the demo project ``make run`` creates on first start."""

from __future__ import annotations

import click

from workbench.commands.common import actor, emit, json_option


def register(main: click.Group) -> None:
    """Add the ``demo`` group to the ``workbench`` command."""

    @main.group()
    def demo() -> None:
        """The demo project (synthetic churn data)."""

    @demo.command("seed")
    @json_option
    def demo_seed(as_json: bool) -> None:
        """Create the demo project unless it exists already (safe to run on every start)."""
        from workbench.db import session_scope
        from workbench.projects.demo import seed_demo
        from workbench.settings import get_settings

        get_settings().ensure_home()
        with session_scope() as session:
            data = seed_demo(session, actor=actor())
        text = (
            f"Created the demo project {data['name']!r} ({data['slug']})."
            if data["created"]
            else f"Demo project {data['slug']} already exists; nothing to do."
        )
        emit(data, as_json=as_json, text=text)
