"""The train pipeline for real: a small Optuna study tracked in MLflow, refit, evaluated and registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.helpers.jobs import run_job_ok
from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.data.datasets import create_project_with_dataset
from workbench.db import session_scope
from workbench.settings import get_settings
from workbench.tracking import TAG_JOB, TAG_KIND, experiment_name
from workbench.training.register import CHAMPION, TAG_FLAG
from workbench.training.study import TAG_TRIAL_NUMBER

PARAMS: dict[str, Any] = {"models": ["knn"], "n_trials": 4, "folds": 3, "seed": 7}


def xor_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """A target no linear model can learn (XOR of two signs), so a tuned k-NN beats the baselines."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    return pd.DataFrame(
        {
            "x1": x1.round(4),
            "x2": x2.round(4),
            "colour": rng.choice(["red", "green", "blue"], n),
            "label": np.where((x1 > 0) ^ (x2 > 0), "yes", "no"),
        }
    )


def _project(home: Path, name: str = "Xor") -> str:
    seed_mlflow_store(home)
    with session_scope() as session:
        project = create_project_with_dataset(
            session, name=name, dataset_spec_or_frame=xor_frame(), target="label", task_type="classification"
        )
        return project.slug


def _history(slug: str) -> list[dict[str, Any]]:
    """The project's promotion history as ``workbench model history PROJECT --json`` prints it."""
    import json

    from click.testing import CliRunner

    from workbench.cli import main

    result = CliRunner().invoke(main, ["model", "history", slug, "--json"])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def _client() -> MlflowClient:
    uri = get_settings().mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_train_tracks_trials_registers_a_loadable_champion(
    workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = _project(workbench_home)
    run_job_ok(slug, "baseline")  # the bar to beat: best of class prior, stratified random, logistic
    job = run_job_ok(slug, "train", PARAMS)
    result = job["result"]
    client = _client()
    experiment = client.get_experiment_by_name(experiment_name(slug))
    assert experiment is not None

    # One parent run for the job, FINISHED, tagged best; one child run per trial.
    parent = client.get_run(job["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[TAG_KIND] == "best"
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert len(children) == PARAMS["n_trials"] == result["trials_finished"]
    assert sorted(int(c.data.tags[TAG_TRIAL_NUMBER]) for c in children) == list(range(PARAMS["n_trials"]))
    for child in children:
        assert child.data.tags[TAG_KIND] == "trial" and child.data.tags[TAG_JOB] == job["id"]
        assert {"knn__n_neighbors", "knn__weights", "knn__p"} <= set(child.data.params)
        assert {"cv_balanced_accuracy_mean", "cv_balanced_accuracy_std", "fit_seconds"} <= set(child.data.metrics)
        assert child.info.status == "FINISHED"
    best_child = max(children, key=lambda c: c.data.metrics["cv_balanced_accuracy_mean"])
    assert result["best_cv"] == pytest.approx(best_child.data.metrics["cv_balanced_accuracy_mean"])

    # Reproducibility record, dataset input, reference data and evaluation plots on the parent run.
    assert parent.data.tags["workbench.dataset_hash"]
    assert parent.data.tags["workbench.version.scikit-learn"]
    assert parent.data.params["seed"] == "7"
    assert parent.inputs.dataset_inputs, "the dataset's content hash is logged as an MLflow dataset input"
    assert parent.inputs.dataset_inputs[0].dataset.digest == parent.data.tags["workbench.dataset_hash"][:36]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)} | {
        a.path for folder in ("evaluation", "reference") for a in client.list_artifacts(parent.info.run_id, folder)
    }
    for path in ("model", "config.json", "reference/reference.parquet", "evaluation/feature_importance.csv",
                 "evaluation/confusion_matrix.json", "evaluation/roc_curve.json"):
        assert path in artifacts, path
    reference = pd.read_parquet(client.download_artifacts(parent.info.run_id, "reference/reference.parquet"))
    assert {"x1", "x2", "colour", "label", "prediction"} <= set(reference.columns)

    # Registered as version 1; it beats the logistic baseline by far, and there was no champion.
    assert result["bar"] is not None and result["beat_baseline"] is True
    assert result["model_version"] == "1" and result["champion"] is True
    version = client.get_model_version_by_alias(slug, CHAMPION)
    assert str(version.version) == "1" and version.run_id == parent.info.run_id
    # The automatic first champion is in the promotion history, like every other alias move.
    history = _history(slug)
    assert [(h["alias"], h["action"], h["from_version"], h["to_version"]) for h in history] == [
        ("champion", "promote", None, "1")]
    assert job["id"] in history[0]["actor"] and "bar to beat" in history[0]["reason"]

    # The registered model is the whole Pipeline: it scores raw rows (categorical text included).
    import mlflow.pyfunc
    import mlflow.sklearn

    local = client.download_artifacts(parent.info.run_id, "model", str(workbench_home / "dl"))
    raw = xor_frame(n=20, seed=99).drop(columns=["label"])
    pipeline = mlflow.sklearn.load_model(local)
    assert set(pipeline.predict(raw)) <= {"yes", "no"}
    pyfunc = mlflow.pyfunc.load_model(local)
    assert list(pyfunc.predict(raw)) == list(pipeline.predict(raw))
    assert pyfunc.metadata.get_input_schema().input_names() == ["x1", "x2", "colour"]
    holdout_score = result["holdout_metrics"]["balanced_accuracy"]
    assert holdout_score > result["bar"]["value"]

    # Comparable with the baselines: the same holdout_ metric names, the PR curve beside ROC.
    baseline = client.get_run(result["bar"]["run_id"])
    holdout_names = {k for k in parent.data.metrics if k.startswith("holdout_")}
    assert holdout_names and holdout_names == {k for k in baseline.data.metrics if k.startswith("holdout_")}
    assert baseline.data.metrics[f"holdout_{result['metric']}"] == pytest.approx(result["bar"]["value"])
    assert "evaluation/pr_curve.json" in {a.path for a in client.list_artifacts(parent.info.run_id, "evaluation")}
    assert "plots/pr.json" in {a.path for a in client.list_artifacts(baseline.info.run_id, "plots")}

    # A second job: registered as version 2 but flagged, since a champion exists.
    second = run_job_ok(slug, "train", {**PARAMS, "n_trials": 2})["result"]
    assert second["model_version"] == "2" and second["champion"] is False
    assert "already the champion" in second["flag"]
    assert client.get_model_version(slug, "2").tags[TAG_FLAG] == second["flag"]
    assert str(client.get_model_version_by_alias(slug, CHAMPION).version) == "1"
    assert len(_history(slug)) == 1  # a flagged version moves no alias


def _figure_classes(run_id: str, path: str) -> list[str]:
    import plotly.io as pio

    local = _client().download_artifacts(run_id, path)
    with open(local, encoding="utf-8") as handle:
        return list(pio.from_json(handle.read()).data[0].x)


def test_confusion_matrices_take_the_model_s_class_order(workbench_home: Path) -> None:
    """Integer classes 1, 2, 10: every run draws them as the model's classes_ (not 1, 10, 2 as text sorts)."""
    seed_mlflow_store(workbench_home)
    frame = xor_frame(n=240, seed=4)
    frame["label"] = np.select([frame["x1"] < -0.3, frame["x1"] < 0.3], [1, 2], default=10)
    with session_scope() as session:
        slug = create_project_with_dataset(session, name="Three classes", dataset_spec_or_frame=frame,
                                           target="label", task_type="classification").slug
    baselines = run_job_ok(slug, "baseline")["result"]["baselines"]
    job = run_job_ok(slug, "train", {"models": ["linear"], "n_trials": 1, "folds": 2, "seed": 1})
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(_client().download_artifacts(job["run_id"], "model",
                                                                   str(workbench_home / "three")))
    order = [str(c) for c in model.classes_]
    assert order == ["1", "2", "10"]
    assert _figure_classes(job["run_id"], "evaluation/confusion_matrix.json") == order
    for entry in baselines:
        assert _figure_classes(entry["run_id"], "plots/confusion_matrix.json") == order, entry["name"]


def test_same_seed_same_result_and_no_bar_means_flagged(workbench_home: Path) -> None:
    slug = _project(workbench_home, name="Xor again")
    params = {"models": ["linear", "knn"], "n_trials": 4, "folds": 2, "seed": 11}
    first = run_job_ok(slug, "train", params)["result"]
    second = run_job_ok(slug, "train", params)["result"]
    assert first["study"] != second["study"]
    assert (first["family"], first["best_params"]) == (second["family"], second["best_params"])
    assert first["holdout_metric"] == second["holdout_metric"]
    assert first["best_cv"] == second["best_cv"]
    # No baselines were run: there is no bar, so the version is registered but not champion.
    assert first["champion"] is False and "no bar to beat" in first["flag"]
    different = run_job_ok(slug, "train", {**params, "seed": 12})["result"]
    assert different["study"] != first["study"]


BOX_TEXTS = {
    ("ml_canvas", "value_proposition"): "Shop owners see which orders to check first.",
    ("ml_canvas", "prediction_task"): "Each order: yes or no.",
    ("ml_canvas", "decisions"): "Orders above the threshold go to a person.",
    ("ml_canvas", "impact_simulation"): "A missed order costs 40; no rule may treat regions differently.",
    ("ml_canvas", "features"): "x1, x2 and the colour.\n# not a heading\n- not a list\n1. not a list",
    ("mlops_stack", "value_proposition"): "Faster checks for the ops team. Models are run by team Kestrel.",
}


def _save_boxes(slug: str) -> None:
    from workbench.design.canvases.store import load_canvas, save_canvas
    from workbench.projects import get_project

    with session_scope() as session:
        project = get_project(session, slug=slug)
        for kind in ("ml_canvas", "mlops_stack"):
            revision, content = load_canvas(session, project=project, kind=kind)
            for (box_kind, box), text in BOX_TEXTS.items():
                if box_kind == kind:
                    content["boxes"][box]["text"] = text
            save_canvas(session, project=project, kind=kind, content=content, base_revision=revision, author="ann")


def _section(card: str, title: str) -> str:
    start = card.index(f"## {title}\n")
    end = card.find("\n## ", start + 1)
    return card[start:end if end != -1 else None]


def test_the_model_card_is_fed_from_the_box_that_means_each_thing(workbench_home: Path) -> None:
    from workbench.projects import get_project
    from workbench.registry import model_card

    seed_mlflow_store(workbench_home)
    with session_scope() as session:
        slug = create_project_with_dataset(session, name="Card # 1", dataset_spec_or_frame=xor_frame(),
                                           target="label", task_type="classification", actor="ann").slug
    _save_boxes(slug)
    first = run_job_ok(slug, "train", {"models": ["knn"], "n_trials": 2, "folds": 2, "seed": 1})
    resumed = run_job_ok(slug, "train", {"n_trials": 3, "resume_of": first["id"]})
    assert resumed["result"]["trials_finished"] == 5
    with session_scope() as session:
        card = model_card(session, project=get_project(session, slug=slug), version=resumed["result"]["model_version"])

    # Owner is the project's owner, not the first line of the MLOps Stack's Value Proposition.
    assert "| owner | ann (created the project) |" in card
    assert "Faster checks" not in card.split("| owner |")[1].split("\n")[0]
    assert "Models are run by team Kestrel." in _section(card, "Model details")
    # Each box feeds one section: Impact Simulation only Ethical considerations, Decisions only Metrics.
    impact, decisions = BOX_TEXTS[("ml_canvas", "impact_simulation")], BOX_TEXTS[("ml_canvas", "decisions")]
    assert card.count("A missed order costs 40") == 1 and "A missed order costs 40" in _section(
        card, "Ethical considerations")
    assert impact.split(";")[0] not in _section(card, "Evaluation data")
    assert card.count(decisions) == 1 and decisions in _section(card, "Metrics and decision threshold")
    assert decisions not in _section(card, "Intended use")
    assert "Shop owners see which orders to check first." in _section(card, "Intended use")
    # Canvas text is escaped: a '#' line is no heading, '- ' and '1.' lines no list; the title's '#' too.
    lines = card.splitlines()
    assert [line for line in lines if line.startswith("# ")] == ["# Model card · Card \\# 1 · version 2"]
    assert "\\# not a heading" in card and "\\- not a list" in card and "1\\. not a list" in card
    assert not any(line.startswith(("# not", "- not", "1. not")) for line in lines)
    # The real trial count of the study after the resume, not the resumed job's budget.
    quantitative = _section(card, "Quantitative analyses")
    assert "Trials: **5** finished" in quantitative and f"resumed from job {first['id']}" in quantitative
    assert "| n_trials |" not in quantitative
    # One table says where each part comes from, in CANVASES.md's terms.
    sources = _section(card, "Sources")
    assert "| Ethical considerations | Machine Learning Canvas · Impact Simulation |" in sources
    assert "| Model details | MLOps Stack Canvas · 1. Value Proposition |" in sources


def test_the_decision_threshold_decides_the_holdout_labels_and_the_gate(workbench_home: Path) -> None:
    """With 0.3 on the ML Canvas, the holdout metrics, the confusion matrix and the bar use P(yes) > 0.3."""
    from tests.helpers.drifted_churn import set_canvas_fields
    from workbench.data.splits import load_split_frames
    from workbench.evaluation.metrics import compute_metrics, confusion
    from workbench.projects import get_project

    slug = _project(workbench_home, name="Threshold")
    set_canvas_fields(slug, {("decisions", "decision_threshold"): 0.3})
    baseline = run_job_ok(slug, "baseline")["result"]
    job = run_job_ok(slug, "train", {"models": ["linear"], "n_trials": 1, "folds": 2, "seed": 2})
    result = job["result"]
    client = _client()
    assert client.get_model_version(slug, "1").tags["workbench.decision_threshold"] == "0.3"

    import mlflow.sklearn
    import plotly.io as pio

    model = mlflow.sklearn.load_model(client.download_artifacts(job["run_id"], "model", str(workbench_home / "t")))
    with session_scope() as session:
        frames = load_split_frames(session, project=get_project(session, slug=slug))
    proba = model.predict_proba(frames.X_holdout)
    labels = np.where(proba[:, 1] > 0.3, "yes", "no")
    assert (labels != model.predict(frames.X_holdout)).any(), "some holdout rows fall between 0.3 and 0.5"
    expected = compute_metrics(task_type="classification", y_true=frames.y_holdout, y_pred=labels, y_proba=proba,
                               classes=["no", "yes"])
    assert result["holdout_metrics"] == pytest.approx(expected)  # the gate reads these
    with open(client.download_artifacts(job["run_id"], "evaluation/confusion_matrix.json"), encoding="utf-8") as f:
        matrix = np.asarray(pio.from_json(f.read()).data[0].z).tolist()
    assert matrix == confusion(frames.y_holdout, labels, ["no", "yes"])
    # The bar is measured the same way: the logistic baseline's labels also follow the threshold.
    logistic = next(b for b in baseline["baselines"] if b["name"] == "logistic_regression")
    assert client.get_run(logistic["run_id"]).data.params["decision_threshold"] == "0.3"
