"""The web service's shadow copies are scored in a child process: real versions, real SQLite, real processes.

:class:`~workbench.serving.shadow_process.ShadowProcess` is driven directly (from a thread with
no event loop, so each copy is written to the pipe at once) against a real child: copies with
messy records and hostile-but-valid JSON (newlines, U+2028, quotes and braces inside strings,
nested values in a field the model does not read) are framed intact and scored as the
challenger scores them in this process; a child that is stopped (SIGSTOP) fills the pipe and
then copies are dropped within the bound, never blocking ``submit``; a child that dies is
restarted and what it never scored is counted as dropped; every record sent is accounted for.
Stopping the web service scores what was sent and ends its child.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers.processes import assert_at_the_lowest_cpu_priority, can_make_idle_cpu_groups, poll
from tests.helpers.registered_model import module_home
from tests.helpers.rollout_models import (
    RolloutVersions,
    messy_requests,
    register_rollout_versions,
    shadow_rollout_row,
)
from workbench.db import session_scope
from workbench.db.models import ShadowPrediction
from workbench.rollouts import CHALLENGER
from workbench.serving.model_loader import load_model
from workbench.serving.rollout import ActiveRollout, VariantCounters
from workbench.serving.shadow_process import ShadowProcess
from workbench.settings import get_settings

HOSTILE = {"note": 'line one\nline two \u2028 "}\n{"p": {}} \\', "extra": {"nested": [[1, {"deep": None}], []]}}


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolloutVersions]:
    with module_home(tmp_path_factory, "shadowproc"):
        yield register_rollout_versions("Shadow process")


def _active(versions: RolloutVersions) -> ActiveRollout:
    plan, _ = shadow_rollout_row(versions, versions.challenger)
    return ActiveRollout(plan, load_model(versions.slug, version=versions.challenger))


def _rows(rollout_id: int) -> list[ShadowPrediction]:
    with session_scope() as session:
        rows = list(session.scalars(select(ShadowPrediction).where(ShadowPrediction.rollout_id == rollout_id)))
        session.expunge_all()
        return rows


def _challenger_counts(counters: VariantCounters, rollout_id: int) -> dict[str, int]:
    for row in counters.totals():
        if row["rollout_id"] == rollout_id and row["variant"] == CHALLENGER:
            return row
    return {"requests": 0, "errors": 0, "dropped": 0, "timeouts": 0}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start(versions: RolloutVersions, **options: Any) -> tuple[ShadowProcess, VariantCounters, ActiveRollout]:
    counters = VariantCounters()
    options.setdefault("settings", get_settings())
    shadow = ShadowProcess(versions.slug, counters=counters, **options)
    active = _active(versions)
    assert shadow.prepare(active)  # the child has loaded the challenger
    return shadow, counters, active


def test_copies_are_scored_in_a_child_process_as_the_challenger_scores_them_here(versions: RolloutVersions) -> None:
    shadow, counters, active = _start(versions)
    try:
        pid = shadow.pid
        assert pid is not None and pid != os.getpid() and _alive(pid)
        group = shadow.cpu_group
        assert (group is not None) == can_make_idle_cpu_groups()
        assert_at_the_lowest_cpu_priority(pid, group)
        records = [{**record, **HOSTILE} for record in messy_requests(40, seed=21)]
        ids = [f"r{i}" for i in range(40)]
        for i in range(0, 30):
            assert shadow.submit(active, [records[i]], [ids[i]])
        assert shadow.submit(active, records[30:], ids[30:])  # one copy of ten records
        # No scoring thread in this process: the challenger's work is the child's.
        assert not [t.name for t in threading.enumerate() if t.name.startswith(("shadow-scorer", "shadow-call"))]
        rows = poll(lambda: _rows(active.plan.rollout_id), lambda rows: len(rows) == 40, timeout=30)
    finally:
        shadow.stop()
    expected = active.challenger.predict_records(records)
    by_id = {row.request_id: row for row in rows}
    assert set(by_id) == set(ids)
    for rid, answer in zip(ids, expected, strict=True):
        assert by_id[rid].error is None and by_id[rid].prediction == answer["prediction"]
    assert _challenger_counts(counters, active.plan.rollout_id) == {
        "rollout_id": active.plan.rollout_id, "variant": CHALLENGER, "requests": 40, "errors": 0, "dropped": 0,
        "timeouts": 0}
    assert shadow.scored == 40 and 1 <= shadow.batches <= 31
    assert not _alive(pid)  # stop() ended the child
    assert group is None or not group.exists()  # and removed its CPU group


def test_without_cpu_groups_the_child_takes_the_lowest_priority_in_this_process_group(
        versions: RolloutVersions) -> None:
    shadow, _, active = _start(versions, settings=replace(get_settings(), shadow_cpu_group=False))
    try:
        assert shadow.cpu_group is None and shadow.pid is not None
        assert_at_the_lowest_cpu_priority(shadow.pid, None)
        assert shadow.submit(active, messy_requests(3, seed=4), ["a", "b", "c"])
        assert len(poll(lambda: _rows(active.plan.rollout_id), lambda rows: len(rows) == 3, timeout=30)) == 3
    finally:
        shadow.stop()


def test_copies_held_on_the_event_loop_go_as_one_line_per_plan_and_are_scored_under_their_rollout(
        versions: RolloutVersions) -> None:
    shadow, counters, first = _start(versions)
    second = _active(versions)  # another rollout (its own deployment) of the same challenger
    assert shadow.prepare(second)
    records = [{**record, **HOSTILE} for record in messy_requests(24, seed=5)]
    plans = [first if i % 3 else second for i in range(24)]  # the plan changes within the held copies

    async def serve() -> int:
        for i, (record, active) in enumerate(zip(records, plans, strict=True)):
            assert shadow.submit(active, [record], [f"g{i}"])
        held = shadow.waiting  # nothing written yet: the copies wait for the hold time
        await asyncio.sleep(0.3)  # the loop runs the scheduled write
        return held

    try:
        held = asyncio.run(serve())
        assert held == 24
        by_rollout = poll(lambda: (_rows(first.plan.rollout_id), _rows(second.plan.rollout_id)),
                          lambda found: len(found[0]) + len(found[1]) == 24, timeout=30)
    finally:
        shadow.stop()
    expected = first.challenger.predict_records(records)
    for active, rows in zip((first, second), by_rollout, strict=True):
        mine = {f"g{i}": answer for i, answer in enumerate(expected) if plans[i] is active}
        assert {row.request_id: row.prediction for row in rows} == {rid: a["prediction"] for rid, a in mine.items()}
        assert _challenger_counts(counters, active.plan.rollout_id)["requests"] == len(mine)


def test_a_stopped_child_fills_the_pipe_then_copies_are_dropped_within_the_bound(versions: RolloutVersions) -> None:
    shadow, counters, active = _start(versions, queue_size=8)
    pid = shadow.pid
    assert pid is not None
    big = {**messy_requests(1, seed=3)[0], "note": "x" * 8_000}  # ~8 KB a copy: the 1 MiB pipe fills fast
    os.kill(pid, signal.SIGSTOP)
    try:
        accepted = [shadow.submit(active, [big], [f"b{i}"]) for i in range(400)]  # never blocks: no deadlock
        dropped_here = _challenger_counts(counters, active.plan.rollout_id)["dropped"]
        assert accepted.count(False) == dropped_here > 0
        # At most what the pipe holds plus queue_size copies waited; the rest were dropped at once.
        assert accepted.count(True) <= (1 << 20) // 8_000 + 8 + 2
        assert shadow.waiting <= 8
    finally:
        os.kill(pid, signal.SIGCONT)
        shadow.stop(timeout=20)
    counts = _challenger_counts(counters, active.plan.rollout_id)
    rows = _rows(active.plan.rollout_id)
    # Every record is accounted for: scored (a row each) or dropped (here, or by the child's full queue).
    assert counts["requests"] + counts["dropped"] == 400
    assert len(rows) == counts["requests"] > 0
    assert all(row.error is None for row in rows)


def test_a_child_that_dies_is_restarted_and_what_it_never_scored_counts_as_dropped(versions: RolloutVersions) -> None:
    shadow, counters, active = _start(versions, restart_seconds=0.2)
    first, first_group = shadow.pid, shadow.cpu_group
    assert first is not None
    try:
        os.kill(first, signal.SIGSTOP)  # it reads nothing more: the next copies are lost with it
        records = messy_requests(20, seed=8)
        for i, record in enumerate(records):
            assert shadow.submit(active, [record], [f"lost{i}"])
        os.kill(first, signal.SIGKILL)
        counted = poll(lambda: _challenger_counts(counters, active.plan.rollout_id),
                       lambda c: c["dropped"] == 20, timeout=20)
        assert counted["dropped"] == 20 and counted["requests"] == 0
        assert poll(lambda: shadow.pid, lambda pid: pid not in (None, first), timeout=30) not in (None, first)
        assert shadow.restarts == 1
        # The dead child's CPU group is removed; the new child has one of its own.
        assert first_group is None or not first_group.exists()
        assert shadow.pid is not None and (first_group is None or shadow.cpu_group != first_group)
        assert_at_the_lowest_cpu_priority(shadow.pid, shadow.cpu_group)
        # The restarted child loads the rollout's challenger again and scores new copies.
        tries = iter(range(1000))

        def resend() -> list[ShadowPrediction]:
            shadow.submit(active, [records[0]], [f"again{next(tries)}"])
            return _rows(active.plan.rollout_id)

        second = poll(resend, lambda rows: len(rows) >= 1, timeout=30, every=1.0)
        assert second and all(row.request_id.startswith("again") for row in second)
    finally:
        shadow.stop()
    counts = _challenger_counts(counters, active.plan.rollout_id)
    assert counts["dropped"] == 20 and counts["requests"] == len(_rows(active.plan.rollout_id))


def test_a_challenger_the_child_cannot_load_is_reported_and_its_copies_counted_as_dropped(
        versions: RolloutVersions) -> None:
    import dataclasses

    counters = VariantCounters()
    shadow = ShadowProcess(versions.slug, settings=get_settings(), counters=counters, load_wait_seconds=60)
    good = _active(versions)
    # The plan names a version the registry does not hold: the child says so at once, no 60 s wait.
    missing = ActiveRollout(dataclasses.replace(good.plan, challenger_version="999"), good.challenger)
    try:
        assert shadow.prepare(missing) is False
        for i, record in enumerate(messy_requests(10, seed=31)):
            assert shadow.submit(missing, [record], [f"m{i}"])
        counted = poll(lambda: _challenger_counts(counters, good.plan.rollout_id), lambda c: c["dropped"] == 10,
                       timeout=20)
        assert counted["dropped"] == 10 and counted["requests"] == 0
    finally:
        shadow.stop()
    assert _rows(good.plan.rollout_id) == []


def test_the_child_skips_lines_it_cannot_read_and_scores_the_others(versions: RolloutVersions) -> None:
    """The pipe is the serving process's own, but one bad line (malformed, nested too deep, ids and records
    or sizes that do not pair up) must cost that line alone, never the child or the copies around it."""
    import dataclasses
    import json
    import subprocess
    import sys

    from workbench.settings import child_environment

    plan, _ = shadow_rollout_row(versions, versions.challenger)
    line = dataclasses.asdict(plan)
    records = messy_requests(5, seed=61)
    records[0] = {**records[0], **HOSTILE}
    env = child_environment(get_settings())
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    messages = [json.dumps(m).encode() for m in (
        {"load": line},
        {"p": line, "c": [["x"], [], [1]]},  # an id without its record
        {"p": line, "c": [["y"], [5], [1]]},  # a record that is no object
        {"p": line, "c": [["z0", "z1"], records[:2], [3]]},  # sizes that do not add up
        {"p": line, "c": [["w"], records[:1]]},  # no sizes (an older serving process)
        {"p": {"rollout_id": "nope"}, "c": [["v"], records[:1], [1]]},  # not a plan
        {"p": line, "c": [["a-0", "a-1", "b", "c"], records[1:], [2, 1, 1]]},  # the good one
    )] + [b"not json", b"[1, 2, 3]", b'"load"', b"[" * 200_000, b'{"p": ' + b"{" * 100_000]
    child = subprocess.Popen([sys.executable, "-m", "workbench.serving.shadow_process", "--project", versions.slug],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        _, errors = child.communicate(b"\n".join(messages) + b"\n", timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, errors.decode()[-2000:]
    rows = {row.request_id: row for row in _rows(plan.rollout_id)}
    assert set(rows) == {"a-0", "a-1", "b", "c"}, sorted(rows)
    challenger = load_model(versions.slug, version=versions.challenger)
    direct = [r["prediction"] for r in challenger.predict_records(records[1:])]
    assert [rows[i].prediction for i in ("a-0", "a-1", "b", "c")] == direct
    assert errors.decode().count("skipped an unreadable message") == 10
