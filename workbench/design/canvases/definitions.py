"""The canvases as data: boxes, groups, prompts, grid positions and typed structured fields.

Everything the pages, the Markdown format, completeness and ``project_config`` need to know
about a canvas is declared here, so a new box or field is one entry, not a code change.
The grid positions mirror the paper canvases: someone who knows the paper recognises the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.design.project_config import DEFAULTS, DEPLOYMENT_MODES, ONLINE_STEPS, PRIMARY_METRICS, RETRAIN_POLICIES
from workbench.errors import InvalidInput, check_choice

FIELD_TYPES = ("select", "number", "text")
TASK_STATUSES = ("not_started", "in_progress", "done")
STATUS_LABELS = {"not_started": "Not started", "in_progress": "In progress", "done": "Done"}


@dataclass(frozen=True)
class FieldDef:
    """A structured (typed) field of a box, read by later stages through ``project_config``."""

    id: str
    label: str
    type: str  # one of FIELD_TYPES
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    step: float | None = None
    default: Any = None
    help: str = ""

    def __post_init__(self) -> None:
        check_choice("type", self.type, FIELD_TYPES)


@dataclass(frozen=True)
class BoxDef:
    """One box of a canvas with its place in the paper grid.

    ``row``/``col`` are the top-left cell, ``span`` the number of columns and ``rows`` the
    number of rows the box covers.
    """

    id: str
    title: str
    group: str
    prompt: str
    row: int
    col: int
    span: int = 1
    rows: int = 1
    fields: tuple[FieldDef, ...] = ()
    number: int | None = None  # the canvas's own box number, where it has one

    @property
    def heading(self) -> str:
        """The title as the paper shows it (with its number on the MLOps Stack Canvas)."""
        return f"{self.number}. {self.title}" if self.number is not None else self.title

    def field(self, field_id: str) -> FieldDef:
        """The structured field ``field_id`` of this box."""
        for item in self.fields:
            if item.id == field_id:
                return item
        raise InvalidInput(
            f"field must be one of {', '.join(f.id for f in self.fields) or '(none)'} in box {self.id!r}; "
            f"got {field_id!r}.",
            field=f"{self.id}.{field_id}",
        )


@dataclass(frozen=True)
class CanvasDef:
    """A text canvas: boxes in the canvas's own order, laid out on a ``columns``-wide grid."""

    kind: str
    title: str
    source: str
    columns: int
    groups: tuple[str, ...]
    boxes: tuple[BoxDef, ...]

    def box(self, box_id: str) -> BoxDef:
        """The box ``box_id``; InvalidInput naming the allowed ids otherwise."""
        for item in self.boxes:
            if item.id == box_id:
                return item
        raise InvalidInput(
            f"box must be one of {', '.join(b.id for b in self.boxes)} on the {self.title}; got {box_id!r}.",
            field="box",
        )

    @property
    def box_ids(self) -> tuple[str, ...]:
        return tuple(b.id for b in self.boxes)


@dataclass(frozen=True)
class TaskDef:
    """A CRISP-DM generic task, its outputs, and which workbench artefacts can document it."""

    id: str
    title: str
    outputs: tuple[str, ...]
    artefact_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseDef:
    """A CRISP-DM phase and its generic tasks, in order."""

    id: str
    number: int
    title: str
    tasks: tuple[TaskDef, ...]


@dataclass(frozen=True)
class TrackerDef:
    """The CRISP-DM tracker: phases of tasks, each with status, owner, notes and links."""

    kind: str
    title: str
    source: str
    phases: tuple[PhaseDef, ...]

    @property
    def tasks(self) -> tuple[TaskDef, ...]:
        return tuple(task for phase in self.phases for task in phase.tasks)

    @property
    def task_ids(self) -> tuple[str, ...]:
        return tuple(task.id for task in self.tasks)

    def task(self, task_id: str) -> TaskDef:
        """The task ``task_id``; InvalidInput naming the allowed ids otherwise."""
        for item in self.tasks:
            if item.id == task_id:
                return item
        raise InvalidInput(
            f"task must be one of {', '.join(self.task_ids)} on the CRISP-DM tracker; got {task_id!r}.",
            field="task",
        )

    def phase_of(self, task_id: str) -> PhaseDef:
        """The phase that holds ``task_id``."""
        for phase in self.phases:
            if any(task.id == task_id for task in phase.tasks):
                return phase
        self.task(task_id)  # raises with the allowed ids
        raise AssertionError("unreachable")


