"""/healthz (alive), /readyz (send me traffic), /startupz (initialised)."""

from __future__ import annotations

from flask import Blueprint, Response

from app.features.health.schemas import Alive, Check, Readiness, Started
from app.web.jsonio import json_response
from app.web.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    # Liveness checks nothing but the process itself: a database outage must not make
    # Kubernetes restart every pod.
    return json_response(Alive(status="ok"))


@bp.get("/readyz")
def readyz() -> Response:
    readiness = services().readiness
    ready, results = readiness.check()
    if readiness.shutting_down:
        status = "shutting_down"
    elif not ready:
        status = "unready"
    else:
        status = "ready" if all(r.ok for r in results) else "degraded"
    checks = {r.name: Check.model_validate(r.as_dict()) for r in results}
    return json_response(Readiness(status=status, checks=checks), 200 if ready else 503)


@bp.get("/startupz")
def startupz() -> Response:
    if services().readiness.started():
        return json_response(Started(status="started"))
    return json_response(Started(status="starting"), 503)
