"""/admin endpoints."""

from __future__ import annotations

from typing import Literal, cast

from flask import Blueprint, Response, current_app
from pydantic import BaseModel, ConfigDict
from werkzeug.exceptions import NotFound

from app.admin.auth import require_admin
from app.config import Settings
from app.errors import problem
from app.jsonio import InvalidRequest, json_response, parse_body
from app.log_level import LogLevelSync

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _settings() -> Settings:
    return cast(Settings, current_app.extensions["settings"])


@bp.before_request
def _guard() -> None:
    require_admin(_settings().admin_token)


@bp.get("/config")
def effective_config() -> Response:
    """The settings this process runs with, secrets masked."""
    return json_response(_settings().redacted())


@bp.get("/jobs/failed")
def failed_jobs() -> Response:
    """Jobs that exhausted their retries, on every queue the service uses."""
    jobs = current_app.extensions["jobs"]
    return json_response({"items": jobs.failed_jobs(_settings().queue_names)})


@bp.post("/jobs/failed/<job_id>/requeue")
def requeue_failed_job(job_id: str) -> Response:
    jobs = current_app.extensions["jobs"]
    if not jobs.requeue_failed(job_id, _settings().queue_names):
        raise NotFound("No failed job has this id.")
    return json_response({"id": job_id, "status": "queued"}, 202)


class LogLevelChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error", "critical"]


def _log_levels() -> LogLevelSync:
    return cast(LogLevelSync, current_app.extensions["log_level"])


@bp.get("/log-level")
def get_log_level() -> Response:
    return json_response({"level": _log_levels().current()})


@bp.put("/log-level")
def put_log_level() -> Response:
    """Change the level of every web and worker process (applied within ~1 s)."""
    try:
        change = parse_body(LogLevelChange)
    except InvalidRequest as invalid:
        # A bad level is a bad request to this operator endpoint, as the seed has it.
        return problem(
            400,
            "Bad Request",
            "level must be one of debug, info, warning, error, critical.",
            errors=invalid.errors,
        )
    _log_levels().publish(change.level)
    return json_response({"level": change.level})
