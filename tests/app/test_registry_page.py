"""The Registry page in AppTest over two real tuning jobs (v1 champion, v2 not): versions, promote and
rollback behind a confirmation with a reason, the history, compare with the champion and the model card."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.app_pages import open_page, record_downloads
from tests.helpers.experiments_project import seed_experiments_project
from tests.helpers.registered_model import module_home

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "registry.py")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with module_home(tmp_path_factory) as home:
        yield seed_experiments_project(home, train_jobs=2)


def _app(slug: str) -> AppTest:
    at = open_page(PAGE, slug, timeout=60, state={"shell.display_name": "carol"})
    assert not at.exception, at.exception
    return at


def _champion(slug: str) -> str:
    from workbench.tracking import get_client

    return str(get_client().get_model_version_by_alias(slug, "champion").version)


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_versions_promote_and_rollback_with_reasons(project: dict[str, Any]) -> None:
    slug = project["slug"]
    at = _app(slug)
    versions = at.dataframe[0].value
    assert list(versions["version"]) == ["2", "1"]
    assert list(versions["aliases"]) == ["", "champion"]
    assert list(versions["beat baseline"]) == ["yes" if j["result"]["beat_baseline"] else "no"
                                               for j in reversed(project["train"])]
    assert list(versions["run"]) == [j["run_id"] for j in reversed(project["train"])]
    assert list(versions["job"]) == [j["id"] for j in reversed(project["train"])]
    assert _metric(at, "champion") == "v1"

    # Promote v2: a confirmation asks for the reason; an empty one is refused.
    at.selectbox(key="registry.promote_version").set_value("2")
    at.radio(key="registry.promote_alias").set_value("champion")
    at.button(key="registry.promote_open").click().run()
    at.button(key="registry.promote_confirm").click().run()
    assert any("reason is required" in e.value for e in at.error)
    assert _champion(slug) == "1"
    at.text_area(key="registry.promote_reason").input("v2 wins on the fresh holdout").run()
    at.button(key="registry.promote_confirm").click().run()
    assert not at.exception, at.exception
    assert _champion(slug) == "2" and _metric(at, "champion") == "v2"
    history = at.dataframe[1].value
    assert list(history[["action", "from_version", "to_version", "actor", "reason"]].iloc[0]) == [
        "promote", "1", "2", "carol", "v2 wins on the fresh holdout"]

    # Roll back: v1 is champion again, with its reason in the history.
    at.button(key="registry.rollback_open").click().run()
    at.text_area(key="registry.rollback_reason").input("latency regression").run()
    at.button(key="registry.rollback_confirm").click().run()
    assert not at.exception, at.exception
    assert _champion(slug) == "1"
    history = at.dataframe[1].value
    # Oldest: the tuning job's automatic first champion (v1), which now writes its row too.
    assert list(history["action"]) == ["rollback", "promote", "promote"]
    assert list(history[["from_version", "to_version"]].iloc[-1]) == [None, "1"]
    assert history["reason"].iloc[0] == "latency regression" and history["to_version"].iloc[0] == "1"


def test_compare_with_champion_and_model_card(project: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    download = record_downloads(monkeypatch)
    at = _app(project["slug"])
    at.selectbox(key="registry.compare_version").set_value("2")
    at.button(key="registry.compare_go").click().run()
    assert not at.exception, at.exception
    verdict = next(m.value for m in at.markdown if "holdout rows" in m.value)
    assert "**v2**" in verdict and "champion v1" in verdict
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert sum('"v2"' in t for t in titles) >= 3 and sum("v1 (champion)" in t for t in titles) >= 3
    card = next(m.value for m in at.markdown if m.value.startswith("# Model card"))
    for section in ("## Model details", "## Intended use", "## Factors", "## Metrics and decision threshold",
                    "## Evaluation data", "## Training data", "## Quantitative analyses",
                    "## Ethical considerations", "## Caveats and recommendations"):
        assert section in card
    # The download hands out the same card, built when clicked (not on every run of the page).
    file_name, content = download(next(b for b in at.get("download_button") if "model card" in b.proto.label))
    assert file_name == f"{project['slug']}-v{at.selectbox(key='registry.card_version').value}-model-card.md"
    assert content.startswith("# Model card") and "## Caveats and recommendations" in content


def test_version_selects_say_what_they_are_for(project: dict[str, Any]) -> None:
    """Issue 15: the three selects were all labelled "Version"."""
    at = _app(project["slug"])
    labels = {s.key: s.label for s in at.selectbox}
    assert labels["registry.promote_version"] == "Version to promote"
    assert labels["registry.compare_version"] == "Version to compare with the champion"
    assert labels["registry.card_version"] == "Model card of version"
    assert len(set(labels.values())) == len(labels), labels


def test_primary_metric_comes_right_after_version_and_aliases(project: dict[str, Any]) -> None:
    """Issue 15: the canvas's primary metric was off-screen, after the other holdout metrics."""
    from workbench.db import session_scope
    from workbench.design.project_config import project_config
    from workbench.projects import get_project
    from workbench.registry import list_versions

    slug = project["slug"]
    with session_scope() as session:
        row = get_project(session, slug=slug)
        primary = project_config(session, project=row).primary_metric
        holdout = {v.version: v.holdout_metrics[primary] for v in list_versions(session, project=row)}
    table = _app(slug).dataframe[0].value
    assert list(table.columns[:3]) == ["version", "aliases", f"holdout {primary}"]
    assert sorted(table.columns).index(f"holdout {primary}") > 2, "alphabetically it would not come third"
    assert list(table[f"holdout {primary}"]) == [pytest.approx(holdout[v]) for v in table["version"]]


