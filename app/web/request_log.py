"""Request id, request-scoped log context and the one access line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from app.foundation.logs import request_context

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from a client or proxy: short, printable, no spaces or quotes, so an
# attacker cannot forge log lines or stuff the header. Anything else gets a fresh id.
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")
access_logger = logging.getLogger("app.access")
logger = logging.getLogger(__name__)


def _request_id() -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    if _WELL_FORMED_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def _begin() -> None:
    g.started_at = time.perf_counter()
    rule = request.url_rule
    g.log_context_token = request_context.set(
        {
            "request_id": _request_id(),
            "method": request.method,
            "route": rule.rule if rule is not None else "<unmatched>",
        }
    )
    logger.debug("request received", extra={"path": request.path})


def _finish(response: Response) -> Response:
    context = request_context.get() or {}
    response.headers[REQUEST_ID_HEADER] = context.get("request_id", "")
    duration_ms = (time.perf_counter() - g.started_at) * 1000
    access_logger.info(
        "request served",
        extra={
            "status": response.status_code,
            "duration_ms": round(duration_ms, 3),
            "path": request.path,
            "remote_addr": request.remote_addr,
        },
    )
    return response


def _clear(_error: BaseException | None) -> None:
    token = g.pop("log_context_token", None)
    if token is not None:
        request_context.reset(token)


def init_request_logging(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_clear)
