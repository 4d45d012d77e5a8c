"""The layout and import rules of ARCHITECTURE.md, checked by walking every module's imports (ast).

Each rule is a function of a tree root returning its offenders (one line each, empty when the
rule holds), so ``tests/test_architecture_planted.py`` can run it against a temporary copy of
the tree with a violation planted and prove that it fails. The rules:

- Only ``workbench/ui/`` may import streamlit among the core modules; pipelines never do.
  Dynamic imports with a literal name (``importlib.import_module("x")``, ``__import__("x")``)
  count, at any level.
- Services (``workbench/`` except ``ui/``, ``cli.py`` and ``commands/``) never import
  ``workbench.ui``, ``workbench.commands``, ``workbench.cli``, ``app_pages`` or ``pipelines``.
- No core module imports ``app_pages`` or ``pipelines``: the CLI and the job runner start a
  pipeline by its module path, so not even ``cli.py`` (the composition root) needs to.
- A page (``app_pages/*.py``) imports only streamlit, the standard library and ``workbench.ui``.
- No import cycle among first-party modules, counting what runs at import time; nor one hidden
  by imports inside functions or TYPE_CHECKING blocks (two modules that need each other).
- ``workbench/`` holds only ``cli.py``, ``settings.py``, ``errors.py`` and ``__init__.py`` at its top
  level; every other module sits in a subpackage (a folder with an ``__init__.py``).
- No file over 600 lines, except migrations and the canvas definitions (data).
- The Home page and the shell do not import mlflow, optuna, evidently or sklearn at module
  level, directly or through the workbench modules they import, so Home does not pay for them.
- Importing the workbench does no work: no folder created, no engine made, no heavy import.
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mlflow", "optuna", "evidently", "sklearn", "pyspark")
FIRST_PARTY = ("workbench", "app_pages", "pipelines")
# The Home page's import roots: what a browser opening the app makes the server import.
HOME_ENTRY_FILES = (
    "streamlit_app.py",
    "app_pages/home.py",
    "workbench/ui/home.py",
    "workbench/ui/shell.py",
    "workbench/ui/context.py",
    "workbench/ui/pages.py",
)
UI = "workbench/ui/"
CLI = ("workbench/cli.py", "workbench/commands/")
TOP_LEVEL_MODULES = ("__init__.py", "cli.py", "errors.py", "settings.py")
MAX_LINES = 600
LENGTH_CHECKED = ("workbench", "pipelines", "app_pages", "tests", "benchmarks", "streamlit_app.py")
# Data, not code: the canvas definitions are one long literal; migrations are written once.
LENGTH_EXEMPT = ("workbench/design/canvases/definitions.py",)
DYNAMIC_IMPORTERS = ("import_module", "__import__")


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is, and whether it runs when the module loads.

    ``kind`` is ``import`` (``import a.b``), ``from`` (the ``a`` of ``from a import b``), ``name``
    (its ``a.b``, which may be a sub-module or a name in ``a``) or ``dynamic`` (a literal
    ``importlib.import_module("a")`` / ``__import__("a")``).
    """

    module: str
    line: int
    top_level: bool
    kind: str = "import"


