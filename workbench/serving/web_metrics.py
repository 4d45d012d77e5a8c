"""The web service's counters (:class:`ServiceStats`) and their Prometheus text (``GET /metrics``).

Several worker processes (``workbench serve --workers N``) share their counters through small
files, one per worker (:class:`SnapshotWriter`, :func:`read_snapshots`), which any worker renders
with a ``worker="<pid>"`` label (:func:`render`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.serving.model_loader import ServedModel

if TYPE_CHECKING:
    from workbench.settings import Settings

logger = logging.getLogger("workbench.serving.web")

SNAPSHOT_SECONDS = 0.5  # how often a worker leaves its counters for its siblings
# Latency histogram buckets in seconds (Prometheus convention).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class ServiceStats:
    """Counters behind /metrics and the deployment_metrics samples (thread-safe)."""

    started: float = field(default_factory=time.time)
    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    predictions: int = 0
    errors: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    sampled_requests: int = 0
    sampled_errors: int = 0

    def observe(self, path: str, status: int, seconds: float | None = None, predictions: int = 0) -> None:
        with self.lock:
            key = (path, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            if status >= 400:
                self.errors += 1
            self.predictions += predictions
            if seconds is not None:
                self.latency_sum += seconds
                self.latency_count += 1
                for i, bound in enumerate(LATENCY_BUCKETS):
                    if seconds <= bound:
                        self.latency_buckets[i] += 1
                        break
                else:
                    self.latency_buckets[-1] += 1

    def total_requests(self) -> int:
        with self.lock:
            return sum(self.requests.values())

    def take_sample(self) -> tuple[int, int]:
        """Requests and errors since the previous call."""
        with self.lock:
            total = sum(self.requests.values())
            requests, errors = total - self.sampled_requests, self.errors - self.sampled_errors
            self.sampled_requests, self.sampled_errors = total, self.errors
            return requests, errors



def snapshot(stats: ServiceStats, model: ServedModel, writer: Any, rollout: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """This process's counters, model and log-writer state as plain JSON-ready data.

    ``rollout`` is the running rollout and the per-variant counts (``{"active": ..., "counts": [...],
    "shadow_waiting": n, "shadow_idle_cpu_group": bool or None}``, see :mod:`workbench.serving.rollout`),
    None when there never was one.

    A worker of ``workbench serve --workers N`` writes it to a file its siblings read, so any
    worker's ``/metrics`` can show all of them (:mod:`workbench.serving.web_workers`).
    """
    import psutil

    with stats.lock:
        data: dict[str, Any] = {
            "requests": [[path, status, count] for (path, status), count in sorted(stats.requests.items())],
            "latency_buckets": list(stats.latency_buckets),
            "latency_sum": stats.latency_sum,
            "latency_count": stats.latency_count,
            "errors": stats.errors,
            "predictions": stats.predictions,
        }
    data["model"] = {"name": model.name, "alias": model.alias, "version": model.version}
    if writer is not None:
        data["log"] = {"written": writer.written, "pending": writer.pending, "dropped": writer.dropped}
    if rollout is not None:
        data["rollout"] = rollout
    process = psutil.Process()
    cpu = process.cpu_times()
    data.update(pid=process.pid, cpu_seconds=cpu.user + cpu.system, rss_bytes=process.memory_info().rss,
                ts=time.time())
    return data


def _labels(worker: str, extra: str = "") -> str:
    """A label set: ``extra`` (already ``k="v"`` pairs) plus ``worker`` when there is one."""
    parts = [part for part in (extra, f'worker="{worker}"' if worker else "") if part]
    return "{" + ",".join(parts) + "}" if parts else ""


def render(snapshots: list[dict[str, Any]], *, per_worker: bool = False) -> str:
    """The Prometheus text exposition format (0.0.4) of one or several processes' :func:`snapshot`.

    With ``per_worker`` every sample carries a ``worker="<pid>"`` label (one series per worker
    process; sum them in the query, e.g. ``sum(rate(workbench_requests_total[1m]))``).
    """
    def worker_of(data: dict[str, Any]) -> str:
        return str(data["pid"]) if per_worker else ""

    lines = ["# HELP workbench_requests_total HTTP requests by path and status.",
             "# TYPE workbench_requests_total counter"]
    for data in snapshots:
        for path, status, count in data["requests"]:
            labels = _labels(worker_of(data), f'path="{path}",status="{status}"')
            lines.append(f"workbench_requests_total{labels} {count}")
    families = (
        ("workbench_request_errors_total", "Requests answered with a 4xx or 5xx status.", "counter", "errors"),
        ("workbench_predictions_total", "Records predicted.", "counter", "predictions"),
    )
    for name, help_text, kind, key in families:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{_labels(worker_of(data))} {data[key]}" for data in snapshots]
    lines += ["# HELP workbench_predict_latency_seconds Latency of /predict, model and validation included.",
              "# TYPE workbench_predict_latency_seconds histogram"]
    for data in snapshots:
        worker, buckets = worker_of(data), data["latency_buckets"]
        cumulative = 0
        for bound, count in zip(LATENCY_BUCKETS, buckets, strict=False):
            cumulative += count
            labels = _labels(worker, f'le="{bound}"')
            lines.append(f"workbench_predict_latency_seconds_bucket{labels} {cumulative}")
        cumulative += buckets[-1]
        lines += [
            "workbench_predict_latency_seconds_bucket" + _labels(worker, 'le="+Inf"') + f" {cumulative}",
            f"workbench_predict_latency_seconds_sum{_labels(worker)} {data['latency_sum']:.6f}",
            f"workbench_predict_latency_seconds_count{_labels(worker)} {data['latency_count']}",
        ]
    lines += ["# HELP workbench_model_info The registered model version being served.",
              "# TYPE workbench_model_info gauge"]
    for data in snapshots:
        model = data["model"]
        info = f'model="{model["name"]}",alias="{model["alias"]}",version="{model["version"]}"'
        lines.append(f"workbench_model_info{_labels(worker_of(data), info)} 1")
    lines += ["# HELP workbench_model_version The served version as a number.",
              "# TYPE workbench_model_version gauge"]
    for data in snapshots:
        version = data["model"]["version"]
        lines.append(f"workbench_model_version{_labels(worker_of(data))} {int(version) if version.isdigit() else 0}")
    logged = [data for data in snapshots if "log" in data]
    if logged:
        lines += ["# HELP workbench_prediction_log_rows Prediction-log rows by state.",
                  "# TYPE workbench_prediction_log_rows gauge"]
        for data in logged:
            for state in ("written", "pending", "dropped"):
                labels = _labels(worker_of(data), f'state="{state}"')
                lines.append(f"workbench_prediction_log_rows{labels} {data['log'][state]}")
    lines += _rollout_lines(snapshots, worker_of)
    if per_worker:
        lines += ["# HELP workbench_workers Worker processes serving behind this port.",
                  "# TYPE workbench_workers gauge", f"workbench_workers {len(snapshots)}"]
    lines += ["# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
              "# TYPE process_cpu_seconds_total counter"]
    lines += [f"process_cpu_seconds_total{_labels(worker_of(data))} {data['cpu_seconds']:.3f}" for data in snapshots]
    lines += ["# HELP process_resident_memory_bytes Resident memory size in bytes.",
              "# TYPE process_resident_memory_bytes gauge"]
    lines += [f"process_resident_memory_bytes{_labels(worker_of(data))} {data['rss_bytes']}" for data in snapshots]
    return "\n".join(lines) + "\n"


# (metric suffix, count field, help) of the per-variant rollout counters.
ROLLOUT_COUNTERS = (
    ("requests", "requests", "Records a variant of a rollout answered or scored (shadow copies that failed included)."),
    ("errors", "errors", "Records on which a variant of a rollout raised (a canary's then answered by the champion)."),
    ("shadow_dropped", "dropped", "Shadow copies dropped because the challenger's queue was full."),
    ("shadow_timeouts", "timeouts", "Shadow copies the challenger did not answer within the timeout."),
)


def _rollout_lines(snapshots: list[dict[str, Any]], worker_of: Callable[[dict[str, Any]], str]) -> list[str]:
    """The rollout families: the running rollout (info) and the counters by rollout and variant."""
    with_rollout = [data for data in snapshots if data.get("rollout")]
    if not with_rollout:
        return []
    lines = ["# HELP workbench_rollout_info The rollout running on this deployment (share: the challenger's share "
             "of answers; in shadow mode, of requests copied).",
             "# TYPE workbench_rollout_info gauge"]
    for data in with_rollout:
        active = data["rollout"].get("active")
        if active:
            info = (f'rollout="{active["rollout_id"]}",mode="{active["mode"]}",'
                    f'challenger_version="{active["challenger_version"]}",share="{active["share"]:g}"')
            lines.append(f"workbench_rollout_info{_labels(worker_of(data), info)} 1")
    for suffix, key, help_text in ROLLOUT_COUNTERS:
        name = f"workbench_rollout_{suffix}_total"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        for data in with_rollout:
            for row in data["rollout"].get("counts", []):
                labels = _labels(worker_of(data), f'rollout="{row["rollout_id"]}",variant="{row["variant"]}"')
                lines.append(f"{name}{labels} {row[key]}")
    lines += ["# HELP workbench_rollout_shadow_queue Shadow copies waiting for the challenger.",
              "# TYPE workbench_rollout_shadow_queue gauge"]
    lines += [f"workbench_rollout_shadow_queue{_labels(worker_of(data))} {data['rollout'].get('shadow_waiting', 0)}"
              for data in with_rollout]
    placed = [data for data in with_rollout if data["rollout"].get("shadow_idle_cpu_group") is not None]
    if placed:
        lines += ["# HELP workbench_rollout_shadow_idle_cpu_group 1 when the shadow process runs in an idle CPU "
                  "cgroup (it yields the CPU at once), 0 when only at the lowest priority (see shadow_cpu_group).",
                  "# TYPE workbench_rollout_shadow_idle_cpu_group gauge"]
        lines += [f"workbench_rollout_shadow_idle_cpu_group{_labels(worker_of(data))} "
                  f"{int(data['rollout']['shadow_idle_cpu_group'])}" for data in placed]
    return lines


def prometheus_text(stats: ServiceStats, model: ServedModel, writer: Any, rollout: dict[str, Any] | None = None
                    ) -> str:
    """Render this one process's counters in the Prometheus text exposition format (0.0.4)."""
    return render([snapshot(stats, model, writer, rollout)])


