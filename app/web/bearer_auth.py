"""Who may do what: every view under /api and /admin declares the scope it needs with
`@requires_scope`, and a request reaches it only with a bearer token (RFC 6750) that
grants it. Probes, the OpenAPI document and the metrics port stay open.

Fail closed: a view under a guarded prefix that declares no scope is refused (403), and
`tests/web/test_bearer_auth.py` walks `app.url_map` so that never ships.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, g, request
from pydantic import SecretStr
from werkzeug.exceptions import Forbidden, Unauthorized

from app.foundation.access_tokens import Principal, TokenRejected, TokenVerifier
from app.foundation.logs import request_context
from app.web.view_declarations import View, declared, declaring

logger = logging.getLogger(__name__)

GUARDED_PREFIXES = ("/api/", "/admin/")
REALM = "users-service"
SCOPES = {
    "users:read": "read users",
    "users:write": "create, change and delete users",
    "exports:read": "read exports and download their CSV (every user's email)",
    "exports:write": "start exports",
    "admin": "operator endpoints under /admin",
}


def requires_scope(scope: str) -> Callable[[View], View]:
    """Declare the scope a view needs; the contract (openapi) reads the same attribute."""
    assert scope in SCOPES, f"unknown scope {scope}"
    return declaring("required_scope", scope)


def required_scope(view: Callable[..., Any] | None) -> str | None:
    return declared(view, "required_scope")


def current_principal() -> Principal | None:
    principal: Principal | None = g.get("principal")
    return principal


def init_bearer_auth(
    app: Flask,
    verifier: TokenVerifier | None,
    *,
    break_glass: SecretStr | None,
    on_refused: Callable[[], None] | None = None,
) -> None:
    """Check every guarded request before its view runs. With no verifier (no issuer
    configured, outside production) every guarded request is refused. `on_refused` runs
    before each 401 (the failed-authentication limit, which may answer 429 instead)."""

    def authorize() -> None:
        if not request.path.startswith(GUARDED_PREFIXES) or request.url_rule is None:
            return
        scope = required_scope(app.view_functions.get(request.endpoint or ""))
        if scope is None:
            raise Forbidden("This operation declares no scope, so no token may call it.")
        try:
            principal = _authenticate(verifier, break_glass)
        except Unauthorized:
            if on_refused is not None:
                on_refused()
            raise
        # On the access line of this request, refused or not; never a metric label.
        context = request_context.get()
        if context is not None:
            context["subject"] = principal.subject
            if principal.client_id:
                context["client_id"] = principal.client_id
        if scope not in principal.scopes:
            raise InsufficientScope(scope)
        g.principal = principal

    app.before_request(authorize)


def _authenticate(verifier: TokenVerifier | None, break_glass: SecretStr | None) -> Principal:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not scheme:
        raise _unauthorized(None, "A bearer token is required.")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("invalid_request", "Send the token as: Authorization: Bearer <token>.")
    token = token.strip()
    if break_glass is not None and hmac.compare_digest(
        token.encode(), break_glass.get_secret_value().encode()
    ):
        # ADMIN_TOKEN: the documented break-glass for the admin scope only.
        logger.warning("break-glass admin token used", extra={"remote_addr": request.remote_addr})
        return Principal("break-glass", None, frozenset({"admin"}), float("inf"))
    if verifier is None:
        raise _unauthorized("invalid_token", "No token issuer is configured (AUTH_ISSUER).")
    try:
        return verifier.verify(token)
    except TokenRejected as exc:
        logger.info("bearer token refused", extra={"reason": str(exc)})
        raise _unauthorized("invalid_token", str(exc)) from None


def _unauthorized(error: str | None, description: str) -> Unauthorized:
    # RFC 6750 §3: no error code when the request carried no credentials at all.
    params = {"realm": REALM}
    if error:
        params |= {"error": error, "error_description": description}
    return TokenRequired(description, params)


class TokenRequired(Unauthorized):
    """401 with the RFC 6750 challenge."""

    def __init__(self, description: str, challenge: dict[str, str]) -> None:
        super().__init__(description)
        self.challenge = challenge

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), _www_authenticate(self.challenge)]


class InsufficientScope(Forbidden):
    """403 naming the missing scope, with the RFC 6750 challenge that says so."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"The token lacks the scope this operation needs: {scope}.")
        self.challenge = {"realm": REALM, "error": "insufficient_scope", "scope": scope}

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), _www_authenticate(self.challenge)]


def _www_authenticate(params: dict[str, str]) -> tuple[str, str]:
    # Quoted-strings, as RFC 6750's examples have them (Werkzeug leaves tokens bare).
    quoted = ", ".join(
        f'{name}="{value.replace(chr(34), chr(39))}"' for name, value in params.items()
    )
    return "WWW-Authenticate", f"Bearer {quoted}"
