"""Fixtures: one real PostgreSQL database and Redis DB for the session, clean per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import text

from app.factory import create_app
from app.features.tables import METADATA
from app.foundation.config import Settings
from app.foundation.migrations import upgrade_to_head
from app.web.request_deadline import DeadlineFlask
from app.web.services import services
from app.web.sessions import Database
from devtools.processes import free_port
from devtools.smtp_sink import SmtpSink
from tests.support.servers import fresh_database, postgres_server, redis_server
from tests.support.tokens import BearerClient, start_session_issuer


def make_settings(**overrides: Any) -> Settings:
    """Test settings, independent of the developer's environment and .env file."""
    values: dict[str, Any] = {
        "app_env": "test",
        "log_level": "debug",
        "web_concurrency": 2,
        # Jobs enqueued by the app carry its retry policy: seconds, not minutes, in tests.
        "job_retry_base_seconds": 1,
        "job_retry_cap_seconds": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def pytest_configure(config: pytest.Config) -> None:
    """A temporary root of this session's own. pytest keeps only the last three sessions'
    directories under a shared root and deletes older ones when a session starts, so a
    `make test` started beside a running `make test-system` would delete the system
    tier's embedded PostgreSQL from under it."""
    root = tempfile.mkdtemp(prefix="users-service-pytest-")
    os.environ["PYTEST_DEBUG_TEMPROOT"] = root
    config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))
    # The suites create users far faster than any client may: the limits are tested on
    # their own (tests/web/test_rate_limits.py), with their own settings.
    os.environ["RATE_LIMITS_ENABLED"] = "false"
    issuer = start_session_issuer(Path(root))
    config.add_cleanup(issuer.stop)
    # Every app the tests build (create_app) gets a test client that sends the token.
    DeadlineFlask.test_client_class = BearerClient


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def postgres_url(server_dir: Path) -> Iterator[str]:
    with postgres_server(server_dir) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(postgres_url: str) -> Iterator[str]:
    """A migrated database of this session's own."""
    with fresh_database(postgres_url) as url:
        upgrade_to_head(url)
        yield url


@pytest.fixture(scope="session")
def redis_url(server_dir: Path) -> Iterator[str]:
    with redis_server(server_dir) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url=database_url, redis_url=redis_url)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    services(app).close()


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[Redis]:
    """The session's Redis database, emptied after the test (queues, registries, workers)."""
    client = Redis.from_url(redis_url)
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def db(app: Flask, redis_db: Redis) -> Iterator[Database]:
    """The app's database (and Redis DB), emptied after the test: tests also run real
    servers and workers on them, so a rolled-back transaction would not do."""
    database: Database = services(app).database
    yield database
    empty_database(database)


def empty_database(database: Database) -> None:
    tables = ", ".join(table.name for table in METADATA.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables}"))


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real SMTP server on loopback that keeps what it receives."""
    server = SmtpSink(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def client(app: Flask, db: Database) -> FlaskClient:
    return app.test_client()


def worker_env(settings: Settings, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Environment for a `python -m worker` process: fast intervals for tests."""
    assert settings.database_url is not None
    assert settings.redis_url is not None
    env = {
        "APP_ENV": "test",
        "LOG_LEVEL": "debug",
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "REDIS_URL": settings.redis_url.get_secret_value(),
        "OUTBOX_RELAY_INTERVAL": "1",
        "OUTBOX_RELAY_AGE_SECONDS": "0",
        "JOB_RETRY_BASE_SECONDS": "1",
        "JOB_RETRY_CAP_SECONDS": "2",
        "WORKER_JOB_MONITORING_INTERVAL": "1",
        "WORKER_MAINTENANCE_INTERVAL": "1",
        "WORKER_HEARTBEAT_FILE": str(tmp_path / "worker.heartbeat"),
        "WORKER_METRICS_PORT": "0",  # off unless a test asks: tests run several workers
    }
    env.update(overrides)
    return env
