"""The layout rules fail when they should: each violation is planted in a temporary copy of the tree.

A rule that passes on the tree proves nothing unless it also fails on a tree that breaks it.
Each case copies ``workbench/``, ``app_pages/``, ``pipelines/`` and ``streamlit_app.py`` to a
temporary folder, plants one violation, and checks that the rule reports it, naming the planted
file, while the untouched copy reports no such line.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_architecture import MAX_LINES, REPO_ROOT, RULES, _cycles, assert_rule_holds

COPIED = ("workbench", "app_pages", "pipelines", "streamlit_app.py")


def copy_tree(target: Path) -> Path:
    """A scratch copy of the code the rules read (no caches), rooted at ``target``."""
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    return target


def append(root: Path, relative: str, code: str) -> None:
    """Append ``code`` to ``root/relative`` (created, with its folders, when missing)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(before + "\n" + code, encoding="utf-8")


@dataclass(frozen=True)
class Plant:
    """One planted violation: which rule must report it, what to write, what the report says."""

    id: str
    rule: str
    files: dict[str, str]  # relative path -> code appended to it
    reported: tuple[str, ...]  # every one of these appears in one new offender line
    silent: tuple[str, ...] = ()  # rules that must not report it (the plant is precise)


LAZY_STREAMLIT = 'def _planted() -> object:\n    import importlib\n\n    return importlib.import_module("streamlit")\n'
PLANTS = (
    Plant("service-imports-ui", "services-below-ui-and-cli",
          {"workbench/serving/fast_path.py": "from workbench.ui import shell\n"},
          ("workbench/serving/fast_path.py", "workbench.ui")),
    Plant("service-imports-streamlit-via-importlib", "streamlit-only-in-ui",
          {"workbench/serving/model_loader.py": LAZY_STREAMLIT},
          ("workbench/serving/model_loader.py", "streamlit")),
    Plant("service-imports-streamlit-via-dunder-import", "streamlit-only-in-ui",
          {"workbench/settings.py": '_ST = __import__("streamlit.components.v1")\n'},
          ("workbench/settings.py", "streamlit.components.v1")),
    Plant("service-imports-commands", "services-below-ui-and-cli",
          {"workbench/serving/signature.py": "import workbench.commands\n"},
          ("workbench/serving/signature.py", "workbench.commands")),
    Plant("service-imports-cli", "services-below-ui-and-cli",
          {"workbench/errors.py": "def _planted() -> None:\n    from workbench import cli\n"},
          ("workbench/errors.py", "workbench.cli")),
    Plant("page-imports-mlflow", "pages-through-ui",
          {"app_pages/home.py": "from mlflow import MlflowClient\n"},
          ("app_pages/home.py", "mlflow")),
    Plant("page-imports-a-service-module", "pages-through-ui",
          {"app_pages/home.py": "from workbench.settings import get_settings\n"},
          ("app_pages/home.py", "workbench.settings")),
    Plant("page-imports-a-service-package-by-name", "pages-through-ui",
          {"app_pages/home.py": "from workbench import tracking\n"},
          ("app_pages/home.py", "workbench.tracking")),
    Plant("page-imports-a-service-via-importlib", "pages-through-ui",
          {"app_pages/home.py": 'import importlib\n\nJOBS = importlib.import_module("workbench.jobs")\n'},
          ("app_pages/home.py", "workbench.jobs")),
    Plant("cycle-in-one-subpackage", "no-import-cycle",
          {"workbench/serving/fast_path.py": "import workbench.serving.model_loader\n",
           "workbench/serving/model_loader.py": "import workbench.serving.fast_path\n"},
          ("workbench.serving.fast_path", "workbench.serving.model_loader")),
    Plant("cycle-through-relative-imports", "no-import-cycle",
          {"workbench/serving/_planted_a.py": "from . import _planted_b\n",
           "workbench/serving/_planted_b.py": "from ._planted_a import __doc__\n"},
          ("workbench.serving._planted_a", "workbench.serving._planted_b")),
    Plant("cycle-through-a-package-init", "no-import-cycle",
          {"workbench/serving/__init__.py": "from workbench.serving.signature import InputColumn\n",
           "workbench/serving/signature.py": "from workbench.serving import FAST_PATH_MAX_ROWS\n"},
          ("workbench.serving -> workbench.serving.signature",)),
    Plant("cycle-hidden-by-type-checking", "no-dependency-cycle",
          {"workbench/serving/fast_path.py":
           "import typing\n\nif typing.TYPE_CHECKING:\n    from workbench.serving.model_loader import ServedModel\n"},
          ("workbench.serving.fast_path", "workbench.serving.model_loader"),
          silent=("no-import-cycle",)),
    Plant("commands-import-pipelines", "core-without-pipelines-or-pages",
          {"workbench/commands/__init__.py": "def _planted() -> None:\n    from pipelines.score import run\n"},
          ("workbench/commands/__init__.py", "pipelines.score")),
    Plant("cli-imports-pipelines", "core-without-pipelines-or-pages",
          {"workbench/cli.py": "import pipelines\n"},
          ("workbench/cli.py", "pipelines")),
    Plant("ui-imports-a-page", "core-without-pipelines-or-pages",
          {"workbench/ui/shell.py": "import app_pages.home\n"},
          ("workbench/ui/shell.py", "app_pages.home")),
    Plant("pipeline-imports-streamlit", "pipelines-headless",
          {"pipelines/__init__.py": "import streamlit as st\n"},
          ("pipelines/__init__.py", "streamlit")),
    Plant("module-at-top-level", "modules-in-subpackages",
          {"workbench/helpers.py": '"""Planted."""\n'},
          ("workbench/helpers.py",)),
    Plant("folder-that-is-no-package", "modules-in-subpackages",
          {"workbench/serving/extras/tool.py": '"""Planted."""\n'},
          ("workbench/serving/extras/",)),
    Plant("package-without-all", "package-surface",
          {"workbench/serving/_planted_pkg/__init__.py": '"""Planted."""\n'},
          ("workbench/serving/_planted_pkg/__init__.py", "__all__")),
    Plant("package-without-docstring", "package-surface",
          {"workbench/serving/__init__.py": "", "workbench/_planted_pkg/__init__.py": "__all__ = []\n"},
          ("workbench/_planted_pkg/__init__.py", "docstring")),
    Plant("long-module", "file-length",
          {"workbench/serving/_planted_long.py": "X = 1\n" * MAX_LINES},
          ("workbench/serving/_planted_long.py", f"{MAX_LINES + 1} lines")),
    Plant("heavy-import-reached-from-home", "home-stays-light",
          {"workbench/settings.py": "import sklearn.base\n"},
          ("workbench/settings.py", "sklearn.base", "reached through")),
)


