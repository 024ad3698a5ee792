"""Every way in gets a token, in tests too: one local issuer per test session, whose URL
and audience the session's environment carries (so in-process apps and the Gunicorn and
worker processes the tests start all trust it), and a token with every scope that the
Flask test client and `devtools.processes.http_call` send unless a test says otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from devtools.issuer import AUDIENCE, DevIssuer
from devtools.processes import TOKEN_VARIABLE

_ISSUER: list[DevIssuer] = []


def start_session_issuer(key_dir: Path) -> DevIssuer:
    issuer = DevIssuer(key_dir / "issuer.pem").start()
    _ISSUER.append(issuer)
    os.environ["AUTH_ISSUER"] = issuer.url
    os.environ["AUTH_AUDIENCE"] = AUDIENCE
    os.environ[TOKEN_VARIABLE] = issuer.token()
    return issuer


def session_issuer() -> DevIssuer:
    return _ISSUER[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class BearerClient(FlaskClient):
    """Flask's test client, sending the session's all-scopes token by default; a test
    that passes its own Authorization header (or an empty one) wins."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Authorization", f"Bearer {os.environ[TOKEN_VARIABLE]}")
        if not headers["Authorization"]:
            del headers["Authorization"]
        return super().open(*args, headers=headers, **kwargs)
