"""Sticky assignment: deterministic, proportional to the share within binomial bounds, monotone in the share."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from workbench.errors import InvalidInput
from workbench.rollouts import (
    CHALLENGER,
    CHAMPION,
    ROLLOUT_PARAMS,
    assign_variant,
    assign_variants,
    assignment_point,
    routing_key,
    traffic_share,
    validate_rollout,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
KEYS = [f"user-{i}" for i in range(20_000)]


def _binomial_bounds(n: int, share: float, tail: float = 1e-6) -> tuple[float, float]:
    """Counts outside these bounds have probability below ``tail`` for a fair hash."""
    low, high = stats.binom.interval(1 - tail, n, share)
    return low, high


def test_the_same_key_always_gets_the_same_variant() -> None:
    first = assign_variants(KEYS, share=0.2, salt="rollout-1")
    again = assign_variants(KEYS, share=0.2, salt="rollout-1")
    assert (first == again).all()
    assert [assign_variant(k, share=0.2, salt="rollout-1") for k in KEYS[:200]] == list(first[:200])


def test_points_are_pinned_so_a_release_cannot_reshuffle_running_rollouts() -> None:
    """A change of hashing scheme would move users between variants mid-rollout: it must be deliberate."""
    assert assignment_point("user-1", salt="rollout-7") == pytest.approx(0.05911578269564606, abs=1e-15)
    assert assignment_point("user-2", salt="rollout-7") == pytest.approx(0.5820331234304463, abs=1e-15)
    assert assignment_point("req-abc", salt="rollout-7") == pytest.approx(0.5845726624070818, abs=1e-15)


def test_assignment_does_not_depend_on_the_process_hash_seed(tmp_path: Path) -> None:
    """Python's hash() changes with PYTHONHASHSEED; the assignment must not (serving runs many processes)."""
    code = (
        "import json; from workbench.rollouts import assign_variants\n"
        f"print(json.dumps(assign_variants({KEYS[:300]!r}, share=0.3, salt='s').tolist()))\n"
    )
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1] == assign_variants(KEYS[:300], share=0.3, salt="s").tolist()


@pytest.mark.parametrize("share", [0.01, 0.05, 0.2, 0.5])
def test_the_challenger_gets_the_share_within_binomial_bounds(share: float) -> None:
    on_challenger = int((assign_variants(KEYS, share=share, salt="canary") == CHALLENGER).sum())
    low, high = _binomial_bounds(len(KEYS), share)
    assert low <= on_challenger <= high, (on_challenger, low, high)


def test_raising_the_share_only_moves_keys_from_champion_to_challenger() -> None:
    shares = [0.0, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0]
    masks = [assign_variants(KEYS, share=s, salt="grow") == CHALLENGER for s in shares]
    assert not masks[0].any() and masks[-1].all()
    for smaller, larger in itertools.pairwise(masks):
        assert (larger | ~smaller).all(), "a key on challenger went back to champion when the share grew"
    # Those moved from 10 % to 20 % are about 10 % of the keys, not a reshuffle.
    moved = int((masks[4] & ~masks[3]).sum())
    low, high = _binomial_bounds(len(KEYS), 0.1)
    assert low <= moved <= high


def test_a_new_salt_draws_an_independent_split() -> None:
    """A new rollout must not reuse the same guinea pigs: overlap is share² of the keys, not share."""
    first = assign_variants(KEYS, share=0.2, salt="rollout-1") == CHALLENGER
    second = assign_variants(KEYS, share=0.2, salt="rollout-2") == CHALLENGER
    low, high = _binomial_bounds(len(KEYS), 0.04)
    assert low <= int((first & second).sum()) <= high


def test_keys_from_json_csv_and_the_cli_hash_alike() -> None:
    assert assign_variant(42, share=0.5, salt="s") == assign_variant("42", share=0.5, salt="s")
    assert assignment_point(42.0, salt="s") == assignment_point(np.int64(42), salt="s") == assignment_point(
        "42", salt="s")
    assert assignment_point(1.5, salt="s") == assignment_point("1.5", salt="s")


