"""Benchmark: the CPU a web service's shadow process spends per copy, without a web service.

A :class:`~workbench.serving.shadow_process.ShadowProcess` is fed on an asyncio loop as a serving
process feeds it: one one-record copy every 0.8 ms (about the rate of ``benchmarks/rollout.py`` at
one connection), held and written to the pipe as the service does. Its child scores them with the
challenger (benchmarks/batch.py's HistGradientBoosting Pipeline) and writes ``shadow_predictions``
to SQLite. It prints the child's CPU per copy (user + system from ``/proc``, from the first copy
until every copy is scored) and, for scale, the feeding side's CPU per copy (the loop's thread: the
copy's encoding and the pipe writes, less the same loop's CPU without copies). CPU time hardly
moves with the machine's load, unlike a latency; compare two checkouts by running the script in
each, alternated.

    .venv/bin/python benchmarks/shadow_child.py --copies 6000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ["OMP_NUM_THREADS"] = "1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=6000)
    parser.add_argument("--interval-ms", type=float, default=0.8, help="between two copies")
    args = parser.parse_args()
    from _fair import load_average
    from batch import FEATURES, make_frame, setup_home
    from rollout import cpu_seconds, register_versions

    setup_home(Path(tempfile.mkdtemp(prefix="wb-bench-shadow-child-")))
    slug, challenger = register_versions()
    from sqlalchemy import select

    from workbench.db import session_scope
    from workbench.db.models import Project
    from workbench.rollouts import RolloutPlan, start_rollout
    from workbench.serving.deployments import create_deployment
    from workbench.serving.model_loader import load_model
    from workbench.serving.rollout import ActiveRollout, VariantCounters
    from workbench.serving.shadow_process import ShadowProcess
    from workbench.settings import get_settings

    settings = get_settings()
    with session_scope() as session:
        project = session.scalars(select(Project).where(Project.slug == slug)).one()
        deployment_id = create_deployment(session, project=project, mode="web", status="running").id
    with session_scope() as session:
        rollout_id = start_rollout(session, project=slug, deployment_id=deployment_id, mode="shadow", share=None,
                                   actor="benchmark", params={"automatic": False}).id
    plan = RolloutPlan(rollout_id=rollout_id, deployment_id=deployment_id, mode="shadow", share=0.0,
                       champion_version="1", challenger_version=challenger, key_column=None)
    active = ActiveRollout(plan, load_model(slug, alias="challenger", version=challenger, settings=settings,
                                            fast_path=True))
    frame = make_frame(args.copies, seed=9)[FEATURES]
    records = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for _, row in frame.iterrows()]
    shadow = ShadowProcess(slug, settings=settings, counters=VariantCounters())
    try:
        if not shadow.prepare(active) or shadow.pid is None:
            raise RuntimeError("the shadow process did not load the challenger")
        pid = shadow.pid

        async def feed(submit: bool) -> float:
            """The loop thread's CPU over the copies (with ``submit`` False: the same loop, sending nothing)."""
            began = time.thread_time()
            for record in records:
                if submit:
                    shadow.submit(active, [record], [uuid.uuid4().hex])
                await asyncio.sleep(args.interval_ms / 1000)
            return time.thread_time() - began

        print(f"{load_average()}; {args.copies} copies, one every {args.interval_ms} ms", flush=True)
        child_before, started = cpu_seconds(pid), time.monotonic()
        feeding = asyncio.run(feed(True))
        while shadow.scored < args.copies and time.monotonic() - started < 120:
            time.sleep(0.05)
        child = cpu_seconds(pid) - child_before
        # RSS counts the shared libraries' pages that other processes map too; Private_* is what this child adds.
        memory = {key: int(value.split()[0]) // 1024 for key, value in (
            line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])}
        feeding -= asyncio.run(feed(False))  # less the loop's own cost
        print(f"shadow process CPU per copy: {child * 1e6 / args.copies:.1f} us ({shadow.scored} scored in "
              f"{shadow.batches} batches); feeding side (encode + pipe writes): "
              f"{feeding * 1e6 / args.copies:.1f} us per copy", flush=True)
        print(f"shadow process memory: RSS {memory['Rss']} MiB, of which private "
              f"{memory['Private_Clean'] + memory['Private_Dirty']} MiB (PSS {memory['Pss']} MiB)", flush=True)
    finally:
        shadow.stop()
    print(load_average(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
