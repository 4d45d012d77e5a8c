"""Design: the canvases, the baselines, the heuristics and the project configuration read from the ML Canvas.

- :mod:`~workbench.design.canvases`: ML Canvas, MLOps Stack Canvas and CRISP-DM tracker (definitions,
  revisions, Markdown export and import).
- :mod:`~workbench.design.project_config`: the canvas's decisions (metric, threshold, budgets, retrain
  policy) as typed settings for every later stage.
- :mod:`~workbench.design.baselines`: the baselines every later model must beat.
- :mod:`~workbench.design.heuristics`: hand-written rules as a baseline, with declared constraints.

Import the sub-module you need; this package imports none of them.
"""

__all__ = ["baselines", "canvases", "heuristics", "project_config"]
