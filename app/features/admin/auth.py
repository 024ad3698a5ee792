"""Bearer-token guard for /admin: constant-time comparison, every attempt logged."""

from __future__ import annotations

import hmac
import logging

from flask import request
from pydantic import SecretStr
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import NotFound, Unauthorized

logger = logging.getLogger("app.features.admin")


def require_admin(token: SecretStr | None) -> None:
    """Abort unless the request carries `token`; with no token configured, admin is off."""
    if token is None:
        raise NotFound()
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), expected):
        logger.warning("admin access denied", extra={"remote_addr": request.remote_addr})
        raise Unauthorized(
            "A valid admin bearer token is required.",
            www_authenticate=WWWAuthenticate("bearer", {"realm": "admin"}),
        )
    logger.info(
        "admin action",
        extra={
            "actor": "admin-token",
            "remote_addr": request.remote_addr,
            "action": request.endpoint,
        },
    )
