"""Which requests a shadow rollout copies to the challenger (``shadow_copies``), on messy keys."""

from __future__ import annotations

from workbench.rollouts import CHALLENGER, RolloutPlan, assign_variant
from workbench.serving.rollout import shadow_copies


def _plan(share: float, key_column: str | None = "customer") -> RolloutPlan:
    return RolloutPlan(rollout_id=7, deployment_id=1, mode="shadow", share=share, champion_version="1",
                       challenger_version="2", key_column=key_column)


def test_every_request_is_copied_at_a_full_share_and_on_a_row_written_before_shadow_shares() -> None:
    records = [{"customer": f"c{i}", "x": i} for i in range(50)]
    ids = [f"r{i}" for i in range(50)]
    for share in (1.0, 0.0):  # 0.0: a shadow row stored before shadow rollouts had a share
        assert shadow_copies(_plan(share), records, ids) == (records, ids)


def test_a_share_copies_the_keys_a_canary_at_that_share_would_pick_and_falls_back_to_the_request_id() -> None:
    # Messy keys: missing, blank, NaN, a list, a boolean, numbers written three ways, odd characters.
    keys = [None, "", float("nan"), ["a"], True, 42, 42.0, "42", "ключ 🔑", "c\n1"] * 30
    records = [{"customer": key, "x": i} for i, key in enumerate(keys)]
    records.append({"x": 1})  # no key column at all
    ids = [f"req-{i}" for i in range(len(records))]
    copied, copied_ids = shadow_copies(_plan(0.3), records, ids)

    def picked(record: dict, request_id: str) -> bool:
        key = record.get("customer")
        usable = isinstance(key, str | int | float) and not isinstance(key, bool) and key == key and str(key).strip()
        return assign_variant(key if usable else request_id, share=0.3, salt="rollout-7") == CHALLENGER

    expected = [i for i, (record, rid) in enumerate(zip(records, ids, strict=True)) if picked(record, rid)]
    assert copied_ids == [ids[i] for i in expected] and copied == [records[i] for i in expected]
    assert 0 < len(expected) < len(records)
    # 42, 42.0 and "42" are one key: copied all three times or never.
    assert len({rid in copied_ids for rid, record in zip(ids, records, strict=True)
                if record.get("customer") in (42, "42") and not isinstance(record.get("customer"), bool)}) == 1


def test_without_a_key_column_each_request_is_picked_by_its_id_and_a_higher_share_only_adds() -> None:
    records = [{"x": i} for i in range(2000)]
    ids = [f"id-{i}" for i in range(2000)]
    low = set(shadow_copies(_plan(0.1, None), records, ids)[1])
    high = set(shadow_copies(_plan(0.5, None), records, ids)[1])
    assert low <= high
    assert 0.07 < len(low) / 2000 < 0.13 and 0.45 < len(high) / 2000 < 0.55  # binomial bounds, z > 4
