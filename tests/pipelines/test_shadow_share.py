"""A shadow rollout that copies a share of the requests, in the real web service (uvicorn in a thread, real
MLflow registry, real DB, the real shadow process): which requests are copied, and a share moved live.

Requests are messy (missing values, string categories) and keyed by customer, several requests per customer.
"""

from __future__ import annotations

from typing import Any

from tests.helpers.processes import poll
from tests.helpers.rollout_models import KEY_COLUMN, RolloutVersions, messy_requests
from tests.pipelines import test_rollout_serving as serving_tests
from tests.pipelines.test_rollout_serving import (
    Service,
    _binomial_bounds,
    _direct,
    _rows,
    end_rollout_row,
    rollout_info,
    set_share_row,
    start_rollout_row,
)
from workbench.db.models import PredictionLog, ShadowPrediction
from workbench.rollouts import CHALLENGER, assign_variant

# The rollout tests' fixtures: the registered versions (this module's own, being module-scoped) and a service
# with the shipped shadow options.
versions = serving_tests.versions
default_service = serving_tests.default_service


def _send(service: Service, records: list[dict[str, Any]]) -> list[str]:
    """Send the records in lists of 20; their request ids, in order (every answer the champion's)."""
    ids: list[str] = []
    for start in range(0, len(records), 20):
        body, _ = service.predict(records[start:start + 20])
        assert {answer["variant"] for answer in body["predictions"]} == {"champion"}
        ids += [answer["request_id"] for answer in body["predictions"]]
    return ids


def test_a_shadow_rollout_copies_its_share_of_keys_and_the_share_moves_without_restart(
        default_service: Service, versions: RolloutVersions) -> None:
    service = default_service
    customers = 300
    records = messy_requests(2 * customers, seed=23, customers=customers)  # each customer twice
    rollout_id = start_rollout_row(versions.slug, service.deployment_id, mode="shadow", share=0.3,
                                   champion=versions.champion, challenger=versions.challenger, key_column=KEY_COLUMN)
    service.wait_for_plan(rollout_id, share=0.3)
    salt = f"rollout-{rollout_id}"
    ids = _send(service, records)

    # Copied: the requests of the customers a canary at 30 % would give the challenger, both of each one's.
    picked = {r[KEY_COLUMN] for r in records if assign_variant(r[KEY_COLUMN], share=0.3, salt=salt) == CHALLENGER}
    expected = {rid for rid, r in zip(ids, records, strict=True) if r[KEY_COLUMN] in picked}
    low, high = _binomial_bounds(customers, 0.3)
    assert low <= len(picked) / customers <= high, len(picked)
    shadow = poll(lambda: _rows(ShadowPrediction, rollout_id), lambda rows: len(rows) >= len(expected), timeout=30)
    assert {row.request_id for row in shadow} == expected
    by_id = dict(zip(ids, records, strict=True))
    copied = [by_id[row.request_id] for row in shadow]
    assert [row.prediction for row in shadow] == _direct(versions.slug, versions.challenger, copied)
    assert all(row.error is None for row in shadow)
    logged = poll(lambda: _rows(PredictionLog, rollout_id), lambda rows: len(rows) == len(records), timeout=30)
    assert {row.request_id for row in logged} == set(ids)  # the champion still answers and logs every request
    info = rollout_info(service.http.get("/metrics").text, rollout_id)
    assert 'mode="shadow"' in info and 'share="0.3"' in info

    set_share_row(rollout_id, 0.6)  # no restart: the next poll copies by the new share
    service.wait_for_plan(rollout_id, share=0.6)
    again = _send(service, records[:customers])
    raised = {r[KEY_COLUMN] for r in records[:customers]
              if assign_variant(r[KEY_COLUMN], share=0.6, salt=salt) == CHALLENGER}
    assert picked <= raised  # a customer copied at 30 % is still copied at 60 %
    expected_again = {rid for rid, r in zip(again, records, strict=False) if r[KEY_COLUMN] in raised}
    shadow = poll(lambda: _rows(ShadowPrediction, rollout_id),
                  lambda rows: len(rows) >= len(expected) + len(expected_again), timeout=30)
    assert {row.request_id for row in shadow} == expected | expected_again
    end_rollout_row(rollout_id)
