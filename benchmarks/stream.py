"""Benchmark: events per second end to end through NATS JetStream, at-least-once.

A HistGradientBoosting Pipeline is registered in a throw-away home; N feature events are
published to ``workbench.<project>.features`` (JetStream acks, in windows); a consumer
(``workbench.serving.stream.run_consumer``, in a thread of this process) predicts each
micro-batch, logs it to the prediction log (SQLite, idempotent), publishes the predictions
and acks. The clock runs from the first publish until every event is logged and acked.
As a baseline, the same events are published and drained by a bare JetStream pull consumer
that only acks (no model, no log): the ratio shows what prediction + log + publish cost.

    .venv/bin/python benchmarks/stream.py --events 5000                 # NATS at 127.0.0.1:4222
    .venv/bin/python benchmarks/stream.py --events 5000 --embedded      # the workbench's own nats-server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def bare_drain(url: str, slug: str, events: list[dict[str, Any]], batch_size: int) -> float:
    """Publish and drain with a bare pull consumer that only acks; returns seconds."""
    from workbench.serving.nats_transport import NatsTransport
    from workbench.serving.stream import send_records

    async def drain(expected: int) -> None:
        transport = NatsTransport(url, slug, durable=f"bare_{uuid.uuid4().hex[:6]}")
        await transport.connect()
        done = 0
        while done < expected:
            messages = await transport.fetch(batch_size, 1.0)
            await asyncio.gather(*(transport.ack(m) for m in messages))
            done += len(messages)
        await transport.close()

    started = time.perf_counter()
    thread = threading.Thread(target=lambda: asyncio.run(drain(len(events))))
    thread.start()
    send_records(slug, events, nats_url=url)
    thread.join()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--embedded", action="store_true", help="start the workbench's own nats-server")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    from batch import FEATURES, make_frame, register, setup_home

    from workbench.prediction_log import count_rows, json_safe
    from workbench.serving.stream import run_consumer, send_records

    base = Path(tempfile.mkdtemp(prefix="wb-bench-stream-"))
    setup_home(base)
    from workbench.db import session_scope
    from workbench.serving.nats_server import ensure_server, stop_server
    from workbench.settings import get_settings

    url = ensure_server(get_settings()) if args.embedded else args.nats
    slug = register("hgb", make_frame(20_000, seed=1))
    events = [json_safe(r) for r in make_frame(args.events, seed=3)[FEATURES].to_dict("records")]
    stop = threading.Event()
    result: dict[str, Any] = {}
    try:
        consumer = threading.Thread(target=lambda: result.update(run_consumer(
            slug, nats_url=url, batch_size=args.batch_size, stop=stop, poll_seconds=0, metrics_seconds=1)))
        consumer.start()
        time.sleep(2.0)  # let the consumer load the model and bind before the clock starts
        started = time.perf_counter()
        sent = send_records(slug, events, nats_url=url)
        while True:
            with session_scope() as session:
                if count_rows(session) >= args.events:
                    break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        stop.set()
        consumer.join()
        bare = bare_drain(url, f"{slug}-bare", events, args.batch_size)
        report = {
            "events": args.events,
            "batch_size": args.batch_size,
            "nats": "embedded" if args.embedded else url,
            "publish_events_per_second": sent["events_per_second"],
            "end_to_end_seconds": round(seconds, 3),
            "end_to_end_events_per_second": round(args.events / seconds, 1),
            "bare_events_per_second": round(args.events / bare, 1),
            "ratio_vs_bare": round(bare / seconds, 3),
            "consumer": result,
        }
        print(json.dumps(report, indent=2))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(report, indent=2))
    finally:
        stop.set()
        from workbench.serving.nats_transport import NatsTransport

        async def cleanup() -> None:
            for name in (slug, f"{slug}-bare"):
                transport = NatsTransport(url, name)
                await transport.connect(consumer=False)
                await transport.delete_stream()
                await transport.close()

        asyncio.run(cleanup())
        if args.embedded:
            stop_server(get_settings())
    return 0


if __name__ == "__main__":
    sys.exit(main())
