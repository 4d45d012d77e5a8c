"""Print (or, with ``--write``, refresh in README.md) the CLI reference table, from the click commands.

    .venv/bin/python docs/cli_reference.py           # print the Markdown table
    .venv/bin/python docs/cli_reference.py --write   # replace the table in README.md

``tests/test_readme.py`` fails when a command is missing from the README; this fixes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

REPO_ROOT = Path(__file__).resolve().parents[1]
HEADER = "| command | what it does | options |\n|---|---|---|"
# Lifecycle order of the top-level commands; anything else follows, alphabetically.
ORDER = [
    "up", "db", "demo", "project", "member", "data", "canvas", "baseline", "train", "tune-worker", "runs", "models",
    "model", "promote", "rollback", "retrain", "score", "serve", "stream", "monitor", "alerts", "jobs",
]  # fmt: skip
VERB_ORDER = {"create": 0, "list": 1, "add": 2, "show": 3, "rename": 4, "archive": 5}


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _option(param: click.Option) -> str:
    metavar = "" if param.is_flag else f" {param.metavar or (param.name or '').upper()}"
    text = "`" + "/".join(param.opts) + metavar + "`"
    default = param.default
    if not param.is_flag and default not in (None, False, (), "") and "Sentinel" not in str(default):
        text += f" (default `{default}`)"
    return _escape(text)


def rows(group: click.Group, prefix: tuple[str, ...] = ("workbench",)) -> list[tuple[tuple[str, ...], str]]:
    """One (command path, table row) per leaf command."""
    ctx = click.Context(group, info_name=" ".join(prefix))
    found: list[tuple[tuple[str, ...], str]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found.extend(rows(command, path))
            continue
        sub_ctx = click.Context(command, info_name=" ".join(path))
        arguments = [piece for piece in command.collect_usage_pieces(sub_ctx) if piece != "[OPTIONS]"]
        # Hidden options exist only to be refused with a clear message (serve's --token): not documented.
        options = [_option(p) for p in command.params
                   if isinstance(p, click.Option) and p.name != "help" and not p.hidden]
        usage = " ".join((*path, *arguments))
        found.append((path, f"| `{usage}` | {_escape(command.get_short_help_str(300))} | {', '.join(options)} |"))
    return found


def table() -> str:
    """The whole Markdown table, in lifecycle order."""
    from workbench.cli import main

    def key(item: tuple[tuple[str, ...], str]) -> tuple[int, str, int, str]:
        path = item[0]
        top = path[1]
        verb = path[2] if len(path) > 2 else ""
        return (ORDER.index(top) if top in ORDER else len(ORDER), top, VERB_ORDER.get(verb, 9), verb)

    return HEADER + "\n" + "\n".join(row for _, row in sorted(rows(main), key=key))


def write_readme(path: Path = REPO_ROOT / "README.md") -> None:
    """Replace the table under the README's CLI reference with the current one."""
    text = path.read_text(encoding="utf-8")
    start = text.index(HEADER.splitlines()[0])
    end = text.index("\n\n", start)
    path.write_text(text[:start] + table() + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args(argv)
    if args.write:
        write_readme()
    else:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
