"""OpenTelemetry traces: one provider per process, created after the fork, never before.

A BatchSpanProcessor's thread and an exporter's connections do not survive fork
(opentelemetry-python #3307), so Gunicorn builds the provider in `post_fork`, and each
RQ work horse (forked per job) builds its own around the job and flushes it before the
horse exits through os._exit. Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is created or
instrumented: no exporter, no retries, no error lines, no overhead.

Requests are sampled before they are instrumented (app/web/head_sampling.py): the Flask
instrumentation runs for the requests whose traces are kept, and the others only carry
their trace context.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from app.foundation.config import Settings

# The trace id the web layer's head sampling drew for the request being served
# (app/web/head_sampling.py): the server span must get that same id.
PRESET_TRACE_ID: ContextVar[int | None] = ContextVar("preset_trace_id", default=None)


class PresetTraceIds(RandomIdGenerator):
    """Random ids, except a trace id preset for the request being served."""

    def generate_trace_id(self) -> int:
        preset = PRESET_TRACE_ID.get()
        return preset if preset is not None else super().generate_trace_id()


def tracing_enabled(settings: Settings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint)


def create_sampler(settings: Settings, *, roots: tuple[str, ...] = ()) -> Sampler:
    """Follow the caller's decision; else keep OTEL_TRACES_SAMPLER_RATIO of the traces,
    chosen by trace id so every service keeps or drops the same traces. With `roots`,
    only spans named with one of those prefixes may start a trace."""
    ratio: Sampler = TraceIdRatioBased(settings.traces_sampler_ratio)
    return ParentBased(RootsNamed(roots, ratio) if roots else ratio)


class RootsNamed(Sampler):
    """Drops a would-be root span unless its name starts with one of `prefixes`: in the
    worker, jobs start traces; its polls and sweeps, a pass a second, do not."""

    def __init__(self, prefixes: tuple[str, ...], then: Sampler) -> None:
        self._prefixes = prefixes
        self._then = then

    def should_sample(  # type: ignore[no-untyped-def]
        self,
        parent_context,
        trace_id,
        name,
        kind=None,
        attributes=None,
        links=None,
        trace_state=None,
    ) -> SamplingResult:
        if not name.startswith(self._prefixes):
            return SamplingResult(Decision.DROP)
        return self._then.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"RootsNamed({', '.join(self._prefixes)})"


def create_tracer_provider(settings: Settings, *, role: str) -> TracerProvider | None:
    """Build and install this process's provider; None when tracing is off."""
    if not settings.otel_exporter_otlp_endpoint:
        return None
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.version": settings.app_version,
            "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
            "process.role": role,
        }
    )
    roots = ("job ",) if role == "job" else ()
    provider = TracerProvider(
        resource=resource,
        sampler=create_sampler(settings, roots=roots),
        id_generator=PresetTraceIds(),
    )
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=5)))
    trace.set_tracer_provider(provider)
    return provider


def instrument_clients(settings: Settings) -> None:
    """Instrument psycopg and Redis when tracing is on (spans resolve the provider
    lazily, so this may run before the fork).

    SQL spans come from psycopg, under SQLAlchemy: opentelemetry-instrumentation-sqlalchemy
    0.66b1 refuses SQLAlchemy 2.1. Statements are recorded with placeholders, not values.
    """
    if not tracing_enabled(settings):
        return
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (PsycopgInstrumentor(), RedisInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def current_trace_context() -> dict[str, str]:
    """The W3C traceparent (and tracestate) of the current span, to send with a job."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def job_span(
    tracer: Tracer | None, *, name: str, job_id: str, parent: dict[str, str]
) -> Iterator[None]:
    """Run a job inside a span that continues the trace of the request that caused it."""
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(
        f"job {name}",
        context=propagate.extract(parent),
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "rq", "messaging.message.id": job_id},
    ) as span:
        try:
            yield
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
