"""Shared helpers for the fair-baseline benchmarks (issue 16 item 1): alternated samples, median and spread.

Each benchmark measures the workbench, a fair competitor and a floor in the same run. ``rounds``
gives the order of each round so that no side always goes first (A B F, B F A, F A B, ...), and
``summary`` reports the median of a side's samples with their min and max.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def rounds(sides: Sequence[str], samples: int) -> list[list[str]]:
    """``samples`` rounds over ``sides``, the starting side rotating each round."""
    sides = list(sides)
    return [sides[i % len(sides):] + sides[:i % len(sides)] for i in range(samples)]


def summary(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """Median, min and max of ``values`` (and the samples themselves), rounded."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "samples": [round(v, digits) for v in values]}


def spread(stats: dict[str, Any], fmt: str = "{:,.1f}") -> str:
    """``median (min-max)`` of a ``summary``."""
    return f"{fmt.format(stats['median'])} ({fmt.format(stats['min'])}-{fmt.format(stats['max'])})"


def ratio(a: float, b: float, digits: int = 2) -> float | None:
    return round(a / b, digits) if b else None


def load_average() -> str:
    """``uptime``'s three load averages and the UTC time, for the report."""
    one, five, fifteen = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {one:.2f} {five:.2f} "
            f"{fifteen:.2f} on {os.cpu_count()} cores")


def alternated(names: Sequence[str], samples: int, run: Callable[[str], dict[str, float]]) -> dict[str, Any]:
    """``run(name)`` for each side in alternated rounds; per side the ``summary`` of its req/s, p50 and p99.

    ``run`` returns one sample's ``rps``, ``p50_ms``, ``p99_ms`` and ``failures``; the result also
    records the order of the rounds.
    """
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for order in rounds(list(names), samples):
        for name in order:
            runs[name].append(run(name))
    row: dict[str, Any] = {"order": rounds(list(names), samples)}
    for name, results in runs.items():
        row[name] = {"rps": summary([r["rps"] for r in results]),
                     "p50_ms": summary([r["p50_ms"] for r in results], 2),
                     "p99_ms": summary([r["p99_ms"] for r in results], 2),
                     "failures": sum(r["failures"] for r in results)}
    return row


def print_sides(row: dict[str, Any], names: Sequence[str], *, connections: int, samples: int) -> None:
    """Print an ``alternated`` row: per side the req/s median (min-max), the p50 and the p99 median (min-max)."""
    print(f"{connections} connection(s), req/s median (min-max) of {samples}, p50 / p99 ms medians:", flush=True)
    for name in names:
        stats = row[name]
        print(f"  {name:>9}: {spread(stats['rps'])} req/s, p50 {stats['p50_ms']['median']} ms, "
              f"p99 {spread(stats['p99_ms'], '{:,.2f}')} ms"
              + (f", {stats['failures']} FAILED" if stats["failures"] else ""), flush=True)
