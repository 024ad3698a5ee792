"""/openapi.json: the contract, built once per process."""

from __future__ import annotations

import functools

import orjson
from flask import Blueprint, Response

from app.features.openapi.document import build_document
from app.web.services import settings

bp = Blueprint("openapi", __name__)


@functools.cache
def _document_bytes(version: str) -> bytes:
    return orjson.dumps(build_document(version))


@bp.get("/openapi.json")
def openapi_document() -> Response:
    version = settings().app_version
    return Response(_document_bytes(version), mimetype="application/json")
