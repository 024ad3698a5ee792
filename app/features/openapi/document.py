"""The OpenAPI 3.1 document of the public API, built from the pydantic models that
validate requests and shape responses, so the contract cannot drift from the code."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.features.exports.schemas import ExportCreate, ExportOut
from app.features.health.schemas import Alive, Readiness, Started
from app.features.users.schemas import (
    CURSOR_PATTERN,
    UserCreate,
    UserOut,
    UserPageOut,
    UserPatch,
)
from app.web.errors import PROBLEM_JSON, Problem
from app.web.idempotency import HEADER as IDEMPOTENCY_KEY
from app.web.request_log import REQUEST_ID_HEADER

Schema = dict[str, Any]

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (UserCreate, "validation"),
    (UserPatch, "validation"),
    (UserOut, "serialization"),
    (UserPageOut, "serialization"),
    (ExportCreate, "validation"),
    (ExportOut, "serialization"),
    (Alive, "serialization"),
    (Started, "serialization"),
    (Readiness, "serialization"),
    (Problem, "serialization"),
]

_PROBLEM_TITLES = {
    400: "Malformed request (invalid JSON, invalid UTF-8, bad header)",
    401: "No valid bearer token (WWW-Authenticate says why, RFC 6750)",
    403: "The token lacks the scope this operation needs (named in detail)",
    404: "No such resource",
    409: "Conflict",
    410: "Gone",
    412: "If-Match does not name the current version",
    413: "Body larger than MAX_CONTENT_LENGTH",
    415: "Body is not JSON",
    422: "Validation failed (field errors in `errors`)",
    429: "Over a rate limit (writes, exports, refused tokens); retry after Retry-After",
    500: "Unexpected error (no internals; quote request_id)",
    503: "A dependency did not answer in time; retry after Retry-After",
}

_ALWAYS = (500, 503)
_WITH_BODY = (400, 413, 415, 422)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "schema": schema or {"type": "string"}}


def _json(name: str, *, media_type: str = "application/json") -> Schema:
    return {media_type: {"schema": _ref(name)}}


def _response(
    description: str,
    content: Schema | None = None,
    *,
    headers: tuple[str, ...] = (),
    links: Schema | None = None,
) -> Schema:
    response: Schema = {
        "description": description,
        "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in headers},
    }
    response["headers"][REQUEST_ID_HEADER] = {"$ref": f"#/components/headers/{REQUEST_ID_HEADER}"}
    if content is not None:
        response["content"] = content
    if links:
        response["links"] = links
    return response


def _problems(*statuses: int) -> dict[str, Schema]:
    return {
        str(status): {"$ref": f"#/components/responses/Problem{status}"}
        for status in sorted({*statuses, *_ALWAYS})
    }


def _link(operation_id: str, description: str, **parameters: str) -> Schema:
    return {"operationId": operation_id, "description": description, "parameters": parameters}


def _user_links(source: str) -> Schema:
    """Where a user in a response leads: the same user's read, change and removal."""
    user_id = f"{source}#/id"
    return {
        "GetUser": _link("getUser", "Read the user.", user_id=user_id),
        "UpdateUser": _link(
            "updateUser",
            "Change the user, guarded by its ETag.",
            user_id=user_id,
            **{"header.If-Match": "$response.header.ETag"},
        ),
        "DeleteUser": _link(
            "deleteUser",
            "Delete the user, guarded by its ETag.",
            user_id=user_id,
            **{"header.If-Match": "$response.header.ETag"},
        ),
    }


