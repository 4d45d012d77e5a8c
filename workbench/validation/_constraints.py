"""The constraint types and the checker behind :mod:`workbench.validation`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from workbench.errors import InvalidInput


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a :class:`Param` that must be given."""


class _Refused(Exception):
    """Raised by a constraint's ``coerce`` when the value does not fit."""


class Constraint(Protocol):
    """What a constraint offers: a description of the allowed values, and a coercion."""

    def describe(self) -> str:
        """The allowed values, as they end the phrase "<name> must be ..."."""
        ...

    def coerce(self, value: Any) -> Any:
        """The value in its canonical type; raises ``_Refused`` when it does not fit."""
        ...


def _bounds(low: float | None, high: float | None, closed: str) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>=' if closed in ('both', 'left') else '>'} {low}"
    if low is None:
        return f" {'<=' if closed in ('both', 'right') else '<'} {high}"
    left = "[" if closed in ("both", "left") else "("
    right = "]" if closed in ("both", "right") else ")"
    return f" in {left}{low}, {high}{right}"


def _in_bounds(number: float, low: float | None, high: float | None, closed: str) -> bool:
    if low is not None and (number < low or (number == low and closed in ("right", "neither"))):
        return False
    return not (high is not None and (number > high or (number == high and closed in ("left", "neither"))))


@dataclass(frozen=True)
class Integer:
    """A whole number in ``[low, high]`` (either bound may be None)."""

    low: int | None = None
    high: int | None = None

    def describe(self) -> str:
        return "an integer" + _bounds(self.low, self.high, "both")

    def coerce(self, value: Any) -> int:
        if isinstance(value, bool):
            raise _Refused
        if isinstance(value, str):
            text = value.strip()
            # Bounded length: int() of a huge digit string is slow (and refused past 4300 digits).
            if not text or len(text) > 40 or not text.lstrip("+-").isdigit():
                raise _Refused
            number = int(text)
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        else:
            raise _Refused
        if not _in_bounds(number, self.low, self.high, "both"):
            raise _Refused
        return number


@dataclass(frozen=True)
class Real:
    """A finite number in the interval from ``low`` to ``high``, closed as ``closed`` says."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def describe(self) -> str:
        return "a number" + _bounds(self.low, self.high, self.closed)

    def coerce(self, value: Any) -> float:
        if isinstance(value, bool):
            raise _Refused
        if isinstance(value, str):
            if len(value) > 100:
                raise _Refused
            try:
                number = float(value.strip())
            except ValueError:
                raise _Refused from None
        elif isinstance(value, int | float):
            number = float(value)
        else:
            raise _Refused
        if not math.isfinite(number) or not _in_bounds(number, self.low, self.high, self.closed):
            raise _Refused
        return number


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def coerce(self, value: Any) -> Any:
        # bool is an int: True must not pass for 1.
        for allowed in self.values:
            if value == allowed and isinstance(value, bool) == isinstance(allowed, bool):
                return allowed
        raise _Refused


@dataclass(frozen=True)
class Text:
    """A string of at most ``max_length`` characters (stripped; empty allowed unless ``min_length``)."""

    max_length: int = 1000
    min_length: int = 0

    def describe(self) -> str:
        if self.min_length:
            return f"a text of {self.min_length} to {self.max_length} characters"
        return f"a text of at most {self.max_length} characters"

    def coerce(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _Refused
        text = value.strip()
        if not self.min_length <= len(text) <= self.max_length:
            raise _Refused
        return text


@dataclass(frozen=True)
class Param:
    """One declared parameter: its constraint, default (``REQUIRED`` when it must be given) and hint.

    ``nullable`` lets None (and an empty string) through as None; otherwise None means "use the
    default".
    """

    constraint: Constraint
    default: Any = REQUIRED
    hint: str = ""
    nullable: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_param(name: str, value: Any, constraint: Constraint, *, hint: str = "") -> Any:
    """``value`` coerced by ``constraint``.

    Raises :class:`InvalidInput` naming ``name``, the allowed values and the value received.
    """
    try:
        return constraint.coerce(value)
    except _Refused:
        suffix = f" {hint}" if hint else ""
        message = f"{name} must be {constraint.describe()}; got {_shown(value)}.{suffix}"
        raise InvalidInput(message, field=name) from None


def validate_params(
    params: Mapping[str, Any] | None,
    declared: Mapping[str, Param],
    *,
    what: str = "parameter",
    allow_unknown: bool = False,
) -> dict[str, Any]:
    """Every declared parameter checked and coerced, with defaults filled in.

    Unknown names are refused (naming them and the allowed ones) unless ``allow_unknown``; they
    are then passed through unchanged.
    """
    given = dict(params or {})
    unknown = sorted(set(given) - set(declared))
    if unknown and not allow_unknown:
        raise InvalidInput(
            f"unknown {what}(s) {unknown}; allowed: {sorted(declared)}.", field=unknown[0]
        )
    result: dict[str, Any] = {name: given[name] for name in unknown}
    for name, param in declared.items():
        value = given.get(name)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            if param.nullable:
                result[name] = None
                continue
            if param.default is REQUIRED:
                raise InvalidInput(f"{name} is required: give {param.constraint.describe()}.", field=name)
            value = param.default
            if value is None:
                result[name] = None
                continue
        result[name] = check_param(name, value, param.constraint, hint=param.hint)
    return result


def values_of(declared: Mapping[str, Param]) -> dict[str, Any]:
    """The defaults of ``declared`` (REQUIRED ones left out), for forms and docs."""
    return {name: p.default for name, p in declared.items() if p.default is not REQUIRED}


__all__ = [
    "REQUIRED",
    "Constraint",
    "Integer",
    "Options",
    "Param",
    "Real",
    "Text",
    "check_param",
    "validate_params",
    "values_of",
]

