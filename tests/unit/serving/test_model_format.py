"""No pickled code (issue 12): a cloudpickle model is refused before it is unpickled.

The attack: a model registered as ``P@champion`` in cloudpickle format whose unpickling writes a
file. Loading it for scoring (batch, web, stream all go through ``load_model``) must refuse it,
naming the model, the format and the setting, and the file must not appear.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.registered_model import build_pipeline, seed_mlflow_store, tiny_frame
from workbench.errors import InvalidInput


class _WritesAFile:
    """Unpickling this calls ``Path.touch(marker)``: any code could run the same way."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _register_cloudpickle(workbench_home: Path, name: str, marker: Path) -> str:
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from workbench.settings import get_settings

    uri = get_settings().mlflow_tracking_uri
    seed_mlflow_store(uri)
    frame = tiny_frame()
    x, y = frame[["age", "plan", "monthly_fee"]], frame["churned"]
    pipeline = build_pipeline().fit(x, y)
    pipeline.payload = _WritesAFile(marker)  # rides along inside the pickled Pipeline
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(f"workbench/{name}",
                                          artifact_location=(workbench_home / "art").resolve().as_uri())
    run = client.create_run(experiment)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.sklearn.save_model(pipeline, f"{tmp}/model", serialization_format="cloudpickle",
                                  signature=infer_signature(x, pipeline.predict(x)), pip_requirements=["scikit-learn"])
        client.log_artifacts(run.info.run_id, f"{tmp}/model", "model")
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return str(version.version)


def test_a_cloudpickle_model_is_refused_before_it_runs(workbench_home: Path, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    from workbench.serving.model_loader import load_model

    marker = workbench_home / "pwned"
    version = _register_cloudpickle(workbench_home, "evil", marker)
    assert not marker.exists()  # saving ran the reduce only to record it
    monkeypatch.delenv("WORKBENCH_TRUST_PICKLE", raising=False)
    with pytest.raises(InvalidInput) as info:
        load_model("evil")
    message = str(info.value)
    assert not marker.exists(), "unpickling ran the model's code"
    assert f"model evil version {version}" in message and "cloudpickle" in message
    assert "WORKBENCH_TRUST_PICKLE=true" in message


def test_the_operator_may_allow_pickled_models(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.serving.model_loader import load_model

    marker = workbench_home / "allowed"
    _register_cloudpickle(workbench_home, "trusted", marker)
    monkeypatch.setenv("WORKBENCH_TRUST_PICKLE", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    load_model("trusted")
    assert marker.exists()  # the setting means what it says: the code ran
