"""CLI commands for projects and datasets (being filled in)."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add the project/data commands to the ``workbench`` group."""
