"""Every error is an RFC 9457 problem; bad input is never a 500."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.factory import create_app
from app.foundation.config import Settings
from app.foundation.logs import RequestContextFilter
from app.web.services import services

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.json
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("", "application/json", 400),
        (b'{"name": "\xff"}', "application/json", 400),
        ('{"email": "a@b.co", "name": "x"}', "text/plain", 415),
        ('{"email": "a@b.co"}', None, 415),
        ('["a@b.co", "x"]', "application/json", 422),
        ('"just a string"', "application/json", 422),
        ('{"email": "a@b.co", "name": 7}', "application/json", 422),
        ('{"email": "a@b.co", "name": "' + "x" * 201 + '"}', "application/json", 422),
        ('{"email": "' + "a" * 250 + '@b.co", "name": "x"}', "application/json", 422),
        ('{"email": "a@b.co", "name": "   "}', "application/json", 422),
        ('{"email": "a@b.co", "name": "x", "admin": true}', "application/json", 422),
        ('{"email": "not-an-email", "name": "x"}', "application/json", 422),
        ("[" * 5000 + "]" * 5000, "application/json", 400),
    ],
)
def test_bad_create_bodies_are_4xx_problems(
    client: FlaskClient, data: str | bytes, content_type: str | None, status: int
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/v1/users", data=data, headers=headers)

    assert_problem(response, status)


def test_validation_problem_lists_each_field(client: FlaskClient) -> None:
    response = client.post("/api/v1/users", json={"email": "nope", "name": "", "extra": 1})

    body = assert_problem(response, 422)
    assert body["type"] == "/problems/validation-error"
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"email", "name", "extra"}
    assert all(error["location"] == "body" and error["message"] for error in body["errors"])


def test_unknown_route_is_404_and_wrong_method_405(client: FlaskClient) -> None:
    assert_problem(client.get("/no/such/thing"), 404)
    response = client.put("/api/v1/users")
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_oversized_body_is_413(client: FlaskClient, settings: Settings) -> None:
    body = '{"name": "' + "x" * settings.max_content_length + '"}'
    response = client.post("/api/v1/users", data=body, content_type="application/json")

    assert_problem(response, 413)


def test_unexpected_exception_is_500_without_internals_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals: password=hunter2")

    caplog.handler.addFilter(RequestContextFilter())
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom")

    body = assert_problem(response, 500)
    assert "hunter2" not in response.get_data(as_text=True)
    assert body["detail"] == "An unexpected error occurred."
    record = next(r for r in caplog.records if r.getMessage() == "unhandled exception")
    assert record.exc_info is not None
    assert record.request_id == body["request_id"]  # type: ignore[attr-defined]
    services(app).close()


def test_request_id_is_echoed_when_well_formed_and_replaced_otherwise(app: Flask) -> None:
    client = app.test_client()

    kept = client.get("/healthz", headers={"X-Request-ID": "abc-123.def"})
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\u2028injected"})

    assert kept.headers["X-Request-ID"] == "abc-123.def"
    assert replaced.headers["X-Request-ID"] not in ("", "bad id\u2028injected")
    assert len(replaced.headers["X-Request-ID"]) == 32


def test_statement_timeout_is_a_503_problem_and_a_log_line(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import text

    from app.web.services import request_session

    app = create_app(settings.model_copy(update={"db_statement_timeout_ms": 100}))

    @app.get("/slow")
    def slow() -> str:
        request_session().execute(text("SELECT pg_sleep(2)"))
        return "never"

    with caplog.at_level(logging.WARNING):
        response = app.test_client().get("/slow")

    body = assert_problem(response, 503)
    assert body["type"] == "/problems/database-unavailable"
    assert response.headers["Retry-After"] == "1"
    record = next(r for r in caplog.records if r.getMessage() == "database unavailable")
    assert record.error == "QueryCanceled"  # type: ignore[attr-defined]
    services(app).close()


def test_flask_debug_cannot_be_switched_on(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLASK_DEBUG in the environment (a leftover from development) changes nothing."""
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app(settings.model_copy(update={"app_env": "production"}))
    try:
        assert not app.debug
        assert not app.config["PROPAGATE_EXCEPTIONS"]
    finally:
        services(app).close()
