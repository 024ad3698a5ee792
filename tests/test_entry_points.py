"""The entry points read the environment: `app.wsgi:build()` (Gunicorn) and
`python -m app config`, called in this process."""

from __future__ import annotations

import json

import pytest

from app.__main__ import main
from app.foundation.config import Settings
from app.web.services import services
from app.wsgi import build


@pytest.fixture
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    monkeypatch.chdir("/")  # no .env or var/stack.env of the developer's
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("REDIS_URL", settings.redis_url.get_secret_value())
    monkeypatch.setenv("ADMIN_TOKEN", "t" * 40)
    return settings


def test_wsgi_build_makes_the_app_from_the_environment(environment: Settings) -> None:
    app = build()
    try:
        assert app.test_client().get("/healthz").json == {"status": "ok"}
        assert services(app).settings.admin_token is not None
    finally:
        services(app).close()


def test_config_command_prints_the_effective_settings_masked(
    environment: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--log-level", "error", "config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["LOG_LEVEL"] == "error"
    assert shown["APP_ENV"] == "test"
    assert shown["ADMIN_TOKEN"] == "**********"
    assert shown["OTEL_TRACES_SAMPLER_RATIO"] == 1.0  # unset: the ratio in effect
    assert "t" * 40 not in json.dumps(shown)
