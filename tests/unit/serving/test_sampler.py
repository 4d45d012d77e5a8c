"""The metrics sampler measures CPU: a busy process reads above 0, within 0..100 x cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from workbench.db import session_scope
from workbench.db.models import DeploymentMetric
from workbench.projects import create_project
from workbench.serving.deployments import create_deployment
from workbench.serving.sampler import MetricsSampler, ProcessProbe, cpu_ceiling
from workbench.settings import get_settings


@pytest.fixture()
def deployment_id(workbench_home: Path) -> int:
    with session_scope() as session:
        project = create_project(session, name="Sampler churn", task_type="classification", target="y")
        return create_deployment(session, project=project, mode="web").id


@pytest.fixture()
def spinning_child() -> Iterator[subprocess.Popen]:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds  # CPU time, not wall time: a shared machine may preempt us
    while time.process_time() < end:
        pass


def _samples(deployment_id: int) -> list[DeploymentMetric]:
    with session_scope() as session:
        return list(session.scalars(select(DeploymentMetric).where(DeploymentMetric.deployment_id == deployment_id)
                                    .order_by(DeploymentMetric.id)))


def test_sampler_measures_a_busy_child_process(deployment_id: int, spinning_child: subprocess.Popen) -> None:
    sampler = MetricsSampler(deployment_id=deployment_id, take_counts=lambda: (3, 1), settings=get_settings(),
                             seconds=0, pid=spinning_child.pid)
    sampler.start()  # primes the probe; seconds=0: no background samples, only the ones asked for
    sampler.join(timeout=10)
    for _ in range(2):
        time.sleep(0.5)
        sampler.sample()
    samples = _samples(deployment_id)
    assert len(samples) == 2
    for sample in samples:
        assert sample.pid == spinning_child.pid
        # A process spinning on one core for 0.5 s: well above 0, never above 100 per core.
        assert 0 < sample.cpu_percent <= cpu_ceiling()
        assert sample.rss_bytes > 0
        assert (sample.requests, sample.errors) == (3, 1)


def test_sampler_measures_its_own_busy_process(deployment_id: int) -> None:
    sampler = MetricsSampler(deployment_id=deployment_id, take_counts=lambda: (0, 0), settings=get_settings(),
                             seconds=0)
    sampler.start()
    sampler.join(timeout=10)
    _spin(0.3)
    sampler.stop()  # the final sample
    [sample] = _samples(deployment_id)
    assert 0 < sample.cpu_percent <= cpu_ceiling()


def test_probe_reads_stay_in_bounds_and_idle_reads_low(spinning_child: subprocess.Popen) -> None:
    busy = ProcessProbe(spinning_child.pid)
    time.sleep(0.3)
    cpu, rss = busy.read()
    assert 0 < cpu <= cpu_ceiling() and rss > 0
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(1.0)  # past its start-up
        probe = ProcessProbe(idle.pid)
        time.sleep(0.3)
        cpu, _ = probe.read()
        assert 0 <= cpu < 20  # a sleeping process reads (near) zero, not a stale or accumulated number
    finally:
        idle.kill()
        idle.wait(timeout=10)
    assert cpu_ceiling() == 100.0 * (os.cpu_count() or 1)
