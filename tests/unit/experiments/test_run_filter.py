"""The run filter: MLflow's search syntax plus OR and parentheses, parsed to an AST and evaluated."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.errors import InvalidInput
from workbench.experiments.run_filter import And, Comparison, Or, comparisons, matches, parse

RUNS: list[dict[str, Any]] = [
    {"run_id": "a", "status": "FINISHED", "run_name": "trial-1", "start_time": 1000, "kind": "trial",
     "metrics": {"accuracy": 0.95, "fit_seconds": 2.0}, "params": {"model": "random_forest", "C": "3"},
     "tags": {"workbench.kind": "trial", "workbench.job_id": "j1"}},
    {"run_id": "b", "status": "FAILED", "run_name": "trial-2", "start_time": 2000, "kind": "trial",
     "metrics": {"accuracy": 0.70}, "params": {"model": "linear", "C": "0.5"},
     "tags": {"workbench.kind": "trial", "workbench.job_id": "j1"}},
    {"run_id": "c", "status": "FINISHED", "run_name": "baseline-dummy", "start_time": 3000, "kind": "baseline",
     "metrics": {"accuracy": 0.50}, "params": {"model": "Dummy"},
     "tags": {"workbench.kind": "baseline"}},
    {"run_id": "d", "status": "RUNNING", "run_name": "best", "start_time": 4000, "kind": "best",
     "metrics": {}, "params": {"model": "random_forest", "C": "auto"},
     "tags": {"workbench.kind": "best", "workbench.job_id": "j2", "note": "it's fine"}},
]


def selected(expr: str) -> set[str]:
    node = parse(expr)
    return {run["run_id"] for run in RUNS if matches(node, run)}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("metrics.accuracy > 0.9", {"a"}),
        ("metrics.accuracy >= 0.7", {"a", "b"}),
        ("metrics.accuracy != 0.7", {"a", "c"}),  # a run without the metric never matches, as in MLflow
        ("metric.accuracy < 0.6", {"c"}),
        ("params.model = 'random_forest'", {"a", "d"}),
        ('params.model = "linear"', {"b"}),
        ("params.model != 'linear'", {"a", "c", "d"}),
        ("tags.workbench.kind = 'baseline'", {"c"}),
        ("tags.`workbench.kind` = 'baseline'", {"c"}),
        ("tags.workbench.job_id != 'j1'", {"d"}),
        ("attributes.status = 'FINISHED'", {"a", "c"}),
        ("attribute.status IN ('FAILED', 'RUNNING')", {"b", "d"}),
        ("attributes.status NOT IN ('FAILED', 'RUNNING')", {"a", "c"}),
        ("attributes.start_time >= 3000", {"c", "d"}),
        ("attributes.run_name LIKE 'trial-%'", {"a", "b"}),
        ("params.model LIKE 'random%'", {"a", "d"}),
        ("params.model LIKE 'RANDOM%'", set()),
        ("params.model ILIKE 'dum_y'", {"c"}),
        ("params.model NOT LIKE 'random%'", {"b", "c"}),
        ("params.C > 1", {"a"}),  # extension: numeric range on params skips non-numeric values
        ("params.C <= 3", {"a", "b"}),
        ("params.C = 3", {"a"}),  # an unquoted number compares as its text
        ("tags.note = 'it''s fine'", {"d"}),
        # OR and nesting
        ("metrics.accuracy > 0.9 or tags.workbench.kind = 'baseline'", {"a", "c"}),
        ("metrics.accuracy > 0.9 OR metrics.accuracy < 0.6 AND params.model = 'Dummy'", {"a", "c"}),
        ("(metrics.accuracy > 0.9 OR metrics.accuracy < 0.6) AND params.model = 'Dummy'", {"c"}),
        ("((attributes.status = 'FAILED') or (attributes.status = 'RUNNING' and params.C = 'auto'))", {"b", "d"}),
        ("tags.workbench.kind = 'trial' and (params.C > 1 or attributes.status = 'FAILED')", {"a", "b"}),
        ("(((metrics.accuracy > 0)))", {"a", "b", "c"}),
        ("metrics.accuracy>0.6and params.model='linear'", {"b"}),
    ],
)
def test_filter_selects_the_expected_runs(expr: str, expected: set[str]) -> None:
    assert selected(expr) == expected


def test_and_binds_tighter_than_or() -> None:
    node = parse("metrics.a > 1 or metrics.b > 1 and metrics.c > 1")
    assert isinstance(node, Or)
    assert isinstance(node.parts[1], And)
    assert [c.key for c in comparisons(node)] == ["a", "b", "c"]


def test_parse_returns_none_for_an_empty_filter() -> None:
    assert parse("") is None and parse("   ") is None and parse(None) is None
    assert matches(None, RUNS[0])


def test_printed_ast_parses_back_to_the_same_tree() -> None:
    node = parse("(metrics.acc > 0.5 or tags.`a b` = 'x''y') and params.m IN ('p', 'q')")
    assert node is not None
    assert parse(str(node)) == node
    first = comparisons(node)[0]
    assert isinstance(first, Comparison) and first.position == 2


@pytest.mark.parametrize(
    ("expr", "column", "words"),
    [
        ("metrics.accuracy >", 19, "expected a value"),
        ("metrics.accuracy > 0.9 and", 27, "expected a comparison"),
        ("(metrics.accuracy > 0.9", 24, "missing ')'"),
        ("metrics.accuracy > 0.9)", 23, "unexpected ')'"),
        ("accuracy > 0.9", 1, "not a run field"),
        ("metrics.accuracy ~ 0.9", 18, "unexpected character"),
        ("metrics.accuracy = 'high'", 18, "compare it with a number"),
        ("metrics.accuracy LIKE '0.9%'", 18, "is a number"),
        ("tags.kind > 3", 11, "is a string"),
        ("params.model > 'a'", 14, "a range needs a number"),
        ("attributes.colour = 'red'", 1, "unknown attribute"),
        ("params.model IN 'a'", 17, "expected '('"),
        ("params.model NOT = 'a'", 18, "expected LIKE, ILIKE or IN"),
        ("params.model = 'a' params.x = 'b'", 20, "expected AND, OR"),
        ("params.model = 'unterminated", 16, "unexpected character"),
    ],
)
def test_syntax_errors_name_the_column(expr: str, column: int, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse(expr)
    message = str(info.value)
    assert f"column {column}:" in message, message
    assert words in message, message
    assert info.value.field == "filter"
