"""Traces from a request into its job, received by a real OTLP endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from redis import Redis

from app.web.sessions import Database
from devtools.otlp_receiver import OtlpReceiver, ReceivedSpan
from devtools.processes import http_call, start_web, worker
from tests.conftest import make_settings, worker_env


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


def _descends_from(span: ReceivedSpan, ancestor: ReceivedSpan, spans: list[ReceivedSpan]) -> bool:
    by_id = {s.span_id: s for s in spans}
    current: ReceivedSpan | None = span
    while current is not None and current.parent_span_id:
        if current.parent_span_id == ancestor.span_id:
            return True
        current = by_id.get(current.parent_span_id)
    return False


def _access_lines(web_output: str, route: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in web_output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "app.access" and line["route"] == route]


def _kept_by_ratio(trace_id: str, ratio: float) -> bool:
    return int(trace_id, 16) & TraceIdRatioBased.TRACE_ID_LIMIT < (
        TraceIdRatioBased.get_bound_for_rate(ratio)
    )


def test_one_trace_holds_the_request_its_sql_and_the_job_it_caused(
    database_url: str,
    redis_url: str,
    db: Database,
    redis_db: Redis,
    receiver: OtlpReceiver,
    tmp_path: Path,
) -> None:
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_TRACES_SAMPLER_RATIO": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    web, port = start_web(database_url, redis_url, tmp_path / "web.log", **tracing)
    settings = make_settings(database_url=database_url, redis_url=redis_url)
    try:
        status, _, user = http_call(
            "POST", port, "/api/v1/users", {"email": "t@example.com", "name": "Trace"}
        )
        assert status == 201
        run = worker({**worker_env(settings, tmp_path), **tracing}, tmp_path / "w.log", "--burst")
        assert run.process.wait(60) == 0, run.output()
        run.kill()
        assert web.terminate() == 0  # graceful stop flushes what is still batched
    finally:
        web.kill()

    def complete(spans: list[ReceivedSpan]) -> bool:
        return any(s.name.startswith("job ") for s in spans) and any(
            s.name == "POST /api/v1/users" for s in spans
        )

    spans = receiver.wait_for(complete, timeout=20)
    [request] = [s for s in spans if s.name == "POST /api/v1/users"]
    trace = [s for s in spans if s.trace_id == request.trace_id]
    [job] = [s for s in trace if s.name == "job app.features.users.jobs.send_welcome_email"]
    sql = [s for s in trace if s.attributes.get("db.system") == "postgresql"]
    request_sql = [s for s in sql if _descends_from(s, request, trace)]
    job_sql = [s for s in sql if _descends_from(s, job, trace)]
    assert request.parent_span_id == ""
    assert any("INSERT INTO users" in s.attributes["db.statement"] for s in request_sql)
    assert _descends_from(job, request, trace)
    statements = [s.attributes["db.statement"] for s in job_sql]
    assert any("pg_advisory_xact_lock" in statement for statement in statements)
    assert any("UPDATE users SET" in statement for statement in statements)
    assert not [s for s in spans if s.name in ("GET /healthz", "GET /startupz", "GET /readyz")]
    # The worker's waiting and housekeeping (Redis polls, outbox sweeps) start no trace:
    # every trace begins with a request or a job.
    roots = {s.name for s in spans if s.parent_span_id == ""}
    assert all(name.startswith(("job ", "GET ", "POST ")) for name in roots), roots

    job_lines = [
        json.loads(line)
        for line in run.output().splitlines()
        if line.startswith("{") and '"job_id"' in line
    ]
    assert any(line.get("trace_id") == request.trace_id for line in job_lines)
    web_lines = [json.loads(line) for line in web.output().splitlines() if line.startswith("{")]
    access = [
        line
        for line in web_lines
        if line.get("logger") == "app.access" and line.get("route") == "/api/v1/users"
    ]
    assert access[0]["trace_id"] == request.trace_id
    assert user["id"]


def test_requests_are_sampled_before_they_are_instrumented_with_the_sdks_decision(
    database_url: str, redis_url: str, db: Database, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    ratio, requests = 0.5, 40
    web, port = start_web(
        database_url,
        redis_url,
        tmp_path / "web.log",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_TRACES_SAMPLER_RATIO=str(ratio),
    )
    try:
        for _ in range(requests):
            assert http_call("GET", port, "/api/v1/users?limit=1")[0] == 200
        assert web.terminate() == 0  # flushes the batched spans
    finally:
        web.kill()

    logged = {line["trace_id"] for line in _access_lines(web.output(), "/api/v1/users")}
    assert len(logged) == requests  # every request has a trace id, kept or not
    kept = {s.trace_id for s in receiver.spans if s.name == "GET /api/v1/users"}
    # The ids drawn at the edge are the ids the SDK's ratio sampler kept: no second draw.
    assert kept == {trace_id for trace_id in logged if _kept_by_ratio(trace_id, ratio)}
    assert 0 < len(kept) < requests
    # A dropped request's queries start no spans of their own (no orphaned SQL roots).
    assert {s.trace_id for s in receiver.spans} == kept


def test_the_callers_sampling_decision_is_followed(
    database_url: str, redis_url: str, db: Database, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    web, port = start_web(
        database_url,
        redis_url,
        tmp_path / "web.log",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_TRACES_SAMPLER_RATIO="0",
    )
    try:
        sampled = {"traceparent": f"00-{caller_trace}-{caller_span}-01"}
        assert http_call("GET", port, "/api/v1/users?limit=1", headers=sampled)[0] == 200
        unsampled = {"traceparent": f"00-{'ab' * 16}-{caller_span}-00"}
        assert http_call("GET", port, "/api/v1/users?limit=2", headers=unsampled)[0] == 200
        assert http_call("GET", port, "/api/v1/users?limit=3")[0] == 200
        assert web.terminate() == 0
    finally:
        web.kill()

    [server] = [s for s in receiver.spans if s.name == "GET /api/v1/users"]
    assert (server.trace_id, server.parent_span_id) == (caller_trace, caller_span)
    assert {s.trace_id for s in receiver.spans} == {caller_trace}
    logged = [line["trace_id"] for line in _access_lines(web.output(), "/api/v1/users")]
    assert logged[:2] == [caller_trace, "ab" * 16]
    assert len(logged[2]) == 32
    assert logged[2] not in (caller_trace, "ab" * 16)
