"""The canvases as data: every box of CANVASES.md, a grid that mirrors the paper, fields that match project_config."""

from __future__ import annotations

import pytest

from workbench.design.canvases.content import (
    completeness,
    diff_content,
    empty_content,
    merge_content,
    normalize_content,
)
from workbench.design.canvases.definitions import (
    ARTEFACT_KINDS,
    CRISP_DM,
    JOB_ARTEFACTS,
    ML_CANVAS,
    MLOPS_STACK,
    CanvasDef,
    definition,
    layout_bands,
)
from workbench.design.project_config import CANVAS_FIELDS, DEPLOYMENT_MODES, PRIMARY_METRICS, RETRAIN_POLICIES
from workbench.errors import InvalidInput


def test_ml_canvas_boxes_and_groups_follow_the_design() -> None:
    groups = {box.id: box.group for box in ML_CANVAS.boxes}
    assert groups == {
        "value_proposition": "Goal",
        "prediction_task": "Predict",
        "decisions": "Predict",
        "impact_simulation": "Predict",
        "making_predictions": "Predict",
        "data_collection": "Learn",
        "data_sources": "Learn",
        "building_models": "Learn",
        "features": "Learn",
        "monitoring": "Evaluate",
    }


def test_mlops_stack_boxes_keep_the_canvas_numbers() -> None:
    numbers = {box.id: box.number for box in MLOPS_STACK.boxes}
    assert numbers == {
        "value_proposition": 1,
        "mlops_dilemmas": 0,
        "data_sources_versioning": 2,
        "data_analysis_experiments": 3,
        "feature_store_workflows": 4,
        "foundations": 5,
        "ci_ct_cd": 6,
        "model_registry": 7,
        "model_deployment": 8,
        "prediction_serving": 9,
        "monitoring": 10,
        "metadata_store": 11,
    }
    assert MLOPS_STACK.box("model_registry").heading == "7. Model Registry & Versioning"


@pytest.mark.parametrize("canvas", [ML_CANVAS, MLOPS_STACK], ids=lambda c: c.kind)
def test_every_box_has_a_prompt_and_the_grid_has_no_overlap(canvas: CanvasDef) -> None:
    cells: dict[tuple[int, int], str] = {}
    for box in canvas.boxes:
        assert box.prompt.strip().endswith(("?", ".")), box.id
        for row in range(box.row, box.row + box.rows):
            for col in range(box.col, box.col + box.span):
                assert 0 <= col < canvas.columns
                assert (row, col) not in cells, f"{box.id} overlaps {cells.get((row, col))}"
                cells[(row, col)] = box.id
    # every cell of the grid is covered: the page has no holes
    rows = max(r for r, _ in cells) + 1
    assert len(cells) == rows * canvas.columns


def test_layout_mirrors_the_paper_canvases() -> None:
    # ML Canvas: Predict | Goal | Learn in columns, Monitoring (Evaluate) along the bottom.
    top, bottom = layout_bands(ML_CANVAS)
    by_col = {col: [b.group for b in top if b.col == col] for col in range(5)}
    assert by_col == {0: ["Predict"] * 2, 1: ["Predict"] * 2, 2: ["Goal"], 3: ["Learn"] * 2, 4: ["Learn"] * 2}
    assert [b.id for b in bottom] == ["monitoring"] and bottom[0].span == 5
    # MLOps Stack: Data & Code left, value proposition and dilemmas centre, Model Management right,
    # Metadata along the bottom.
    top, bottom = layout_bands(MLOPS_STACK)
    assert {b.group for b in top if b.col in (0, 1)} == {"Data & Code"}
    assert [b.id for b in top if b.col == 2] == ["value_proposition", "mlops_dilemmas"]
    assert {b.group for b in top if b.col in (3, 4)} == {"Model Management"}
    assert [b.id for b in bottom] == ["metadata_store", "monitoring"]


def test_structured_fields_are_the_ones_project_config_reads() -> None:
    declared = {(box.id, f.id) for box in ML_CANVAS.boxes for f in box.fields}
    assert declared == set(CANVAS_FIELDS.values())
    assert set(ML_CANVAS.box("impact_simulation").field("primary_metric").choices) == set(PRIMARY_METRICS)
    assert ML_CANVAS.box("making_predictions").field("deployment_mode").choices == DEPLOYMENT_MODES
    assert ML_CANVAS.box("building_models").field("retrain_policy").choices == RETRAIN_POLICIES
    threshold = ML_CANVAS.box("decisions").field("decision_threshold")
    assert (threshold.type, threshold.min, threshold.max) == ("number", 0.0, 1.0)
    assert not any(box.fields for box in MLOPS_STACK.boxes)