def worker_dir(settings: Settings, deployment_id: int) -> Path:
    """The folder where the workers of web deployment ``deployment_id`` leave their counters."""
    return settings.home / "run" / f"web-{deployment_id}"


class SnapshotWriter(threading.Thread):
    """Every ``seconds``, write this worker's counters (:func:`~workbench.serving.web_metrics.snapshot`) to
    ``<folder>/<pid>.json``."""

    def __init__(self, folder: Path, take: Callable[[], dict[str, Any]], seconds: float = SNAPSHOT_SECONDS) -> None:
        super().__init__(name="metrics-snapshot", daemon=True)
        self.folder = folder
        self.take = take
        self.seconds = seconds
        self.stopped = threading.Event()
        self.path = folder / f"{os.getpid()}.json"

    def write(self) -> None:
        """Write the snapshot now (atomically: a reader never sees half a file)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.take()))
        os.replace(scratch, self.path)

    def run(self) -> None:
        while not self.stopped.wait(self.seconds):
            try:
                self.write()
            except Exception as exc:  # a full disk must not stop serving
                logger.warning("metrics snapshot failed: %s", exc)

    def stop(self) -> None:
        """Stop writing and remove the file: a stopped worker is no longer reported."""
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.path.unlink()


def read_snapshots(folder: Path) -> list[dict[str, Any]]:
    """The snapshots of the workers still alive, by pid (a dead worker's leftover file is skipped)."""
    import psutil

    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now, or removed: the next scrape sees it
        if psutil.pid_exists(int(data.get("pid", 0))):
            found.append(data)
    return sorted(found, key=lambda data: int(data["pid"]))


__all__ = ["LATENCY_BUCKETS", "ServiceStats", "SnapshotWriter", "prometheus_text", "read_snapshots", "render",
           "snapshot", "worker_dir"]
