"""Monitoring: drift statistics, Evidently reports, checks and their history.

- :mod:`workbench.monitoring.drift`: a fast numpy/scipy port of Evidently's default per-column
  drift tests (same statistics, same decisions), used for checks and history; ``_columns`` holds
  Evidently's type rule and per-column values, ``_profile`` the reference's sorted columns and
  counts, cached per model version.
- :mod:`workbench.monitoring.reports`: every Evidently call of the project (snapshots, HTML).
- :mod:`workbench.monitoring.checks`: checks as data (drift share, quality floor, latency).
- :mod:`workbench.monitoring.service`: one check of a window, stored (report, metric history,
  alerts), and reading reports and alerts back (private pieces in ``_window``, ``_reference``,
  ``_analysis``, ``_alerts``).
- :mod:`workbench.monitoring.cycle`: the use case "check, then apply the retrain policy" that
  the monitor job, ``workbench monitor`` and the Monitoring page share.
- :mod:`workbench.monitoring.views`: tables and figures the Monitoring page draws from reports.

Nothing heavy is imported here, so the Home page may import this package cheaply.
"""

__all__ = ["checks", "cycle", "drift", "reports", "service", "views"]
