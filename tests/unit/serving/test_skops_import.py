"""Loading a skops model imports skops.io from the cached estimator names: the same trust list, no scan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from workbench.serving._skops_import import import_skops_quickly
import_skops_quickly(Path(sys.argv[1]))
seconds = time.perf_counter() - started
import skops.io._trusted_types as trusted
print(json.dumps({"names": trusted.SKLEARN_ESTIMATOR_TYPE_NAMES, "seconds": seconds,
                  "scanned": "sklearn.semi_supervised" in sys.modules}))
"""


def _probe(cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, str(cache)], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[3])
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_second_process_gets_the_same_trust_list_without_importing_every_estimator(tmp_path: Path) -> None:
    first = _probe(tmp_path)  # the real scan, recorded
    cached = list(tmp_path.glob("skops-trusted-sklearn-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text()) == first["names"]
    assert first["scanned"] and "sklearn.pipeline.Pipeline" in first["names"] and len(first["names"]) > 150
    second = _probe(tmp_path)
    assert second["names"] == first["names"]  # identical trust list, in the same order
    assert not second["scanned"]  # the modules only the scan imports were not imported


def test_a_damaged_cache_file_is_rewritten(tmp_path: Path) -> None:
    first = _probe(tmp_path)
    cached = next(tmp_path.glob("skops-trusted-sklearn-*.json"))
    cached.write_text("[not json")
    again = _probe(tmp_path)
    assert again["scanned"] and again["names"] == first["names"]
    assert json.loads(cached.read_text()) == first["names"]
