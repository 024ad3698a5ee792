"""Every error leaves as an RFC 9457 problem (application/problem+json).

One function builds every body; the handlers below map exceptions onto it. No stack
trace or exception text of an unexpected error ever reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from app.foundation.logs import request_context
from app.web.jsonio import InvalidRequest, json_response

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    location: str = Field(description="body or query")
    field: str | None = Field(description="dotted path of the field; null for the whole input")
    message: str
    type: str = Field(description="machine-readable error code")


class Problem(BaseModel):
    """The shape of every error body (RFC 9457), as /openapi.json documents it."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI reference naming the problem type; about:blank if none")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None
    instance: str = Field(description="path of the request that failed")
    request_id: str | None = Field(description="the X-Request-ID of the request, for support")
    errors: list[FieldError] | None = Field(None, description="present on validation errors")


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """An RFC 9457 problem response for the current request."""
    context = request_context.get() or {}
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "request_id": context.get("request_id"),
        **extensions,
    }
    return json_response(body, status, headers, mimetype=PROBLEM_JSON)


def http_problem(error: HTTPException) -> Response:
    code = error.code or 500
    # Keep headers the error carries (Allow on 405, WWW-Authenticate on 401, Retry-After).
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return problem(code, error.name, error.description, headers=headers)


def _invalid_request(error: InvalidRequest) -> Response:
    return problem(
        422,
        "Validation failed",
        f"The request {error.location} has {len(error.errors)} invalid field(s).",
        type_="/problems/validation-error",
        errors=error.errors,
    )


def _database_unavailable(error: OperationalError | InterfaceError | PoolTimeoutError) -> Response:
    # Connection refused or lost, statement timeout, pool exhausted: the request was
    # fine, the database was not. 503 tells clients and balancers to retry elsewhere.
    cause = type(getattr(error, "orig", None) or error).__name__
    logger.warning("database unavailable", extra={"error": cause})
    return problem(
        503,
        "Service Unavailable",
        "The database did not answer in time. Retry shortly.",
        type_="/problems/database-unavailable",
        headers={"Retry-After": "1"},
    )


def _unexpected(error: Exception) -> Response:
    logger.exception("unhandled exception", exc_info=error)
    return problem(500, "Internal Server Error", "An unexpected error occurred.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, http_problem)
    app.register_error_handler(InvalidRequest, _invalid_request)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(InterfaceError, _database_unavailable)
    app.register_error_handler(PoolTimeoutError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