# Workbench artefacts a CRISP-DM task can link to: kind -> label. Jobs of the workbench map onto
# them through JOB_ARTEFACTS (job kind -> artefact kind).
ARTEFACT_KINDS: dict[str, str] = {
    "dataset": "Dataset version",
    "profile": "Data profile",
    "baseline": "Baseline run",
    "tuning": "Tuning job",
    "model": "Registered model",
    "deployment": "Deployment",
    "monitoring": "Monitoring report",
    "document": "Document or URL",
}
JOB_ARTEFACTS: dict[str, str] = {
    "profile": "profile",
    "baseline": "baseline",
    "train": "tuning",
    "retrain": "tuning",
    "register": "model",
    "deploy": "deployment",
    "monitor": "monitoring",
}


def _metric_choices() -> tuple[str, ...]:
    return tuple(PRIMARY_METRICS)


ML_CANVAS = CanvasDef(
    kind="ml_canvas",
    title="Machine Learning Canvas",
    source="Louis Dorard, Machine Learning Canvas v1.1",
    columns=5,
    groups=("Predict", "Goal", "Learn", "Evaluate"),
    boxes=(
        BoxDef(
            id="value_proposition",
            title="Value Proposition",
            group="Goal",
            prompt=(
                "Who will use the predictions, and what are they trying to get done? What do they gain from "
                "it, and at which step of their daily work does the prediction show up?"
            ),
            row=0,
            col=2,
            rows=2,
        ),
        BoxDef(
            id="prediction_task",
            title="Prediction Task",
            group="Predict",
            prompt=(
                "What kind of task is it (classification, regression, ...)? Which entity is each prediction "
                "about, which outcomes are possible, and how long until the real outcome can be observed?"
            ),
            row=0,
            col=0,
            fields=(
                FieldDef(
                    "task_type",
                    "Task type",
                    "select",
                    choices=("classification", "regression"),
                    help="Mirrors the project's task type; the project setting wins when they differ.",
                ),
                FieldDef(
                    "target_column",
                    "Target column",
                    "text",
                    help="The column that holds the outcome; mirrors the project's target.",
                ),
            ),
        ),
        BoxDef(
            id="decisions",
            title="Decisions",
            group="Predict",
            prompt=(
                "How does a prediction turn into an action for the users? Which settings, such as a "
                "threshold or a business rule, decide what happens?"
            ),
            row=0,
            col=1,
            fields=(
                FieldDef(
                    "decision_threshold",
                    "Decision threshold",
                    "number",
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    default=DEFAULTS["decision_threshold"],
                    help="Probability above which the positive class is predicted (classification).",
                ),
            ),
        ),
        BoxDef(
            id="impact_simulation",
            title="Impact Simulation",
            group="Predict",
            prompt=(
                "Before going live, how do we know the model is good enough to ship? Which test data, what "
                "do right and wrong decisions gain or cost, and which fairness constraints apply?"
            ),
            row=1,
            col=0,
            fields=(
                FieldDef(
                    "primary_metric",
                    "Primary metric",
                    "select",
                    choices=_metric_choices(),
                    help="The metric every comparison ranks by; it must fit the task type.",
                ),
                FieldDef(
                    "metric_direction",
                    "Metric direction",
                    "select",
                    choices=("maximize", "minimize"),
                    help="Whether a higher or a lower value of the primary metric is better.",
                ),
                FieldDef(
                    "min_uplift",
                    "Minimum uplift over the baseline",
                    "number",
                    min=0.0,
                    step=0.005,
                    default=DEFAULTS["min_uplift"],
                    help="A model must beat the best baseline by at least this much on the primary metric.",
                ),
            ),
        ),
        BoxDef(
            id="making_predictions",
            title="Making Predictions",
            group="Predict",
            prompt=(
                "Are predictions made in batches or in real time? What triggers one, how much time may "
                "features, prediction and post-processing take, and on which hardware?"
            ),
            row=1,
            col=1,
            fields=(
                FieldDef(
                    "deployment_mode",
                    "Deployment mode",
                    "select",
                    choices=DEPLOYMENT_MODES,
                    default=DEFAULTS["deployment_mode"],
                    help="batch: scored files; web: an HTTP endpoint; stream: messages on a broker.",
                ),
                FieldDef(
                    "latency_budget_ms",
                    "Latency budget (ms)",
                    "number",
                    min=0.0,
                    step=10.0,
                    default=DEFAULTS["latency_budget_ms"],
                    help="The time one prediction may take, end to end, in milliseconds.",
                ),
            ),
        ),
        BoxDef(
            id="data_collection",
            title="Data Collection",
            group="Learn",
            prompt=(
                "How is the first training set put together, and how is it kept up to date, at what pace? "
                "Is there a holdout on production entities? What does getting the outcomes cost, and what limits it?"
            ),
            row=0,
            col=3,
        ),
        BoxDef(
            id="data_sources",
            title="Data Sources",
            group="Learn",
            prompt=(
                "Where does the raw data about the entities and their outcomes live (tables, APIs, files)? "
                "Which sources are internal and which external?"
            ),
            row=0,
            col=4,
        ),
        BoxDef(
            id="building_models",
            title="Building Models",
            group="Learn",
            prompt=(
                "How many models does production need? When is a model retrained, and how much time can a "
                "training run take?"
            ),
            row=1,
            col=3,
            fields=(
                FieldDef(
                    "retrain_policy",
                    "Retrain policy",
                    "select",
                    choices=RETRAIN_POLICIES,
                    default=DEFAULTS["retrain_policy"],
                    help="manual: a person starts it; on_alert: a monitoring alert proposes it; "
                    "automatic: an alert retrains and promotes when the gate passes.",
                ),
                FieldDef(
                    "online_step",
                    "Online step before promotion",
                    "select",
                    choices=ONLINE_STEPS,
                    default=DEFAULTS["online_step"],
                    help="none: the offline gate promotes; shadow: a challenger that won offline is scored in "
                    "shadow on the running web or stream deployment, then (automatic policy) goes to a canary and "
                    "is promoted when the online verdict says better; canary: straight to a canary.",
                ),
                FieldDef(
                    "online_share",
                    "Online canary share",
                    "number",
                    min=0.01,
                    max=0.5,
                    step=0.05,
                    default=DEFAULTS["online_share"],
                    help="The challenger's share of answers in the canary step (0.01 to 0.5).",
                ),
            ),
        ),
        BoxDef(
            id="features",
            title="Features",
            group="Learn",
            prompt=(
                "Which inputs are known at the moment of prediction, and how are they computed from the raw sources?"
            ),
            row=1,
            col=4,
        ),
        BoxDef(
            id="monitoring",
            title="Monitoring",
            group="Evaluate",
            prompt=(
                "Which measurements show that the system creates value? What is the effect on the users and on "
                "the business, and when should someone be alerted?"
            ),
            row=2,
            col=0,
            span=5,
            fields=(
                FieldDef(
                    "drift_threshold",
                    "Drift threshold (share of drifted columns)",
                    "number",
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    default=DEFAULTS["drift_threshold"],
                    help="An alert is raised when at least this share of the columns has drifted.",
                ),
                FieldDef(
                    "quality_floor",
                    "Quality floor (primary metric)",
                    "number",
                    help="An alert is raised when the live primary metric falls below this value "
                    "(above it, for a metric that is minimised). Empty: no quality alert.",
                ),
            ),
        ),
    ),
)