def test_the_routing_key_falls_back_to_the_request_id() -> None:
    assert routing_key("customer-9", "req-1") == "customer-9"
    assert routing_key(0, "req-1") == 0
    for missing in (None, float("nan"), "", "  "):
        assert routing_key(missing, "req-1") == "req-1"


def test_share_zero_and_one_send_everything_to_one_variant() -> None:
    assert set(assign_variants(KEYS[:500], share=0, salt="s")) == {CHAMPION}
    assert set(assign_variants(KEYS[:500], share=1, salt="s")) == {CHALLENGER}


def test_traffic_share_of_each_mode() -> None:
    assert traffic_share("shadow") == 1.0  # the share of requests copied: every one unless said
    assert traffic_share("shadow", 0.2) == 0.2
    assert traffic_share("ab") == 0.5
    assert traffic_share("canary", 0.1) == 0.1
    assert traffic_share("canary", "0.25") == 0.25


@pytest.mark.parametrize(
    "call, field, message",
    [
        (lambda: assign_variant("k", share=1.5, salt="s"), "share", r"share must be a number in \[0.0, 1.0\]; got 1.5"),
        (lambda: assign_variant("k", share=True, salt="s"), "share", r"share must be a number .*; got True"),
        (lambda: assign_variant("k", share=0.2, salt=""), "salt",
         r"salt must be a text of 1 to 200 characters; got ''"),
        (lambda: assign_variant(None, share=0.2, salt="s"), "key", r"key must be a text .*; got None"),
        (lambda: assign_variants(["a", True], share=0.2, salt="s"), "key", r"key must be .*; got True"),
        (lambda: assign_variant(float("inf"), share=0.2, salt="s"), "key", r"key must be .*; got inf"),
        (lambda: traffic_share("blue-green", 0.1), "mode",
         r"mode must be one of 'shadow', 'canary', 'ab'; got 'blue-green'"),
        (lambda: traffic_share("canary", 0.6), "share",
         r"share must be a number in \[0.01, 0.5\]; got 0.6. \(canary mode\)"),
        (lambda: traffic_share("canary"), "share", r"share is required in canary mode"),
        (lambda: traffic_share("shadow", 0), "share",
         r"share must be a number in \[0.01, 1.0\]; got 0. \(shadow mode\)"),
        (lambda: traffic_share("shadow", 1.5), "share", r"share must be a number in \[0.01, 1.0\]; got 1.5"),
        (lambda: traffic_share("shadow", float("nan")), "share", r"share must be a number in \[0.01, 1.0\]; got nan"),
    ],
)
def test_bad_parameters_name_the_field_the_allowed_values_and_the_value(call, field: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        call()
    assert info.value.field == field


def test_rollout_settings_are_declared_once_with_defaults_and_the_mode_bounds() -> None:
    clean = validate_rollout({"mode": "canary", "share": "0.1"})
    assert clean == {"mode": "canary", "share": 0.1, "alpha": 0.05, "min_volume": 100, "min_requests": 200,
                     "latency_factor": 1.5, "error_scale": 0.02}
    assert validate_rollout({"mode": "ab"})["share"] == 0.5
    assert validate_rollout({"mode": "shadow"})["share"] == 1.0
    assert set(ROLLOUT_PARAMS) == set(clean)
    with pytest.raises(InvalidInput, match=r"share must be a number in \[0.01, 0.5\]; got 0.7\. \(canary mode\)"):
        validate_rollout({"share": 0.7})
    with pytest.raises(InvalidInput, match=r"alpha must be a number in \(0.0, 0.5\); got 0\.") as info:
        validate_rollout({"mode": "ab", "alpha": 0})
    assert info.value.field == "alpha"
    with pytest.raises(InvalidInput, match=r"unknown rollout parameter\(s\) \['colour'\]") as info:
        validate_rollout({"mode": "ab", "colour": "blue"})
    assert info.value.field == "colour"