def _id_in_path(name: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


def _params(*names: str) -> list[Schema]:
    return [{"$ref": f"#/components/parameters/{name}"} for name in (*names, "RequestId")]


def _users_paths() -> Schema:
    user_body = {"required": True, "content": _json("UserCreate")}
    patch_content = {
        **_json("UserPatch", media_type="application/merge-patch+json"),
        **_json("UserPatch"),
    }
    return {
        "/api/v1/users": {
            "post": {
                "operationId": "createUser",
                "tags": ["users"],
                "summary": "Create a user; a welcome email follows.",
                "parameters": _params("IdempotencyKey"),
                "requestBody": user_body,
                "responses": {
                    "201": _response(
                        "Created (or the replay of an earlier request with this Idempotency-Key).",
                        _json("UserOut"),
                        headers=("Location", "ETag"),
                        links=_user_links("$response.body"),
                    ),
                    **_problems(400, 409, 413, 415, 422),
                },
            },
            "get": {
                "operationId": "listUsers",
                "tags": ["users"],
                "summary": "List users, oldest first, one page at a time (keyset pagination).",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "The cursor of the previous page's `next` link.",
                        "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                    },
                    *_params(),
                ],
                "responses": {
                    "200": _response(
                        "A page of users; `next` and the Link header lead to the next one.",
                        _json("UserPageOut"),
                        headers=("Link",),
                    ),
                    **_problems(422),
                },
            },
        },
        "/api/v1/users/{user_id}": {
            "parameters": [_id_in_path("user_id")],
            "get": {
                "operationId": "getUser",
                "tags": ["users"],
                "summary": "Read a user; its ETag guards later changes.",
                "parameters": _params("IfNoneMatch"),
                "responses": {
                    "200": _response("The user.", _json("UserOut"), headers=("ETag",)),
                    "304": _response("Not modified since the ETag in If-None-Match."),
                    **_problems(404),
                },
            },
            "patch": {
                "operationId": "updateUser",
                "tags": ["users"],
                "summary": "Change a user (JSON merge patch), guarded by If-Match.",
                "parameters": _params("IfMatch"),
                "requestBody": {"required": True, "content": patch_content},
                "responses": {
                    "200": _response("The changed user.", _json("UserOut"), headers=("ETag",)),
                    **_problems(400, 404, 409, 412, 413, 415, 422),
                },
            },
            "delete": {
                "operationId": "deleteUser",
                "tags": ["users"],
                "summary": "Delete a user, guarded by If-Match.",
                "parameters": _params("IfMatch"),
                "responses": {"204": _response("Deleted."), **_problems(404, 412)},
            },
        },
    }


def _exports_paths() -> Schema:
    export_links = {
        "GetExport": _link("getExport", "Poll its progress.", export_id="$response.body#/id"),
        "DownloadExport": _link(
            "downloadExport", "Download it once finished.", export_id="$response.body#/id"
        ),
    }
    return {
        "/api/v1/exports": {
            "post": {
                "operationId": "createExport",
                "tags": ["exports"],
                "summary": "Start a CSV export of every user, run by the worker.",
                "parameters": _params("IdempotencyKey"),
                "requestBody": {"required": False, "content": _json("ExportCreate")},
                "responses": {
                    "202": _response(
                        "Accepted; poll Location for progress.",
                        _json("ExportOut"),
                        headers=("Location",),
                        links=export_links,
                    ),
                    **_problems(400, 409, 413, 415, 422),
                },
            },
        },
        "/api/v1/exports/{export_id}": {
            "parameters": [_id_in_path("export_id")],
            "get": {
                "operationId": "getExport",
                "tags": ["exports"],
                "summary": "Status and progress of an export, and its download link once done.",
                "parameters": _params(),
                "responses": {
                    "200": _response("The export.", _json("ExportOut")),
                    **_problems(404, 410),
                },
            },
        },
        "/api/v1/exports/{export_id}/download": {
            "parameters": [_id_in_path("export_id")],
            "get": {
                "operationId": "downloadExport",
                "tags": ["exports"],
                "summary": "The finished export as CSV, streamed.",
                "parameters": _params(),
                "responses": {
                    "200": _response(
                        "CSV with a header row.",
                        {"text/csv": {"schema": {"type": "string"}}},
                        headers=("Content-Disposition",),
                    ),
                    **_problems(404, 409, 410),
                },
            },
        },
    }


