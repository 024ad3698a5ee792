"""Tracing of the Flask app: requests are sampled before they are instrumented.

The Flask instrumentation runs for the requests whose traces are kept
(app/web/head_sampling.py); the others only carry their trace context.
"""

from __future__ import annotations

from flask import Flask

from app.foundation.config import Settings
from app.foundation.tracing import create_sampler, instrument_clients, tracing_enabled
from app.web.head_sampling import HeadSampling

# Probes would drown the traces that matter (/metrics is served by the master, untraced).
EXCLUDED_PATHS = frozenset({"/healthz", "/readyz", "/startupz"})
EXCLUDED_URLS = ",".join(path.lstrip("/") for path in sorted(EXCLUDED_PATHS))


def instrument_app(settings: Settings, app: Flask) -> None:
    """Instrument the app, psycopg and Redis when tracing is on."""
    if not tracing_enabled(settings):
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    sampling = HeadSampling(app, sampler=create_sampler(settings), excluded_paths=EXCLUDED_PATHS)
    with sampling.instrumenting():
        # No SQL commenter: it attaches one more context to every request (about
        # 0.05 ms in make bench) to tag SQL for a SQLAlchemy instrumentation we do not use.
        FlaskInstrumentor().instrument_app(  # type: ignore[no-untyped-call]
            app, excluded_urls=EXCLUDED_URLS, enable_commenter=False
        )
    instrument_clients(settings)
