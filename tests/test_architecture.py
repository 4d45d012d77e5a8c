"""The import rules of ARCHITECTURE.md, checked by walking every module's imports (ast).

- Only ``workbench/ui/`` may import streamlit among the core modules; pipelines never do.
- Core modules never import ``app_pages`` or ``pipelines`` (the CLI, the composition root, may).
- The Home page and the shell do not import mlflow, optuna, evidently or sklearn at module
  level, directly or through the workbench modules they import, so Home does not pay for them.
- Importing the workbench does no work: no folder created, no engine made, no heavy import.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mlflow", "optuna", "evidently", "sklearn")
FIRST_PARTY = ("workbench", "app_pages", "pipelines")
# The Home page's import roots: what a browser opening the app makes the server import.
HOME_ENTRY_FILES = (
    "streamlit_app.py",
    "app_pages/home.py",
    "workbench/ui/home.py",
    "workbench/ui/shell.py",
    "workbench/ui/context.py",
)
COMPOSITION_ROOT = ("workbench/cli.py", "workbench/commands/")


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is, and whether it runs when the module loads."""

    module: str
    line: int
    top_level: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve_relative(path: Path, level: int, module: str | None) -> str:
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, module] if module else base)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[Import]:
    """Every import in ``path``; ``top_level`` is False inside functions and TYPE_CHECKING blocks.

    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a sub-module).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                # Only for type checkers: never runs. Its ``else`` branch does run.
                for statement in child.body:
                    visit(ast.Module(body=[statement], type_ignores=[]), False)
                for statement in child.orelse:
                    visit(ast.Module(body=[statement], type_ignores=[]), top_level)
            elif isinstance(child, ast.Import):
                found.extend(Import(alias.name, child.lineno, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve_relative(path, child.level, child.module) if child.level else (child.module or "")
                found.append(Import(base, child.lineno, top_level))
                found.extend(
                    Import(f"{base}.{alias.name}", child.lineno, top_level)
                    for alias in child.names
                    if alias.name != "*"
                )
            else:
                visit(child, top_level)

    visit(tree, True)
    return found


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def python_files(folder: str) -> list[Path]:
    return sorted(p for p in (REPO_ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def file_of(module: str) -> Path | None:
    """The first-party file that defines ``module``, or None (third-party, or a name in a module)."""
    if _root(module) not in FIRST_PARTY:
        return None
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> Iterator[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__``."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def _rel(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def core_files() -> list[Path]:
    return python_files("workbench")


def test_the_walker_sees_imports_of_every_kind(tmp_path: Path) -> None:
    """Guard the guard: the ast walker must report top-level, nested and relative imports."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "import mlflow.tracking\n"
        "try:\n    from optuna import samplers\nexcept ImportError:\n    pass\n"
        "if TYPE_CHECKING:\n    import sklearn\n"
        "def f():\n    import evidently\n"
        "class C:\n    def m(self):\n        from streamlit import write\n"
    )
    flags = {(i.module, i.top_level) for i in imports_of(sample)}
    assert {("mlflow.tracking", True), ("optuna.samplers", True), ("sklearn", False)} <= flags
    assert {("evidently", False), ("streamlit", False), ("streamlit.write", False)} <= flags
    found = imports_of(REPO_ROOT / "workbench" / "ui" / "home.py")
    assert any(i.module == "streamlit" and i.top_level for i in found)
    nested = [i for i in imports_of(REPO_ROOT / "workbench" / "cli.py") if not i.top_level]
    assert any(i.module.startswith("workbench.") for i in nested), "imports inside functions are found"
    assert _resolve_relative(REPO_ROOT / "workbench" / "db" / "engine.py", 1, "models") == "workbench.db.models"
    assert _resolve_relative(REPO_ROOT / "workbench" / "db" / "__init__.py", 2, "errors") == "workbench.errors"


def test_only_workbench_ui_imports_streamlit() -> None:
    offenders = [
        f"{_rel(path)}:{imp.line} imports {imp.module}"
        for path in core_files()
        if not _rel(path).startswith("workbench/ui/")
        for imp in imports_of(path)
        if _root(imp.module) == "streamlit"
    ]
    assert not offenders, "Only workbench/ui/ may import streamlit; move the UI code there:\n" + "\n".join(offenders)


