"""The browser's file sandbox as a service (issue 12 item 3): data roots, the project's own folders, messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.access.files import (
    browser_input_path,
    browser_job_error,
    browser_output_path,
    data_roots,
    upload_path,
)
from workbench.errors import InvalidInput
from workbench.settings import Settings


def _settings(tmp_path: Path, roots: str = "") -> Settings:
    return Settings(home=tmp_path / "home", data_roots=roots)


def test_no_data_root_means_no_server_path(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert data_roots(settings) == ()
    (tmp_path / "a.csv").write_text("x\n1\n")
    with pytest.raises(InvalidInput, match="no data root is configured") as err:
        browser_input_path(str(tmp_path / "a.csv"), settings=settings)
    assert err.value.field == "input_path"


def test_reads_only_under_a_root_after_resolving_links_and_dots(tmp_path: Path) -> None:
    root, other = tmp_path / "data", tmp_path / "other"
    root.mkdir()
    other.mkdir()
    (root / "ok.csv").write_text("x\n1\n")
    (other / "secret.csv").write_text("root,S3cr3t!\n")
    (root / "link.csv").symlink_to(other / "secret.csv")
    (root / "dirlink").symlink_to(other)
    settings = _settings(tmp_path, f"{root}{':'}{tmp_path / 'missing'}")
    assert data_roots(settings) == (root.resolve(),)
    assert browser_input_path(f"{root}/./ok.csv", settings=settings) == (root / "ok.csv").resolve()
    for path in (other / "secret.csv", f"{root}/../other/secret.csv", root / "link.csv", root / "dirlink/secret.csv",
                 root, root / "absent.csv", ""):
        with pytest.raises(InvalidInput) as err:
            browser_input_path(str(path), settings=settings)
        assert "S3cr3t" not in str(err.value) and err.value.field == "input_path"


def test_the_home_is_never_readable_even_inside_a_root(tmp_path: Path) -> None:
    settings = _settings(tmp_path, str(tmp_path))
    dataset = settings.datasets_dir / "p" / "v0001.parquet"
    dataset.parent.mkdir(parents=True)
    dataset.write_bytes(b"PAR1")
    with pytest.raises(InvalidInput, match="not a file under the data roots"):
        browser_input_path(str(dataset), settings=settings)


def test_outputs_are_plain_names_in_the_project_folder_and_never_replace(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = browser_output_path("churn", "predictions.parquet", settings=settings)
    assert first == settings.home / "scores" / "churn" / "predictions.parquet" and first.exists()
    second = browser_output_path("churn", "predictions.parquet", settings=settings)
    assert second.name == "predictions-2.parquet"
    for bad in ("/etc/passwd.csv", "../x.parquet", "a/b.csv", "notes.txt", "..parquet", "", ".hidden.csv"):
        with pytest.raises(InvalidInput, match="output_name must be a plain file name") as err:
            browser_output_path("churn", bad, settings=settings)
        assert err.value.field == "output_name"
    with pytest.raises(InvalidInput):
        browser_output_path("../other", "p.csv", settings=settings)


def test_uploads_keep_their_base_name_in_the_project_folder(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    path = upload_path("churn", "../../evil.csv", settings=settings)
    assert path == settings.home / "uploads" / "churn" / "evil.csv"
    assert upload_path("churn", "evil.csv", settings=settings).name == "evil-2.csv"


def test_a_failed_job_is_described_without_the_file() -> None:
    raw = "input_path '/d/x.csv' is not a readable CSV file: CSV parse error: Expected 3 columns, got 4: root,S3cr3t!"
    message = browser_job_error("abc", raw)
    assert "S3cr3t" not in message and "could not be read" in message and "workbench jobs show abc" in message
    assert "lacks a column" in browser_job_error("abc", "Input is missing column 'age' required by the model")