def test_crisp_dm_has_six_phases_of_generic_tasks_with_outputs() -> None:
    assert [p.title for p in CRISP_DM.phases] == [
        "Business Understanding",
        "Data Understanding",
        "Data Preparation",
        "Modeling",
        "Evaluation",
        "Deployment",
    ]
    assert [len(p.tasks) for p in CRISP_DM.phases] == [4, 4, 5, 4, 3, 4]
    assert len(set(CRISP_DM.task_ids)) == len(CRISP_DM.task_ids)
    for task in CRISP_DM.tasks:
        assert task.outputs
        assert set(task.artefact_kinds) <= set(ARTEFACT_KINDS)
    assert "profile" in CRISP_DM.task("verify_data_quality").artefact_kinds
    assert "baseline" in CRISP_DM.task("generate_test_design").artefact_kinds
    assert "tuning" in CRISP_DM.task("build_model").artefact_kinds
    assert "model" in CRISP_DM.task("evaluate_results").artefact_kinds
    assert set(JOB_ARTEFACTS.values()) <= set(ARTEFACT_KINDS)


def test_unknown_kind_box_and_field_name_the_allowed_values() -> None:
    with pytest.raises(InvalidInput, match="kind must be one of 'ml_canvas', 'mlops_stack', 'crisp_dm'; got 'lean'"):
        definition("lean")
    with pytest.raises(InvalidInput, match="box must be one of value_proposition"):
        ML_CANVAS.box("budget")
    with pytest.raises(InvalidInput, match="got 'speed'"):
        ML_CANVAS.box("decisions").field("speed")


def test_normalize_validates_types_and_ranges_naming_the_field() -> None:
    content = {"boxes": {"decisions": {"fields": {"decision_threshold": 2}}}}
    with pytest.raises(InvalidInput) as info:
        normalize_content("ml_canvas", content)
    assert info.value.field == "decisions.decision_threshold"
    with pytest.raises(InvalidInput, match="must be a number"):
        normalize_content("ml_canvas", {"boxes": {"decisions": {"fields": {"decision_threshold": True}}}})
    with pytest.raises(InvalidInput, match="deployment_mode must be one of batch, web, stream"):
        normalize_content("ml_canvas", {"boxes": {"making_predictions": {"fields": {"deployment_mode": "fax"}}}})
    with pytest.raises(InvalidInput, match="status must be one of"):
        normalize_content("crisp_dm", {"tasks": {"clean_data": {"status": "half"}}})
    with pytest.raises(InvalidInput, match=r"links\[0\]\.kind must be one of"):
        normalize_content("crisp_dm", {"tasks": {"clean_data": {"links": [{"kind": "x", "ref": "y"}]}}})
    canonical = normalize_content(
        "ml_canvas", {"boxes": {"features": {"text": "a\r\nb\rc"}, "decisions": {"fields": {"decision_threshold": 1}}}}
    )
    assert canonical["boxes"]["features"]["text"] == "a\nb\nc"
    assert canonical["boxes"]["decisions"]["fields"]["decision_threshold"] == 1.0
    assert set(canonical["boxes"]) == set(ML_CANVAS.box_ids)


def test_completeness_counts_boxes_with_an_answer_and_tasks_done() -> None:
    content = empty_content("ml_canvas")
    assert completeness(content, "ml_canvas") == (0, 10)
    content["boxes"]["features"]["text"] = "   \n"  # blank does not count
    content["boxes"]["decisions"]["fields"]["decision_threshold"] = 0.5
    content["boxes"]["value_proposition"]["text"] = "x"
    assert completeness(content, "ml_canvas") == (2, 10)
    tracker = empty_content("crisp_dm")
    tracker["tasks"]["clean_data"]["status"] = "done"
    tracker["tasks"]["format_data"]["status"] = "in_progress"
    assert completeness(tracker, "crisp_dm") == (1, 24)


def test_diff_and_merge_work_per_box_part() -> None:
    base = empty_content("ml_canvas")
    mine = empty_content("ml_canvas")
    theirs = empty_content("ml_canvas")
    mine["boxes"]["features"]["text"] = "mine"
    theirs["boxes"]["impact_simulation"]["fields"]["primary_metric"] = "f1"
    theirs["boxes"]["features"]["fields"] = {}
    changes = diff_content("ml_canvas", base, theirs)
    assert [(c.unit, c.parts) for c in changes] == [("impact_simulation", ("fields.primary_metric",))]
    merged = merge_content("ml_canvas", base=base, mine=mine, theirs=theirs)
    assert merged.taken_theirs == ("impact_simulation.fields.primary_metric",)
    assert merged.conflicts == ()
    assert merged.content["boxes"]["features"]["text"] == "mine"
    assert merged.content["boxes"]["impact_simulation"]["fields"]["primary_metric"] == "f1"
    # same change on both sides is not a conflict
    theirs["boxes"]["features"]["text"] = "mine"
    assert merge_content("ml_canvas", base=base, mine=mine, theirs=theirs).conflicts == ()