MLOPS_STACK = CanvasDef(
    kind="mlops_stack",
    title="MLOps Stack Canvas",
    source="ml-ops.org, MLOps Stack Canvas v1.0",
    columns=5,
    groups=("Value", "Data & Code", "Model Management", "Metadata Management"),
    boxes=(
        BoxDef(
            id="value_proposition",
            number=1,
            title="Value Proposition",
            group="Value",
            prompt=(
                "What do we build for the end users, and why does it matter to them? Who are the personas, "
                "and who owns the models once they run in production?"
            ),
            row=0,
            col=2,
        ),
        BoxDef(
            id="mlops_dilemmas",
            number=0,
            title="MLOps Dilemmas",
            group="Value",
            prompt=(
                "Tooling: buy it, take open source, or build it ourselves? One platform or several? Hire the "
                "skills, or train the team?"
            ),
            row=1,
            col=2,
        ),
        BoxDef(
            id="data_sources_versioning",
            number=2,
            title="Data Sources & Data Versioning",
            group="Data & Code",
            prompt=(
                "Must data be versioned? Which sources are used (owned, public, bought), where is the data kept, "
                "who labels it, how is the data behind each model version tracked, and which pipeline tools run it?"
            ),
            row=0,
            col=0,
        ),
        BoxDef(
            id="data_analysis_experiments",
            number=3,
            title="Data Analysis & Experiment Management",
            group="Data & Code",
            prompt=(
                "Which language and training infrastructure? Which ML and business metrics are tracked, which "
                "metadata does each experiment record, and which frameworks does the team know?"
            ),
            row=0,
            col=1,
        ),
        BoxDef(
            id="feature_store_workflows",
            number=4,
            title="Feature Store & Workflows",
            group="Data & Code",
            prompt=(
                "Is a feature store needed? How do training and serving compute features the same way, on "
                "which infrastructure, and is it bought or built?"
            ),
            row=1,
            col=0,
        ),
        BoxDef(
            id="foundations",
            number=5,
            title="Foundations (DevOps)",
            group="Data & Code",
            prompt=(
                "Version control, monitoring of system performance, versioned notebooks, trunk-based "
                "development, CI/CD, and the four delivery metrics: deploy frequency, lead time, time to "
                "restore, change-failure rate."
            ),
            row=1,
            col=1,
        ),
        BoxDef(
            id="ci_ct_cd",
            number=6,
            title="CI/CT/CD: ML Pipeline Orchestration",
            group="Model Management",
            prompt=(
                "How often, and on what trigger (schedule, event, by hand), is a model retrained? Where does "
                "the pipeline run, which steps does it have, is training distributed, what does CI check, and "
                "which tests cover fairness, robustness and interpretability?"
            ),
            row=0,
            col=3,
        ),
        BoxDef(
            id="model_registry",
            number=7,
            title="Model Registry & Versioning",
            group="Model Management",
            prompt="Is a model registry needed? Where are models stored and tracked, and how are versions named?",
            row=0,
            col=4,
        ),
        BoxDef(
            id="model_deployment",
            number=8,
            title="Model Deployment",
            group="Model Management",
            prompt=(
                "In which format is a model delivered, how long from commit to production, into which "
                "environment, and with which release policy (A/B test, bandits, shadow, canary)?"
            ),
            row=1,
            col=3,
        ),
        BoxDef(
            id="prediction_serving",
            number=9,
            title="Prediction Serving",
            group="Model Management",
            prompt=(
                "Batch or online? Several models behind one service? How are inputs checked, what is the "
                "fallback when an output looks wrong (a heuristic), are accelerators needed, what volume is expected?"
            ),
            row=1,
            col=4,
        ),
        BoxDef(
            id="monitoring",
            number=10,
            title="Model, Data & Application Monitoring",
            group="Model Management",
            prompt=(
                "Is monitoring required? Which ML and domain metrics, how are decay and training/serving skew "
                "detected, which operational metrics (latency, CPU, memory), what alert thresholds, and what "
                "starts a retraining?"
            ),
            row=2,
            col=3,
            span=2,
        ),
        BoxDef(
            id="metadata_store",
            number=11,
            title="Metadata Store",
            group="Metadata Management",
            prompt=(
                "Which metadata is kept (run id, trigger, steps, times, splits, hyperparameters, statistics)? "
                "How is it governed, and is documentation kept as code (datasheets, model cards)?"
            ),
            row=2,
            col=0,
            span=3,
        ),
    ),
)


