"""The only core package that imports streamlit: shell, project context, job progress, errors.

Pages call these helpers; the logic they show lives in the service modules of ``workbench``.

- :mod:`~workbench.ui.pages`: the one page registry (navigation, the Home journey, "Next:" links).
- :mod:`~workbench.ui.shell` and ``context``: the app shell, the project picker, the current project.
- :mod:`~workbench.ui.jobs` and ``errors``: the job-progress fragment and error display.
- One module per page area: ``home``, ``data``, ``canvas`` (with private ``_canvas_*``), ``baselines``,
  ``tuning``, ``experiments``, ``registry``, ``deployments``, ``monitoring`` (with private ``_monitoring_report``).
"""

__all__ = [
    "baselines",
    "canvas",
    "context",
    "data",
    "deployments",
    "errors",
    "experiments",
    "home",
    "jobs",
    "monitoring",
    "pages",
    "registry",
    "shell",
    "tuning",
]
