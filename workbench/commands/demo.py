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
    @click.option("--minimal", is_flag=True, help="Only the project and its data; no demo job.")
    @json_option
    def demo_seed(minimal: bool, as_json: bool) -> None:
        """Create the demo project, then start the demo job that fills every stage (safe to run on every start)."""
        from workbench.db import session_scope
        from workbench.projects.demo import seed_demo, start_full_demo
        from workbench.settings import get_settings

        settings = get_settings()
        settings.ensure_home()
        with session_scope() as session:
            data = seed_demo(session, actor=actor())
        lines = [
            f"Created the demo project {data['name']!r} ({data['slug']})."
            if data["created"]
            else f"Demo project {data['slug']} already exists."
        ]
        if not minimal:
            # Returns once the job is started: the app is usable at once and Home shows the job's progress.
            job = start_full_demo(slug=data["slug"], actor=actor(), settings=settings)
            data["demo_job"] = job
            lines.append({
                "started": f"Started demo job {job['job_id']}: it builds every stage in the background "
                           "(about 3 minutes); Home shows its progress.",
                "running": f"Demo job {job['job_id']} is still building the demo; nothing to do.",
                "done": f"The full demo is built (job {job['job_id']}); nothing to do.",
            }[job["state"]])
        emit(data, as_json=as_json, text="\n".join(lines))
