"""The rule baseline ("heuristic"): a simple rule that predicts without ML, kept as data.

A rule is one or two (or more) conditions ``column operator value``, combined with ``all``
(and) or ``any`` (or), and the prediction when the rule holds and when it does not::

    {"conditions": [{"column": "support_calls", "operator": ">", "value": 3}],
     "combine": "all", "then": "yes", "else": "no"}

It is stored on ``Project.heuristic`` as that JSON and evaluated with :func:`apply_rule`;
nothing is ever ``eval``-ed. A missing value never satisfies a condition.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from workbench.db.models import Project, utcnow
from workbench.errors import InvalidInput, check_choice

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

OPERATORS = ("<", "<=", ">", ">=", "==", "!=", "in")
ORDER_OPERATORS = ("<", "<=", ">", ">=")
COMBINES = ("all", "any")
MAX_CONDITIONS = 5
NUMERIC_KINDS = ("numeric",)


@dataclass(frozen=True)
class Rule:
    """A rule baseline: ``then_value`` where the conditions hold, else ``else_value``."""

    conditions: list[dict[str, Any]] = field(default_factory=list)
    combine: str = "all"
    then_value: Any = None
    else_value: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The stored (JSON) form."""
        return {
            "conditions": [dict(c) for c in self.conditions],
            "combine": self.combine,
            "then": self.then_value,
            "else": self.else_value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        """A rule from its stored form (shape checked; columns are checked by :func:`validate_rule`)."""
        if not isinstance(data, dict):
            raise InvalidInput(f"A rule must be a mapping with conditions, combine, then, else; got {data!r}.",
                               field="rule")
        conditions = data.get("conditions")
        if not isinstance(conditions, list):
            raise InvalidInput("rule.conditions must be a list of {column, operator, value}.", field="conditions")
        return cls(
            conditions=[dict(c) if isinstance(c, dict) else c for c in conditions],
            combine=data.get("combine", "all"),
            then_value=data.get("then"),
            else_value=data.get("else"),
        )

    def describe(self) -> str:
        """The rule as one readable line: ``if a > 3 and b == 'x' then 'yes' else 'no'``."""
        joiner = " and " if self.combine == "all" else " or "
        parts = [f"{c.get('column')} {c.get('operator')} {c.get('value')!r}" for c in self.conditions]
        return f"if {joiner.join(parts)} then {self.then_value!r} else {self.else_value!r}"


def _kinds(columns: Sequence[dict[str, Any]] | Sequence[str]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for entry in columns:
        if isinstance(entry, dict):
            kinds[str(entry["name"])] = str(entry.get("kind", "categorical"))
        else:
            kinds[str(entry)] = "categorical"
    return kinds


def _number(value: Any, *, field_name: str, what: str) -> float | int:
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a number; got {value!r}.", field=field_name)
    if isinstance(value, int | float):
        number: float | int = value
    else:
        try:
            number = float(str(value).strip())
        except ValueError as exc:
            raise InvalidInput(f"{what} must be a number; got {value!r}.", field=field_name) from exc
    if isinstance(number, float):
        if not math.isfinite(number):
            raise InvalidInput(f"{what} must be a finite number; got {value!r}.", field=field_name)
        if number.is_integer() and not isinstance(value, float):
            number = int(number)
    return number


def _coerce_scalar(value: Any, kind: str, *, field_name: str, what: str) -> Any:
    if kind in NUMERIC_KINDS:
        return _number(value, field_name=field_name, what=what)
    if kind == "boolean":
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise InvalidInput(f"{what} must be true or false for a yes/no column; got {value!r}.", field=field_name)
    if kind == "datetime":
        import pandas as pd

        parsed = pd.to_datetime(str(value), errors="coerce")
        if pd.isna(parsed):
            raise InvalidInput(f"{what} must be a date/time such as 2024-03-01; got {value!r}.", field=field_name)
        return parsed.isoformat()
    return value if isinstance(value, str) else str(value)


def _coerce_label(value: Any, *, task_type: str, classes: Sequence[Any] | None, field_name: str) -> Any:
    what = "then" if field_name == "then_value" else "else"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"The rule needs a prediction for '{what}'.", field=field_name)
    if task_type == "regression":
        return _number(value, field_name=field_name, what=f"The '{what}' prediction of a regression rule")
    if classes is None:
        return value
    for known in classes:
        if value == known or str(value) == str(known):
            # The class as the target stores it (1, not "1"), made JSON-safe.
            item = getattr(known, "item", None)
            return item() if callable(item) else known
    raise InvalidInput(
        f"The '{what}' prediction must be one of the classes {', '.join(repr(c) for c in classes)}; got {value!r}.",
        field=field_name,
    )


def validate_rule(
    rule: Rule,
    *,
    columns: Sequence[dict[str, Any]] | Sequence[str],
    task_type: str,
    target: str | None = None,
    classes: Sequence[Any] | None = None,
) -> Rule:
    """Check ``rule`` against the dataset's columns and the task; return it with typed values.

    ``columns`` is ``Dataset.columns`` (name + kind) or plain names. Values of numeric columns
    become numbers; ``then``/``else`` must be numbers for regression and known classes (when
    ``classes`` is given) for classification. Raises :class:`InvalidInput` naming the field.
    """
    check_choice("task_type", task_type, ("classification", "regression"))
    check_choice("combine", rule.combine, COMBINES)
    kinds = _kinds(columns)
    if not rule.conditions:
        raise InvalidInput("The rule needs at least one condition (column, operator, value).", field="conditions")
    if len(rule.conditions) > MAX_CONDITIONS:
        raise InvalidInput(
            f"A rule has at most {MAX_CONDITIONS} conditions; got {len(rule.conditions)}.", field="conditions"
        )
    typed: list[dict[str, Any]] = []
    for index, condition in enumerate(rule.conditions, start=1):
        if not isinstance(condition, dict):
            raise InvalidInput(f"Condition {index} must be a mapping; got {condition!r}.", field="conditions")
        column = condition.get("column")
        operator = condition.get("operator")
        value = condition.get("value")
        if column not in kinds:
            raise InvalidInput(
                f"Condition {index}: column {column!r} is not in the dataset; columns are {', '.join(kinds)}.",
                field="column",
            )
        if target is not None and column == target:
            raise InvalidInput(
                f"Condition {index}: a rule cannot look at the target {target!r}; pick an input column.",
                field="column",
            )
        check_choice("operator", operator, OPERATORS)
        kind = kinds[column]
        what = f"Condition {index} ({column} {operator} …): the value"
        if operator in ORDER_OPERATORS and kind not in (*NUMERIC_KINDS, "datetime"):
            raise InvalidInput(
                f"Condition {index}: {operator!r} compares order, but {column!r} is {kind}; "
                "use == , != or in for it.",
                field="operator",
            )
        if operator == "in":
            items = value if isinstance(value, list | tuple) else [v for v in str(value).split(",") if v.strip()]
            if not items:
                raise InvalidInput(f"{what} of 'in' must list at least one value.", field="value")
            coerced: Any = [
                _coerce_scalar(v.strip() if isinstance(v, str) else v, kind, field_name="value", what=what)
                for v in items
            ]
        else:
            if value is None or (isinstance(value, str) and not value.strip() and kind in NUMERIC_KINDS):
                raise InvalidInput(f"{what} is missing.", field="value")
            coerced = _coerce_scalar(value, kind, field_name="value", what=what)
        typed.append({"column": column, "operator": operator, "value": coerced})
    return Rule(
        conditions=typed,
        combine=rule.combine,
        then_value=_coerce_label(rule.then_value, task_type=task_type, classes=classes, field_name="then_value"),
        else_value=_coerce_label(rule.else_value, task_type=task_type, classes=classes, field_name="else_value"),
    )


def _condition_mask(condition: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    import numpy as np
    import pandas as pd

    column = condition["column"]
    if column not in frame.columns:
        raise InvalidInput(f"The rule uses column {column!r}, which this data does not have.", field="column")
    series = frame[column]
    operator = condition["operator"]
    value = condition["value"]
    present = series.notna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        value = [pd.Timestamp(v) for v in value] if operator == "in" else pd.Timestamp(value)
    elif pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        pass
    else:
        # Categorical/text columns compare as strings, the way the UI shows them.
        series = series.astype(str)
        value = [str(v) for v in value] if operator == "in" else str(value)
    if operator == "in":
        result = series.isin(list(value)).to_numpy()
    else:
        compare = {
            "<": series.lt, "<=": series.le, ">": series.gt, ">=": series.ge, "==": series.eq, "!=": series.ne,
        }[operator]
        result = compare(value).to_numpy()
    return np.asarray(result, dtype=bool) & present


def apply_rule(rule: Rule, frame: pd.DataFrame) -> np.ndarray:
    """The rule's prediction for every row of ``frame`` (``then`` where it holds, else ``else``)."""
    import numpy as np

    masks = [_condition_mask(c, frame) for c in rule.conditions]
    if not masks:
        holds = np.zeros(len(frame), dtype=bool)
    elif rule.combine == "all":
        holds = np.logical_and.reduce(masks)
    else:
        holds = np.logical_or.reduce(masks)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (rule.then_value, rule.else_value))
    out = np.empty(len(frame), dtype=float if numeric else object)
    out[holds] = rule.then_value
    out[~holds] = rule.else_value
    return out


_WHEN = re.compile(r"^\s*(?P<column>.+?)\s*(?P<operator><=|>=|==|!=|<|>|\sin\s)\s*(?P<value>.*?)\s*$", re.DOTALL)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip().strip("'\"")


def parse_condition(text: str) -> dict[str, Any]:
    """``"support_calls > 3"`` or ``"region in north,south"`` as a condition dict (CLI ``--when``)."""
    match = _WHEN.match(text or "")
    # "a => 3" or "a >> 3" would otherwise split at the wrong place; refuse doubled operators.
    doubled = match is not None and (
        match.group("column").endswith(tuple("<>=!")) or match.group("value").startswith(tuple("<>=!"))
    )
    if match is None or not match.group("value") or doubled:
        raise InvalidInput(
            f"--when must read 'COLUMN OPERATOR VALUE' with an operator among {', '.join(OPERATORS)} "
            f"(e.g. 'tenure < 12' or 'region in north,south'); got {text!r}.",
            field="when",
        )
    operator = match.group("operator").strip()
    raw = match.group("value")
    value: Any
    if operator == "in":
        parsed = _parse_value(raw)
        value = parsed if isinstance(parsed, list) else [_parse_value(v) for v in raw.split(",") if v.strip()]
    else:
        value = _parse_value(raw)
    return {"column": match.group("column").strip().strip("`"), "operator": operator, "value": value}


def project_classes(session: Session, *, project: Project) -> list[Any] | None:
    """The target's classes in the project's newest data (None for regression)."""
    if project.task_type != "classification":
        return None
    from workbench.data.datasets import latest_dataset, load_frame

    values = load_frame(latest_dataset(session, project=project))[project.target].dropna().unique().tolist()
    return sorted(values, key=str)


def set_heuristic(
    session: Session, *, project: Project, rule: Rule | dict[str, Any] | None, actor: str = ""
) -> Project:
    """Validate ``rule`` against the project's newest data and store it (``None`` removes it)."""
    from workbench.data.datasets import latest_dataset
    from workbench.projects import get_project

    # Re-read the row in this session: pages hold detached copies.
    project = get_project(session, slug=project.slug)
    if rule is None:
        project.heuristic = None
    else:
        candidate = rule if isinstance(rule, Rule) else Rule.from_dict(rule)
        dataset = latest_dataset(session, project=project)
        typed = validate_rule(
            candidate,
            columns=dataset.columns,
            task_type=project.task_type,
            target=project.target,
            classes=project_classes(session, project=project),
        )
        project.heuristic = typed.to_dict()
    project.updated_by = actor
    project.updated_at = utcnow()
    session.flush()
    return project


def get_heuristic(project: Project) -> Rule | None:
    """The project's stored rule, or None when none is set."""
    return Rule.from_dict(project.heuristic) if project.heuristic else None
