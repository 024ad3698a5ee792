"""JSON in and out of HTTP: strict body parsing and fast response encoding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from flask import Response, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

ModelT = TypeVar("ModelT", bound=BaseModel)


class InvalidRequest(Exception):
    """A request's body or query failed validation; becomes a 422 problem."""

    def __init__(self, location: str, error: ValidationError) -> None:
        super().__init__(f"invalid {location}")
        self.location = location
        self.errors = [
            {
                "location": location,
                "field": ".".join(str(part) for part in item["loc"]) or None,
                "message": item["msg"].removeprefix("Value error, "),
                "type": item["type"],
            }
            for item in error.errors(include_input=False, include_url=False)
        ]


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def request_body() -> bytes:
    """The whole request body; 413 past MAX_CONTENT_LENGTH, also for a chunked body.

    Werkzeug stops a chunked body (no Content-Length) at the limit and returns what it
    read so far; only the next read raises. Without that next read an oversized body
    would be cut short silently instead of refused."""
    body = request.get_data()
    if request.content_length is None and body:
        request.stream.read(1)
    return body


def parse_body(model: type[ModelT]) -> ModelT:
    """The request body as `model`: 415 if not JSON, 400 if malformed, 422 if invalid."""
    if not _is_json(request.mimetype):
        raise UnsupportedMediaType("The body must be JSON (Content-Type: application/json).")
    try:
        data = orjson.loads(request_body())
    except orjson.JSONDecodeError as exc:
        # orjson rejects invalid UTF-8, lone surrogates and nesting deeper than 1024.
        raise BadRequest(f"The body is not valid JSON: {exc.msg}.") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest("body", exc) from None


def parse_query(model: type[ModelT]) -> ModelT:
    """The query string as `model`; 422 if invalid."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise InvalidRequest("query", exc) from None


def json_response(
    body: BaseModel | Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    mimetype: str = "application/json",
) -> Response:
    payload = body.model_dump_json() if isinstance(body, BaseModel) else orjson.dumps(body)
    return Response(payload, status=status, headers=dict(headers or {}), mimetype=mimetype)
