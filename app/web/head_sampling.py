"""Head sampling at the edge of the web app: decide first, instrument only what is kept.

OpenTelemetry's Flask instrumentation does most of its work before and after the sampler
runs: it collects the request's attributes twice, rebuilds the URL for each excluded-URL
check, starts and ends a span and sets the response's attributes. A request whose trace
is then dropped costs nearly as much as one that is kept (opentelemetry-specification
#620); at a 1 % ratio that was most of the cost of tracing (make bench).

HeadSampling asks the tracer provider's own sampler first, with the trace id the request
will have:

- kept: the request goes through the instrumented app, and the provider's id generator
  (PresetTraceIds) gives its server span that same trace id, so the SDK's sampler decides
  the same way and the span is recorded as usual;
- dropped: the request goes through the plain app, with the non-recording span the SDK
  would have made as its current span. Log lines still carry its trace_id and jobs still
  carry the caller's trace context; the other instrumentations are suppressed, as their
  spans would be dropped too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.instrumentation.wsgi import wsgi_getter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from app.foundation.tracing import PRESET_TRACE_ID

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

RECORDING = "app.trace.recording"
_RECORDED = frozenset({Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE})


class HeadSampling:
    """WSGI middleware in front of a Flask app: each request is sampled before the
    OpenTelemetry instrumentation sees it."""

    def __init__(self, app: Flask, *, sampler: Sampler, excluded_paths: frozenset[str]) -> None:
        self._app = app
        self._sampler = sampler
        self._excluded_paths = excluded_paths
        self._ids = RandomIdGenerator()
        # The headers the configured propagators read, as WSGI keys: most requests carry
        # none of them, and then there is nothing to extract.
        self._carrier_keys = tuple(
            "HTTP_" + field.upper().replace("-", "_")
            for field in propagate.get_global_textmap().fields
        )
        self._plain: WSGIApplication = app.wsgi_app
        self._instrumented: WSGIApplication = app.wsgi_app

    @contextmanager
    def instrumenting(self) -> Iterator[None]:
        """Wrap the instrumentation of the app: the request hooks it adds then run for
        kept requests only, and the WSGI wrapper it installs is called for those alone."""
        app = self._app
        before = list(app.before_request_funcs.get(None, []))
        teardown = list(app.teardown_request_funcs.get(None, []))
        yield
        _only_when_recording(app.before_request_funcs.setdefault(None, []), before)
        _only_when_recording(app.teardown_request_funcs.setdefault(None, []), teardown)
        self._instrumented = app.wsgi_app
        app.wsgi_app = self  # type: ignore[method-assign]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in self._excluded_paths:
            # Probes: no trace, and their checks of PostgreSQL and Redis start none either.
            with suppress_instrumentation():
                return self._plain(environ, start_response)
        parent = context.Context()
        if any(key in environ for key in self._carrier_keys):
            parent = propagate.extract(environ, getter=wsgi_getter)
        parent_span = trace.get_current_span(parent).get_span_context()
        if parent_span.is_valid:
            trace_id, random_id = parent_span.trace_id, parent_span.trace_flags.random_trace_id
        else:
            trace_id, random_id = self._ids.generate_trace_id(), self._ids.is_trace_id_random()
        sampled = self._sampler.should_sample(parent, trace_id, "", SpanKind.SERVER)
        if sampled.decision in _RECORDED:
            environ[RECORDING] = True
            preset = PRESET_TRACE_ID.set(trace_id)
            try:
                return self._instrumented(environ, start_response)
            finally:
                PRESET_TRACE_ID.reset(preset)
        flags = TraceFlags(TraceFlags.RANDOM_TRACE_ID if random_id else TraceFlags.DEFAULT)
        span = NonRecordingSpan(
            SpanContext(
                trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=flags,
                trace_state=sampled.trace_state,
            )
        )
        dropped = _DroppedTrace(trace.set_span_in_context(span, parent))
        try:
            return dropped.serving(self._plain(environ, start_response))
        except BaseException:
            dropped.close()
            raise


class _DroppedTrace:
    """The response body of a request whose trace is dropped, and its trace context,
    current until the server closes the body (a streamed body's queries still belong to
    the request).

    The psycopg and Redis instrumentations are suppressed meanwhile: every span they
    would start is a child of an unsampled span, which ParentBased drops anyway."""

    def __init__(self, request_context: context.Context) -> None:
        self._token = context.attach(request_context)
        self._suppressed = suppress_instrumentation()
        self._suppressed.__enter__()
        self._body: Iterable[bytes] = ()

    def serving(self, body: Iterable[bytes]) -> _DroppedTrace:
        self._body = body
        return self

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._suppressed.__exit__(None, None, None)
            context.detach(self._token)


def _only_when_recording(hooks: list[Any], existing: list[Any]) -> None:
    for index, hook in enumerate(hooks):
        if hook not in existing:
            hooks[index] = _when_recording(hook)


def _when_recording(hook: Any) -> Any:
    def run_if_recording(*args: Any) -> Any:
        if request.environ.get(RECORDING):
            return hook(*args)
        return None

    return run_if_recording
