"""Benchmark: events per second end to end through NATS JetStream, against a bare consumer and a floor
(issue 16 items 1 and 7).

A HistGradientBoosting Pipeline is registered in a throw-away home. Two consumers run in this
process for the whole benchmark, started (and the model loaded) before any clock:

- the workbench: ``workbench.serving.stream.run_consumer`` on the project's stream: predict each
  micro-batch, log it to the prediction log (SQLite, idempotent), publish the predictions, ack;
- the bare consumer (the competitor, as the nats-py docs show a pull consumer): a durable pull
  subscription on a second stream that only acks, fetching the same batch size.

Each sample starts a **publisher in a separate process** (``send_records``: JetStream publishes,
acks awaited in windows), the same program for every side; it prepares its events, says it is
ready, and the clock starts when it is told to go. The clock stops when every event is done:
the workbench consumer reports it logged (committed), its prediction published and it acked (the log
is then counted to check: what a user would query), the bare one acked it. The **floor** is that
publisher alone, on a third stream nobody consumes: no consumer can finish before its events
are published. Sides alternate in rotating order, ``--samples`` (>= 3) each; printed: the median
(min-max) events per second of each side, the ratio workbench / bare (goal >= 0.7 at 20,000
events) and each side's time as a multiple of the floor.

    .venv/bin/python benchmarks/stream.py --events 20000                # NATS at 127.0.0.1:4222
    .venv/bin/python benchmarks/stream.py --events 3000 --samples 3 --embedded

``--shadow``: a second version (another training sample) is registered and a shadow rollout of it runs on
the consumer's deployment for the whole benchmark: each acked micro-batch is copied to the challenger
(in a child process since stop 23; in a thread of the consumer before). The shadow rows written are
counted after the last sample, with the copies dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def publisher_main(url: str, slug: str, n_events: int, seed: int) -> int:
    """The publisher process: build the events, print ``ready``, wait for ``go`` on stdin, publish, report."""
    from batch import FEATURES, make_frame

    from workbench.prediction_log import json_safe
    from workbench.serving.stream import send_records

    events = [json_safe(r) for r in make_frame(n_events, seed=seed)[FEATURES].to_dict("records")]
    print("ready", flush=True)
    sys.stdin.readline()
    sent = send_records(slug, events, nats_url=url)
    print(json.dumps(sent), flush=True)
    return 0


class Publisher:
    """A publisher process, started and made ready before the clock (see the module docstring)."""

    def __init__(self, url: str, slug: str, n_events: int, seed: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--publish", url, slug, str(n_events), str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"the publisher did not start: {line!r}")

    def go(self) -> float:
        """Tell it to publish; returns the clock's start."""
        assert self.process.stdin is not None
        started = time.perf_counter()
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return started

    def wait(self) -> None:
        if self.process.wait(timeout=600) != 0:
            raise SystemExit("the publisher failed")


class BareConsumer(threading.Thread):
    """A durable pull consumer that only acks (no model, no log), counting what it acked."""

    def __init__(self, url: str, slug: str, batch_size: int) -> None:
        super().__init__(daemon=True)
        self.url, self.slug, self.batch_size = url, slug, batch_size
        self.acked = 0
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        from workbench.serving.nats_transport import NatsTransport

        async def drain() -> None:
            transport = NatsTransport(self.url, self.slug, durable=f"bare_{uuid.uuid4().hex[:6]}")
            await transport.connect()
            self.ready.set()
            while not self.stop.is_set():
                messages = await transport.fetch(self.batch_size, 1.0)
                await asyncio.gather(*(transport.ack(m) for m in messages))
                self.acked += len(messages)
            await transport.close()

        asyncio.run(drain())


def _wait_for(count: Any, target: int, timeout: float = 600.0) -> float:
    deadline = time.monotonic() + timeout
    while count() < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out at {count()} of {target} events")
        time.sleep(0.02)
    return time.perf_counter()


def _shadow_deployment(slug: str) -> tuple[int, int]:
    """A running stream deployment with a shadow rollout of the challenger: (deployment id, rollout id)."""
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.rollouts import start_rollout
    from workbench.serving.deployments import create_deployment

    with session_scope() as session:
        project = get_project(session, slug=slug)
        deployment_id = create_deployment(session, project=project, mode="stream", status="running",
                                          actor="benchmark").id
        rollout_id = start_rollout(session, project=slug, deployment_id=deployment_id, mode="shadow",
                                   actor="benchmark", params={"automatic": False, "latency_factor": 100.0}).id
    return deployment_id, rollout_id


