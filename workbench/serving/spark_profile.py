"""A debug aid of the Spark engine: each task's seconds per phase, when ``WORKBENCH_SPARK_PROFILE`` names a folder.

Off by default (it costs a few clock reads per batch). It says where a task's time goes (waiting for
input rows, conformance, predict, building the output, the log segment, writing or handing the output
back) and whether the Python worker was fresh (its age, the model load) or reused.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class TaskProfile:
    """Seconds per phase of one task attempt, written to ``<folder>/task-<pid>-<partition>-<attempt>.json``."""

    PHASES = ("input", "conform", "predict", "output", "log_table", "log_write", "write", "handoff")

    def __init__(self, folder: str, partition: int, attempt: int) -> None:
        self.folder, self.partition, self.attempt = folder, partition, attempt
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self.started = time.perf_counter()
        self.model_load = 0.0
        self.rows = self.batches = 0
        self.mark = self.started

    def lap(self, phase: str) -> None:
        """Add the time since the last lap to ``phase``."""
        now = time.perf_counter()
        self.seconds[phase] += now - self.mark
        self.mark = now

    def write(self) -> None:
        """Write the record (one JSON line)."""
        record = {"pid": os.getpid(), "partition": self.partition, "attempt": self.attempt,
                  "worker_age_s": round(time.time() - _process_started(), 3), "model_load_s": round(self.model_load, 3),
                  "task_s": round(time.perf_counter() - self.started, 3), "rows": self.rows, "batches": self.batches,
                  **{f"{k}_s": round(v, 3) for k, v in self.seconds.items()}}
        path = Path(self.folder, f"task-{os.getpid()}-{self.partition}-{self.attempt}.json")
        path.write_text(json.dumps(record) + "\n")


def _process_started() -> float:
    """When this process started (epoch seconds; a forked worker: its fork), from /proc; now where /proc is missing."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
