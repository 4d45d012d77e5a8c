"""The event catalogue and body, the webhook settings, and what the delivery log may keep of a URL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from workbench.errors import InvalidInput
from workbench.events import EVENT_TYPES, ProjectRef, build_payload, public_url
from workbench.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_the_body_is_the_documented_envelope() -> None:
    body = build_payload("model.alias_moved", project=ProjectRef(3, "churn"), data={"alias": "champion"})
    assert list(body) == ["event", "event_id", "project", "time", "data"]
    assert body["event"] == "model.alias_moved" and body["project"] == "churn" and body["data"] == {"alias": "champion"}
    assert datetime.fromisoformat(body["time"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    other = build_payload("model.alias_moved", project=ProjectRef(3, "churn"), data={})
    assert other["event_id"] != body["event_id"]


def test_top_level_fields_never_hide_the_envelope() -> None:
    body = build_payload("alert.raised", project=ProjectRef(1, "churn"), data={"check": "drift"},
                         top_level={"check": "drift", "project": "spoofed", "event": "x"})
    assert body["check"] == "drift" and body["project"] == "churn" and body["event"] == "alert.raised"


def test_an_unknown_event_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(InvalidInput, match=r"model\.alias_moved"):
        build_payload("model.deleted", project=ProjectRef(1, "churn"), data={})


def test_rollout_step_is_emitted_by_the_rollout_service_only() -> None:
    assert "rollout.step" in EVENT_TYPES
    # The catalogue declares it and the rollout service emits it: no other module posts it.
    mentions = {path.relative_to(REPO_ROOT).as_posix() for folder in ("workbench", "pipelines")
                for path in (REPO_ROOT / folder).rglob("*.py") if "rollout.step" in path.read_text(encoding="utf-8")}
    assert "workbench/rollouts/_service.py" in mentions, mentions
    assert all(m.startswith(("workbench/events/", "workbench/rollouts/")) for m in mentions), mentions
    assert set(EVENT_TYPES) == {"model.version_registered", "model.alias_moved", "rollout.step",
                                "deployment.started", "deployment.stopped", "alert.raised"}


@pytest.mark.parametrize(("url", "kept"), [
    ("https://user:secret@hooks.example.com:8443/a/b?token=abc#frag", "https://hooks.example.com:8443/a/b"),
    ("http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/hook"),
    ("https://[::1]/x?k=v", "https://[::1]/x"),
])
def test_the_log_keeps_the_url_without_credentials(url: str, kept: str) -> None:
    assert public_url(url) == kept


def test_webhook_settings(tmp_path: Path) -> None:
    env = {"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_CONFIG": str(tmp_path / "absent.toml")}
    settings = load_settings(env)
    assert settings.webhook_urls == ()
    assert (settings.webhook_attempts, settings.webhook_backoff_seconds, settings.webhook_timeout_seconds) == (
        3, 0.5, 5.0)
    several = load_settings({**env, "WORKBENCH_WEBHOOK_URL": "http://a/hook, http://b/hook  http://c/hook"})
    assert several.webhook_urls == ("http://a/hook", "http://b/hook", "http://c/hook")
    with pytest.raises(InvalidInput, match="webhook_attempts"):
        load_settings({**env, "WORKBENCH_WEBHOOK_ATTEMPTS": "0"})
    with pytest.raises(InvalidInput, match="webhook_backoff_seconds"):
        load_settings({**env, "WORKBENCH_WEBHOOK_BACKOFF_SECONDS": "-1"})
    with pytest.raises(InvalidInput, match="webhook_timeout_seconds"):
        load_settings({**env, "WORKBENCH_WEBHOOK_TIMEOUT": "0"})
