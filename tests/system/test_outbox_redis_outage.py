"""The outbox: jobs survive a Redis outage and a job lost from Redis, none run twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from pydantic import SecretStr
from sqlalchemy import text

from app.factory import create_app
from app.foundation.config import Settings
from app.web.services import services
from app.web.sessions import Database
from devtools.embedded import EmbeddedRedis
from devtools.processes import free_port, worker
from devtools.smtp_sink import SmtpSink
from tests.conftest import worker_env
from tests.support.factories import user_payload


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis this test may stop."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.close()


@pytest.fixture
def outage_app(settings: Settings, own_redis: EmbeddedRedis, db: Database) -> Iterator[Flask]:
    app = create_app(settings.model_copy(update={"redis_url": SecretStr(own_redis.url())}))
    yield app
    services(app).close()


def _pending(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM outbox WHERE dispatched_at IS NULL")
            ).scalar_one()
        )


def test_users_are_created_while_redis_is_down_and_every_email_goes_out_once_after(
    outage_app: Flask, own_redis: EmbeddedRedis, settings: Settings, tmp_path: Path
) -> None:
    own_redis.stop()
    client = outage_app.test_client()
    started = time.monotonic()
    statuses = [client.post("/api/v1/users", json=user_payload()).status_code for _ in range(200)]
    elapsed = time.monotonic() - started

    assert statuses == [201] * 200
    assert elapsed < 20, "a Redis outage must not slow user creation down"
    assert _pending(services(outage_app).database) == 200

    own_redis.start()
    sink = SmtpSink(free_port()).start()
    env = worker_env(settings, tmp_path, SMTP_URL=sink.url, REDIS_URL=own_redis.url())
    process = worker(env, tmp_path / "w.log")
    try:
        messages = sink.wait_for(200, timeout=120)
        time.sleep(1)
        assert process.terminate() == 0
    finally:
        process.kill()
        sink.stop()
    recipients = [str(message["To"]) for message in sink.messages]
    assert len(messages) == 200
    assert len(set(recipients)) == 200, "no email may be sent twice"
    assert _pending(services(outage_app).database) == 0
