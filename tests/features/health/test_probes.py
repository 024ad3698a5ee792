"""Probes: liveness never depends on others, readiness follows PostgreSQL, startup the schema."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.factory import create_app
from app.foundation.migrations import upgrade_to_head
from app.web.services import services
from devtools.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.conftest import make_settings
from tests.support.servers import fresh_database


def test_healthz_and_readyz_when_everything_is_up(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json
    assert body is not None
    assert body["status"] == "ready"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"


def test_readyz_is_503_while_shutting_down(app: Flask, client: FlaskClient) -> None:
    readiness = services(app).readiness
    readiness.shutting_down = True
    try:
        response = client.get("/readyz")
    finally:
        readiness.shutting_down = False
    assert response.status_code == 503
    assert response.json["status"] == "shutting_down"  # type: ignore[index]


def test_startupz_waits_for_the_schema_to_reach_head(postgres_url: str, redis_url: str) -> None:
    with fresh_database(postgres_url) as url:
        app = create_app(make_settings(database_url=url, redis_url=redis_url))
        client = app.test_client()

        assert client.get("/startupz").status_code == 503
        upgrade_to_head(url)
        assert client.get("/startupz").json == {"status": "started"}
        services(app).close()


@pytest.fixture
def owned_servers(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, EmbeddedRedis, Flask]]:
    """PostgreSQL and Redis that this test may stop: never the shared ones."""
    postgres, redis = EmbeddedPostgres(tmp_path / "pg"), EmbeddedRedis(tmp_path / "redis")
    redis.start()
    with fresh_database(postgres.start()) as url:
        upgrade_to_head(url)
        app = create_app(make_settings(database_url=url, redis_url=redis.url()))
        yield postgres, redis, app
        services(app).close()
        postgres.start()
    postgres.close()
    redis.close()


def test_postgres_outage_fails_readiness_not_liveness_and_recovers_without_restart(
    owned_servers: tuple[EmbeddedPostgres, EmbeddedRedis, Flask],
) -> None:
    postgres, _, app = owned_servers
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    postgres.stop()
    started = time.monotonic()
    readyz = client.get("/readyz")
    api = client.get("/api/v1/users")
    elapsed = time.monotonic() - started

    assert readyz.status_code == 503
    assert readyz.json["checks"]["database"]["status"] == "failing"  # type: ignore[index]
    assert client.get("/healthz").status_code == 200
    assert api.status_code == 503
    assert api.mimetype == "application/problem+json"
    assert api.headers["Retry-After"] == "1"
    assert elapsed < 10, "an outage must be reported quickly, not hang"

    postgres.start()
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/v1/users").status_code == 200


def test_redis_outage_degrades_but_does_not_gate_readiness(
    owned_servers: tuple[EmbeddedPostgres, EmbeddedRedis, Flask],
) -> None:
    _, redis, app = owned_servers
    redis.stop()

    response = app.test_client().get("/readyz")

    assert response.status_code == 200
    assert response.json["status"] == "degraded"  # type: ignore[index]
    assert response.json["checks"]["redis"]["status"] == "failing"  # type: ignore[index]
