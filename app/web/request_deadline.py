"""Every request's view runs under REQUEST_TIMEOUT: past it the client gets a 503
problem (and may retry), never a connection Gunicorn cuts when it kills the worker at
GUNICORN_TIMEOUT. The arithmetic is in docs/operations.md."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.exceptions import ServiceUnavailable

from app.foundation.deadline import DeadlineExceeded, deadline


class RequestTimedOut(ServiceUnavailable):
    description = "The request took too long; a dependency is not answering. Retry later."


class DeadlineFlask(Flask):
    """Flask whose views are bounded by `request_timeout` seconds."""

    request_timeout: float = 0.0

    def dispatch_request(self) -> Any:
        if not self.request_timeout:
            return super().dispatch_request()
        try:
            with deadline(self.request_timeout):
                return super().dispatch_request()
        except DeadlineExceeded:
            # From here on an ordinary error: Flask's handlers, the access log and the
            # metrics see it. The interrupted connection was already invalidated.
            raise RequestTimedOut(retry_after=1) from None