def _task(task_id: str, title: str, outputs: tuple[str, ...], artefacts: tuple[str, ...] = ()) -> TaskDef:
    return TaskDef(id=task_id, title=title, outputs=outputs, artefact_kinds=(*artefacts, "document"))


CRISP_DM = TrackerDef(
    kind="crisp_dm",
    title="CRISP-DM",
    source="CRISP-DM 1.0 step-by-step data mining guide",
    phases=(
        PhaseDef(
            "business_understanding",
            1,
            "Business Understanding",
            (
                _task(
                    "business_objectives",
                    "Determine business objectives",
                    ("Background", "Business objectives", "Business success criteria"),
                ),
                _task(
                    "assess_situation",
                    "Assess the situation",
                    (
                        "Inventory of resources",
                        "Requirements, assumptions and constraints",
                        "Risks and contingencies",
                        "Terminology",
                        "Costs and benefits",
                    ),
                ),
                _task(
                    "data_mining_goals",
                    "Determine data-mining goals",
                    ("Data-mining goals", "Data-mining success criteria"),
                ),
                _task(
                    "project_plan",
                    "Produce the project plan",
                    ("Project plan", "Initial assessment of tools and techniques"),
                ),
            ),
        ),
        PhaseDef(
            "data_understanding",
            2,
            "Data Understanding",
            (
                _task(
                    "collect_initial_data", "Collect initial data", ("Initial data collection report",), ("dataset",)
                ),
                _task("describe_data", "Describe the data", ("Data description report",), ("profile", "dataset")),
                _task("explore_data", "Explore the data", ("Data exploration report",), ("profile",)),
                _task("verify_data_quality", "Verify data quality", ("Data quality report",), ("profile",)),
            ),
        ),
        PhaseDef(
            "data_preparation",
            3,
            "Data Preparation",
            (
                _task("select_data", "Select data", ("Rationale for inclusion or exclusion",), ("dataset",)),
                _task("clean_data", "Clean data", ("Data cleaning report",), ("dataset", "profile")),
                _task("construct_data", "Construct data", ("Derived attributes", "Generated records"), ("dataset",)),
                _task("integrate_data", "Integrate data", ("Merged data",), ("dataset",)),
                _task("format_data", "Format data", ("Reformatted data",), ("dataset",)),
            ),
        ),
        PhaseDef(
            "modeling",
            4,
            "Modeling",
            (
                _task(
                    "select_modeling_technique",
                    "Select the modelling technique",
                    ("Modelling technique", "Modelling assumptions"),
                    ("baseline", "tuning"),
                ),
                _task("generate_test_design", "Generate the test design", ("Test design",), ("baseline",)),
                _task(
                    "build_model",
                    "Build the model",
                    ("Parameter settings", "Models", "Model descriptions"),
                    ("tuning", "baseline"),
                ),
                _task(
                    "assess_model",
                    "Assess the model",
                    ("Model assessment", "Revised parameter settings"),
                    ("tuning", "baseline"),
                ),
            ),
        ),
        PhaseDef(
            "evaluation",
            5,
            "Evaluation",
            (
                _task(
                    "evaluate_results",
                    "Evaluate results",
                    ("Assessment against the business success criteria", "Approved models"),
                    ("model", "tuning"),
                ),
                _task("review_process", "Review the process", ("Review of the process",)),
                _task(
                    "determine_next_steps",
                    "Determine next steps",
                    ("List of possible actions", "Decision"),
                ),
            ),
        ),
        PhaseDef(
            "deployment",
            6,
            "Deployment",
            (
                _task("plan_deployment", "Plan deployment", ("Deployment plan",), ("deployment", "model")),
                _task(
                    "plan_monitoring",
                    "Plan monitoring and maintenance",
                    ("Monitoring and maintenance plan",),
                    ("monitoring",),
                ),
                _task("final_report", "Produce the final report", ("Final report", "Final presentation")),
                _task("review_project", "Review the project", ("Experience documentation",)),
            ),
        ),
    ),
)

