"""The browser's file sandbox: which server files a browser user may read, and where its outputs go.

A browser user is not the operator: the CLI may read and write any path its OS user can, but
a path typed on a page is checked here first.

- **Reading** (:func:`browser_input_path`): only files under the configured data roots
  (``WORKBENCH_DATA_ROOTS``, folders separated by ``os.pathsep``; empty by default, and then no
  server path is readable at all), after resolving symlinks and ``..``; never a file of the
  workbench's own home (other projects' datasets, the stores), even when a root contains it.
- **Writing** (:func:`browser_output_path`, :func:`upload_path`): only under the project's own
  folders of the home (``scores/<project>/``, ``uploads/<project>/``), by a plain file name, and
  never onto an existing file: a taken name gets a ``-2``, ``-3``... suffix.
- **Messages** (:func:`browser_job_error`): what a failed browser batch job shows never quotes
  the file (parsers put the offending line in their messages); the full message stays in the
  job log on the server.

Refusals name the setting or the folder and echo only what the user typed, never file content.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import InvalidInput

if TYPE_CHECKING:
    from workbench.settings import Settings

OUTPUT_SUFFIXES = (".parquet", ".csv")
MAX_NAME = 120
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")


def data_roots(settings: Settings) -> tuple[Path, ...]:
    """The configured data roots, resolved (symlinks followed); folders that do not exist are left out."""
    roots = []
    for part in (settings.data_roots or "").split(os.pathsep):
        if part.strip():
            root = Path(part.strip()).expanduser().resolve()
            if root.is_dir():
                roots.append(root)
    return tuple(roots)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def browser_input_path(text: str, *, settings: Settings) -> Path:
    """The file a browser user asked to read, resolved; InvalidInput unless it lies under a data root."""
    roots = data_roots(settings)
    if not roots:
        raise InvalidInput(
            "Reading server files from the browser is off: no data root is configured. Upload the file, or ask "
            "the operator to set WORKBENCH_DATA_ROOTS.",
            field="input_path",
        )
    raw = (text or "").strip()
    if not raw or "\x00" in raw:
        raise InvalidInput("input_path is empty: give the path of a CSV or Parquet file under a data root.",
                           field="input_path")
    shown = raw if len(raw) <= 200 else raw[:197] + "..."
    where = ", ".join(str(r) for r in roots)
    path = Path(raw).expanduser()
    try:
        # strict: the file must exist; symlinks and ".." are resolved before the check below.
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidInput(f"input_path {shown!r} is not a file under the data roots ({where}).",
                           field="input_path") from None
    home = Path(settings.home).resolve()
    if not any(_inside(resolved, root) for root in roots) or _inside(resolved, home) or not resolved.is_file():
        raise InvalidInput(f"input_path {shown!r} is not a file under the data roots ({where}).",
                           field="input_path")
    return resolved


def _plain_name(name: str, *, field: str, suffixes: tuple[str, ...]) -> str:
    text = (name or "").strip()
    if (not _NAME.fullmatch(text) or len(text) > MAX_NAME or ".." in text
            or Path(text).suffix.lower() not in suffixes):
        raise InvalidInput(
            f"{field} must be a plain file name ending in {' or '.join(suffixes)} (letters, digits, space, '.', '-', "
            f"'_'; no folder); got {text[:MAX_NAME]!r}.",
            field=field,
        )
    return text


def _free(folder: Path, name: str) -> Path:
    """``folder / name``, or the first ``stem-N.suffix`` that is not taken, reserved as an empty file.

    Reserving it (an exclusive create) keeps two runs launched at once from getting the same name;
    the writer then replaces the empty reservation with the real file.
    """
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate = folder / name
    number = 2
    while True:
        try:
            with candidate.open("x"):
                return candidate
        except FileExistsError:
            candidate = folder / f"{stem}-{number}{suffix}"
            number += 1


def project_folder(settings: Settings, kind: str, project_slug: str) -> Path:
    """The project's own folder of ``kind`` (``scores`` or ``uploads``) under the home, created."""
    if kind not in ("scores", "uploads") or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", project_slug or ""):
        raise InvalidInput(f"no project folder {kind}/{project_slug!r}.", field="project")
    folder = Path(settings.home).resolve() / kind / project_slug
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def browser_output_path(project_slug: str, name: str, *, settings: Settings) -> Path:
    """Where a browser batch run writes: ``name`` in the project's ``scores`` folder, never an existing file."""
    clean = _plain_name(name, field="output_name", suffixes=OUTPUT_SUFFIXES)
    return _free(project_folder(settings, "scores", project_slug), clean)


def upload_path(project_slug: str, name: str, *, settings: Settings, suffixes: tuple[str, ...] = OUTPUT_SUFFIXES
                ) -> Path:
    """Where an uploaded file is kept: its base name in the project's ``uploads`` folder, never an existing file."""
    clean = _plain_name(Path(name or "").name, field="upload", suffixes=suffixes)
    return _free(project_folder(settings, "uploads", project_slug), clean)


def browser_job_error(job_id: str, error: str | None) -> str:
    """What a failed browser batch job says on the page: the kind of fault, never the file's content."""
    text = error or ""
    if "missing column" in text:
        what = "the file lacks a column the model needs"
    elif "must be" in text and "model signature" in text:
        what = "a column of the file holds values the model cannot take"
    elif "must differ" in text or "output_path" in text:
        what = "the output file could not be written"
    else:
        what = "the file could not be read as CSV or Parquet"
    return (f"Scoring failed: {what}. The full message, which may quote the file, is in the job log on the server "
            f"(`workbench jobs show {job_id}`).")


__all__ = [
    "OUTPUT_SUFFIXES",
    "browser_input_path",
    "browser_job_error",
    "browser_output_path",
    "data_roots",
    "project_folder",
    "upload_path",
]
