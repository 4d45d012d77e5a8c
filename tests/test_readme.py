"""The README stays true: every CLI command and every setting is documented, the screenshot exists."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import click

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def command_paths(group: click.Group, prefix: tuple[str, ...] = ("workbench",)) -> list[str]:
    """``workbench project create``, ... for every leaf command of the CLI."""
    ctx = click.Context(group, info_name=" ".join(prefix))
    paths: list[str] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
        elif command is not None and not command.hidden:
            paths.append(" ".join((*prefix, name)))
    return paths


def test_every_cli_command_is_in_the_reference() -> None:
    from workbench.cli import main

    documented = set(re.findall(r"^\| `(workbench[a-z\- ]*?)(?: [A-Z_]+)*`", README, flags=re.MULTILINE))
    paths = command_paths(main)
    assert "workbench project create" in paths, "the walk reaches nested commands"
    missing = [path for path in paths if path not in documented]
    assert not missing, (
        f"README.md's CLI reference lacks {', '.join(missing)}: refresh its table with "
        "`.venv/bin/python docs/cli_reference.py --write`."
    )


def test_every_setting_and_its_variable_is_documented() -> None:
    from workbench.settings import Settings

    missing = [
        f"{f.name} ({f.metadata['env']})"
        for f in fields(Settings)
        if f"`{f.name}`" not in README or f"`{f.metadata['env']}`" not in README
    ]
    assert not missing, f"README.md's Settings table lacks {', '.join(missing)}"


def test_the_screenshot_the_readme_shows_exists() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert "docs/screenshots/home.png" in images
    for image in images:
        assert (REPO_ROOT / image).is_file(), f"{image} is missing: run `make test` (the e2e journey saves it)"
