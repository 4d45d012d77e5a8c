"""CleanRecords: the frame-free route of clean records must be conform's own result, or step aside."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.serving.signature import CleanRecords, InputColumn, conform

COLUMNS = [
    InputColumn("total bill", "number", required=False),
    InputColumn("size", "integer"),
    InputColumn("fee", "number"),
    InputColumn("visits", "integer", required=False),
    InputColumn("sex", "string", required=False),
    InputColumn("plan", "string"),
    InputColumn("smoker", "boolean", required=False),
    InputColumn("member", "boolean"),
    InputColumn("visit_date", "datetime", required=False),
]
USED = [c.name for c in COLUMNS if c.kind != "datetime"]

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4), st.sampled_from(["2024-01-02", "x", ""]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
KEYS = st.sampled_from([c.name for c in COLUMNS] + ["total bill ", " size", "extra", "fee\t"])
RECORDS = st.lists(st.dictionaries(KEYS, VALUES, max_size=len(COLUMNS) + 2), min_size=1, max_size=4)


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    if got.dtype.kind == "f":
        return got.tobytes() == want.tobytes()
    return all(a is b or (a == b and type(a) is type(b)) or (_nan(a) and _nan(b))
               for a, b in zip(got.tolist(), want.tolist(), strict=True))


def _nan(value: Any) -> bool:
    return type(value) is float and math.isnan(value)


def _check(records: list[dict[str, Any]]) -> np.ndarray | None:
    """CleanRecords' arrays when it takes the records; then conform takes them too, with the same arrays."""
    arrays = CleanRecords(COLUMNS, USED).arrays(records)
    if arrays is None:
        return None
    frame = conform(records, COLUMNS)  # raises if the clean route accepted what conform refuses
    assert sorted(arrays) == sorted(USED)
    for name in USED:
        assert _same(arrays[name], frame[name].to_numpy()), (name, arrays[name], frame[name].to_numpy())
    return arrays["fee"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS)
def test_clean_records_are_typed_exactly_as_conform_types_them(records: list[dict[str, Any]]) -> None:
    _check(records)


WELL_FORMED = st.fixed_dictionaries(
    {"size": st.integers(min_value=-(2**63), max_value=2**63 - 1),
     "fee": st.floats(allow_nan=False, allow_infinity=False), "plan": st.text(max_size=3), "member": st.booleans(),
     "sex": st.one_of(st.none(), st.text(max_size=2))},
    optional={"total bill": st.one_of(st.none(), st.integers(-5, 5), st.floats(-1e300, 1e300)),
              "visits": st.one_of(st.none(), st.integers(-5, 5)), "smoker": st.one_of(st.none(), st.booleans()),
              "visit_date": st.none(), "extra": VALUES},
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WELL_FORMED, min_size=1, max_size=4))
def test_well_formed_requests_take_the_clean_route(records: list[dict[str, Any]]) -> None:
    """The usual request (the right JSON types, optional columns null or absent) never needs a frame.

    (An optional text column that some records of one request lack and others carry goes through conform:
    pandas decides between NaN and None there.)
    """
    assert _check(records) is not None


@pytest.mark.parametrize("record", [
    {"size": 2.0, "fee": 1.0, "plan": "a", "member": True},  # conform takes a whole float as an integer
    {"size": 2, "fee": 1.0, "plan": 3, "member": True},  # a number in a text column becomes its text
    {"size": 2, "fee": 1.0, "plan": "a", "member": 1},  # 0/1 for a boolean
    {"size": 2, "fee": 1.0, "plan": "a", "member": True, "visit_date": "2024-01-02"},  # a date to parse
    {" size": 2, "fee": 1.0, "plan": "a", "member": True},  # ingest's renaming
    {"size": 2, "fee": math.nan, "plan": "a", "member": True},  # NaN where a value is required
    {"size": 2**63, "fee": 1.0, "plan": "a", "member": True},  # beyond int64
    {"size": True, "fee": 1.0, "plan": "a", "member": True},  # a boolean for a number
])
def test_anything_conform_coerces_or_refuses_goes_through_conform(record: dict[str, Any]) -> None:
    assert CleanRecords(COLUMNS, USED).arrays([record]) is None


def test_a_column_name_ingest_would_change_turns_the_clean_route_off() -> None:
    columns = [InputColumn(" padded ", "number")]
    assert CleanRecords(columns, [" padded "]).arrays([{" padded ": 1.0}]) is None
