"""Abuse limits, counted in the Redis the service already has (flask-limiter): per token
subject on writes and on exports (each stores a copy of every user for a day), per client
address on failed authentication. Over a limit: a 429 problem with Retry-After.

A view opts in with `@rate_limited("writes")` (or "exports"); the limits are settings.
A request that passes authentication and is not a limited write costs no Redis round
trip. A Redis outage never fails a request because of the limiter: it lets the request
through (fails open) and counts that in `rate_limit_storage_errors_total`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import limits
from flask import Flask, request
from flask_limiter import Limiter
from prometheus_client import Counter
from werkzeug.exceptions import TooManyRequests

from app.foundation.config import Settings
from app.web.bearer_auth import current_principal
from app.web.view_declarations import View, declared, declaring

CATEGORIES = ("writes", "exports")
LIMITER_TIMEOUT = 0.5

STORAGE_ERRORS = Counter(
    "rate_limit_storage_errors_total",
    "Requests let through because the rate limiter could not reach Redis.",
)


def rate_limited(category: str) -> Callable[[View], View]:
    """Declare which limit a view counts against (a setting per category)."""
    assert category in CATEGORIES, f"unknown rate limit category {category}"
    return declaring("rate_limit", category)


def _subject() -> str:
    principal = current_principal()
    return f"sub:{principal.subject}" if principal else f"addr:{request.remote_addr}"


def init_rate_limits(app: Flask, settings: Settings) -> FailedAuthLimit | None:
    """Apply each view's declared limit; returns the failed-authentication limit."""
    assert settings.redis_url is not None
    limiter = Limiter(
        key_func=_subject,
        app=app,
        storage_uri=_storage_uri(settings.redis_url.get_secret_value()),
        # The limiter's own Redis client, with a short bound: a limit check is one tiny
        # command, and a Redis that does not answer must cost a request little.
        storage_options=cast(
            dict[str, str | int],
            {"socket_timeout": LIMITER_TIMEOUT, "socket_connect_timeout": LIMITER_TIMEOUT},
        ),
        strategy="fixed-window",
        headers_enabled=True,
        swallow_errors=True,
        key_prefix="users-service",
    )
    logging.getLogger("flask-limiter").addFilter(_count_storage_errors)
    configured = {"writes": settings.rate_limit_writes, "exports": settings.rate_limit_exports}
    for endpoint, view in list(app.view_functions.items()):
        limit = configured.get(declared(view, "rate_limit") or "")
        if limit:
            app.view_functions[endpoint] = cast(Any, limiter.limit(limit)(view))
    if not settings.rate_limit_failed_auth:
        return None
    return FailedAuthLimit(limiter, settings.rate_limit_failed_auth)


def _storage_uri(redis_url: str) -> str:
    # The limits library names a Unix socket redis+unix:// where redis-py says unix://.
    return "redis+" + redis_url if redis_url.startswith("unix://") else redis_url


class FailedAuthLimit:
    """Counts refused tokens per client address; past the limit, 429 instead of 401."""

    def __init__(self, limiter: Limiter, limit: str) -> None:
        self._limiter = limiter
        self._item = limits.parse(limit)

    def refuse_if_exceeded(self) -> None:
        address = request.remote_addr or "unknown"
        try:
            allowed = self._limiter.limiter.hit(self._item, "failed-auth", address)
        except Exception:
            STORAGE_ERRORS.inc()
            return
        if not allowed:
            reset, _ = self._limiter.limiter.get_window_stats(self._item, "failed-auth", address)
            raise TooManyRequests(
                "Too many failed authentications from this address; retry later.",
                retry_after=max(1, int(reset - time.time())),
            )


def _count_storage_errors(record: logging.LogRecord) -> bool:
    """flask-limiter logs a swallowed storage error with its traceback on every request:
    count it, and keep one line without the stack instead."""
    if "Swallowing error" in record.getMessage() or record.levelno >= logging.ERROR:
        STORAGE_ERRORS.inc()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = "rate limit storage unreachable; request let through", ()
    return True
