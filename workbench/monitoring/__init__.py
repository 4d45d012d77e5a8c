"""Monitoring: drift statistics, Evidently reports, checks and their history.

- :mod:`workbench.monitoring.drift`: a fast numpy/scipy port of Evidently's default per-column
  drift tests (same statistics, same decisions), used for checks and history.
- :mod:`workbench.monitoring.reports`: every Evidently call of the project (snapshots, HTML).
- :mod:`workbench.monitoring.checks`: checks as data (drift share, quality floor, latency).

Nothing heavy is imported here, so the Home page may import this package cheaply.
"""
