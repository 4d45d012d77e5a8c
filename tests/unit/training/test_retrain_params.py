"""Retrain job params are checked with the same constraints as a train job's: 2.5 and True are not integers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from workbench.errors import InvalidInput
from workbench.training.retraining import validate_params

SETTINGS: Any = SimpleNamespace(retrain_trials=5, retrain_cooldown_minutes=60.0)


def test_defaults_come_from_the_settings() -> None:
    clean = validate_params({}, settings=SETTINGS)
    assert clean == {"window": "30d", "n_trials": 5, "holdout_fraction": 0.3, "models": None, "seed": 42,
                     "cooldown_minutes": 60.0}


@pytest.mark.parametrize("value", [3, 3.0, "3"])
def test_integer_params_take_ints_integral_floats_and_integer_strings(value: Any) -> None:
    assert validate_params({"n_trials": value, "seed": value}, settings=SETTINGS)["n_trials"] == 3


@pytest.mark.parametrize("name", ["n_trials", "seed"])
@pytest.mark.parametrize("value", [2.5, True, "2.5"])
def test_integer_params_refuse_fractions_and_booleans(name: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_params({name: value}, settings=SETTINGS)
    assert info.value.field == name
    assert f"got {value!r}" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"n_trials": 0}, "n_trials", "between 1 and 200"),
        ({"n_trials": 500}, "n_trials", "between 1 and 200"),
        ({"holdout_fraction": 0.95}, "holdout_fraction", "0.05, 0.9"),
        ({"holdout_fraction": "much"}, "holdout_fraction", "must be a number"),
        ({"cooldown_minutes": -1}, "cooldown_minutes", ">= 0"),
        ({"models": ["linear", "deep_net"]}, "models", "deep_net"),
        ({"window": "soon"}, "window", "soon"),
        ({"colour": "red"}, "colour", "unknown retrain parameter"),
    ],
)
def test_each_bad_param_names_its_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_params(changes, settings=SETTINGS)
    assert info.value.field == field
    assert words in str(info.value)


def test_models_are_parsed_once_into_a_list_of_families() -> None:
    assert validate_params({"models": "knn, linear,knn"}, settings=SETTINGS)["models"] == ["knn", "linear"]