def _shadow_counts(rollout_id: int) -> dict[str, int]:
    """The shadow rows written and the copies dropped (read once the consumer, and its shadow scorer, stopped)."""
    from sqlalchemy import func, select

    from workbench.db import session_scope
    from workbench.db.models import RolloutTraffic, ShadowPrediction

    with session_scope() as session:
        rows = session.scalar(select(func.count(ShadowPrediction.id)).where(ShadowPrediction.rollout_id == rollout_id))
        dropped = session.scalar(select(func.coalesce(func.sum(RolloutTraffic.dropped), 0))
                                 .where(RolloutTraffic.rollout_id == rollout_id))
    return {"rows": int(rows or 0), "dropped": int(dropped or 0)}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        return publisher_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--embedded", action="store_true", help="start the workbench's own nats-server")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--shadow", action="store_true", help="run a shadow rollout on the consumer's deployment")
    args = parser.parse_args()
    from _fair import load_average, ratio, rounds, spread, summary
    from batch import make_frame, register, setup_home

    from workbench.prediction_log import count_rows
    from workbench.serving.stream import run_consumer

    base = Path(tempfile.mkdtemp(prefix="wb-bench-stream-"))
    setup_home(base)
    from workbench.db import session_scope
    from workbench.serving.nats_server import ensure_server, stop_server
    from workbench.settings import get_settings

    print(f"Stream benchmark; {load_average()}", flush=True)
    url = ensure_server(get_settings()) if args.embedded else args.nats
    deployment_id = None
    if args.shadow:
        from rollout import register_versions

        slug, _ = register_versions()
        deployment_id, rollout_id = _shadow_deployment(slug)
    else:
        slug = register("hgb", make_frame(20_000, seed=1))
    stop = threading.Event()
    result: dict[str, Any] = {}
    bare = BareConsumer(url, f"{slug}-bare", args.batch_size)
    samples = max(3, args.samples)
    seconds: dict[str, list[float]] = {"workbench": [], "bare": [], "floor": []}
    try:
        # The clock stops on the consumer's own count of events done (each reported once its rows are
        # committed, its predictions stored and its inputs acked); the log is counted once after each
        # sample to check it. Counting the log itself every 20 ms (a SELECT count(*) of a growing table,
        # ~2.3 ms of CPU at 60k rows, in this process) slowed the consumer it measured; the bare side
        # reads an int.
        processed = [0]

        def on_batch(counts: dict[str, int]) -> None:
            processed[0] += counts["predicted"]

        consumer = threading.Thread(target=lambda: result.update(run_consumer(
            slug, nats_url=url, batch_size=args.batch_size, stop=stop, poll_seconds=0, metrics_seconds=1,
            on_batch=on_batch, deployment_id=deployment_id, rollout_check_seconds=0)))
        consumer.start()
        bare.start()
        bare.ready.wait(30)

        def logged() -> int:
            with session_scope() as session:
                return count_rows(session)

        # Warm-up (not timed): the model's first predictions, the first log writes, the publisher's imports.
        warm = Publisher(url, slug, 200, seed=99)
        warm.go()
        _wait_for(logged, 200)
        warm.wait()
        done = {"workbench": 200, "bare": 0}
        for index, order in enumerate(rounds(["workbench", "bare", "floor"], samples)):
            for side in order:
                target = {"workbench": slug, "bare": f"{slug}-bare", "floor": f"{slug}-floor"}[side]
                publisher = Publisher(url, target, args.events, seed=3 + index)
                started = publisher.go()
                if side == "floor":
                    publisher.wait()
                    ended = time.perf_counter()
                else:
                    done[side] += args.events
                    count = (lambda: processed[0]) if side == "workbench" else (lambda: bare.acked)
                    ended = _wait_for(count, done[side])
                    publisher.wait()
                    if side == "workbench" and logged() != done[side]:
                        raise SystemExit(f"the prediction log has {logged()} rows; {done[side]} events were sent")
                seconds[side].append(ended - started)
                print(f"  {side:9s} {args.events / (ended - started):9,.0f} events/s", flush=True)
        stop.set()
        bare.stop.set()
        consumer.join()
        bare.join(10)
    finally:
        stop.set()
        bare.stop.set()
        from workbench.serving.nats_transport import NatsTransport

        async def cleanup() -> None:
            for name in (slug, f"{slug}-bare", f"{slug}-floor"):
                transport = NatsTransport(url, name)
                await transport.connect(consumer=False)
                await transport.delete_stream()
                await transport.close()

        asyncio.run(cleanup())
        if args.embedded:
            stop_server(get_settings())
    shadow_counts = _shadow_counts(rollout_id) if args.shadow else None
    rates = {side: summary([args.events / s for s in values], 0) for side, values in seconds.items()}
    med = {side: summary(values, 3)["median"] for side, values in seconds.items()}
    report = {
        "events": args.events, "batch_size": args.batch_size, "samples": samples,
        "nats": "embedded" if args.embedded else url,
        "events_per_second": rates,
        "ratio_workbench_over_bare": ratio(rates["workbench"]["median"], rates["bare"]["median"]),
        "workbench_time_over_floor": ratio(med["workbench"], med["floor"]),
        "bare_time_over_floor": ratio(med["bare"], med["floor"]),
        "consumer": result,
        "shadow": shadow_counts,
        "load": load_average(),
    }
    print(f"\n{args.events:,} events, batch {args.batch_size}, {samples} samples per side "
          "(events/s, median (min-max)):")
    for side, label in (("workbench", "workbench consumer (predict + log + publish + ack)"),
                        ("bare", "bare pull consumer (ack only)"), ("floor", "floor: the publisher alone")):
        print(f"  {label:52s} {spread(rates[side], '{:,.0f}')}")
    print(f"  ratio workbench / bare = {report['ratio_workbench_over_bare']} (goal >= 0.7 at 20,000 events); "
          f"time / floor: workbench {report['workbench_time_over_floor']}, bare {report['bare_time_over_floor']}")
    if shadow_counts is not None:
        print(f"  shadow rollout: {shadow_counts['rows']:,} challenger rows of {done['workbench']:,} events, "
              f"{shadow_counts['dropped']:,} copies dropped")
    print(f"  {load_average()}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