def _probe(operation_id: str, summary: str, ok: str, unready: str | None) -> Schema:
    responses = {"200": _response(summary, _json(ok))}
    if unready is not None:
        responses["503"] = _response("Not ready (or not started) yet.", _json(unready))
    return {
        "get": {
            "operationId": operation_id,
            "tags": ["probes"],
            "summary": summary,
            "parameters": _params(),
            "responses": responses,
        }
    }


def _probe_paths() -> Schema:
    return {
        "/healthz": _probe("healthz", "Liveness: the process answers.", "Alive", None),
        "/readyz": _probe(
            "readyz",
            "Readiness: send traffic here (database up, not draining).",
            "Readiness",
            "Readiness",
        ),
        "/startupz": _probe(
            "startupz",
            "Startup: the schema is at this code's migration head.",
            "Started",
            "Started",
        ),
    }


def _components() -> Schema:
    _, definitions = models_json_schema(_MODELS, ref_template="#/components/schemas/{model}")
    problem_content = _json("Problem", media_type=PROBLEM_JSON)
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token of the issuer AUTH_ISSUER for the audience "
                "AUTH_AUDIENCE; the scopes each operation needs are named in its security "
                "requirement (users:read, users:write, exports:read, exports:write).",
            }
        },
        "schemas": definitions["$defs"],
        "responses": {
            f"Problem{status}": _response(title, problem_content)
            for status, title in _PROBLEM_TITLES.items()
        },
        "parameters": {
            "RequestId": {
                "name": REQUEST_ID_HEADER,
                "in": "header",
                "description": (
                    "Your id for this request, echoed and logged if it is 1-128 characters of "
                    "[A-Za-z0-9._:@+-]; otherwise the service makes one."
                ),
                "schema": {"type": "string"},
            },
            "IdempotencyKey": {
                "name": IDEMPOTENCY_KEY,
                "in": "header",
                "description": (
                    "Makes a retry safe: the same key and body replay the first response; the "
                    "same key with another body is a 409. Keys expire after "
                    "IDEMPOTENCY_KEY_TTL_SECONDS."
                ),
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
            },
            "IfMatch": {
                "name": "If-Match",
                "in": "header",
                "description": "The ETag you read; a stale one is refused with 412.",
                "schema": {"type": "string"},
            },
            "IfNoneMatch": {
                "name": "If-None-Match",
                "in": "header",
                "description": "The ETag you hold; unchanged users answer 304.",
                "schema": {"type": "string"},
            },
        },
        "headers": {
            REQUEST_ID_HEADER: _header("The request id, also in every log line of the request."),
            "Location": _header("URL of the created resource."),
            "ETag": _header("The user's version; send it back in If-Match."),
            "Link": _header('rel="next": the next page.'),
            "Content-Disposition": _header("attachment, with the export's file name."),
        },
    }


# (path, method) -> the scope its view declares (app/web/bearer_auth.py `requires_scope`).
Scopes = dict[tuple[str, str], str]


def build_document(version: str, scopes: Scopes) -> Schema:
    """The OpenAPI 3.1 document served at /openapi.json; each operation's security is
    the scope its view declares, so contract and code cannot disagree."""
    paths = {**_users_paths(), **_exports_paths(), **_probe_paths()}
    for path, operations in paths.items():
        for method, operation in operations.items():
            scope = scopes.get((path, method))
            if scope is not None:
                operation["security"] = [{"bearer": [scope]}]
                # 429: the limit on refused tokens applies to every guarded operation.
                operation["responses"] |= _problems(401, 403, 429)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Users API",
            "version": version,
            "description": "Users, their welcome emails and CSV exports. Every error is an "
            "RFC 9457 problem (application/problem+json).",
        },
        "tags": [{"name": "users"}, {"name": "exports"}, {"name": "probes"}],
        "paths": paths,
        "components": _components(),
    }
