"""Process-health samples of a serving process (CPU, memory, requests and errors) into ``deployment_metrics``."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from workbench.settings import Settings

logger = logging.getLogger("workbench.serving")


def cpu_ceiling() -> float:
    """The largest CPU percentage a process can show here: 100 per logical core (psutil's convention)."""
    return 100.0 * (os.cpu_count() or 1)


class ProcessProbe:
    """CPU and RSS of one process, read through one long-lived ``psutil.Process``.

    psutil computes ``cpu_percent`` from the CPU time the *same* ``Process`` object saw at its
    previous call, and a fresh object's first reading is always 0.0. So the object is created
    once (and primed) per sampled process, and every sample reads it again. A reading is the
    share of one core used since the previous reading: 0 to 100 x the logical cores.
    """

    def __init__(self, pid: int | None = None) -> None:
        import psutil

        self.process: Any = psutil.Process(pid if pid is not None else os.getpid())
        # The sampling thread and stop()'s final sample may read at once; each reading moves the baseline.
        self._lock = threading.Lock()
        self.process.cpu_percent(interval=None)  # primes the counter: the next reading covers the gap since

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def read(self) -> tuple[float, int]:
        """CPU percent since the previous read (clamped to 0..100 x cores) and the resident memory in bytes."""
        with self._lock, self.process.oneshot():
            cpu = float(self.process.cpu_percent(interval=None))
            rss = int(self.process.memory_info().rss)
        # Clock and accounting granularity can push a reading a hair past the ceiling.
        return min(max(cpu, 0.0), cpu_ceiling()), rss


class MetricsSampler(threading.Thread):
    """Every ``seconds``, store the CPU and RSS of the serving process (psutil) and the counts from ``take_counts``.

    ``take_counts()`` returns (requests, errors) since its previous call. ``pid`` is the sampled
    process (default: this one). ``cpu_percent`` is measured over the interval since the previous
    sample (or since the sampler was created, for the first one), in 0..100 x logical cores.
    """

    def __init__(self, *, deployment_id: int, take_counts: Callable[[], tuple[int, int]], settings: Settings,
                 seconds: float, pid: int | None = None) -> None:
        super().__init__(name="metrics-sampler", daemon=True)
        self.deployment_id = deployment_id
        self.take_counts = take_counts
        self.settings = settings
        self.seconds = seconds
        self.pid = pid
        self.stopped = threading.Event()
        self._probe: ProcessProbe | None = None
        self._probe_lock = threading.Lock()

    def probe(self) -> ProcessProbe:
        """The one probe of the sampled process, created (and primed) on first use."""
        with self._probe_lock:
            if self._probe is None:
                self._probe = ProcessProbe(self.pid)
            return self._probe

    def sample(self) -> None:
        """Store one sample now."""
        from workbench.db import session_scope
        from workbench.serving.deployments import record_metric_sample

        probe = self.probe()
        cpu_percent, rss_bytes = probe.read()
        requests, errors = self.take_counts()
        with session_scope(self.settings.db_url) as session:
            record_metric_sample(
                session,
                deployment_id=self.deployment_id,
                pid=probe.pid,
                cpu_percent=cpu_percent,
                rss_bytes=rss_bytes,
                requests=requests,
                errors=errors,
            )

    def start(self) -> None:
        """Prime the probe (so the first sample measures from now), then start the sampling thread."""
        self.probe()
        super().start()

    def run(self) -> None:
        if self.seconds <= 0:
            return
        while not self.stopped.wait(self.seconds):
            try:
                self.sample()
            except Exception as exc:  # a DB hiccup must not stop serving
                logger.warning("metrics sample failed: %s", exc)

    def stop(self, *, final_sample: bool = True) -> None:
        """Stop sampling; store one last sample so the final counts are not lost."""
        self.stopped.set()
        if final_sample:
            try:
                self.sample()
            except Exception as exc:
                logger.warning("final metrics sample failed: %s", exc)
