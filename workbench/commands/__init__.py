"""CLI command groups, one module per area; ``workbench.cli`` composes them.

- :mod:`~workbench.commands.common`: output (``emit``, ``--json``), waiting for a job, shared options.
- :mod:`~workbench.commands.data`, ``canvas``, ``baseline``: the Design stage.
- :mod:`~workbench.commands.train`, ``registry``: the Train stage (tuning jobs, workers, the model registry).
- :mod:`~workbench.commands.serving`, ``monitor``, ``retrain``: the Operate stage.
- :mod:`~workbench.commands.demo`: the demo project.

Each module has ``register(main)``, which adds its commands to the ``workbench`` group; this package
imports none of them, so ``workbench --help`` pays only for what it shows.
"""

__all__ = ["baseline", "canvas", "common", "data", "demo", "monitor", "registry", "retrain", "serving", "train"]
