"""The Experiments page's parameter charts over a real study of the default model families, resumed
once (issue 15, "Charts that read"): one family at a time, few short labels, the best-covered
contour pair, and importances per family over every finished trial of the study, the resumed job's
included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.app_pages import open_page
from tests.helpers.experiments_project import seed_experiments_project
from tests.helpers.jobs import run_job_ok
from tests.helpers.registered_model import module_home

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "experiments.py")
FAMILIES = ["linear", "random_forest", "hist_gradient_boosting"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from workbench.settings import get_settings
    from workbench.training.train_jobs import check_params

    with module_home(tmp_path_factory) as home:
        seeded = seed_experiments_project(home, name="Families", train_jobs=0)
        slug = seeded["slug"]
        first = run_job_ok(slug, "train", {"models": FAMILIES, "n_trials": 10, "folds": 2, "seed": 5})
        resume = {"n_trials": 8, "resume_of": first["id"]}
        resumed = run_job_ok(slug, "train", {**resume, **check_params(get_settings(), slug, resume).job_params()})
        yield {**seeded, "first": first, "resumed": resumed}


def _study(slug: str, job_id: str) -> Any:
    from workbench.settings import get_settings
    from workbench.training.optuna_storage import load_study
    from workbench.training.study import study_name

    study = load_study(study_name(slug, job_id), settings=get_settings())
    assert study is not None
    return study


def _figures(at: AppTest) -> dict[str, dict[str, Any]]:
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        out[spec["layout"]["title"]["text"]] = spec
    return out


CHART_OF = {"Parallel coordinates": "Parallel coordinates", "Slices": "Slices", "Parameter importance": "Importance",
            "Contour": "Contour", "Optimisation history": "History"}


def _figure(at: AppTest, prefix: str) -> dict[str, Any]:
    """The figure whose title starts with ``prefix``, once its chart is picked (one chart is drawn at a time)."""
    if prefix in CHART_OF and at.radio(key="experiments.chart").value != CHART_OF[prefix]:
        at.radio(key="experiments.chart").set_value(CHART_OF[prefix]).run()
        assert not at.exception, at.exception
    figures = _figures(at)
    return next((spec for title, spec in figures.items() if title.startswith(prefix)),
                {"missing": [prefix, list(figures), [i.value for i in at.info]]})


def test_parameter_charts_show_one_family_with_readable_labels(project: dict[str, Any]) -> None:
    from optuna.trial import TrialState

    slug = project["slug"]
    study = _study(slug, project["first"]["id"])
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(study.trials) == 18, "the resumed job's trials are in the first job's study"
    by_family = {f: [t for t in complete if t.params["family"] == f] for f in FAMILIES}
    # The family with the most finished trials among those with several params (linear has one).
    family = max(("random_forest", "hist_gradient_boosting"), key=lambda f: len(by_family[f]))
    assert len(by_family[family]) >= 3

    at = open_page(PAGE, slug, timeout=120)
    assert not at.exception, at.exception
    chooser = at.selectbox(key="experiments.family")
    assert sorted(chooser.options) == sorted(f for f in FAMILIES if by_family[f])
    chooser.set_value(family).run()
    # Importance of the resumed job's study: every finished trial of the family, its own params.
    at.radio(key="experiments.chart").set_value("Importance").run()  # its study picker shows with the chart
    at.selectbox(key="experiments.importance_job").set_value(project["resumed"]["id"]).run()
    assert not at.exception, at.exception
    importance = _figure(at, "Parameter importance")
    assert "data" in importance, importance
    title = importance["layout"]["title"]["text"]
    assert f"{len(by_family[family])} trials" in title and family in title, title
    assert sorted(importance["data"][0]["y"]) == sorted(_family_space(family))

    parallel = _figure(at, "Parallel coordinates")
    labels = [d["label"] for d in parallel["data"][0]["dimensions"]]
    assert f"· {family} ·" in parallel["layout"]["title"]["text"]
    assert "family" not in labels and not any("__" in label for label in labels), labels
    assert len(labels) - 1 == len(_family_space(family)) and all(len(label) <= 18 for label in labels[:-1])
    assert len(parallel["data"][0]["dimensions"][0]["values"]) == len(by_family[family]), "the family's runs only"

    slices = _figure(at, "Slices")
    titles = [a["text"] for a in slices["layout"]["annotations"] if not a["text"].startswith("bar to beat")]
    assert titles == labels[:-1]

    # The contour opens on a pair every run of the family has.
    contour = _figure(at, "Contour")
    assert contour["layout"]["title"]["text"] == f"Contour · {family} · {len(by_family[family])} runs"


def _family_space(family: str) -> list[str]:
    from workbench.training.model_families import FAMILIES as SPACES

    return [spec.name for spec in SPACES[family].space]