def test_promotion_history_is_shown_as_a_timeline(project: dict[str, Any]) -> None:
    """Issue 15: the alias moves, oldest to newest, one lane per alias, with time, actor and reason."""
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.registry import history, promotion_dict

    slug = project["slug"]
    at = _app(slug)
    at.selectbox(key="registry.promote_version").set_value("2")
    at.radio(key="registry.promote_alias").set_value("challenger")
    at.button(key="registry.promote_open").click().run()
    at.text_area(key="registry.promote_reason").input("try v2 on live traffic").run()
    at.button(key="registry.promote_confirm").click().run()
    assert not at.exception, at.exception
    with session_scope() as session:
        moves = [promotion_dict(r) for r in history(session, project=get_project(session, slug=slug))][::-1]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    timeline = next(c for c in charts if c["layout"]["title"]["text"].startswith("Promotion timeline"))
    assert timeline["layout"]["title"]["text"] == f"Promotion timeline · {len(moves)} alias moves"
    lanes = {trace["name"]: trace for trace in timeline["data"]}
    assert set(lanes) == {m["alias"] for m in moves} and "challenger" in lanes
    for alias, trace in lanes.items():
        lane = [m for m in moves if m["alias"] == alias]  # oldest first
        assert list(trace["x"]) == [m["created_at"] for m in lane]
        assert list(trace["y"]) == [alias] * len(lane)
        assert list(trace["text"]) == [f"{'v' + m['from_version'] if m['from_version'] else 'none'} → "
                                       f"v{m['to_version']}" for m in lane]
        assert [c[1:] for c in trace["customdata"]] == [[m["actor"] or "—", m["reason"] or "—"] for m in lane]
    assert lanes["challenger"]["text"][-1] == "none → v2"
    assert lanes["challenger"]["customdata"][-1] == ["promote", "carol", "try v2 on live traffic"]


def test_a_new_home_opens_registry_and_deployments_without_creating_the_mlflow_store(workbench_home: Path) -> None:
    """Issue 15: on a new home the Registry page waited seconds for MLflow to create its store, to say "nothing"."""
    from tests.bad_inputs import good_frame
    from workbench.data.datasets import create_project_with_dataset
    from workbench.db import session_scope
    from workbench.settings import get_settings

    with session_scope() as session:
        slug = create_project_with_dataset(session, name="Fresh", dataset_spec_or_frame=good_frame(),
                                           target="label", task_type="classification").slug
    store = Path(get_settings().mlflow_tracking_uri.removeprefix("sqlite:///"))
    registry = open_page(PAGE, slug, timeout=60)
    assert not registry.exception, registry.exception
    assert [i.value for i in registry.info] == ["No model is registered yet: a tuning job registers its best model."]
    deployments = open_page(str(Path(PAGE).with_name("deployments.py")), slug, timeout=60)
    assert not deployments.exception, deployments.exception
    assert any(f"No model version has the alias `champion` for `{slug}`" in w.value for w in deployments.warning)
    assert not store.exists(), "looking at the pages created the MLflow store"
