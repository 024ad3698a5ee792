"""Both /metrics endpoints, scraped from real processes after real traffic, pass
`promtool check metrics`: names, suffixes, units and HELP as Prometheus' own linter
wants them. Each exposition is taken once its metrics have samples, so that the lint
sees every family the process exports, not an empty page."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

from flask.testing import FlaskClient
from redis import Redis

from app.foundation.config import Settings
from app.web.sessions import Database
from devtools.processes import free_port, http_call, start_web, worker
from devtools.smtp_sink import SmtpSink
from tests.conftest import worker_env
from tests.support import promtool
from tests.support.factories import create_user

WELCOME = 'job_kind="app.features.users.jobs.send_welcome_email"'


def exposition(port: int) -> str:
    """The raw text a Prometheus scrape of 127.0.0.1:port/metrics receives."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        connection.close()


def assert_lint_clean(text: str) -> None:
    """promtool reads the exposition on stdin; any line it prints is a problem."""
    code, output = promtool.run("check", "metrics", stdin=text)
    assert (code, output.strip()) == (0, ""), f"promtool check metrics:\n{output}"


def test_the_lint_reports_what_prometheus_naming_forbids() -> None:
    """The check below is not vacuous: promtool prints, and exits non-zero for, a counter
    without `_total` and a metric without HELP."""
    bad = "# TYPE jobs_done counter\njobs_done 1\n"
    code, output = promtool.run("check", "metrics", stdin=bad)
    assert code != 0
    assert 'counter metrics should have "_total" suffix' in output
    assert "no help text" in output


def web_traffic(port: int) -> None:
    """Successes, a client error, a 404 and an invented method: every request metric
    and label value the exporter can produce."""
    status, headers, _ = http_call(
        "POST", port, "/api/v1/users", {"email": "lint@example.com", "name": "Lint"}
    )
    assert status == 201
    assert http_call("GET", port, headers["Location"])[0] == 200
    assert http_call("GET", port, "/api/v1/users?limit=2")[0] == 200
    assert http_call("POST", port, "/api/v1/users", {"email": "not-an-email"})[0] == 422
    assert http_call("GET", port, "/no/such/route")[0] == 404
    assert http_call("BREW", port, "/api/v1/users")[0] in (400, 405)


def test_web_master_metrics_pass_promtool(
    database_url: str, redis_url: str, db: Database, tmp_path: Path
) -> None:
    promtool.require_promtool()
    metrics_port = free_port()
    process, port = start_web(
        database_url,
        redis_url,
        tmp_path / "gunicorn.log",
        METRICS_PORT=str(metrics_port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        LOG_LEVEL="warning",
    )
    try:
        web_traffic(port)
        text = exposition(metrics_port)
    finally:
        process.kill()
    assert "http_request_duration_seconds_bucket" in text
    assert "gunicorn_workers" in text
    assert_lint_clean(text)


def test_worker_metrics_pass_promtool(
    client: FlaskClient,
    db: Database,
    redis_db: Redis,
    sink: SmtpSink,
    settings: Settings,
    tmp_path: Path,
) -> None:
    promtool.require_promtool()
    create_user(client)
    metrics_port = free_port()
    env = worker_env(settings, tmp_path, SMTP_URL=sink.url, WORKER_METRICS_PORT=str(metrics_port))
    process = worker(env, tmp_path / "w.log")
    try:
        sink.wait_for(1, timeout=30)
        text = exposition(metrics_port)
        deadline = time.monotonic() + 10
        while f"rq_jobs_finished_total{{{WELCOME}}}" not in text and time.monotonic() < deadline:
            time.sleep(0.1)
            text = exposition(metrics_port)
        assert process.terminate() == 0, process.output()
    finally:
        process.kill()
    assert f"rq_job_duration_seconds_count{{{WELCOME}}}" in text
    assert_lint_clean(text)
