"""Projects: the unit of work (create, list, rename, archive), its journey and the demo project."""

from workbench.projects._store import (
    MAX_NAME_LENGTH,
    TASK_TYPES,
    archive_project,
    create_project,
    get_project,
    list_projects,
    project_dict,
    rename_project,
    slugify,
    validate_name,
)

__all__ = [
    "MAX_NAME_LENGTH",
    "TASK_TYPES",
    "archive_project",
    "create_project",
    "get_project",
    "list_projects",
    "project_dict",
    "rename_project",
    "slugify",
    "validate_name",
]
