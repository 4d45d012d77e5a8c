"""MLOps Workbench: design, train and operate one ML project in one place.

Importing this package does no work: no folders, no connections, no heavy imports.
"""

__version__ = "0.1.0"