def _module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve_relative(path: Path, level: int, module: str | None, root: Path = REPO_ROOT) -> str:
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, module] if module else base)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _dynamic_import(call: ast.Call) -> str | None:
    """The module a literal ``import_module("x")``/``__import__("x")`` call imports, else None."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name not in DYNAMIC_IMPORTERS or not call.args:
        return None
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)) or not first.value:
        return None
    # A relative name needs its ``package`` argument, in practice ``__package__``: not a literal.
    return None if first.value.startswith(".") else first.value


def imports_of(path: Path, root: Path = REPO_ROOT) -> list[Import]:
    """Every import in ``path``; ``top_level`` is False inside functions and TYPE_CHECKING blocks.

    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a sub-module). Decorators and
    default values run when the module loads, so their imports are top-level.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit_all(nodes: list[ast.expr | None], top_level: bool) -> None:
        for expr in nodes:
            if expr is not None:
                visit(ast.Expression(body=expr), top_level)

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit_all([*child.decorator_list, *child.args.defaults, *child.args.kw_defaults], top_level)
                for statement in child.body:
                    visit(ast.Module(body=[statement], type_ignores=[]), False)
            elif isinstance(child, ast.Lambda):
                visit_all([*child.args.defaults, *child.args.kw_defaults], top_level)
                visit(ast.Expression(body=child.body), False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                # Only for type checkers: never runs. Its ``else`` branch does run.
                for statement in child.body:
                    visit(ast.Module(body=[statement], type_ignores=[]), False)
                for statement in child.orelse:
                    visit(ast.Module(body=[statement], type_ignores=[]), top_level)
            elif isinstance(child, ast.Import):
                found.extend(Import(alias.name, child.lineno, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve_relative(path, child.level, child.module, root) if child.level else (child.module or "")
                found.append(Import(base, child.lineno, top_level, "from"))
                found.extend(
                    Import(f"{base}.{alias.name}", child.lineno, top_level, "name")
                    for alias in child.names
                    if alias.name != "*"
                )
            else:
                if isinstance(child, ast.Call) and (module := _dynamic_import(child)) is not None:
                    found.append(Import(module, child.lineno, top_level, "dynamic"))
                visit(child, top_level)

    visit(tree, True)
    return found


def _root(module: str) -> str:
    return module.split(".", 1)[0]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def python_files(folder: str, root: Path = REPO_ROOT) -> list[Path]:
    """The ``.py`` files under ``root/folder`` (or the file itself), sorted."""
    base = root / folder
    if base.is_file():
        return [base]
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def file_of(module: str, root: Path = REPO_ROOT) -> Path | None:
    """The first-party file that defines ``module``, or None (third-party, or a name in a module)."""
    if _root(module) not in FIRST_PARTY:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> Iterator[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__``."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def _rel(path: Path, root: Path = REPO_ROOT) -> str:
    return path.relative_to(root).as_posix()


def core_files(root: Path = REPO_ROOT) -> list[Path]:
    return python_files("workbench", root)


def _offenders(root: Path, files: list[Path], bad: Callable[[Import], bool]) -> list[str]:
    return [
        f"{_rel(path, root)}:{imp.line} imports {imp.module}"
        for path in files
        for imp in imports_of(path, root)
        if bad(imp)
    ]


# The rules: each takes a tree root and returns its offenders.


def streamlit_outside_ui(root: Path) -> list[str]:
    """Core modules outside workbench/ui/ that import streamlit (at any level, dynamically too)."""
    files = [p for p in core_files(root) if not _rel(p, root).startswith(UI)]
    return _offenders(root, files, lambda imp: _root(imp.module) == "streamlit")


def streamlit_in_pipelines(root: Path) -> list[str]:
    """Pipelines that import streamlit: they run headless."""
    return _offenders(root, python_files("pipelines", root), lambda imp: _root(imp.module) == "streamlit")


SERVICE_MUST_NOT_IMPORT = ("workbench.ui", "workbench.commands", "workbench.cli", "app_pages", "pipelines")


def services_importing_upper_layers(root: Path) -> list[str]:
    """Services (workbench/ except ui/, cli.py, commands/) importing the UI, the CLI, pages or pipelines."""
    files = [p for p in core_files(root) if not _rel(p, root).startswith((UI, *CLI))]
    return _offenders(root, files, lambda imp: any(_within(imp.module, m) for m in SERVICE_MUST_NOT_IMPORT))


def core_importing_pipelines_or_pages(root: Path) -> list[str]:
    """Any core module (the CLI and its commands included) importing pipelines/ or app_pages/."""
    return _offenders(root, core_files(root), lambda imp: _root(imp.module) in ("pipelines", "app_pages"))


def _page_may_import(module: str) -> bool:
    top = _root(module)
    # ``workbench`` alone is the parent package of ``from workbench import ui``.
    return top == "streamlit" or top in sys.stdlib_module_names or module == "workbench" or (
        _within(module, "workbench.ui")
    )


def pages_importing_beyond_ui(root: Path) -> list[str]:
    """Pages importing anything but streamlit, the standard library and workbench.ui."""
    return _offenders(root, python_files("app_pages", root), lambda imp: not _page_may_import(imp.module))


def _import_graph(root: Path, *, at_import_time: bool = True) -> dict[str, dict[str, int]]:
    """First-party module -> {module it makes Python import when it loads: line}.

    With ``at_import_time=False``, imports inside functions and TYPE_CHECKING blocks count too.

    ``import a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``, except the importer's own packages, which
    are already in ``sys.modules`` when it runs. ``from a import n`` needs ``a`` complete unless
    ``n`` is a sub-module, so it also depends on ``a`` when ``a`` is one of those packages.
    """
    graph: dict[str, dict[str, int]] = {}
    for folder in FIRST_PARTY:
        for path in python_files(folder, root):
            name = _module_name(path, root)
            own_packages = set(_with_parents(name))
            edges = graph.setdefault(name, {})
            for imp in imports_of(path, root):
                if at_import_time and not imp.top_level:
                    continue
                targets = [m for m in _with_parents(imp.module) if m not in own_packages]
                if imp.kind == "name" and file_of(imp.module, root) is None:
                    targets.append(imp.module.rsplit(".", 1)[0])  # a name read from a package
                for target in targets:
                    if target != name and file_of(target, root) is not None:
                        edges.setdefault(target, imp.line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle through each group of mutually importing modules (Tarjan's SCCs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # recursion depth is bounded by the import chain length
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles = []
    for group in groups:
        start = min(group)
        paths: dict[str, list[str]] = {start: [start]}
        queue = [start]
        while queue:  # breadth-first: the shortest way back to ``start`` inside the group
            node = queue.pop(0)
            for target in sorted(graph[node]):
                if target == start:
                    cycles.append([*paths[node], start])
                    queue = []
                    break
                if target in group and target not in paths:
                    paths[target] = [*paths[node], target]
                    queue.append(target)
    return sorted(cycles)


def import_cycles(root: Path, *, at_import_time: bool = True) -> list[str]:
    """Each import cycle among first-party modules, as ``a -> b (line n of a) -> a (line m of b)``."""
    graph = _import_graph(root, at_import_time=at_import_time)
    return [
        " -> ".join([cycle[0], *(f"{b} (line {graph[a][b]} of {a})" for a, b in itertools.pairwise(cycle))])
        for cycle in _cycles(graph)
    ]


def modules_outside_subpackages(root: Path) -> list[str]:
    """Top-level workbench/ modules beyond cli/settings/errors/__init__, and folders that are no package."""
    base = root / "workbench"
    found = [
        f"workbench/{p.name} is a top-level module: move it into the subpackage of its concept"
        for p in sorted(base.glob("*.py"))
        if p.name not in TOP_LEVEL_MODULES
    ]
    found += [
        f"{_rel(folder, root)}/ holds modules but no __init__.py"
        for folder in sorted({p.parent for p in core_files(root)})
        if not (folder / "__init__.py").is_file()
    ]
    return found


def packages_without_a_surface(root: Path) -> list[str]:
    """Subpackages of workbench/ whose ``__init__.py`` lacks a docstring saying what lives there, or ``__all__``."""
    found = []
    for init in sorted((root / "workbench").glob("*/**/__init__.py")):
        if "migrations" in init.relative_to(root).parts:
            continue
        tree = ast.parse(init.read_text(encoding="utf-8"))
        if not ast.get_docstring(tree):
            found.append(f"{_rel(init, root)} has no docstring")
        targets = [
            target
            for node in tree.body
            for target in (node.targets if isinstance(node, ast.Assign) else
                           [node.target] if isinstance(node, ast.AnnAssign) else [])
        ]  # fmt: skip
        if not any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
            found.append(f"{_rel(init, root)} has no __all__")
    return found


def long_files(root: Path) -> list[str]:
    """Python files over MAX_LINES lines (migrations and the canvas definitions excepted)."""
    return [
        f"{_rel(path, root)} has {count} lines"
        for folder in LENGTH_CHECKED
        if (root / folder).exists()
        for path in python_files(folder, root)
        if "migrations" not in path.relative_to(root).parts and _rel(path, root) not in LENGTH_EXEMPT
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]


def home_import_closure(root: Path = REPO_ROOT) -> dict[Path, list[str]]:
    """Every first-party file the Home page loads at import time, with the chain that loads it."""
    chains: dict[Path, list[str]] = {}
    queue: list[tuple[Path, list[str]]] = [(root / name, [name]) for name in HOME_ENTRY_FILES]
    while queue:
        path, chain = queue.pop()
        if path in chains or not path.is_file():
            continue
        chains[path] = chain
        for imp in imports_of(path, root):
            if not imp.top_level:
                continue
            for module in _with_parents(imp.module):
                target = file_of(module, root)
                if target is not None and target not in chains:
                    queue.append((target, [*chain, f"{_rel(target, root)} (line {imp.line} of {_rel(path, root)})"]))
    return chains


def heavy_imports_on_home(root: Path) -> list[str]:
    """Module-level mlflow/optuna/evidently/sklearn imports in what the Home page loads."""
    return [
        f"{_rel(path, root)}:{imp.line} imports {imp.module} at module level, reached through " + " -> ".join(chain)
        for path, chain in sorted(home_import_closure(root).items())
        for imp in imports_of(path, root)
        if imp.top_level and _root(imp.module) in HEAVY
    ]


@dataclass(frozen=True)
class Rule:
    """A rule of the layout: what it checks, how to fix a violation, and the check itself."""

    name: str
    fix: str
    check: Callable[[Path], list[str]]


RULES = {
    rule.name: rule
    for rule in (
        Rule("streamlit-only-in-ui", "Only workbench/ui/ may import streamlit; move the UI code there",
             streamlit_outside_ui),
        Rule("pipelines-headless", "Pipelines run headless and must not import streamlit", streamlit_in_pipelines),
        Rule("services-below-ui-and-cli",
             "Services must not import workbench.ui, workbench.commands, workbench.cli, app_pages or pipelines "
             "(the UI and the CLI call the services, never the other way round)",
             services_importing_upper_layers),
        Rule("core-without-pipelines-or-pages",
             "Core modules, the CLI and its commands included, must not import app_pages/ or pipelines/ "
             "(start a pipeline by its module path, e.g. jobs.launch(kind=...); move shared code into the "
             "service the pipeline calls)",
             core_importing_pipelines_or_pages),
        Rule("pages-through-ui",
             "A page imports only streamlit, the standard library and workbench.ui (put what it needs "
             "from a service or mlflow behind a workbench.ui function)",
             pages_importing_beyond_ui),
        Rule("no-import-cycle",
             "Import cycle (at import time): move the shared piece into a third module or invert the dependency",
             import_cycles),
        Rule("no-dependency-cycle",
             "Modules that need each other, hidden by imports inside functions or TYPE_CHECKING: move the "
             "shared piece into a third module or invert the dependency",
             lambda root: import_cycles(root, at_import_time=False)),
        Rule("modules-in-subpackages",
             "workbench/ keeps only cli.py, settings.py, errors.py and __init__.py at its top level",
             modules_outside_subpackages),
        Rule("package-surface",
             "Each subpackage's __init__.py says in a docstring what lives there and declares its public "
             "surface in __all__ (private helpers go in _name.py modules)",
             packages_without_a_surface),
        Rule("file-length", f"Split files over {MAX_LINES} lines by concept", long_files),
        Rule("home-stays-light",
             "The Home page must not pay for mlflow/optuna/evidently/sklearn: import them inside the "
             "functions that use them",
             heavy_imports_on_home),
    )
}


def assert_rule_holds(name: str, root: Path = REPO_ROOT) -> None:
    """Fail with the rule's fix and its offenders, one a line."""
    rule = RULES[name]
    offenders = rule.check(root)
    assert not offenders, f"[{rule.name}] {rule.fix}:\n" + "\n".join(offenders)


def test_the_walker_sees_imports_of_every_kind(tmp_path: Path) -> None:
    """Guard the guard: the ast walker must report top-level, nested, relative and dynamic imports."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "import mlflow.tracking\n"
        "try:\n    from optuna import samplers\nexcept ImportError:\n    pass\n"
        "if TYPE_CHECKING:\n    import sklearn\n"
        "def f():\n    import evidently\n"
        "class C:\n    def m(self):\n        from streamlit import write\n"
        "def g():\n    return importlib.import_module('altair')\n"
        "PLOT = __import__('plotly.express')\n"
        "def h(module=importlib.import_module('pandas')):\n    return module\n"
        "NAME = importlib.import_module(f'{__name__}.x')\n"
    )
    flags = {(i.module, i.top_level) for i in imports_of(sample)}
    assert {("mlflow.tracking", True), ("optuna.samplers", True), ("sklearn", False)} <= flags
    assert {("evidently", False), ("streamlit", False), ("streamlit.write", False)} <= flags
    assert {("altair", False), ("plotly.express", True), ("pandas", True)} <= flags
    assert not any(module.endswith(".x") for module, _ in flags), "a computed name is not a literal import"
    found = imports_of(REPO_ROOT / "workbench" / "ui" / "home.py")
    assert any(i.module == "streamlit" and i.top_level for i in found)
    nested = [i for i in imports_of(REPO_ROOT / "workbench" / "cli.py") if not i.top_level]
    assert any(i.module.startswith("workbench.") for i in nested), "imports inside functions are found"
    assert _resolve_relative(REPO_ROOT / "workbench" / "db" / "engine.py", 1, "models") == "workbench.db.models"
    assert _resolve_relative(REPO_ROOT / "workbench" / "db" / "__init__.py", 2, "errors") == "workbench.errors"


def test_only_workbench_ui_imports_streamlit() -> None:
    assert_rule_holds("streamlit-only-in-ui")


def test_pipelines_do_not_import_streamlit() -> None:
    assert_rule_holds("pipelines-headless")


def test_services_do_not_import_the_ui_the_cli_pages_or_pipelines() -> None:
    assert_rule_holds("services-below-ui-and-cli")


def test_core_modules_do_not_import_pages_or_pipelines() -> None:
    assert_rule_holds("core-without-pipelines-or-pages")


def test_pages_import_only_streamlit_the_standard_library_and_workbench_ui() -> None:
    assert_rule_holds("pages-through-ui")


def test_no_import_cycle() -> None:
    assert_rule_holds("no-import-cycle")


def test_no_dependency_cycle_even_through_lazy_imports() -> None:
    assert_rule_holds("no-dependency-cycle")


def test_workbench_top_level_holds_only_the_entry_modules() -> None:
    assert_rule_holds("modules-in-subpackages")


def test_every_subpackage_declares_its_surface() -> None:
    assert_rule_holds("package-surface")


def test_no_file_over_the_line_limit() -> None:
    assert_rule_holds("file-length")


def test_home_import_closure_is_found() -> None:
    """The walk reaches the modules the shell really uses (else the next test proves nothing)."""
    closure = {_rel(path) for path in home_import_closure()}
    assert {"workbench/ui/shell.py", "workbench/db/engine.py", "workbench/settings.py"} <= closure


def test_home_page_does_not_import_heavy_libraries_at_module_level() -> None:
    assert_rule_holds("home-stays-light")
