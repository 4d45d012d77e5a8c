"""The rule baseline: validation against columns and task, evaluation, parsing and storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.data.datasets import create_project_with_dataset
from workbench.db import session_scope
from workbench.design.heuristics import Rule, apply_rule, get_heuristic, parse_condition, set_heuristic, validate_rule
from workbench.errors import InvalidInput
from workbench.projects import get_project

COLUMNS = [
    {"name": "age", "kind": "numeric"},
    {"name": "plan", "kind": "categorical"},
    {"name": "active", "kind": "boolean"},
    {"name": "label", "kind": "categorical"},
]
FRAME = pd.DataFrame(
    {
        "age": [20.0, 35.0, np.nan, 60.0],
        "plan": ["basic", "pro", "basic", None],
        "active": [True, False, True, False],
    }
)


def _rule(*conditions: dict, combine: str = "all", then="yes", else_="no") -> Rule:
    return Rule(conditions=list(conditions), combine=combine, then_value=then, else_value=else_)


def test_validation_types_values_and_keeps_the_data_shape() -> None:
    rule = validate_rule(
        _rule({"column": "age", "operator": ">=", "value": "30"}, {"column": "plan", "operator": "in",
                                                                     "value": "basic, pro"}),
        columns=COLUMNS, task_type="classification", target="label", classes=["no", "yes"],
    )
    assert rule.conditions[0]["value"] == 30 and isinstance(rule.conditions[0]["value"], int)
    assert rule.conditions[1]["value"] == ["basic", "pro"]
    assert Rule.from_dict(rule.to_dict()) == rule
    assert rule.describe() == "if age >= 30 and plan in ['basic', 'pro'] then 'yes' else 'no'"


@pytest.mark.parametrize(
    ("condition", "field", "fragment"),
    [
        ({"column": "agee", "operator": ">", "value": 1}, "column", "not in the dataset"),
        ({"column": "label", "operator": "==", "value": "yes"}, "column", "target"),
        ({"column": "age", "operator": "~", "value": 1}, "operator", "'<'"),
        ({"column": "plan", "operator": "<", "value": "pro"}, "operator", "compares order"),
        ({"column": "age", "operator": ">", "value": "old"}, "value", "must be a number"),
        ({"column": "active", "operator": "==", "value": "maybe"}, "value", "true or false"),
        ({"column": "plan", "operator": "in", "value": []}, "value", "at least one"),
    ],
)
def test_invalid_conditions_name_the_field(condition: dict, field: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_rule(_rule(condition), columns=COLUMNS, task_type="classification", target="label")
    assert err.value.field == field
    assert fragment in str(err.value)


def test_predictions_must_fit_the_task() -> None:
    condition = {"column": "age", "operator": ">", "value": 1}
    with pytest.raises(InvalidInput) as err:
        validate_rule(_rule(condition, then="maybe"), columns=COLUMNS, task_type="classification",
                      classes=["no", "yes"])
    assert err.value.field == "then_value"
    with pytest.raises(InvalidInput) as err:
        validate_rule(_rule(condition, then=1.5, else_="lots"), columns=COLUMNS, task_type="regression")
    assert err.value.field == "else_value"
    with pytest.raises(InvalidInput) as err:
        validate_rule(_rule(), columns=COLUMNS, task_type="regression")
    assert err.value.field == "conditions"
    with pytest.raises(InvalidInput) as err:
        validate_rule(_rule(condition, combine="both"), columns=COLUMNS, task_type="classification")
    assert err.value.field == "combine"
    typed = validate_rule(_rule(condition, then="2.5", else_="1"), columns=COLUMNS, task_type="regression")
    assert (typed.then_value, typed.else_value) == (2.5, 1)
    # Numeric class labels keep the target's type.
    typed = validate_rule(_rule(condition, then="1", else_="0"), columns=COLUMNS, task_type="classification",
                          classes=[0, 1])
    assert (typed.then_value, typed.else_value) == (1, 0)


def test_apply_all_any_and_missing_values_never_match() -> None:
    older = {"column": "age", "operator": ">", "value": 30}
    basic = {"column": "plan", "operator": "==", "value": "basic"}
    assert apply_rule(_rule(older), FRAME).tolist() == ["no", "yes", "no", "yes"]
    assert apply_rule(_rule(older, basic, combine="all"), FRAME).tolist() == ["no", "no", "no", "no"]
    assert apply_rule(_rule(older, basic, combine="any"), FRAME).tolist() == ["yes", "yes", "yes", "yes"]
    assert apply_rule(_rule({"column": "plan", "operator": "!=", "value": "basic"}), FRAME).tolist() == [
        "no", "yes", "no", "no",
    ]
    assert apply_rule(_rule({"column": "active", "operator": "==", "value": True}), FRAME).tolist() == [
        "yes", "no", "yes", "no",
    ]
    numbers = apply_rule(_rule({"column": "plan", "operator": "in", "value": ["pro"]}, then=10, else_=2.5), FRAME)
    assert numbers.dtype == float and numbers.tolist() == [2.5, 10.0, 2.5, 2.5]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tenure < 12", {"column": "tenure", "operator": "<", "value": 12}),
        ("mean radius >= 15.5", {"column": "mean radius", "operator": ">=", "value": 15.5}),
        ("plan == pro", {"column": "plan", "operator": "==", "value": "pro"}),
        ("region in north,south", {"column": "region", "operator": "in", "value": ["north", "south"]}),
        ('region in ["a b", "c"]', {"column": "region", "operator": "in", "value": ["a b", "c"]}),
        ("main != 'x'", {"column": "main", "operator": "!=", "value": "x"}),
    ],
)
def test_parse_condition(text: str, expected: dict) -> None:
    assert parse_condition(text) == expected


@pytest.mark.parametrize("text", ["tenure", "tenure <", "", "a => 3"])
def test_parse_condition_rejects_bad_text(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_condition(text)
    assert err.value.field == "when"


def test_set_heuristic_validates_on_the_project_data(workbench_home: Path) -> None:
    frame = pd.DataFrame({"calls": [1, 5, 2, 7, 0, 3], "churned": [0, 1, 0, 1, 0, 1]})
    with session_scope() as session:
        project = create_project_with_dataset(
            session, name="Rules", dataset_spec_or_frame=frame, target="churned", task_type="classification"
        )
        with pytest.raises(InvalidInput) as err:
            set_heuristic(session, project=project, rule={"conditions": [{"column": "calls", "operator": ">",
                                                                          "value": 2}], "then": 2, "else": 0})
        assert err.value.field == "then_value"
        set_heuristic(session, project=project, actor="ann", rule={
            "conditions": [{"column": "calls", "operator": ">", "value": "2"}], "then": "1", "else": "0"})
    with session_scope() as session:
        project = get_project(session, slug="rules")
        assert project.heuristic == {"conditions": [{"column": "calls", "operator": ">", "value": 2}],
                                     "combine": "all", "then": 1, "else": 0}
        assert project.updated_by == "ann"
        rule = get_heuristic(project)
        assert rule is not None and apply_rule(rule, frame).tolist() == [0, 1, 0, 1, 0, 1]
        set_heuristic(session, project=project, rule=None)
    with session_scope() as session:
        assert get_heuristic(get_project(session, slug="rules")) is None


@pytest.mark.parametrize(
    ("condition", "field", "message"),
    [
        ({"column": "age", "operator": ">", "value": True}, "value",
         "Condition 1 (age > …): value must be a number; got True."),
        ({"column": "age", "operator": ">", "value": float("inf")}, "value",
         "Condition 1 (age > …): value must be a number; got inf."),
        ({"column": "age", "operator": "in", "value": [1, "x"]}, "value",
         "Condition 1 (age in …): value must be a number; got 'x'."),
        ({"column": "active", "operator": "==", "value": "maybe"}, "value",
         "Condition 1 (active == …): value must be true or false; got 'maybe'."),
        ({"column": "age", "operator": "~", "value": 1}, "operator",
         "operator must be one of '<', '<=', '>', '>=', '==', '!=', 'in'; got '~'."),
    ],
)
def test_bad_condition_values_get_the_one_message_format(condition: dict, field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_rule(_rule(condition), columns=COLUMNS, task_type="classification", target="label")
    assert err.value.field == field
    assert str(err.value) == message


@pytest.mark.parametrize("bad", [True, "lots", float("nan")])
def test_a_regression_rule_predicts_numbers_only(bad: object) -> None:
    condition = {"column": "age", "operator": ">", "value": 2.5}
    with pytest.raises(InvalidInput) as err:
        validate_rule(_rule(condition, then=bad, else_=1), columns=COLUMNS, task_type="regression")
    assert err.value.field == "then_value"
    assert str(err.value) == f"then must be a number; got {bad!r}."
    # 2.5 is a fine threshold for a numeric column, and stays a float; "3" becomes the int 3.
    typed = validate_rule(_rule(condition, {"column": "age", "operator": "<", "value": "3"}, then=1, else_=0),
                          columns=COLUMNS, task_type="regression")
    assert typed.conditions[0]["value"] == 2.5 and typed.conditions[1]["value"] == 3
    assert isinstance(typed.conditions[1]["value"], int)


def test_a_class_prediction_names_the_classes() -> None:
    condition = {"column": "age", "operator": ">", "value": 1}
    with pytest.raises(InvalidInput) as err:
        validate_rule(_rule(condition, then="maybe"), columns=COLUMNS, task_type="classification",
                      classes=["no", "yes"])
    assert str(err.value) == "then must be one of the classes 'no', 'yes'; got 'maybe'."
