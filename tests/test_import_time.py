"""What importing the workbench costs at run time: no heavy library on Home, no work at import, a cheap --help.

The ast walk of ``tests/test_architecture.py`` cannot see imports that third-party modules pull in, nor work
done at import time; these tests import the modules in a fresh interpreter and look.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_architecture import HEAVY, _module_name, core_files


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
