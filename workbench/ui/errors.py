"""Show workbench errors in the page instead of a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from workbench.errors import WorkbenchError


@contextmanager
def shown_errors() -> Iterator[None]:
    """Run a block; a :class:`WorkbenchError` inside it becomes an ``st.error`` box."""
    try:
        yield
    except WorkbenchError as exc:
        field = getattr(exc, "field", None)
        prefix = f"**{field}**: " if field else ""
        st.error(f"{prefix}{exc}", icon=":material/error:")
