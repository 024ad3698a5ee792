"""Response headers that make a JSON API safe to reach from a browser by accident."""

from __future__ import annotations

from flask import Flask, Response

_HEADERS = {
    # Browsers must not guess a content type: a JSON body is never run as HTML or script.
    "X-Content-Type-Options": "nosniff",
    # Nothing here is a page: no scripts, no frames, no embedding in another site.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _secure(response: Response) -> Response:
    response.headers.update(_HEADERS)
    # Users' data must not linger in shared or browser caches; a view may choose otherwise.
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_security_headers(app: Flask) -> None:
    app.after_request(_secure)
