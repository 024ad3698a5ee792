"""Tracing in the web process: off without an endpoint; when on, each request is sampled
at the edge with the SDK's own decision, and a real OTLP receiver gets the kept traces."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from app.factory import create_app
from app.foundation.config import Settings
from app.foundation.logs import RequestContextFilter
from app.foundation.tracing import create_tracer_provider
from app.web.services import services
from app.web.sessions import Database
from devtools.otlp_receiver import OtlpReceiver, ReceivedSpan


def test_without_an_endpoint_tracing_is_off_and_silent(client: object) -> None:
    from opentelemetry import trace

    assert not trace.get_current_span().get_span_context().is_valid


class TraceIds(logging.Handler):
    """The trace id of each access line, as the JSON log handler would write it."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestContextFilter())
        self.access: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "app.access":
            self.access.append(getattr(record, "trace_id", ""))


RATIO = 0.5


@pytest.fixture(scope="module")
def traced(settings: Settings) -> Iterator[Traced]:
    """An app in this process exporting to a real OTLP receiver, keeping half the traces.

    One provider per process, as in a Gunicorn worker: OpenTelemetry installs the first
    and refuses to replace it."""
    receiver = OtlpReceiver().start()
    handler = TraceIds()
    logging.getLogger("app.access").addHandler(handler)
    tracing = {"otel_exporter_otlp_endpoint": receiver.endpoint, "otel_traces_sampler_ratio": RATIO}
    configured = settings.model_copy(update=tracing)
    provider = create_tracer_provider(configured, role="web")
    assert provider is not None
    app = create_app(configured)
    yield Traced(app.test_client(), provider, receiver, handler)
    logging.getLogger("app.access").removeHandler(handler)
    services(app).close()
    provider.shutdown()
    # The instrumentations patch psycopg and redis for the whole process: undo it.
    PsycopgInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
    receiver.stop()


@dataclass
class Traced:
    client: FlaskClient
    provider: TracerProvider
    receiver: OtlpReceiver
    logged: TraceIds

    def spans(self) -> list[ReceivedSpan]:
        self.provider.force_flush()
        return self.receiver.spans


def _kept_by_ratio(trace_id: str, ratio: float) -> bool:
    bound = TraceIdRatioBased.get_bound_for_rate(ratio)
    return int(trace_id, 16) & TraceIdRatioBased.TRACE_ID_LIMIT < bound


def test_requests_are_sampled_at_the_edge_with_the_sdks_own_decision(
    traced: Traced, db: Database
) -> None:
    run, requests = traced, 40
    run.logged.access.clear()
    for _ in range(requests):
        assert run.client.get("/api/v1/users?limit=1", buffered=True).status_code == 200

    spans = run.spans()
    logged = set(run.logged.access)
    assert len(logged) == requests  # every request has a trace id, kept or not
    kept = {s.trace_id for s in spans if s.name == "GET /api/v1/users"} & logged
    assert kept == {trace_id for trace_id in logged if _kept_by_ratio(trace_id, RATIO)}
    assert 0 < len(kept) < requests
    # A dropped request's queries start no spans of their own (no orphaned SQL roots).
    assert {s.trace_id for s in spans} & logged == kept
    assert any(s.name != "GET /api/v1/users" for s in spans), "SQL spans join kept traces"


def test_probes_start_no_trace_and_the_callers_decision_is_followed(
    traced: Traced, db: Database
) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    run = traced
    run.logged.access.clear()
    run.receiver.spans.clear()
    assert run.client.get("/readyz", buffered=True).status_code == 200
    sampled = {"traceparent": f"00-{caller_trace}-{caller_span}-01"}
    assert (
        run.client.get("/api/v1/users?limit=1", headers=sampled, buffered=True).status_code == 200
    )
    unsampled = {"traceparent": f"00-{'ab' * 16}-{caller_span}-00"}
    assert (
        run.client.get("/api/v1/users?limit=2", headers=unsampled, buffered=True).status_code == 200
    )
    assert run.client.get("/api/v1/users?limit=3", buffered=True).status_code == 200

    spans = run.spans()
    probe, *logged = run.logged.access
    assert probe == ""  # a probe gets no trace context at all
    assert logged[:2] == [caller_trace, "ab" * 16]
    own = logged[2]  # no caller: drawn here, kept by the ratio alone
    assert len(own) == 32
    assert own not in (caller_trace, "ab" * 16)
    [server] = [s for s in spans if s.trace_id == caller_trace and s.name == "GET /api/v1/users"]
    assert server.parent_span_id == caller_span
    expected = {caller_trace, own} if _kept_by_ratio(own, RATIO) else {caller_trace}
    # Neither the probe nor the unsampled caller left spans. (Other statements of this
    # process, such as fixtures' SQL, start root traces of their own: not compared.)
    assert {s.trace_id for s in spans} & {caller_trace, "ab" * 16, own} == expected
    assert not any(s.name.startswith("GET /readyz") for s in spans)
