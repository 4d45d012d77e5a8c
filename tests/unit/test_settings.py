"""Settings: environment variables over ``workbench.toml`` over defaults under the home."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from workbench.errors import InvalidInput
from workbench.settings import Settings, get_settings, load_settings


def _write(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults_are_embedded_stores_under_the_home(tmp_path: Path) -> None:
    home = tmp_path / "wb"
    settings = load_settings({"WORKBENCH_HOME": str(home), "WORKBENCH_CONFIG": str(tmp_path / "none.toml")})
    assert settings.home == home.resolve()
    assert settings.db_url == f"sqlite:///{home.resolve() / 'workbench.db'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{home.resolve() / 'mlflow.db'}"
    assert settings.optuna_storage == f"journal://{home.resolve() / 'optuna.journal'}"
    assert settings.embedded_db
    for folder in (settings.datasets_dir, settings.jobs_dir, settings.artifacts_dir):
        assert folder.parent == settings.home
    assert settings.max_upload_bytes == int(settings.max_upload_mb * 1024 * 1024)
    assert not home.exists(), "reading settings must not create the home"


def test_default_home_is_dot_workbench_in_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.home == (tmp_path / ".workbench").resolve()
    assert not settings.home.exists()


def test_toml_overrides_defaults_and_env_overrides_toml(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "workbench.toml",
        f"""
