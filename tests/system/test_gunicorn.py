"""The real `gunicorn -c gunicorn.conf.py`: HTTP, JSON logs, request ids, clean exit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.web.sessions import Database
from devtools.processes import ServerProcess, free_port, gunicorn, http_call, start_web


@pytest.fixture
def server(
    database_url: str, redis_url: str, db: Database, tmp_path: Path
) -> Iterator[tuple[ServerProcess, int]]:
    # Its own temporary directory, to see what the server leaves behind there.
    (tmp_path / "tmp").mkdir()
    process, port = start_web(
        database_url,
        redis_url,
        tmp_path / "gunicorn.log",
        LOG_LEVEL="debug",
        TMPDIR=str(tmp_path / "tmp"),
    )
    try:
        yield process, port
    finally:
        process.kill()


def test_serves_the_api_logs_json_with_request_ids_and_exits_0_on_sigterm(
    server: tuple[ServerProcess, int], tmp_path: Path
) -> None:
    process, port = server

    status, headers, created = http_call(
        "POST",
        port,
        "/api/v1/users",
        {"email": "g@example.com", "name": "G"},
        headers={"X-Request-ID": "req-create-1"},
    )
    assert status == 201
    assert headers["X-Request-ID"] == "req-create-1"
    status, _, fetched = http_call("GET", port, headers["Location"])
    assert (status, fetched) == (200, created)
    status, headers, problem = http_call("POST", port, "/api/v1/users", {"email": "g@example.com"})
    assert status == 422
    assert headers["Content-Type"] == "application/problem+json"
    assert http_call("GET", port, "/readyz")[0] == 200

    assert process.terminate() == 0
    lines = [json.loads(line) for line in process.output().splitlines() if line.strip()]
    by_request = [line for line in lines if line.get("request_id") == "req-create-1"]
    assert {line["logger"] for line in by_request} >= {"app.access"}
    access = next(line for line in by_request if line["logger"] == "app.access")
    assert access["status"] == 201
    assert access["route"] == "/api/v1/users"
    assert access["duration_ms"] > 0
    assert any(
        line["request_id"] == problem["request_id"] for line in lines if "request_id" in line
    )
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    assert lines[-1]["message"] == "gunicorn stopped"
    # The metrics and drain directories it made for itself are gone with it.
    assert list((tmp_path / "tmp").iterdir()) == []


def test_bad_settings_stop_the_master_before_it_binds(tmp_path: Path) -> None:
    env = {"APP_ENV": "production", "DB_POOL_SIZE": "0", "PORT": str(free_port())}
    process = gunicorn(env, tmp_path / "gunicorn.log")

    assert process.process.wait(30) == 2
    process.kill()
    output = process.output()
    assert "config error: DB_POOL_SIZE:" in output
    assert "Traceback" not in output
