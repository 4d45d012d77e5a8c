"""The demo's worked example: what a team would write on the three canvases for the churn project.

Declared as data (canvas kind -> content in the canvases' canonical shape), so the demo pipeline
saves it through the same ``save_canvas`` as the pages. The structured fields are the ones later
stages read (``workbench.design.project_config``): the primary metric, the decision threshold,
the retrain policy and the monitoring thresholds that make the demo's drift raise an alert.
"""

from __future__ import annotations

from typing import Any


def _box(text: str, **fields: Any) -> dict[str, Any]:
    return {"text": text, "fields": fields}


ML_CANVAS: dict[str, Any] = {"boxes": {
    "value_proposition": _box(
        "The retention team calls the customers most likely to cancel in the next month and offers them a "
        "better contract. Today they call at random; the model ranks the list so each call counts."),
    "prediction_task": _box(
        "Binary classification per customer: will they cancel (churned = yes/no)? The outcome is known "
        "one month after the prediction.", task_type="classification", target_column="churned"),
    "decisions": _box(
        "Customers with a churn probability above the threshold go on the weekly call list.",
        decision_threshold=0.5),
    "impact_simulation": _box(
        "A call costs about 5 EUR, a kept customer is worth about 300 EUR a year. Balanced accuracy is the "
        "metric: missing a churner and calling a loyal customer both cost; a new model must win by 1 point.",
        primary_metric="balanced_accuracy", metric_direction="maximize", min_uplift=0.01),
    "making_predictions": _box(
        "The CRM asks the web service for a score when an agent opens a customer; a nightly batch fills "
        "the weekly list.", deployment_mode="web", latency_budget_ms=100.0),
    "data_collection": _box(
        "Whether a customer churned is recorded by billing one month later and sent back as feedback labels."),
    "data_sources": _box(
        "The CRM export (tenure, contract, payment method, region, partner) and the support desk's call "
        "counts, joined per customer each hour."),
    "building_models": _box(
        "One model per month at most: when monitoring raises an alert, someone starts a retrain, and a person "
        "decides whether the challenger replaces the champion.", retrain_policy="manual"),
    "features": _box(
        "Tenure in months, monthly charges, support calls, contract type, payment method, region, partner."),
    "monitoring": _box(
        "Drift of the inputs on the last 300 requests; live balanced accuracy once the labels arrive.",
        drift_threshold=0.3, quality_floor=None),
}}

MLOPS_STACK: dict[str, Any] = {"boxes": {
    "value_proposition": _box("Fewer cancellations for the same number of retention calls."),
    "mlops_dilemmas": _box(
        "A small team: one workbench on one machine first, PostgreSQL and a shared MLflow when it grows."),
    "data_sources_versioning": _box(
        "Each CRM export is a dataset version with its content hash; the split is recorded per version."),
    "data_analysis_experiments": _box(
        "Profiles and baselines in the workbench; every trial is an MLflow run under workbench/demo-churn."),
    "feature_store_workflows": _box("No feature store yet: the features are columns of the CRM export."),
    "foundations": _box("One Linux host, Python 3.11+, `make run`; jobs run as detached processes."),
    "ci_ct_cd": _box(
        "Retraining on alert: monitoring proposes it, the retrain job registers a challenger, a person decides."),
    "model_registry": _box(
        "The MLflow registry: one model per project, aliases champion and challenger, every move recorded."),
    "model_deployment": _box("The champion is served by alias, so a promotion swaps the model without a restart."),
    "prediction_serving": _box(
        "A FastAPI web service for the CRM (p95 under 100 ms); batch scoring for the weekly list."),
    "monitoring": _box(
        "Evidently drift and quality reports over the prediction log and its labels; alerts on the Home page."),
    "metadata_store": _box("The workbench database: jobs, canvases, deployments, the prediction log, alerts."),
}}


def _task(status: str, notes: str) -> dict[str, Any]:
    return {"status": status, "owner": "demo", "notes": notes, "links": []}


# Done where the demo did the work (the data, the models, the deployment and its monitoring); the
# business tasks that need people stay open, as they would in a real project's first weeks.
CRISP_DM: dict[str, Any] = {"tasks": {
    "business_objectives": _task("done", "Cut monthly churn with the same number of retention calls."),
    "assess_situation": _task("done", "One analyst, the CRM export, a workbench on one machine."),
    "data_mining_goals": _task("done", "Rank customers by churn risk; balanced accuracy above the baselines."),
    "project_plan": _task("in_progress", "Design, train and operate in the workbench; review monthly."),
    "collect_initial_data": _task("done", "Synthetic churn export, 2,000 hourly rows."),
    "describe_data": _task("done", "See the data profile."),
    "explore_data": _task("done", "Each column's distribution is in the data profile."),
    "verify_data_quality": _task("done", "No missing values in this export."),
    "select_data": _task("done", "All columns but the timestamp are features."),
    "select_modeling_technique": _task("done", "Linear model first, then gradient boosting."),
    "generate_test_design": _task("done", "Time-ordered split: the latest 20 % is the holdout."),
    "build_model": _task("done", "Tuned with Optuna; every trial in MLflow."),
    "assess_model": _task("done", "The Registry compares the tuned model with the first version."),
    "evaluate_results": _task("in_progress", "A retrained challenger waits for its decision."),
    "plan_deployment": _task("done", "Web service for the CRM, served by alias."),
    "plan_monitoring": _task("done", "Drift and quality on the last 300 requests; alert at 30 % drifted columns."),
}}

CANVASES: dict[str, dict[str, Any]] = {"ml_canvas": ML_CANVAS, "mlops_stack": MLOPS_STACK, "crisp_dm": CRISP_DM}
