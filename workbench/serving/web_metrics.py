"""The web service's counters (:class:`ServiceStats`) and their Prometheus text (``GET /metrics``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from workbench.serving.model_loader import ServedModel

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



def prometheus_text(stats: ServiceStats, model: ServedModel, writer: Any) -> str:
    """Render the service's counters in the Prometheus text exposition format (0.0.4)."""
    import psutil

    lines = [
        "# HELP workbench_requests_total HTTP requests by path and status.",
        "# TYPE workbench_requests_total counter",
    ]
    with stats.lock:
        requests = dict(stats.requests)
        buckets = list(stats.latency_buckets)
        latency_sum, latency_count, errors, predictions = (
            stats.latency_sum, stats.latency_count, stats.errors, stats.predictions)
    for (path, status), count in sorted(requests.items()):
        lines.append(f'workbench_requests_total{{path="{path}",status="{status}"}} {count}')
    lines += [
        "# HELP workbench_request_errors_total Requests answered with a 4xx or 5xx status.",
        "# TYPE workbench_request_errors_total counter",
        f"workbench_request_errors_total {errors}",
        "# HELP workbench_predictions_total Records predicted.",
        "# TYPE workbench_predictions_total counter",
        f"workbench_predictions_total {predictions}",
        "# HELP workbench_predict_latency_seconds Latency of /predict, model and validation included.",
        "# TYPE workbench_predict_latency_seconds histogram",
    ]
    cumulative = 0
    for bound, count in zip(LATENCY_BUCKETS, buckets, strict=False):
        cumulative += count
        lines.append(f'workbench_predict_latency_seconds_bucket{{le="{bound}"}} {cumulative}')
    cumulative += buckets[-1]
    lines += [
        f'workbench_predict_latency_seconds_bucket{{le="+Inf"}} {cumulative}',
        f"workbench_predict_latency_seconds_sum {latency_sum:.6f}",
        f"workbench_predict_latency_seconds_count {latency_count}",
        "# HELP workbench_model_info The registered model version being served.",
        "# TYPE workbench_model_info gauge",
        f'workbench_model_info{{model="{model.name}",alias="{model.alias}",version="{model.version}"}} 1',
        "# HELP workbench_model_version The served version as a number.",
        "# TYPE workbench_model_version gauge",
        f"workbench_model_version {int(model.version) if model.version.isdigit() else 0}",
    ]
    if writer is not None:
        lines += [
            "# HELP workbench_prediction_log_rows Prediction-log rows by state.",
            "# TYPE workbench_prediction_log_rows gauge",
            f'workbench_prediction_log_rows{{state="written"}} {writer.written}',
            f'workbench_prediction_log_rows{{state="pending"}} {writer.pending}',
            f'workbench_prediction_log_rows{{state="dropped"}} {writer.dropped}',
        ]
    process = psutil.Process()
    cpu = process.cpu_times()
    lines += [
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {cpu.user + cpu.system:.3f}",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {process.memory_info().rss}",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["LATENCY_BUCKETS", "ServiceStats", "prometheus_text"]
