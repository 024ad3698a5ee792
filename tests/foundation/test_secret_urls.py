"""Issue 20's masking defect, reproduced with exactly its strings: none of these secrets
may appear in `python -m app config` or `GET /admin/config`."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from app.factory import create_app
from app.web.services import services
from tests.conftest import make_settings
from tests.foundation.test_config import run_cli

SECRETS = ["RawHash#Pw", "Raw/Slash", "Raw?Mark", "sslpw-secret", "smtp-secret", "otel-pw"]
LEAKY = {
    "DATABASE_URL": "postgresql+psycopg://u:RawHash#Pw@db.example.com:5432/app"
    "?sslpassword=sslpw-secret&sslmode=require",
    "REDIS_URL": "redis://:Raw/Slash@cache.example.com:6379/0",
    "SMTP_URL": "smtp://mailer@example.org:smtp-secret@smtp.example.com:587",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:otel-pw@collector:4318",
}


def _shown(config: dict[str, object]) -> str:
    return json.dumps(config)


def test_python_m_app_config_masks_every_password() -> None:
    result = run_cli(
        "config",
        env={
            "APP_ENV": "test",
            **LEAKY,
            # A password with a raw ? in the SMTP URL, as a second case.
            "AUTH_JWKS_URL": "https://keys.example.com/jwks?token=Raw?Mark",
        },
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr, secret
    assert shown["DATABASE_URL"].startswith("postgresql+psycopg://u:***@db.example.com:5432/app")
    assert "sslpassword=***" in shown["DATABASE_URL"]
    assert "sslmode=require" in shown["DATABASE_URL"]
    assert shown["SMTP_URL"] == "smtp://mailer@example.org:***@smtp.example.com:587"
    assert shown["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://user:***@collector:4318"


@pytest.fixture
def leaky_app(redis_url: str) -> Flask:
    # The database is never reached by /admin/config; Redis is (the log level), so it is real.
    settings = make_settings(
        database_url=LEAKY["DATABASE_URL"],
        redis_url=redis_url,
        smtp_url=LEAKY["SMTP_URL"],
        otel_exporter_otlp_endpoint=LEAKY["OTEL_EXPORTER_OTLP_ENDPOINT"],
    )
    return create_app(settings)


def test_admin_config_masks_every_password(leaky_app: Flask) -> None:
    body = leaky_app.test_client().get("/admin/config").get_data(as_text=True)
    services(leaky_app).close()
    for secret in ("RawHash#Pw", "sslpw-secret", "smtp-secret", "otel-pw"):
        assert secret not in body, secret
    assert json.loads(body)["SMTP_URL"] == "smtp://mailer@example.org:***@smtp.example.com:587"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://:Raw#Pw@h:6379/0", "redis://:***@h:6379/0"),
        ("postgresql://u:a/b?c@h/d", "postgresql://u:***@h/d"),
        (
            "postgresql://u@h/d?password=pw&sslmode=require",
            "postgresql://u@h/d?password=***&sslmode=require",
        ),
        (
            "https://k.example.com/x?api_token=t&v=1#frag",
            "https://k.example.com/x?api_token=***&v=1#frag",
        ),
        ("unix:///tmp/redis.sock?db=2", "unix:///tmp/redis.sock?db=2"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    from app.foundation.secret_urls import mask_url

    assert mask_url(url) == shown