def test_pipelines_do_not_import_streamlit() -> None:
    offenders = [
        f"{_rel(path)}:{imp.line} imports {imp.module}"
        for path in python_files("pipelines")
        for imp in imports_of(path)
        if _root(imp.module) == "streamlit"
    ]
    assert not offenders, "Pipelines run headless and must not import streamlit:\n" + "\n".join(offenders)


def test_core_modules_do_not_import_pages_or_pipelines() -> None:
    offenders = [
        f"{_rel(path)}:{imp.line} imports {imp.module}"
        for path in core_files()
        if not _rel(path).startswith(COMPOSITION_ROOT)
        for imp in imports_of(path)
        if _root(imp.module) in ("app_pages", "pipelines")
    ]
    assert not offenders, (
        "Core modules must not import app_pages/ or pipelines/ (start a pipeline by its module path, "
        "e.g. jobs.launch(kind=...)); only workbench/cli.py and workbench/commands/ may:\n" + "\n".join(offenders)
    )


def home_import_closure() -> dict[Path, list[str]]:
    """Every first-party file the Home page loads at import time, with the chain that loads it."""
    chains: dict[Path, list[str]] = {}
    queue: list[tuple[Path, list[str]]] = [(REPO_ROOT / name, [name]) for name in HOME_ENTRY_FILES]
    while queue:
        path, chain = queue.pop()
        if path in chains or not path.is_file():
            continue
        chains[path] = chain
        for imp in imports_of(path):
            if not imp.top_level:
                continue
            for module in _with_parents(imp.module):
                target = file_of(module)
                if target is not None and target not in chains:
                    queue.append((target, [*chain, f"{_rel(target)} (line {imp.line} of {_rel(path)})"]))
    return chains


def test_home_import_closure_is_found() -> None:
    """The walk reaches the modules the shell really uses (else the next test proves nothing)."""
    closure = {_rel(path) for path in home_import_closure()}
    assert {"workbench/ui/shell.py", "workbench/db/engine.py", "workbench/settings.py"} <= closure


def test_home_page_does_not_import_heavy_libraries_at_module_level() -> None:
    offenders = [
        f"{_rel(path)}:{imp.line} imports {imp.module} at module level, reached through " + " -> ".join(chain)
        for path, chain in sorted(home_import_closure().items())
        for imp in imports_of(path)
        if imp.top_level and _root(imp.module) in HEAVY
    ]
    assert not offenders, (
        "The Home page must not pay for mlflow/optuna/evidently/sklearn: import them inside the "
        "functions that use them:\n" + "\n".join(offenders)
    )


def _run_python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def clean_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WORKBENCH_") and k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")
    }
    env["WORKBENCH_HOME"] = str(tmp_path / "home")
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def test_home_modules_do_not_load_heavy_libraries_at_runtime(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """Catch heavy imports pulled in by third-party modules too, which the ast walk cannot see."""
    code = (
        "import sys, json\n"
        "import workbench.ui.home, workbench.ui.shell, workbench.ui.context, workbench.cli\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = _run_python(code, tmp_path, clean_env)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"Importing the Home page's modules (and workbench.cli) loaded {loaded}"


def test_importing_the_workbench_does_no_work(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """Importing every core module and reading the settings creates no folder and no engine."""
    modules = [
        _module_name(path)
        for path in core_files()
        if "migrations" not in path.parts  # alembic's env.py runs migrations when imported
    ]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import workbench.cli, workbench.settings\n"
        "settings = workbench.settings.get_settings()\n"
        "from workbench.db import engine\n"
        "print(json.dumps({'home': str(settings.home), 'engines': len(engine._engines)}))\n"
    )
    result = _run_python(code, tmp_path, clean_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["home"] == str((tmp_path / "home").resolve())
    assert data["engines"] == 0, "an engine was created at import time"
    created = sorted(p.name for p in tmp_path.iterdir())
    assert created == [], f"importing the workbench created {created} in the working folder"


def test_cli_help_does_no_work(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """``workbench --help`` lists the commands without creating the home."""
    result = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "--help"],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "project" in result.stdout and "db" in result.stdout
    assert not (tmp_path / "home").exists()
