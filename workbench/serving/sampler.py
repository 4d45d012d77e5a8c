"""Process-health samples of a serving process (CPU, memory, requests and errors) into ``deployment_metrics``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from workbench.settings import Settings

logger = logging.getLogger("workbench.serving")


class MetricsSampler(threading.Thread):
    """Every ``seconds``, store this process's CPU and RSS (psutil) and the counts from ``take_counts``.

    ``take_counts()`` returns (requests, errors) since its previous call.
    """

    def __init__(self, *, deployment_id: int, take_counts: Callable[[], tuple[int, int]], settings: Settings,
                 seconds: float) -> None:
        super().__init__(name="metrics-sampler", daemon=True)
        self.deployment_id = deployment_id
        self.take_counts = take_counts
        self.settings = settings
        self.seconds = seconds
        self.stopped = threading.Event()

    def sample(self) -> None:
        """Store one sample now."""
        import psutil

        from workbench.db import session_scope
        from workbench.serving.deployments import record_metric_sample

        process = psutil.Process()
        requests, errors = self.take_counts()
        with session_scope(self.settings.db_url) as session:
            record_metric_sample(
                session,
                deployment_id=self.deployment_id,
                pid=process.pid,
                cpu_percent=process.cpu_percent(interval=None),
                rss_bytes=process.memory_info().rss,
                requests=requests,
                errors=errors,
            )

    def run(self) -> None:
        import psutil

        psutil.Process().cpu_percent(interval=None)  # the first call only primes the counter
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
