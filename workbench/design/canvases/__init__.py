"""Design canvases: the ML Canvas, the MLOps Stack Canvas and the CRISP-DM tracker.

* :mod:`workbench.design.canvases.definitions`: the canvases as data (boxes, groups, prompts, grid, fields).
* :mod:`workbench.design.canvases.content`: canonical content, validation, completeness, diff and merge.
* :mod:`workbench.design.canvases.store`: saved revisions with optimistic concurrency, history and restore.
* :mod:`workbench.design.canvases.markdown`: Markdown export and import (exact round trip); the format's
  vocabulary and escapes are in ``_format``, the parser in ``_parse``.
"""

from workbench.design.canvases.definitions import CANVAS_KINDS, KIND_TITLES

__all__ = ["CANVAS_KINDS", "KIND_TITLES"]