home = "{tmp_path / "from-toml"}"
db_url = "postgresql://toml@db/wb"
max_upload_mb = 5
max_classes = 7
""",
    )
    base = {"WORKBENCH_CONFIG": str(config)}
    from_file = load_settings(base)
    assert from_file.home == (tmp_path / "from-toml").resolve()
    assert from_file.db_url == "postgresql://toml@db/wb"
    assert not from_file.embedded_db
    assert from_file.max_upload_mb == 5.0 and from_file.max_classes == 7
    # Stores not named in the file still default under the file's home.
    assert from_file.mlflow_tracking_uri == f"sqlite:///{(tmp_path / 'from-toml').resolve() / 'mlflow.db'}"

    from_env = load_settings(
        {
            **base,
            "WORKBENCH_HOME": str(tmp_path / "from-env"),
            "WORKBENCH_DB_URL": "postgresql://env@db/wb",
            "WORKBENCH_MAX_CLASSES": "12",
            "MLFLOW_TRACKING_URI": "http://mlflow.example:5000",
        }
    )
    assert from_env.home == (tmp_path / "from-env").resolve()
    assert from_env.db_url == "postgresql://env@db/wb"
    assert from_env.max_classes == 12
    assert from_env.max_upload_mb == 5.0, "keys the environment leaves unset still come from the file"
    assert from_env.mlflow_tracking_uri == "http://mlflow.example:5000"


def test_toml_may_use_a_workbench_table(tmp_path: Path) -> None:
    config = _write(tmp_path / "wb.toml", '[workbench]\nnats_url = "nats://broker:4222"\n')
    settings = load_settings({"WORKBENCH_CONFIG": str(config), "WORKBENCH_HOME": str(tmp_path)})
    assert settings.nats_url == "nats://broker:4222"


def test_unknown_toml_keys_are_rejected_by_name(tmp_path: Path) -> None:
    config = _write(tmp_path / "workbench.toml", 'db_ulr = "sqlite:///x.db"\nmax_clases = 3\n')
    with pytest.raises(InvalidInput) as raised:
        load_settings({"WORKBENCH_CONFIG": str(config)})
    message = str(raised.value)
    assert "db_ulr" in message and "max_clases" in message
    assert "db_url" in message, "the message lists the allowed keys"


def test_invalid_toml_and_invalid_values_say_what_to_fix(tmp_path: Path) -> None:
    broken = _write(tmp_path / "broken.toml", "home = \n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_settings({"WORKBENCH_CONFIG": str(broken)})
    with pytest.raises(InvalidInput, match="max_classes") as raised:
        load_settings({"WORKBENCH_MAX_CLASSES": "many", "WORKBENCH_CONFIG": str(tmp_path / "none.toml")})
    assert "'many'" in str(raised.value)
    with pytest.raises(InvalidInput, match="WORKBENCH_MAX_UPLOAD_MB"):
        load_settings({"WORKBENCH_MAX_UPLOAD_MB": "0", "WORKBENCH_CONFIG": str(tmp_path / "none.toml")})


def test_every_setting_has_an_environment_variable() -> None:
    names = [f.metadata.get("env") for f in fields(Settings)]
    assert all(names), "each field declares its env variable"
    assert len(set(names)) == len(names)
    assert {
        "WORKBENCH_HOME",
        "WORKBENCH_DB_URL",
        "MLFLOW_TRACKING_URI",
        "WORKBENCH_OPTUNA_STORAGE",
        "WORKBENCH_NATS_URL",
    } <= set(names)


def test_get_settings_is_cached_and_reads_the_environment(workbench_home: Path) -> None:
    first = get_settings()
    assert first.home == workbench_home.resolve()
    assert get_settings() is first
    assert not workbench_home.exists()
    first.ensure_home()
    assert first.datasets_dir.is_dir() and first.jobs_dir.is_dir() and first.artifacts_dir.is_dir()


def test_public_dict_lists_every_field(tmp_path: Path) -> None:
    settings = load_settings({"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_CONFIG": str(tmp_path / "none.toml")})
    assert set(settings.public_dict()) == {f.name for f in fields(Settings)}


def test_a_home_with_an_optuna_db_keeps_it(tmp_path: Path) -> None:
    home = tmp_path / "old"
    home.mkdir()
    (home / "optuna.db").touch()  # written by a version whose default was the SQLite file
    settings = load_settings({"WORKBENCH_HOME": str(home), "WORKBENCH_CONFIG": str(tmp_path / "none.toml")})
    assert settings.optuna_storage == f"sqlite:///{home.resolve() / 'optuna.db'}"


def test_the_rollout_check_interval_is_read_and_must_be_positive(tmp_path: Path) -> None:
    base = {"WORKBENCH_HOME": str(tmp_path / "wb"), "WORKBENCH_CONFIG": str(tmp_path / "none.toml")}
    assert load_settings(base).rollout_check_seconds == 10.0
    assert load_settings({**base, "WORKBENCH_ROLLOUT_CHECK_SECONDS": "2.5"}).rollout_check_seconds == 2.5
    with pytest.raises(InvalidInput, match="WORKBENCH_ROLLOUT_CHECK_SECONDS") as refused:
        load_settings({**base, "WORKBENCH_ROLLOUT_CHECK_SECONDS": "0"})
    assert refused.value.field == "rollout_check_seconds"


@pytest.mark.parametrize("raw", ["maybe", "ture", "2", "enabled"])
def test_a_yes_or_no_setting_refuses_other_words_naming_the_variable_and_the_words(tmp_path: Path, raw: str) -> None:
    # A typo used to read as "no": WORKBENCH_SHADOW_CPU_GROUP=ture turned the idle CPU group off, silently.
    environ = {"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_CONFIG": str(tmp_path / "none.toml"),
               "WORKBENCH_SHADOW_CPU_GROUP": raw}
    with pytest.raises(InvalidInput, match="WORKBENCH_SHADOW_CPU_GROUP") as refused:
        load_settings(environ)
    assert refused.value.field == "shadow_cpu_group" and repr(raw) in str(refused.value)
    assert "true" in str(refused.value) and "false" in str(refused.value)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("yes", True), ("On", True),
                                               ("0", False), ("false", False), ("No", False), ("off", False)])
def test_a_yes_or_no_setting_reads_the_usual_words(tmp_path: Path, raw: str, expected: bool) -> None:
    environ = {"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_CONFIG": str(tmp_path / "none.toml"),
               "WORKBENCH_ALLOW_ANONYMOUS": raw, "WORKBENCH_SHADOW_CPU_GROUP": raw}
    settings = load_settings(environ)
    assert settings.allow_anonymous is expected and settings.shadow_cpu_group is expected


def test_a_yes_or_no_setting_in_toml_takes_a_boolean(tmp_path: Path) -> None:
    config = tmp_path / "workbench.toml"
    config.write_text("shadow_cpu_group = false\nallow_anonymous = true\n")
    settings = load_settings({"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_CONFIG": str(config)})
    assert settings.shadow_cpu_group is False and settings.allow_anonymous is True
