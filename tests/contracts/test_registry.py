"""The registry: promote / rollback move real MLflow aliases and keep a history in the workbench DB
(SQLite and PostgreSQL); compare with the champion scores real models on the project holdout; the
model card has the sections of CANVASES.md and is logged on the version's run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.mlflow_store import seed_mlflow_store
from tests.helpers.registered_model import register_model, tiny_frame
from workbench.db.engine import session_scope
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.projects import create_project, get_project
from workbench.registry import (
    aliases,
    compare_with_champion,
    history,
    list_versions,
    log_model_card,
    model_card,
    promote,
    rollback,
)

CARD_SECTIONS = ("## Model details", "## Intended use", "## Factors", "## Metrics and decision threshold",
                 "## Evaluation data", "## Training data", "## Quantitative analyses", "## Ethical considerations",
                 "## Caveats and recommendations")


def _setup(home: Path, *, extra_versions: int) -> list[str]:
    """A project with a dataset, two real models (v1 champion, v2) and ``extra_versions`` more versions."""
    from workbench.data.datasets import add_dataset
    from workbench.settings import get_settings
    from workbench.tracking import get_client

    seed_mlflow_store(home)
    settings = get_settings()
    settings.ensure_home()
    with session_scope() as session:
        project = create_project(session, name="Churn", task_type="classification", target="churned", actor="t")
        add_dataset(session, project=project, frame=tiny_frame(), source="test")
    first = register_model("churn", tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir)
    second = register_model("churn", tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                            variant=1, alias=None)
    client = get_client()
    # What the train pipeline logs on the refit run: holdout metrics and the dataset hash.
    for model, score in ((first, 0.71), (second, 0.74)):
        client.log_metric(model.run_id, "holdout_balanced_accuracy", score)
        client.set_tag(model.run_id, "workbench.dataset_hash", "abc123")
    source = str(client.get_model_version("churn", first.version).source)
    versions = [first.version, second.version]
    for _ in range(extra_versions):
        versions.append(str(client.create_model_version("churn", source=source, run_id=first.run_id).version))
    return versions


def _promote(version: str, reason: str, alias: str = "champion", actor: str = "alice") -> Any:
    with session_scope() as session:
        return promote(session, project=get_project(session, slug="churn"), version=version, alias=alias,
                       reason=reason, actor=actor)


def _rollback(reason: str = "undo") -> Any:
    with session_scope() as session:
        return rollback(session, project=get_project(session, slug="churn"), reason=reason, actor="bob")


def _champion() -> str | None:
    with session_scope() as session:
        return aliases(project=get_project(session, slug="churn")).get("champion")


def test_promote_rollback_and_history(db_url: str, workbench_home: Path) -> None:
    v1, v2, v3 = _setup(workbench_home, extra_versions=1)
    with session_scope() as session:
        versions = list_versions(session, project=get_project(session, slug="churn"))
    assert [v.version for v in versions] == [v3, v2, v1]
    assert versions[-1].aliases == ["champion"] and versions[-1].holdout_metrics == {"balanced_accuracy": 0.71}
    assert versions[1].holdout_metrics == {"balanced_accuracy": 0.74} and versions[1].dataset_hash == "abc123"
    assert versions[-1].beat_baseline is None  # no baseline job yet, so no bar to beat

    row = _promote(v2, "v2 wins on recall")
    assert (row.from_version, row.to_version, row.action) == (v1, v2, "promote")
    assert _champion() == v2
    _promote(v3, "try it in shadow", alias="challenger")
    with pytest.raises(Conflict, match="already the champion"):
        _promote(v2, "again")
    with pytest.raises(InvalidInput, match="reason is required"):
        _promote(v3, "   ")
    with pytest.raises(InvalidInput, match="alias"):
        _promote(v3, "x", alias="staging")
    with pytest.raises(NotFound, match="no version '99'"):
        _promote("99", "x")

    back = _rollback("v2 misbehaves in production")
    assert (back.from_version, back.to_version, back.action, back.actor) == (v2, v1, "rollback", "bob")
    assert _champion() == v1
    with pytest.raises(Conflict, match="no previous champion"):
        _rollback()  # v1 was made champion outside the workbench: nothing earlier to return to

    # Rollbacks walk back through promotions like an undo stack.
    _promote(v3, "v3")
    _promote(v2, "v2 again")
    assert _rollback().to_version == v3
    assert _rollback().to_version == v1
    assert _champion() == v1

    with session_scope() as session:
        rows = history(session, project=get_project(session, slug="churn"))
    assert [(r.action, r.alias, r.from_version, r.to_version) for r in rows] == [
        ("rollback", "champion", v3, v1), ("rollback", "champion", v2, v3), ("promote", "champion", v3, v2),
        ("promote", "champion", v1, v3), ("rollback", "champion", v2, v1), ("promote", "challenger", None, v3),
        ("promote", "champion", v1, v2)]
    assert rows[-1].reason == "v2 wins on recall" and rows[-1].actor == "alice"


def test_compare_with_champion_and_model_card(workbench_home: Path) -> None:
    v1, v2 = _setup(workbench_home, extra_versions=0)
    with session_scope() as session:
        project = get_project(session, slug="churn")
        result = compare_with_champion(session, project=project, version=v2)
        assert result.champion == v1 and result.version == v2
        assert set(result.metrics) == {v1, v2} and result.n_holdout > 0
        assert result.metrics[v1]["balanced_accuracy"] != result.metrics[v2]["balanced_accuracy"]
        assert set(result.figures) == {"confusion matrix", "ROC curve", "PR curve"}
        assert result.better is (result.uplift is not None and result.uplift > 0)

        card = model_card(session, project=project, version=v2)
        for section in CARD_SECTIONS:
            assert section in card
        assert f"version {v2}" in card and "balanced_accuracy" in card
        text, run_id = log_model_card(session, project=project, version=v2)
    from workbench.tracking import get_client

    assert "model_card.md" in {a.path for a in get_client().list_artifacts(run_id)}
    assert text.startswith("# Model card")


def test_a_challenger_promoted_to_champion_stops_being_the_challenger(db_url: str, workbench_home: Path) -> None:
    _v1, v2 = _setup(workbench_home, extra_versions=0)
    _promote(v2, "retrained on fresh data", alias="challenger")
    _promote(v2, "challenger won on the fresh holdout")
    with session_scope() as session:
        held = aliases(project=get_project(session, slug="churn"))
    assert held == {"champion": v2}
