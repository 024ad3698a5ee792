"""Settings: validated at startup, one line per problem, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from app.foundation.config import STACK_ENV_FILE, ConfigError, load_settings
from devtools.processes import PROJECT_ROOT

SECRET = "s3cr3t-Pa55word"


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        # Outside the checkout: a developer's .env or var/stack.env must not leak in.
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT), **env},
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_settings_exit_2_with_one_line_each_and_no_secret() -> None:
    result = run_cli(
        "config",
        env={
            "APP_ENV": "production",
            "DB_POOL_SIZE": "0",
            "DATABASE_URL": f"mysql://root:{SECRET}@db/app",
            "REDIS_URL": f"http://:{SECRET}@cache",
            "ADMIN_TOKEN": SECRET,
            "PORT": "http",
        },
    )

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "ADMIN_TOKEN",
        "DATABASE_URL",
        "DB_POOL_SIZE",
        "PORT",
        "REDIS_URL",
    ]
    assert all(line.startswith("config error: ") for line in lines)
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_production_requires_real_database_and_redis() -> None:
    result = run_cli("config", env={"APP_ENV": "production"})

    assert result.returncode == 2
    assert "DATABASE_URL: is required when APP_ENV=production" in result.stderr
    assert "REDIS_URL: is required when APP_ENV=production" in result.stderr
    assert "SMTP_URL: is required when APP_ENV=production" in result.stderr
    assert "AUTH_ISSUER: is required when APP_ENV=production" in result.stderr
    assert "AUTH_AUDIENCE: is required when APP_ENV=production" in result.stderr


def test_config_prints_effective_settings_with_secrets_masked_and_flags_win() -> None:
    result = run_cli(
        "--log-level",
        "WARNING",
        "config",
        env={
            "APP_ENV": "production",
            "LOG_LEVEL": "debug",
            "DATABASE_URL": f"postgresql://app:{SECRET}@db:5432/app",
            "REDIS_URL": f"redis://:{SECRET}@cache:6379/0",
            "SMTP_URL": f"smtp://mailer:{SECRET}@smtp.example.com:587?starttls=true",
            "ADMIN_TOKEN": SECRET * 3,
            "AUTH_ISSUER": "https://issuer.example.com",
            "AUTH_AUDIENCE": "users-service",
        },
    )

    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout
    assert '"LOG_LEVEL": "warning"' in result.stdout
    assert '"DATABASE_URL": "postgresql+psycopg://app:***@db:5432/app"' in result.stdout
    assert '"REDIS_URL": "redis://:***@cache:6379/0"' in result.stdout
    assert '"SMTP_URL": "smtp://mailer:***@smtp.example.com:587?starttls=true"' in result.stdout
    assert '"ADMIN_TOKEN": "**********"' in result.stdout


def test_graceful_timeout_may_not_exceed_worker_timeout() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None,
            app_env="test",
            gunicorn_timeout=10,
            gunicorn_graceful_timeout=20,
            request_timeout=5,
        )
    assert caught.value.problems == ["GUNICORN_GRACEFUL_TIMEOUT: must not exceed GUNICORN_TIMEOUT"]


def test_a_request_is_cut_before_gunicorn_kills_its_worker_and_a_lease_outlives_a_job() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None,
            app_env="test",
            gunicorn_timeout=30,
            request_timeout=30,
            job_timeout=300,
            outbox_lease_seconds=300,
        )
    assert caught.value.problems == [
        "REQUEST_TIMEOUT: must be less than GUNICORN_TIMEOUT",
        "OUTBOX_LEASE_SECONDS: must exceed JOB_TIMEOUT",
    ]


def test_settings_repr_hides_secrets() -> None:
    settings = load_settings(
        _env_file=None,
        app_env="test",
        database_url=f"postgres://u:{SECRET}@h/d",
        admin_token=SECRET * 3,
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.redacted())
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value().startswith("postgresql+psycopg://")


def test_settings_read_the_running_stack_file_after_dotenv_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("APP_ENV", "LOG_LEVEL", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LOG_LEVEL=warning\nREDIS_URL=redis://dotenv:6379/0\n")
    (tmp_path / "var").mkdir()
    (tmp_path / STACK_ENV_FILE).write_text(
        "APP_ENV=development\n"
        "DATABASE_URL=postgresql://postgres@/postgres?host=/tmp/pg\n"
        "REDIS_URL=unix:///tmp/redis.sock?db=0\n"
    )

    settings = load_settings()

    assert settings.app_env == "development"
    assert settings.log_level == "warning"
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == "unix:///tmp/redis.sock?db=0"
    monkeypatch.setenv("REDIS_URL", "redis://environment:6379/1")
    overridden = load_settings().redis_url
    assert overridden is not None
    assert overridden.get_secret_value() == "redis://environment:6379/1"
