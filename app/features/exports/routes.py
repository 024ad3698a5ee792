"""HTTP for /api/v1/exports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from flask import Blueprint, Response, request, url_for
from werkzeug.exceptions import Conflict, Gone, NotFound

from app.features.exports.models import Export
from app.features.exports.schemas import ExportCreate, ExportOut, Progress
from app.features.exports.service import (
    ExportExpired,
    ExportNotFound,
    ExportNotReady,
    ExportService,
)
from app.foundation.deadline import DeadlineExceeded, deadline
from app.web.bearer_auth import requires_scope
from app.web.errors import http_problem
from app.web.idempotency import idempotent
from app.web.jsonio import json_response, parse_body
from app.web.rate_limits import rate_limited
from app.web.services import request_session, services

bp = Blueprint("exports", __name__, url_prefix="/api/v1/exports")


def _service() -> ExportService:
    clients = services()
    return ExportService(
        request_session(),
        clients.outbox,
        clients.jobs,
        ttl_seconds=clients.settings.export_ttl_seconds,
        stall_seconds=2 * clients.settings.worker_job_monitoring_interval,
    )


def _export_out(export: Export, warning: str | None) -> ExportOut:
    percent = None
    if export.rows_total:
        percent = round(100 * export.rows_done / export.rows_total, 1)
    elif export.rows_total == 0 and export.status == "finished":
        percent = 100.0
    finished = export.status == "finished"
    return ExportOut(
        id=export.id,
        status=export.status,
        progress=Progress(
            rows_done=export.rows_done, rows_total=export.rows_total, percent=percent
        ),
        created_at=export.created_at,
        started_at=export.started_at,
        finished_at=export.finished_at,
        expires_at=export.expires_at,
        download=url_for("exports.download_export", export_id=export.id) if finished else None,
        error=export.error,
        warning=warning,
    )


@bp.post("")
@requires_scope("exports:write")
@rate_limited("exports")
@idempotent
def create_export() -> Response:
    if request.content_length:
        parse_body(ExportCreate)
    export = _service().create()
    location = url_for("exports.get_export", export_id=export.id)
    return json_response(_export_out(export, None), 202, {"Location": location})


@bp.get("/<uuid:export_id>")
@requires_scope("exports:read")
def get_export(export_id: uuid.UUID) -> Response:
    service = _service()
    export = service.get(export_id)
    return json_response(_export_out(export, service.worker_warning(export)))


@bp.get("/<uuid:export_id>/download")
@requires_scope("exports:read")
def download_export(export_id: uuid.UUID) -> Response:
    clients, service = services(), _service()
    export = service.get(export_id)
    chunks = service.chunks(export, clients.database.read_engine)
    first = next(chunks)  # fails here, before the 200 is sent, if the export is not ready
    # Not stream_with_context: the stream needs no request, and keeping the request's
    # context alive kept its session's connection checked out until the worker recycled.
    body = _stream(first, chunks, clients.settings.request_timeout)
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="users-{export.id}.csv"'
    return response


def _stream(first: bytes, rest: Iterator[bytes], seconds: float) -> Iterator[bytes]:
    """The chunks, each later one read under a deadline of its own: a database that
    freezes mid-download ends the download (the 200 is sent: the client sees a short
    body) instead of holding the worker until Gunicorn kills it."""
    yield first
    while True:
        try:
            with deadline(seconds):
                chunk = next(rest, None)
        except DeadlineExceeded:
            raise TimeoutError("an export chunk was not read within REQUEST_TIMEOUT") from None
        if chunk is None:
            return
        yield chunk


@bp.errorhandler(ExportNotFound)
def _not_found(_error: ExportNotFound) -> Response:
    return http_problem(NotFound("No export has this id."))


@bp.errorhandler(ExportExpired)
def _expired(_error: ExportExpired) -> Response:
    return http_problem(Gone("This export has expired; create a new one."))


@bp.errorhandler(ExportNotReady)
def _not_ready(_error: ExportNotReady) -> Response:
    return http_problem(Conflict("The export has not finished; poll it until status is finished."))
