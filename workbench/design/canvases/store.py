"""Saved canvas revisions: load, save with optimistic concurrency, history, diff and restore.

Every save appends a revision (author, time, content). A save names the revision it was based
on; when somebody else saved in between, the save is refused with :class:`CanvasConflict`,
which carries what the other person changed, box by box, so the caller can merge or
overwrite explicitly. No edit is lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import CanvasRevision, Dataset, Job, Project
from workbench.design.canvases.content import (
    Change,
    MergeResult,
    completeness,
    diff_content,
    empty_content,
    merge_content,
    normalize_content,
)
from workbench.design.canvases.definitions import ARTEFACT_KINDS, CRISP_DM, JOB_ARTEFACTS, KIND_TITLES, check_kind
from workbench.errors import Conflict, InvalidInput, NotFound

__all__ = [
    "ArtefactLink",
    "CanvasConflict",
    "Change",
    "MergeResult",
    "artefact_suggestions",
    "completeness",
    "diff_content",
    "diff_revisions",
    "get_revision",
    "history",
    "latest_revision",
    "load_canvas",
    "merge_content",
    "restore",
    "revision_dict",
    "save_canvas",
    "suggestions_for_task",
]

MAX_NOTE_CHARS = 500
MAX_AUTHOR_CHARS = 120


class CanvasConflict(Conflict):
    """A save based on a stale revision: somebody else saved the canvas in between.

    ``their_changes`` is the box-by-box diff from the base revision to the current one (what
    the other person did); ``my_changes`` the diff from the base to the refused content.
    """

    def __init__(
        self,
        *,
        kind: str,
        base_revision: int,
        current_revision: int,
        current_author: str,
        base: dict[str, Any],
        theirs: dict[str, Any],
        mine: dict[str, Any],
    ) -> None:
        self.kind = kind
        self.base_revision = base_revision
        self.current_revision = current_revision
        self.current_author = current_author
        self.base = base
        self.theirs = theirs
        self.mine = mine
        self.their_changes: list[Change] = diff_content(kind, base, theirs)
        self.my_changes: list[Change] = diff_content(kind, base, mine)
        boxes = ", ".join(change.title for change in self.their_changes) or "no box content"
        super().__init__(
            f"The {KIND_TITLES[kind]} changed since you loaded revision {base_revision}: "
            f"{current_author or 'someone'} saved revision {current_revision} (changed: {boxes}). "
            "Merge their changes with yours, overwrite them with yours, or discard yours."
        )

    def merged(self) -> MergeResult:
        """Theirs wherever I did not change a part, mine elsewhere."""
        return merge_content(self.kind, base=self.base, mine=self.mine, theirs=self.theirs)


def _latest_row(session: Session, *, project: Project, kind: str) -> CanvasRevision | None:
    return session.scalar(
        select(CanvasRevision)
        .where(CanvasRevision.project_id == project.id, CanvasRevision.kind == kind)
        .order_by(CanvasRevision.revision.desc())
        .limit(1)
    )


def latest_revision(session: Session, *, project: Project, kind: str) -> CanvasRevision | None:
    """The newest revision row of one canvas, or None when it was never saved."""
    check_kind(kind)
    return _latest_row(session, project=project, kind=kind)


def load_canvas(session: Session, *, project: Project, kind: str) -> tuple[int, dict[str, Any]]:
    """``(revision_number, content)`` of the newest revision; ``(0, empty content)`` when never saved."""
    check_kind(kind)
    row = _latest_row(session, project=project, kind=kind)
    if row is None:
        return 0, empty_content(kind)
    return row.revision, normalize_content(kind, row.content)


def get_revision(session: Session, *, project: Project, kind: str, revision: int) -> CanvasRevision:
    """One revision row; NotFound naming the existing range otherwise."""
    check_kind(kind)
    row = session.scalar(
        select(CanvasRevision).where(
            CanvasRevision.project_id == project.id,
            CanvasRevision.kind == kind,
            CanvasRevision.revision == revision,
        )
    )
    if row is None:
        latest = _latest_row(session, project=project, kind=kind)
        have = f"revisions 1 to {latest.revision}" if latest else "no revisions yet"
        raise NotFound(f"The {KIND_TITLES[kind]} of {project.slug} has no revision {revision} (it has {have}).")
    return row


def _content_at(session: Session, *, project: Project, kind: str, revision: int) -> dict[str, Any]:
    if revision == 0:
        return empty_content(kind)
    return normalize_content(kind, get_revision(session, project=project, kind=kind, revision=revision).content)


def _validate(kind: str, content: dict[str, Any], project: Project) -> None:
    if kind == "ml_canvas":
        from workbench.design.project_config import validate_canvas_fields

        validate_canvas_fields(content, task_type=project.task_type, target=project.target)


def save_canvas(
    session: Session,
    *,
    project: Project,
    kind: str,
    content: dict[str, Any],
    base_revision: int | None,
    author: str,
    note: str = "",
    principal: Principal | None = None,
) -> CanvasRevision:
    """Save ``content`` as the next revision of one canvas.

    ``base_revision`` is the revision the editor started from (0 for a canvas never saved). When
    the canvas has moved on since, :class:`CanvasConflict` is raised with the other person's
    changes. ``None`` skips the check: only for explicit overwrites (restore, import).
    Saving content equal to the newest revision creates nothing and returns that revision.
    When a concurrent save wins the race for the same revision number, the session's
    transaction is rolled back before the conflict is raised.
    ``principal`` (None: the operator) must be an editor of the project.
    """
    require(session, project=project, principal=principal, action="edit")
    check_kind(kind)
    canonical = normalize_content(kind, content)
    _validate(kind, canonical, project)
    if base_revision is not None and (not isinstance(base_revision, int) or base_revision < 0):
        raise InvalidInput(
            f"base_revision must be a revision number >= 0 (0: never saved); got {base_revision!r}.",
            field="base_revision",
        )
    author = (author or "").strip()[:MAX_AUTHOR_CHARS]
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"note must be at most {MAX_NOTE_CHARS} characters; got {len(note)}.", field="note")
    latest = _latest_row(session, project=project, kind=kind)
    current = latest.revision if latest is not None else 0
    if base_revision is not None and base_revision > current:
        raise InvalidInput(
            f"base_revision {base_revision} does not exist yet (the newest revision is {current}); reload the canvas.",
            field="base_revision",
        )
    if base_revision is not None and base_revision != current:
        assert latest is not None
        raise CanvasConflict(
            kind=kind,
            base_revision=base_revision,
            current_revision=current,
            current_author=latest.author,
            base=_content_at(session, project=project, kind=kind, revision=base_revision),
            theirs=normalize_content(kind, latest.content),
            mine=canonical,
        )
    if latest is not None and normalize_content(kind, latest.content) == canonical:
        return latest
    row = CanvasRevision(
        project_id=project.id,
        kind=kind,
        revision=current + 1,
        content=canonical,
        author=author,
        note=note,
    )
    # Two saves from the same base can pass the check above at the same moment; the unique
    # (project, kind, revision) constraint lets only one of them in. The loser gets the same
    # conflict as if it had come a moment later. No SAVEPOINT here: with pysqlite a savepoint
    # opened before any write starts the transaction, and releasing it commits everything the
    # caller did so far (an import would no longer be all or nothing).
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # The caller's transaction is lost anyway (the error propagates); roll back to read the winner.
        session.rollback()
        winner = _latest_row(session, project=project, kind=kind)
        if winner is None or base_revision is None:
            raise
        raise CanvasConflict(
            kind=kind,
            base_revision=current,
            current_revision=winner.revision,
            current_author=winner.author,
            base=_content_at(session, project=project, kind=kind, revision=current),
            theirs=normalize_content(kind, winner.content),
            mine=canonical,
        ) from None
    return row


def history(session: Session, *, project: Project, kind: str) -> list[CanvasRevision]:
    """Every revision of one canvas, newest first."""
    check_kind(kind)
    return list(
        session.scalars(
            select(CanvasRevision)
            .where(CanvasRevision.project_id == project.id, CanvasRevision.kind == kind)
            .order_by(CanvasRevision.revision.desc())
        )
    )


def diff_revisions(a: CanvasRevision, b: CanvasRevision) -> list[Change]:
    """What changed from revision ``a`` to revision ``b`` of the same canvas, box by box."""
    if (a.project_id, a.kind) != (b.project_id, b.kind):
        raise InvalidInput(
            f"diff_revisions compares two revisions of one canvas; got {a.kind} and {b.kind} "
            f"(projects {a.project_id} and {b.project_id}).",
            field="b",
        )
    return diff_content(a.kind, a.content, b.content)


def restore(
    session: Session,
    *,
    project: Project,
    kind: str,
    revision: int,
    author: str,
    base_revision: int | None = None,
    principal: Principal | None = None,
) -> CanvasRevision:
    """Make an old revision current again by saving its content as a new revision.

    Nothing is rewritten: the revisions in between stay in the history.
    """
    require(session, project=project, principal=principal, action="edit")
    old = get_revision(session, project=project, kind=kind, revision=revision)
    latest = _latest_row(session, project=project, kind=kind)
    if latest is not None and normalize_content(kind, latest.content) == normalize_content(kind, old.content):
        return latest
    return save_canvas(
        session,
        project=project,
        kind=kind,
        content=old.content,
        base_revision=base_revision,
        author=author,
        note=f"Restored revision {revision}",
        principal=principal,
    )


def revision_dict(row: CanvasRevision) -> dict[str, Any]:
    """JSON-ready summary of a revision (CLI ``--json``, history tables)."""
    filled, total = completeness(row.content, row.kind)
    return {
        "kind": row.kind,
        "revision": row.revision,
        "author": row.author,
        "note": row.note,
        "created_at": row.created_at.isoformat(timespec="seconds") + "Z",
        "filled": filled,
        "total": total,
    }


# --- CRISP-DM artefact suggestions ------------------------------------------------------------


@dataclass(frozen=True)
class ArtefactLink:
    """A workbench artefact that a CRISP-DM task could link to."""

    kind: str  # a key of ARTEFACT_KINDS
    ref: str  # "job:<id>" or "dataset:v<version>"
    label: str
    created_at: datetime | None = None

    def as_link(self) -> dict[str, str]:
        """The link as stored in the tracker content."""
        return {"kind": self.kind, "ref": self.ref, "label": self.label}


def artefact_suggestions(session: Session, *, project: Project, limit: int = 50) -> list[ArtefactLink]:
    """Existing artefacts of ``project`` that tasks may link: succeeded jobs and dataset versions, newest first."""
    found: list[ArtefactLink] = []
    jobs = session.scalars(
        select(Job)
        .where(Job.project_id == project.id, Job.status == "succeeded", Job.kind.in_(tuple(JOB_ARTEFACTS)))
        .order_by(Job.created_at.desc())
        .limit(limit)
    )
    for job in jobs:
        kind = JOB_ARTEFACTS[job.kind]
        when = (job.finished_at or job.created_at).strftime("%Y-%m-%d %H:%M")
        found.append(
            ArtefactLink(kind, f"job:{job.id}", f"{ARTEFACT_KINDS[kind]} {job.id[:8]} ({when})", job.created_at)
        )
    datasets = session.scalars(
        select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.version.desc()).limit(limit)
    )
    for dataset in datasets:
        found.append(
            ArtefactLink(
                "dataset",
                f"dataset:v{dataset.version}",
                f"Dataset v{dataset.version} ({dataset.n_rows} rows x {dataset.n_cols} columns)",
                dataset.created_at,
            )
        )
    return found


def suggestions_for_task(task_id: str, artefacts: list[ArtefactLink]) -> list[ArtefactLink]:
    """The artefacts whose kind documents the CRISP-DM task ``task_id``."""
    kinds = CRISP_DM.task(task_id).artefact_kinds
    return [artefact for artefact in artefacts if artefact.kind in kinds]


# --- journey ----------------------------------------------------------------------------------


def canvases_progress(session: Session, *, project: Project) -> tuple[bool, str]:
    """The Home journey's canvas step: done when every box of the ML Canvas and the MLOps Stack
    Canvas is filled; the detail gives the completeness of all three (CRISP-DM: tasks done)."""
    parts: list[str] = []
    done = True
    for kind, short in (("ml_canvas", "ML Canvas"), ("mlops_stack", "MLOps Stack"), ("crisp_dm", "CRISP-DM")):
        _, content = load_canvas(session, project=project, kind=kind)
        filled, total = completeness(content, kind)
        parts.append(f"{short} {filled}/{total}")
        if kind != "crisp_dm" and filled < total:
            done = False
    return done, " · ".join(parts)
