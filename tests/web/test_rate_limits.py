"""Abuse limits: per subject on writes and exports, per address on failed
authentication, answered 429 problem+json with Retry-After; a Redis outage lets
requests through (fails open) and is counted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from redis import Redis

from app.factory import create_app
from app.web.rate_limits import STORAGE_ERRORS
from app.web.services import services
from app.web.sessions import Database
from tests.conftest import make_settings
from tests.support.factories import user_payload
from tests.support.tokens import bearer, session_issuer


@pytest.fixture
def limited(database_url: str, redis_url: str, db: Database, redis_db: Redis) -> Iterator[Flask]:
    app = create_app(
        make_settings(
            database_url=database_url,
            redis_url=redis_url,
            rate_limits_enabled=True,
            rate_limit_writes="3/minute",
            rate_limit_exports="1/hour",
            rate_limit_failed_auth="4/minute",
        )
    )
    yield app
    services(app).close()


def _is_429_problem(response: object) -> None:
    assert response.status_code == 429  # type: ignore[attr-defined]
    assert response.mimetype == "application/problem+json"  # type: ignore[attr-defined]
    assert int(response.headers["Retry-After"]) >= 1  # type: ignore[attr-defined]


def test_writes_are_limited_per_subject(limited: Flask) -> None:
    client = limited.test_client()
    ann, bob = (bearer(session_issuer().token(subject=name)) for name in ("ann", "bob"))

    statuses = [
        client.post("/api/v1/users", json=user_payload(), headers=ann).status_code for _ in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    _is_429_problem(client.post("/api/v1/users", json=user_payload(), headers=ann))
    assert client.post("/api/v1/users", json=user_payload(), headers=bob).status_code == 201
    assert client.get("/api/v1/users", headers=ann).status_code == 200  # reads are not limited


def test_exports_are_limited_per_subject(limited: Flask) -> None:
    client = limited.test_client()
    ann = bearer(session_issuer().token(subject="ann"))

    assert client.post("/api/v1/exports", headers=ann).status_code == 202
    _is_429_problem(client.post("/api/v1/exports", headers=ann))


def test_failed_authentication_is_limited_per_address(limited: Flask) -> None:
    client = limited.test_client()
    statuses = [client.get("/api/v1/users", headers=bearer("junk")).status_code for _ in range(5)]

    assert statuses == [401, 401, 401, 401, 429]
    _is_429_problem(client.get("/api/v1/users", headers={"Authorization": ""}))
    assert client.get("/api/v1/users").status_code == 200  # a valid token still passes


def test_a_redis_outage_lets_requests_through_and_is_counted(
    database_url: str, db: Database, redis_db: Redis
) -> None:
    from devtools.processes import free_port

    app = create_app(
        make_settings(
            database_url=database_url,
            redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nobody listens
            rate_limits_enabled=True,
        )
    )
    before = STORAGE_ERRORS._value.get()
    client = app.test_client()

    assert client.post("/api/v1/users", json=user_payload()).status_code == 201
    assert client.get("/api/v1/users", headers=bearer("junk")).status_code == 401
    assert STORAGE_ERRORS._value.get() >= before + 2
    services(app).close()
