"""Unknown HTTP methods become OTHER at the edge of the app.

Gunicorn accepts any token as a method, and a method is a label of the request metrics
and a field of every log line: a client sending invented methods could mint a series
per request. No route answers a method outside the standard ones anyway (Flask answers
405 or 404 either way), so the app sees OTHER, as OpenTelemetry's HTTP conventions
fold them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "OTHER"


class FoldUnknownMethods:
    """WSGI middleware: REQUEST_METHOD outside KNOWN_METHODS becomes OTHER."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in KNOWN_METHODS:
            environ["REQUEST_METHOD"] = OTHER_METHOD
        return self._app(environ, start_response)


def init_method_folding(app: Flask) -> None:
    app.wsgi_app = FoldUnknownMethods(app.wsgi_app)  # type: ignore[method-assign]
