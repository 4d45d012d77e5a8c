"""Data: datasets and their versions, the train/holdout split, profiling and preprocessing.

:func:`normalize_column_name` (and :func:`normalize_columns` for a header) is the one rule for
column names, applied at ingest and by every scoring path. :func:`project_has_profile` says whether
the latest version has a current stored profile without importing pandas (Home's journey asks it).
"""

from workbench.data._names import normalize_column_name, normalize_columns
from workbench.data._stored_profiles import project_has_profile

__all__ = ["normalize_column_name", "normalize_columns", "project_has_profile"]
