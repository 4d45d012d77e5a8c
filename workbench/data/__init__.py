"""Data: datasets and their versions, the train/holdout split, profiling and preprocessing.

:func:`normalize_column_name` (and :func:`normalize_columns` for a header) is the one rule for
column names, applied at ingest and by every scoring path.
"""

from workbench.data._names import normalize_column_name, normalize_columns

__all__ = ["normalize_column_name", "normalize_columns"]
