"""/admin: the admin scope (or the break-glass ADMIN_TOKEN), every action audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask
from redis import Redis

from app.factory import create_app
from app.web.services import services
from tests.conftest import make_settings
from tests.support.tokens import bearer, session_issuer

TOKEN = "t" * 40


@pytest.fixture
def admin_app(database_url: str, redis_url: str) -> Iterator[Flask]:
    app = create_app(
        make_settings(database_url=database_url, redis_url=redis_url, admin_token=TOKEN)
    )
    yield app
    services(app).close()


def test_admin_needs_the_admin_scope(app: Flask) -> None:
    client = app.test_client()
    reader = session_issuer().token(["users:read"])

    refused = client.get("/admin/config", headers=bearer(reader))
    allowed = client.get("/admin/config", headers=bearer(session_issuer().token(["admin"])))

    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert "admin" in refused.json["detail"]  # type: ignore[index]
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert allowed.status_code == 200


def test_the_break_glass_token_opens_admin_only_and_is_never_logged(
    admin_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = admin_app.test_client()

    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        response = client.get("/admin/config", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")

    with caplog.at_level(logging.INFO):
        response = client.get("/admin/config", headers={"Authorization": f"Bearer {TOKEN}"})
        api = client.get("/api/v1/users", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert api.status_code == 403  # the admin scope only
    assert response.json["ADMIN_TOKEN"] == "**********"  # type: ignore[index]
    assert TOKEN not in response.get_data(as_text=True)
    assert "admin action" in caplog.messages
    assert all(TOKEN not in record.getMessage() + str(record.__dict__) for record in caplog.records)


def test_admin_lists_and_requeues_failed_jobs(admin_app: Flask, redis_db: Redis) -> None:
    client = admin_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    assert client.get("/admin/jobs/failed", headers=auth).json == {"items": []}
    missing = client.post("/admin/jobs/failed/nope/requeue", headers=auth)
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"


def test_log_level_is_read_and_changed_for_every_process(admin_app: Flask, redis_db: Redis) -> None:
    client = admin_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/admin/log-level", headers=auth).json == {"level": "debug"}

    assert (
        client.put("/admin/log-level", headers=auth, json={"level": "warning"}).status_code == 200
    )
    assert client.get("/admin/log-level", headers=auth).json == {"level": "warning"}

    shouted = client.put("/admin/log-level", headers=auth, json={"level": "ERROR"})
    assert shouted.json == {"level": "error"}  # any case, as LOG_LEVEL
    refused = client.put("/admin/log-level", headers=auth, json={"level": "loud"})
    assert refused.status_code == 400
    assert refused.mimetype == "application/problem+json"
    assert client.get("/admin/log-level", headers=auth).json == {"level": "error"}
