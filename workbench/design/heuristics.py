"""The rule baseline ("heuristic"): a simple rule that predicts without ML, kept as data.

A rule is one or two (or more) conditions ``column operator value``, combined with ``all``
(and) or ``any`` (or), and the prediction when the rule holds and when it does not::

    {"conditions": [{"column": "support_calls", "operator": ">", "value": 3}],
     "combine": "all", "then": "yes", "else": "no"}

It is stored on ``Project.heuristic`` as that JSON and evaluated with :func:`apply_rule`;
nothing is ever ``eval``-ed. A missing value never satisfies a condition.

What a rule may hold is declared as data with :mod:`workbench.validation` (:data:`RULE_PARAMS`
for ``combine`` and each ``operator``, :data:`VALUE_CONSTRAINTS` for a condition's value by
column kind, :class:`Number` and :class:`ClassLabel` for the predictions), so every refusal has
the one message format: ``<name> must be <allowed>; got <value>.``, prefixed with the condition
it is about.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import Project, utcnow
from workbench.errors import InvalidInput, check_choice
from workbench.validation import Constraint, Options, Param, Real, Refused, check_param

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

OPERATORS = ("<", "<=", ">", ">=", "==", "!=", "in")
ORDER_OPERATORS = ("<", "<=", ">", ">=")
COMBINES = ("all", "any")
MAX_CONDITIONS = 5
NUMERIC_KINDS = ("numeric",)


@dataclass(frozen=True)
class Number:
    """A finite number (not a boolean); one given as an int or as integral text stays an int (30, not 30.0)."""

    def describe(self) -> str:
        return Real().describe()

    def coerce(self, value: Any) -> float | int:
        number = Real().coerce(value)  # refuses True, NaN, infinities and text that is no number
        if number.is_integer() and not isinstance(value, float):
            return int(number)
        return number


@dataclass(frozen=True)
class YesNo:
    """True or false, also as the text true/false, yes/no or 1/0 (a yes/no column's value)."""

    def describe(self) -> str:
        return "true or false"

    def coerce(self, value: Any) -> bool:
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise Refused


@dataclass(frozen=True)
class DateTime:
    """A date or date-time that pandas can read; given back in ISO form."""

    def describe(self) -> str:
        return "a date/time such as 2024-03-01"

    def coerce(self, value: Any) -> str:
        import pandas as pd

        parsed = pd.to_datetime(str(value), errors="coerce")
        if pd.isna(parsed):
            raise Refused
        return str(parsed.isoformat())


@dataclass(frozen=True)
class ClassLabel:
    """One of the target's classes, matched as given or as text ("1" is the class 1), in the target's type."""

    classes: tuple[Any, ...]

    def describe(self) -> str:
        return "one of the classes " + ", ".join(repr(c) for c in self.classes)

    def coerce(self, value: Any) -> Any:
        for known in self.classes:
            if value == known or str(value) == str(known):
                item = getattr(known, "item", None)  # numpy scalars made JSON-safe
                return item() if callable(item) else known
        raise Refused


@dataclass(frozen=True)
class AnyText:
    """Any value, as text (a categorical column compares as text)."""

    def describe(self) -> str:
        return "a text"

    def coerce(self, value: Any) -> str:
        return value if isinstance(value, str) else str(value)


RULE_PARAMS: dict[str, Param] = {
    "combine": Param(Options(COMBINES), default="all"),
    "operator": Param(Options(OPERATORS)),
}
# A condition's value, by the kind of its column; any other kind compares as text.
VALUE_CONSTRAINTS: dict[str, Constraint] = {"numeric": Number(), "boolean": YesNo(), "datetime": DateTime()}


def _checked(name: str, value: Any, constraint: Constraint, *, field_name: str, context: str = "") -> Any:
    """:func:`check_param` with the refusal's field set to ``field_name`` and its message after ``context``."""
    try:
        return check_param(name, value, constraint)
    except InvalidInput as exc:
        raise InvalidInput(f"{context}{exc}", field=field_name) from None


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


def _coerce_label(value: Any, *, task_type: str, classes: Sequence[Any] | None, field_name: str) -> Any:
    what = "then" if field_name == "then_value" else "else"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"The rule needs a prediction for '{what}'.", field=field_name)
    if task_type == "regression":
        return _checked(what, value, Number(), field_name=field_name)
    if classes is None:
        return value
    return _checked(what, value, ClassLabel(tuple(classes)), field_name=field_name)


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
    _checked("combine", rule.combine, RULE_PARAMS["combine"].constraint, field_name="combine")
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
        _checked("operator", operator, RULE_PARAMS["operator"].constraint, field_name="operator")
        kind = kinds[column]
        what = f"Condition {index} ({column} {operator} …): "
        constraint = VALUE_CONSTRAINTS.get(kind, AnyText())
        if operator in ORDER_OPERATORS and kind not in (*NUMERIC_KINDS, "datetime"):
            raise InvalidInput(
                f"Condition {index}: {operator!r} compares order, but {column!r} is {kind}; "
                "use == , != or in for it.",
                field="operator",
            )
        if operator == "in":
            items = value if isinstance(value, list | tuple) else [v for v in str(value).split(",") if v.strip()]
            if not items:
                raise InvalidInput(f"{what}the value of 'in' must list at least one value.", field="value")
            coerced: Any = [
                _checked("value", v.strip() if isinstance(v, str) else v, constraint, field_name="value", context=what)
                for v in items
            ]
        else:
            if value is None or (isinstance(value, str) and not value.strip() and kind in NUMERIC_KINDS):
                raise InvalidInput(f"{what}the value is missing.", field="value")
            coerced = _checked("value", value, constraint, field_name="value", context=what)
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
    session: Session,
    *,
    project: Project,
    rule: Rule | dict[str, Any] | None,
    actor: str = "",
    principal: Principal | None = None,
) -> Project:
    """Validate ``rule`` against the project's newest data and store it (``None`` removes it).

    ``principal`` (None: the operator) must be an editor of the project.
    """
    from workbench.data.datasets import latest_dataset
    from workbench.projects import get_project

    # Re-read the row in this session: pages hold detached copies.
    project = get_project(session, slug=project.slug)
    require(session, project=project, principal=principal, action="edit")
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
