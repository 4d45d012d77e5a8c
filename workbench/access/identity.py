"""Who is acting, for the audit fields every change records (``created_by``, ``actor``...).

The CLI, the pipelines run in the foreground and the job runner act as the local operator:
``WORKBENCH_USER`` when set, else the OS login. The browser app names its user itself
(``workbench.ui.context.display_name``); it is not read here, so services stay UI-free.
"""

from __future__ import annotations

import getpass
import os


def actor() -> str:
    """Who is running the command (``WORKBENCH_USER``, else the OS login), recorded on every change."""
    return os.environ.get("WORKBENCH_USER") or getpass.getuser()


__all__ = ["actor"]
