"""project_config: the typed decisions of the ML Canvas, validated, with documented defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workbench.db import session_scope
from workbench.design.canvases.content import empty_content
from workbench.design.canvases.store import save_canvas
from workbench.design.project_config import (
    DEFAULT_METRIC,
    DEFAULTS,
    ProjectConfig,
    project_config,
    validate_canvas_fields,
)
from workbench.errors import InvalidInput
from workbench.projects import create_project, get_project


def _fields(**values: Any) -> dict[str, Any]:
    """An ML Canvas content with the given ``box__field=value`` structured fields."""
    content = empty_content("ml_canvas")
    for name, value in values.items():
        box, field = name.split("__")
        content["boxes"][box]["fields"][field] = value
    return content


def _config(workbench_home: Path, task: str, content: dict[str, Any] | None) -> ProjectConfig:
    with session_scope() as session:
        project = create_project(session, name="Cfg", task_type=task, target="y")
        if content is not None:
            save_canvas(session, project=project, kind="ml_canvas", content=content, base_revision=0, author="t")
    with session_scope() as session:
        return project_config(session, project=get_project(session, slug="cfg"))


def test_defaults_apply_and_are_listed_when_the_canvas_is_empty(workbench_home: Path) -> None:
    config = _config(workbench_home, "regression", None)
    assert config.task_type == "regression" and config.target == "y"
    assert config.primary_metric == DEFAULT_METRIC["regression"] == "rmse"
    assert config.metric_direction == "minimize" and not config.greater_is_better
    assert config.decision_threshold == DEFAULTS["decision_threshold"]
    assert config.min_uplift == DEFAULTS["min_uplift"]
    assert config.deployment_mode == "batch" and config.retrain_policy == "manual"
    assert config.quality_floor is None
    assert config.defaults_used == {
        "primary_metric",
        "metric_direction",
        "decision_threshold",
        "min_uplift",
        "deployment_mode",
        "latency_budget_ms",
        "retrain_policy",
        "online_step",
        "online_share",
        "drift_threshold",
        "quality_floor",
    }


def test_canvas_values_are_read_and_typed(workbench_home: Path) -> None:
    content = _fields(
        impact_simulation__primary_metric="recall",
        impact_simulation__min_uplift=0.05,
        decisions__decision_threshold=0.3,
        making_predictions__deployment_mode="web",
        making_predictions__latency_budget_ms=50,
        building_models__retrain_policy="on_alert",
        building_models__online_step="shadow",
        building_models__online_share="0.2",
        monitoring__drift_threshold=0.2,
        monitoring__quality_floor=0.7,
        prediction_task__task_type="classification",
    )
    config = _config(workbench_home, "classification", content)
    assert config.as_dict() == {
        "task_type": "classification",
        "target": "y",
        "primary_metric": "recall",
        "metric_direction": "maximize",
        "min_uplift": 0.05,
        "decision_threshold": 0.3,
        "deployment_mode": "web",
        "latency_budget_ms": 50.0,
        "drift_threshold": 0.2,
        "quality_floor": 0.7,
        "retrain_policy": "on_alert",
        "online_step": "shadow",
        "online_share": 0.2,
        "defaults_used": ["metric_direction"],
    }


@pytest.mark.parametrize(
    ("task", "values", "field", "message"),
    [
        (
            "classification",
            {"impact_simulation__primary_metric": "rmse"},
            "impact_simulation.primary_metric",
            "regression metric",
        ),
        (
            "regression",
            {"impact_simulation__primary_metric": "f1"},
            "impact_simulation.primary_metric",
            "pick one of mae",
        ),
        (
            "regression",
            {"impact_simulation__primary_metric": "mae", "impact_simulation__metric_direction": "maximize"},
            "impact_simulation.metric_direction",
            "must be 'minimize' for mae",
        ),
        (
            "classification",
            {"monitoring__quality_floor": 1.2},
            "monitoring.quality_floor",
            "[0, 1] for balanced_accuracy",
        ),
        ("regression", {"monitoring__quality_floor": -3.0}, "monitoring.quality_floor", "for rmse"),
        (
            "regression",
            {"prediction_task__task_type": "classification"},
            "prediction_task.task_type",
            "project is regression",
        ),
        ("regression", {"prediction_task__target_column": "price"}, "prediction_task.target_column", "predicts 'y'"),
        (
            "classification",
            {"building_models__online_step": "blue-green"},
            "building_models.online_step",
            "'none', 'shadow', 'canary'",
        ),
        ("classification", {"building_models__online_share": 0.9}, "building_models.online_share", "[0.01, 0.5]"),
    ],
)
def test_saving_the_canvas_validates_the_structured_fields(
    task: str, values: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_canvas_fields(_fields(**values), task_type=task, target="y")
    assert info.value.field == field
    assert message in str(info.value)
    assert str(info.value).startswith(field)


def test_thresholds_out_of_range_are_refused_before_they_are_stored() -> None:
    # ranges are declared on the fields, so normalising the content already refuses them
    from workbench.design.canvases.content import normalize_content

    for name, value in [("decisions__decision_threshold", -0.1), ("monitoring__drift_threshold", 1.5)]:
        box, field = name.split("__")
        with pytest.raises(InvalidInput) as info:
            normalize_content("ml_canvas", {"boxes": {box: {"fields": {field: value}}}})
        assert info.value.field == f"{box}.{field}"


def test_r2_quality_floor_may_be_negative_but_not_above_one() -> None:
    validate_canvas_fields(
        _fields(impact_simulation__primary_metric="r2", monitoring__quality_floor=-0.5), task_type="regression"
    )
    with pytest.raises(InvalidInput, match="quality_floor must lie in"):
        validate_canvas_fields(
            _fields(impact_simulation__primary_metric="r2", monitoring__quality_floor=1.5), task_type="regression"
        )


def test_project_row_gives_task_and_target(workbench_home: Path) -> None:
    content = _fields(prediction_task__target_column="y", prediction_task__task_type="classification")
    config = _config(workbench_home, "classification", content)
    assert (config.task_type, config.target) == ("classification", "y")
    assert "task_type" not in config.defaults_used and "target" not in config.defaults_used
    with session_scope() as session:
        project = get_project(session, slug="cfg")
        with pytest.raises(InvalidInput) as info:
            save_canvas(
                session,
                project=project,
                kind="ml_canvas",
                content=_fields(prediction_task__target_column="other"),
                base_revision=1,
                author="t",
            )
    assert info.value.field == "prediction_task.target_column"
