"""``project_config(project)``: the typed decisions taken in the canvases.

Every later stage (baselines, tuning, serving, monitoring, retraining) reads its metric,
thresholds and policies from here and nowhere else. Where a canvas field is empty a
documented default applies, and ``defaults_used`` says which ones, so the UI can show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import CanvasRevision, Project
from workbench.errors import InvalidInput, check_choice

# Metric name -> (task type, direction). The single list of primary metrics a canvas may pick.
PRIMARY_METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("classification", "maximize"),
    "balanced_accuracy": ("classification", "maximize"),
    "f1": ("classification", "maximize"),
    "precision": ("classification", "maximize"),
    "recall": ("classification", "maximize"),
    "roc_auc": ("classification", "maximize"),
    "pr_auc": ("classification", "maximize"),
    "log_loss": ("classification", "minimize"),
    "mae": ("regression", "minimize"),
    "rmse": ("regression", "minimize"),
    "r2": ("regression", "maximize"),
    "mape": ("regression", "minimize"),
}
DEFAULT_METRIC = {"classification": "balanced_accuracy", "regression": "rmse"}
DEPLOYMENT_MODES = ("batch", "web", "stream")
RETRAIN_POLICIES = ("manual", "on_alert", "automatic")
# The online step of the retrain gate: a challenger that won offline goes to a rollout on the
# running web or stream deployment (shadow first, or straight to a canary) before any promotion.
ONLINE_STEPS = ("none", "shadow", "canary")

# (canvas box id, structured field id) -> config attribute. The ML Canvas's structured
# fields are the source of every decision below.
CANVAS_FIELDS: dict[str, tuple[str, str]] = {
    "task_type": ("prediction_task", "task_type"),
    "target": ("prediction_task", "target_column"),
    "decision_threshold": ("decisions", "decision_threshold"),
    "primary_metric": ("impact_simulation", "primary_metric"),
    "metric_direction": ("impact_simulation", "metric_direction"),
    "min_uplift": ("impact_simulation", "min_uplift"),
    "deployment_mode": ("making_predictions", "deployment_mode"),
    "latency_budget_ms": ("making_predictions", "latency_budget_ms"),
    "retrain_policy": ("building_models", "retrain_policy"),
    "online_step": ("building_models", "online_step"),
    "online_share": ("building_models", "online_share"),
    "drift_threshold": ("monitoring", "drift_threshold"),
    "quality_floor": ("monitoring", "quality_floor"),
}

DEFAULTS: dict[str, Any] = {
    "decision_threshold": 0.5,
    "min_uplift": 0.01,
    "deployment_mode": "batch",
    "latency_budget_ms": 100.0,
    "retrain_policy": "manual",
    "online_step": "none",
    "online_share": 0.1,
    "drift_threshold": 0.3,
    "quality_floor": None,
}


@dataclass(frozen=True)
class ProjectConfig:
    """The decisions every later stage uses, validated."""

    task_type: str
    target: str
    primary_metric: str
    metric_direction: str
    min_uplift: float
    decision_threshold: float
    deployment_mode: str
    latency_budget_ms: float
    drift_threshold: float
    quality_floor: float | None
    retrain_policy: str
    online_step: str = "none"
    online_share: float = 0.1
    defaults_used: frozenset[str] = field(default_factory=frozenset)

    @property
    def greater_is_better(self) -> bool:
        return self.metric_direction == "maximize"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (CLI ``--json``, MLflow params)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "defaults_used"}
        data["defaults_used"] = sorted(self.defaults_used)
        return data


def latest_canvas_content(session: Session, *, project: Project, kind: str) -> dict[str, Any]:
    """The content of the newest revision of one canvas ({} when never saved)."""
    row = session.scalar(
        select(CanvasRevision)
        .where(CanvasRevision.project_id == project.id, CanvasRevision.kind == kind)
        .order_by(CanvasRevision.revision.desc())
        .limit(1)
    )
    return dict(row.content) if row is not None else {}


def _field_value(content: dict[str, Any], box: str, name: str) -> Any:
    value = (content.get("boxes", {}).get(box, {}) or {}).get("fields", {}).get(name)
    return None if value in ("", None) else value


# Bounds of the quality floor per primary metric: scores in [0, 1], errors >= 0, R² <= 1.
QUALITY_FLOOR_RANGES: dict[str, tuple[float, float]] = {
    **{m: (0.0, 1.0) for m in ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc")},
    **{m: (0.0, float("inf")) for m in ("log_loss", "mae", "rmse", "mape")},
    "r2": (float("-inf"), 1.0),
}
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "decision_threshold": (0.0, 1.0),
    "drift_threshold": (0.0, 1.0),
    "min_uplift": (0.0, 1e9),
    "latency_budget_ms": (0.0, 1e9),
    # A canary answers 1 to 50 % of keys (workbench.rollouts.traffic_share).
    "online_share": (0.01, 0.5),
}


def validate_config(values: dict[str, Any]) -> None:
    """Check that the decisions fit together; raise InvalidInput naming the field and the fix."""
    task = values["task_type"]
    metric = values["primary_metric"]
    if metric not in PRIMARY_METRICS:
        raise InvalidInput(
            f"primary_metric must be one of {', '.join(PRIMARY_METRICS)}; got {metric!r}.",
            field="primary_metric",
        )
    metric_task, natural_direction = PRIMARY_METRICS[metric]
    if metric_task != task:
        allowed = [m for m, (t, _) in PRIMARY_METRICS.items() if t == task]
        raise InvalidInput(
            f"primary_metric {metric!r} is a {metric_task} metric but the project is {task}; "
            f"pick one of {', '.join(allowed)} in the ML Canvas (Impact Simulation).",
            field="primary_metric",
        )
    if values["metric_direction"] not in ("maximize", "minimize"):
        raise InvalidInput(
            f"metric_direction must be 'maximize' or 'minimize'; got {values['metric_direction']!r}.",
            field="metric_direction",
        )
    if values["metric_direction"] != natural_direction:
        raise InvalidInput(
            f"metric_direction must be {natural_direction!r} for {metric}; got {values['metric_direction']!r}. "
            "Change the direction, or leave it empty to use the metric's own.",
            field="metric_direction",
        )
    for name, (low, high) in NUMBER_RANGES.items():
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= float(value) <= high:
            raise InvalidInput(f"{name} must be a number in [{low:g}, {high:g}]; got {value!r}.", field=name)
    floor = values.get("quality_floor")
    if floor is not None:
        low, high = QUALITY_FLOOR_RANGES[metric]
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not low <= float(floor) <= high:
            raise InvalidInput(
                f"quality_floor must lie in [{low:g}, {high:g}] for {metric}; got {floor!r}.", field="quality_floor"
            )
    check_choice("deployment_mode", values["deployment_mode"], DEPLOYMENT_MODES)
    check_choice("retrain_policy", values["retrain_policy"], RETRAIN_POLICIES)
    check_choice("online_step", values["online_step"], ONLINE_STEPS)


def resolve_values(content: dict[str, Any], *, task_type: str, target: str) -> tuple[dict[str, Any], set[str]]:
    """The decision values of an ML Canvas content, with defaults where a field is empty.

    Returns the values (not yet validated) and the names of the values that are defaults.
    """
    values: dict[str, Any] = {}
    defaults_used: set[str] = set()
    for name, (box, field_name) in CANVAS_FIELDS.items():
        values[name] = _field_value(content, box, field_name)
    # The project row is the source of truth for task and target; the canvas mirrors them.
    values["task_type"] = task_type
    values["target"] = target
    if values["primary_metric"] is None:
        values["primary_metric"] = DEFAULT_METRIC[task_type]
        defaults_used.add("primary_metric")
    if values["metric_direction"] is None:
        metric_info = PRIMARY_METRICS.get(values["primary_metric"])
        values["metric_direction"] = metric_info[1] if metric_info else "maximize"
        defaults_used.add("metric_direction")
    for name, default in DEFAULTS.items():
        if values[name] is None:
            values[name] = default
            defaults_used.add(name)
    for name in ("decision_threshold", "min_uplift", "latency_budget_ms", "drift_threshold", "quality_floor",
                 "online_share"):
        if values[name] is not None and not isinstance(values[name], bool):
            try:
                values[name] = float(values[name])
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"{name} must be a number; got {values[name]!r}.", field=name) from exc
    return values, defaults_used


def canvas_field_path(name: str) -> str:
    """Where a config value lives in the ML Canvas, as ``box.field`` (e.g. ``impact_simulation.primary_metric``)."""
    box, field_name = CANVAS_FIELDS[name]
    return f"{box}.{field_name}"


def validate_canvas_fields(content: dict[str, Any], *, task_type: str, target: str = "") -> None:
    """Check the structured fields of an ML Canvas content before it is saved.

    The same rules as :func:`project_config`; the error names the canvas field
    (``box.field``) so that the form can point at it.
    """
    canvas_task = _field_value(content, *CANVAS_FIELDS["task_type"])
    if canvas_task is not None and canvas_task != task_type:
        raise InvalidInput(
            f"{canvas_field_path('task_type')} is {canvas_task!r} but the project is {task_type}; set it to "
            f"{task_type!r} or leave it empty (the project's task type is changed on the Data page).",
            field=canvas_field_path("task_type"),
        )
    canvas_target = _field_value(content, *CANVAS_FIELDS["target"])
    if canvas_target is not None and target and canvas_target != target:
        raise InvalidInput(
            f"{canvas_field_path('target')} is {canvas_target!r} but the project predicts {target!r}; set it to "
            f"{target!r} or leave it empty (the project's target is changed on the Data page).",
            field=canvas_field_path("target"),
        )
    values, _ = resolve_values(content, task_type=task_type, target=target)
    try:
        validate_config(values)
    except InvalidInput as exc:
        name = exc.field or ""
        if name in CANVAS_FIELDS:
            path = canvas_field_path(name)
            raise InvalidInput(f"{path}: {exc}", field=path) from None
        raise


def project_config(session: Session, *, project: Project) -> ProjectConfig:
    """The validated decisions of ``project``'s canvases, with defaults where a field is empty.

    Defaults (``DEFAULTS``, and ``DEFAULT_METRIC`` per task type with the metric's own direction)
    apply to every empty field; ``defaults_used`` lists them. The project row gives task and target.
    """
    content = latest_canvas_content(session, project=project, kind="ml_canvas")
    values, defaults_used = resolve_values(content, task_type=project.task_type, target=project.target)
    validate_config(values)
    return ProjectConfig(**values, defaults_used=frozenset(defaults_used))
