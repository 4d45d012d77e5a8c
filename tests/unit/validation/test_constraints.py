"""The declared constraints: one behaviour for 2.5, True and "3" everywhere, one message format."""

from __future__ import annotations

import math

import pytest

from workbench.errors import InvalidInput
from workbench.validation import REQUIRED, Integer, Options, Param, Real, Text, check_param, validate_params


@pytest.mark.parametrize("value, expected", [(3, 3), (3.0, 3), ("3", 3), (" 7 ", 7), (-2, -2)])
def test_integer_takes_ints_integral_floats_and_integer_strings(value: object, expected: int) -> None:
    assert check_param("n", value, Integer()) == expected


@pytest.mark.parametrize("value", [2.5, True, False, "2.5", "", "x", None, math.nan, math.inf, [1]])
def test_integer_refuses_fractions_booleans_and_junk(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_param("n_trials", value, Integer(1, 200))
    assert info.value.field == "n_trials"
    assert str(info.value).startswith("n_trials must be an integer in [1, 200]; got ")
    assert repr(value)[:20] in str(info.value)


def test_integer_bounds_name_the_interval() -> None:
    with pytest.raises(InvalidInput, match=r"folds must be an integer in \[2, 20\]; got 1\. Use 3 to 5 folds\."):
        check_param("folds", 1, Integer(2, 20), hint="Use 3 to 5 folds.")
    with pytest.raises(InvalidInput, match=r"seed must be an integer >= 0; got -1\."):
        check_param("seed", -1, Integer(0))


@pytest.mark.parametrize("value", [True, math.nan, math.inf, -math.inf, "nan", "x", 0.0, 1.0])
def test_real_refuses_booleans_non_finite_and_out_of_interval(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"holdout must be a number in \(0.0, 1.0\); got "):
        check_param("holdout", value, Real(0.0, 1.0, closed="neither"))


def test_real_takes_numbers_and_numeric_strings() -> None:
    assert check_param("x", "0.25", Real(0, 1)) == 0.25
    assert check_param("x", 1, Real(0, 1)) == 1.0


def test_options_do_not_confuse_true_with_one() -> None:
    assert check_param("k", 1, Options((1, 2))) == 1
    with pytest.raises(InvalidInput, match=r"k must be one of 1, 2; got True\."):
        check_param("k", True, Options((1, 2)))


def test_text_limits() -> None:
    assert check_param("name", "  ab ", Text(max_length=3)) == "ab"
    with pytest.raises(InvalidInput, match="a text of 1 to 3 characters"):
        check_param("name", "", Text(max_length=3, min_length=1))


def test_validate_params_fills_defaults_refuses_unknown_and_required() -> None:
    declared = {
        "n": Param(Integer(1, 10), default=5),
        "mode": Param(Options(("a", "b")), default=REQUIRED),
        "window": Param(Text(), default=None, nullable=True),
    }
    assert validate_params({"mode": "a"}, declared) == {"n": 5, "mode": "a", "window": None}
    assert validate_params({"mode": "b", "n": "7", "window": ""}, declared) == {"n": 7, "mode": "b", "window": None}
    unknown = r"unknown retrain parameter\(s\) \['zzz'\]; allowed: \['mode', 'n', 'window'\]"
    with pytest.raises(InvalidInput, match=unknown):
        validate_params({"mode": "a", "zzz": 1}, declared, what="retrain parameter")
    with pytest.raises(InvalidInput, match=r"mode is required: give one of 'a', 'b'\.") as info:
        validate_params({}, declared)
    assert info.value.field == "mode"


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidInput) as info:
        check_param("n", "9" * 10_000, Integer(0, 10))
    assert len(str(info.value)) < 200
