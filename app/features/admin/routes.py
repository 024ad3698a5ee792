"""/admin endpoints."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, field_validator
from werkzeug.exceptions import NotFound

from app.features.admin.auth import audit_admin_action
from app.features.job_kinds import queues_of
from app.web.bearer_auth import requires_scope
from app.web.errors import problem
from app.web.jsonio import InvalidRequest, json_response, parse_body
from app.web.services import services, settings

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _audit() -> None:
    audit_admin_action()


@bp.get("/config")
@requires_scope("admin")
def effective_config() -> Response:
    """The settings this process runs with, secrets masked."""
    return json_response(settings().redacted())


@bp.get("/jobs/failed")
@requires_scope("admin")
def failed_jobs() -> Response:
    """Jobs that exhausted their retries, on every queue the service uses."""
    return json_response({"items": services().jobs.failed_jobs(queues_of())})


@bp.post("/jobs/failed/<job_id>/requeue")
@requires_scope("admin")
def requeue_failed_job(job_id: str) -> Response:
    if not services().jobs.requeue_failed(job_id, queues_of()):
        raise NotFound("No failed job has this id.")
    return json_response({"id": job_id, "status": "queued"}, 202)


class LogLevelChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error", "critical"]

    @field_validator("level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        # As LOG_LEVEL: "DEBUG" and "debug" are the same level.
        return value.lower() if isinstance(value, str) else value


@bp.get("/log-level")
@requires_scope("admin")
def get_log_level() -> Response:
    return json_response({"level": services().log_level.current()})


@bp.put("/log-level")
@requires_scope("admin")
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
    services().log_level.publish(change.level)
    return json_response({"level": change.level})
