"""Batch scoring loads the registered model without importing MLflow (issue 16 item 3), with MLflow's answers.

A real champion trained by the real pipelines on the messy tips data (gaps in numeric and string
columns, a date, a column name with a trailing space) is loaded twice: through the registry tables
and the local files (:mod:`workbench.serving._local_model`) and through MlflowClient and
``mlflow.sklearn``; both must give the same version, run, signature, classes, threshold and, bit
for bit, the same predictions. ``workbench score`` run as a real process must not import MLflow
(checked in the child's ``sys.modules``), and the cases the reader does not handle go through MLflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.messy_data import train_messy_champion, write_messy_csv
from tests.helpers.registered_model import module_home, seed_mlflow_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from workbench.settings import get_settings

    with module_home(tmp_path_factory, "nomlflow") as home:
        get_settings().ensure_home()
        seed_mlflow_store(get_settings().mlflow_tracking_uri)
        slug = train_messy_champion(home.parent, name="Tips without MLflow", n=1200, seed=5)
        yield slug, home


def test_the_local_reader_gives_what_mlflow_gives_on_messy_data(champion: tuple[str, Path], tmp_path: Path) -> None:
    from workbench.serving._local_model import read_local_model
    from workbench.serving.model_loader import _load_through_mlflow, load_model
    from workbench.settings import get_settings

    slug, _ = champion
    settings = get_settings()
    local = read_local_model(settings, slug, alias="champion", version=None)
    assert local is not None, "a SQLite registry with file:// artifacts is read without MLflow"
    version, run_id, tags, columns, pipeline = _load_through_mlflow(slug, "champion", None, settings)
    assert (local.version, local.run_id, local.tags, local.columns) == (version, run_id, tags, columns)
    served = load_model(slug)
    assert served.version == version and served.run_id == run_id
    assert any(c.name == "total bill" for c in served.columns)  # the odd name, as registration normalised it
    write_messy_csv(tmp_path / "tips.csv", n=700, seed=21)
    frame = pd.read_csv(tmp_path / "tips.csv")  # gaps as NaN, text as read from a file
    predictions, proba = served.predict_frame(frame)
    # The same version loaded by mlflow.sklearn, behind the same contract: bit for bit the same outputs.
    expected_predictions, expected_proba = replace(served, pipeline=pipeline).predict_frame(frame)
    assert proba is not None and expected_proba is not None and np.array_equal(proba, expected_proba)
    assert np.array_equal(predictions, expected_predictions) and len(set(predictions)) == 2


def test_an_explicit_version_and_the_missing_cases(champion: tuple[str, Path]) -> None:
    from workbench.errors import NotFound
    from workbench.serving._local_model import read_local_model
    from workbench.serving.model_loader import load_model
    from workbench.settings import get_settings

    slug, _ = champion
    settings = get_settings()
    assert read_local_model(settings, slug, alias="champion", version="1") is not None
    # Not answerable here: MLflow answers, with its own errors.
    assert read_local_model(settings, slug, alias="no-such-alias", version=None) is None
    assert read_local_model(settings, slug, alias="champion", version="99") is None
    assert read_local_model(settings, slug, alias="latest", version=None) is None
    with pytest.raises(NotFound, match="no-such-alias"):
        load_model(slug, alias="no-such-alias")
    assert load_model(slug, alias="latest").version == "1"  # MLflow's rule: the highest version


def test_a_setting_for_mlflow_loader_sends_the_load_through_mlflow(champion: tuple[str, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.serving._local_model import read_local_model
    from workbench.settings import get_settings

    slug, _ = champion
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    assert read_local_model(get_settings(), slug, alias="champion", version=None) is None


@pytest.mark.parametrize("inputs", [
    '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]',  # unnamed tensor
    '[{"type": "double", "name": "a", "optional": true}]',  # the legacy key: MLflow decides
    '[{"type": {"type": "array", "items": {"type": "double"}}, "name": "a"}]',  # a nested type
    "[]",
])
def test_signatures_beyond_plain_columns_are_left_to_mlflow(inputs: str) -> None:
    from workbench.serving._local_model import signature_inputs

    assert signature_inputs({"signature": {"inputs": inputs}}) is None
    assert signature_inputs({}) is None


def test_plain_signature_columns_as_mlflow_reads_them() -> None:
    from mlflow.models import ModelSignature

    from workbench.serving._local_model import signature_inputs
    from workbench.serving.signature import signature_columns

    inputs = ('[{"type": "double", "name": "total bill ", "required": true}, {"type": "string", "name": "sex", '
              '"required": false}, {"type": "long", "name": "size"}, {"type": "datetime", "name": "visit_date"}, '
              '{"type": "boolean", "name": "vip"}, {"type": "binary", "name": "blob"}]')
    expected = signature_columns(ModelSignature.from_dict({"inputs": inputs}))
    assert signature_inputs({"signature": {"inputs": inputs}}) == expected


def test_workbench_score_does_not_import_mlflow(champion: tuple[str, Path], tmp_path: Path) -> None:
    """The whole command in a real process; the child reports its loaded modules at exit."""
    slug, home = champion
    source = tmp_path / "tips.csv"
    frame = write_messy_csv(source, n=900, seed=22)
    report = tmp_path / "modules.json"
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(report)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "from workbench.cli import main\n"
        "sys.argv[0] = 'workbench'\n"
        "main()\n"
    )
    env = {**os.environ, "WORKBENCH_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}  # the module's home
    result = subprocess.run([sys.executable, "-c", code, "score", slug, str(source), "-o",
                             str(tmp_path / "out.parquet"), "--json"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["rows"] == len(frame)
    loaded = set(json.loads(report.read_text()))
    assert "skops.io" in loaded  # the model was loaded in this process
    assert not {m for m in loaded if m == "mlflow" or m.startswith("mlflow.")}, "workbench score imported MLflow"


@pytest.mark.parametrize("values", [["a", [1], "b"], [None, {"k": 1}], [1, [2]], [1.5, (1,)]])
def test_a_container_in_a_text_column_is_still_refused(values: list[object]) -> None:
    from workbench.errors import InvalidInput
    from workbench.serving.signature import InputColumn, conform

    frame = pd.DataFrame({"sex": pd.Series(values, dtype=object)})
    with pytest.raises(InvalidInput, match="a single value"):
        conform(frame, [InputColumn(name="sex", kind="string", required=False)])


def test_the_alias_version_from_the_registry_tables_is_mlflows(champion: tuple[str, Path]) -> None:
    from mlflow import MlflowClient

    from workbench.errors import NotFound
    from workbench.serving._local_model import alias_version
    from workbench.serving.model_loader import resolve_alias
    from workbench.settings import get_settings

    slug, _ = champion
    settings = get_settings()
    expected = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_model_version_by_alias(slug, "champion")
    assert alias_version(settings, slug, "champion") == str(expected.version) == resolve_alias(slug, "champion")
    # Not answerable here: MLflow answers, with its own errors.
    assert alias_version(settings, slug, "no-such-alias") is None
    assert alias_version(settings, slug, "latest") is None
    with pytest.raises(NotFound, match="no-such-alias"):
        resolve_alias(slug, "no-such-alias")


def test_the_web_services_alias_poll_does_not_import_mlflow(champion: tuple[str, Path]) -> None:
    """The poller's first check imported MLflow in its thread, ~0.9 s of CPU holding the GIL while requests wait."""
    slug, home = champion
    code = (
        "import json, sys\n"
        "from workbench.serving.model_loader import ModelHolder\n"
        f"holder = ModelHolder({slug!r}, poll_seconds=0)\n"
        "swapped = holder.check_now()\n"
        "print(json.dumps({'swapped': swapped, 'version': holder.model.version,\n"
        "                  'mlflow': sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.'))}))\n"
    )
    env = {**os.environ, "WORKBENCH_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}  # the module's home
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {"swapped": False, "version": "1", "mlflow": []}
