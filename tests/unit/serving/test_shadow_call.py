"""A shadow challenger call's latency and timeout leave out its waits for a CPU (Linux schedstat), not its own time.

The call runs in a thread at nice 19 while two busy processes of this session (the same
scheduling group) keep both cores full: the thread waits for a core most of the time. A call
that burns 20 ms of CPU then takes far longer by the wall clock; its reported seconds are its
own (about its CPU time), and a 0.3 s timeout does not cut it short. A call that sleeps is not
starved: the sleep is its own time, and it still times out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pytest

from workbench.serving._shadow_call import CallStart, cpu_wait_seconds, predict_each, wait_for_call

pytestmark = pytest.mark.skipif(cpu_wait_seconds() is None, reason="no /proc/thread-self/schedstat here")


class Burner:
    """A model whose call burns ``cpu`` seconds of this thread's CPU time, or sleeps ``sleep`` seconds."""

    def __init__(self, *, cpu: float = 0.0, sleep: float = 0.0) -> None:
        self.cpu = cpu
        self.sleep = sleep

    def predict_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        began = time.thread_time()
        while time.thread_time() - began < self.cpu:
            pass
        time.sleep(self.sleep)
        return [{"prediction": 1, "proba": None} for _ in records]


@pytest.fixture()
def busy_cores() -> Iterator[None]:
    """Two busy-looping processes of this session (so of this scheduling group), stopped by pid."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    time.sleep(0.3)
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait(timeout=10)


def _starved_call(model: Burner, timeout: float) -> tuple[Any, float]:
    start = CallStart()

    def call() -> Any:
        os.setpriority(os.PRIO_PROCESS, 0, 19)  # 0: this thread (Linux nice is per thread)
        return predict_each(model, [{"x": 1}], start=start)  # type: ignore[arg-type]

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = wait_for_call(pool.submit(call), start, timeout)
    return result, time.perf_counter() - began


def test_a_starved_call_reports_its_own_time_and_is_not_timed_out_for_the_load(busy_cores: None) -> None:
    (outcomes, seconds), wall = _starved_call(Burner(cpu=0.02), timeout=0.3)
    assert outcomes == [{"prediction": 1, "proba": None}]
    assert wall > 0.3  # by the wall clock it took longer than the timeout ...
    assert 0.018 <= seconds < 0.1, (seconds, wall)  # ... but its own time is about its 20 ms of CPU


def test_a_call_that_sleeps_is_not_starved_and_still_times_out() -> None:
    with pytest.raises(FutureTimeout):
        _starved_call(Burner(sleep=1.0), timeout=0.2)