def test_every_rule_has_a_planted_violation() -> None:
    assert {plant.rule for plant in PLANTS} == set(RULES)


def test_the_cycle_finder_reports_the_path() -> None:
    graph = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7, "d": 1}, "d": {}, "e": {"f": 2}, "f": {"e": 4}}
    assert _cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]


@pytest.mark.parametrize("plant", PLANTS, ids=[plant.id for plant in PLANTS])
def test_the_rule_reports_the_planted_violation(plant: Plant, tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    check: Callable[[Path], list[str]] = RULES[plant.rule].check
    # Compared with the untouched copy, so a violation elsewhere in the tree (work in progress)
    # neither hides the planted one nor passes for it.
    before = {name: set(RULES[name].check(root)) for name in (plant.rule, *plant.silent)}
    for relative, code in plant.files.items():
        append(root, relative, code)
    new = [line for line in check(root) if line not in before[plant.rule]]
    assert any(all(part in line for part in plant.reported) for line in new), (
        f"[{plant.rule}] did not report the planted {plant.id} (expected a line with {plant.reported}); "
        f"new lines: {new}"
    )
    for name in plant.silent:
        assert set(RULES[name].check(root)) == before[name], f"[{name}] reported {plant.id}, which it allows"


@pytest.mark.parametrize("name", sorted(RULES))
def test_the_untouched_copy_keeps_the_rule(name: str, tmp_path: Path) -> None:
    """The copy the plants go into keeps every rule, so only the plant can make one fail."""
    assert_rule_holds(name, copy_tree(tmp_path))
