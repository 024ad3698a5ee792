"""/openapi.json: the contract, built once per process."""

from __future__ import annotations

import functools
import re

import orjson
from flask import Blueprint, Flask, Response, current_app

from app.features.openapi.document import Scopes, build_document
from app.web.bearer_auth import required_scope
from app.web.services import settings

bp = Blueprint("openapi", __name__)


def operation_scopes(app: Flask) -> Scopes:
    """What each routed operation's view declares, keyed as the document names it."""
    scopes: Scopes = {}
    for rule in app.url_map.iter_rules():
        scope = required_scope(app.view_functions[rule.endpoint])
        if scope is None:
            continue
        path = openapi_path(rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            scopes[(path, method.lower())] = scope
    return scopes


def openapi_path(rule: str) -> str:
    """/api/v1/users/<uuid:user_id> as the document writes it: /api/v1/users/{user_id}."""
    return _PARAMETER.sub(r"{\1}", rule)


_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


@functools.cache
def _document_bytes(version: str) -> bytes:
    return orjson.dumps(build_document(version, operation_scopes(current_app)))


@bp.get("/openapi.json")
def openapi_document() -> Response:
    version = settings().app_version
    return Response(_document_bytes(version), mimetype="application/json")
