"""Code checks: the tree stays ruff-clean (the style rules live in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["workbench", "pipelines", "app_pages", "tests", "benchmarks", "streamlit_app.py", "docs"]


def test_ruff_finds_nothing() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    command = [str(ruff)] if ruff.exists() else [shutil.which("ruff") or ""]
    if not command[0]:
        pytest.skip("ruff is not installed: run `make test`, which installs the dev extra")
    result = subprocess.run([*command, "check", *CHECKED], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff found problems (fix them, or run `ruff check --fix`):\n{result.stdout}"