CANVASES: dict[str, CanvasDef] = {ML_CANVAS.kind: ML_CANVAS, MLOPS_STACK.kind: MLOPS_STACK}
CANVAS_KINDS: tuple[str, ...] = ("ml_canvas", "mlops_stack", "crisp_dm")
KIND_TITLES: dict[str, str] = {"ml_canvas": ML_CANVAS.title, "mlops_stack": MLOPS_STACK.title, "crisp_dm": "CRISP-DM"}


def check_kind(kind: str) -> str:
    """``kind`` when it names a canvas; InvalidInput naming the allowed kinds otherwise."""
    check_choice("kind", kind, CANVAS_KINDS)
    return kind


def canvas_def(kind: str) -> CanvasDef:
    """The definition of the text canvas ``kind`` (ml_canvas or mlops_stack)."""
    check_choice("kind", kind, tuple(CANVASES))
    return CANVASES[kind]


def definition(kind: str) -> CanvasDef | TrackerDef:
    """The definition of any canvas kind, the CRISP-DM tracker included."""
    check_kind(kind)
    return CRISP_DM if kind == "crisp_dm" else CANVASES[kind]


def layout_bands(canvas: CanvasDef) -> list[list[BoxDef]]:
    """The grid cut into horizontal bands that render as one ``st.columns`` row each.

    Consecutive rows whose boxes are one column wide form one band (boxes stack inside their
    column, so a box covering two rows sits beside two stacked boxes, as on paper); a row with a
    wider box forms a band of its own, its boxes side by side.
    """
    rows = sorted({box.row for box in canvas.boxes})
    bands: list[list[BoxDef]] = []
    current: list[BoxDef] = []
    current_narrow = False
    for row in rows:
        boxes = [box for box in canvas.boxes if box.row == row]
        narrow = all(box.span == 1 for box in boxes)
        if current and narrow and current_narrow:
            current.extend(boxes)
        else:
            if current:
                bands.append(current)
            current = list(boxes)
            current_narrow = narrow
    if current:
        bands.append(current)
    return [sorted(band, key=lambda b: (b.col, b.row)) for band in bands]
